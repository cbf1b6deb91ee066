//! The router of one VCH, put together: its legs on the networks (plumbing), the uplink
//! (outbound), a DNS server per network and the published ports.

use super::dns::{self, Directory, DnsServer};
use super::netns::Netns;
use super::outbound::{Outbound, UPLINK};
use super::plumbing::{Leg, Plumbing};
use super::ports::Publisher;
use super::Legs;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// One network as the router needs it.
pub struct NetworkLeg<'a> {
    pub id: &'a str,
    pub portgroup: &'a str,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    pub internal: bool,
}

pub struct Router {
    legs: Arc<dyn Legs>,
    ns: Arc<Netns>,
    plumbing: Plumbing,
    _outbound: Option<Outbound>,
    dir: Arc<dyn Directory>,
    /// Network id -> (bridge, its DNS server).
    networks: Mutex<HashMap<String, (String, DnsServer)>>,
    pub ports: Publisher,
}

impl Router {
    /// Enters the legs' namespace, starts the uplink (a VCH without slirp4netns runs,
    /// its containers just do not reach outside) and the empty rule set.
    pub fn start(legs: Arc<dyn Legs>, dir: Arc<dyn Directory>) -> io::Result<Router> {
        let ns = Netns::open(&legs.netns_path())?;
        let outbound = match Outbound::start(ns.path(), None) {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!(
                    "containers will not reach outside the VCH: {e} (is the slirp4netns package installed?)"
                );
                None
            }
        };
        let plumbing = Plumbing::new(ns.clone(), UPLINK)?;
        Ok(Router {
            ports: Publisher::new(ns.clone()),
            legs,
            ns,
            plumbing,
            _outbound: outbound,
            dir,
            networks: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a leg on a network: gateway address, rules, DNS server.
    pub async fn add_network(&self, n: NetworkLeg<'_>) -> io::Result<()> {
        let bridge = self.legs.bridge(n.portgroup)?;
        self.plumbing.add(Leg {
            bridge: bridge.clone(),
            gateway: n.gateway,
            prefix: n.prefix,
            internal: n.internal,
        })?;
        self.networks.lock().remove(n.id);
        let at = SocketAddr::new(IpAddr::V4(n.gateway), 53);
        let server = dns::serve(&*self.ns, at, n.id.to_string(), self.dir.clone()).await?;
        self.networks
            .lock()
            .insert(n.id.to_string(), (bridge, server));
        Ok(())
    }

    pub fn remove_network(&self, id: &str) {
        let gone = self.networks.lock().remove(id);
        if let Some((bridge, _server)) = gone {
            if let Err(e) = self.plumbing.remove(&bridge) {
                tracing::warn!(network = %id, "router: {e}");
            }
        }
    }
}
