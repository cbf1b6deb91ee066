//! The VCH's DNS answers from its container table: who is on which network, under which
//! names (`router::dns::Directory`).

use crate::containers::{Container, Status};
use crate::network::Networks;
use crate::router::dns::Directory;
use crate::translator::Translator;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

pub struct ContainerDirectory {
    pub tr: Translator,
    pub networks: Arc<Networks>,
    /// The VCH's own resolvers (its /etc/resolv.conf), for containers without `--dns`.
    pub upstreams: Vec<SocketAddr>,
}

/// Only running containers have endpoints, so only they resolve (as with dockerd).
fn live(c: &Container) -> bool {
    matches!(c.status, Status::Running | Status::Paused)
}

/// The container's address on `network` (by id; interfaces without one are on the
/// default bridge).
fn address_on(c: &Container, network: &str, bridge_id: &str) -> Option<(Ipv4Addr, Vec<String>)> {
    c.spec.interfaces.iter().find_map(|i| {
        let id = if i.network.is_empty() {
            bridge_id
        } else {
            i.network.as_str()
        };
        (id == network)
            .then(|| (i.address.parse().ok(), i.aliases.clone()))
            .and_then(|(ip, a)| ip.map(|ip| (ip, a)))
    })
}

fn answers_to(c: &Container, aliases: &[String], name: &str) -> bool {
    let id = &c.meta.id;
    c.meta.name.eq_ignore_ascii_case(name)
        || (name.len() == 12 && id.starts_with(name))
        || id.eq_ignore_ascii_case(name)
        || aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
}

impl Directory for ContainerDirectory {
    fn lookup(&self, network: &str, name: &str) -> Vec<Ipv4Addr> {
        // The default bridge has no name resolution in dockerd; it only forwards.
        let bridge = self.networks.bridge().id().to_string();
        if network == bridge {
            return vec![];
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.tr.scan(|cs| {
            cs.filter(|c| live(c))
                .filter_map(|c| {
                    let (ip, aliases) = address_on(c, network, &bridge)?;
                    answers_to(c, &aliases, &name).then_some(ip)
                })
                .collect()
        })
    }

    fn reverse(&self, network: &str, ip: Ipv4Addr) -> Option<String> {
        let bridge = self.networks.bridge().id().to_string();
        let net_name = self.networks.by_id(network)?.name().to_string();
        self.tr.scan(|cs| {
            cs.filter(|c| live(c))
                .filter_map(|c| {
                    let (a, _) = address_on(c, network, &bridge)?;
                    // dockerd answers `<name>.<network>` for user networks.
                    (a == ip).then(|| format!("{}.{net_name}", c.meta.name))
                })
                .next()
        })
    }

    fn upstreams(&self, network: &str, client: Ipv4Addr) -> Vec<SocketAddr> {
        let bridge = self.networks.bridge().id().to_string();
        let requested: Option<Vec<SocketAddr>> = self.tr.scan(|mut cs| {
            Iterator::find(&mut cs, |c| {
                address_on(c, network, &bridge).is_some_and(|(a, _)| a == client)
            })
            .and_then(|c| c.meta.host_config.dns.clone())
            .map(|d| {
                d.iter()
                    .filter_map(|v| v.parse::<std::net::IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, 53))
                    .collect()
            })
        });
        requested
            .filter(|r: &Vec<SocketAddr>| !r.is_empty())
            .unwrap_or_else(|| self.upstreams.clone())
    }
}
