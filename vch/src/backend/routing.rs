//! The backend's side of the router: started with the VCH over its networks, told about
//! networks as they come and go, and publishing a container's ports while it runs.

use super::VchBackend;
use crate::containers::Container;
use crate::network::{Network, Networks};
use crate::router::ports;
use crate::router::service::{NetworkLeg, Router};
use crate::target::Target;
use crate::translator::Translator;
use docker_api::{Error, Result};
use futures_util::StreamExt;
use std::net::Ipv4Addr;
use std::sync::Arc;

fn leg(n: &Network) -> NetworkLeg<'_> {
    NetworkLeg {
        id: n.id(),
        portgroup: &n.pg.name,
        gateway: n.pool.gateway,
        prefix: n.pool.subnet.prefix,
        internal: n.rec.internal,
    }
}

/// The router over the VCH's networks, when the target gives the VCH legs on them (the
/// embedded simulator). Without one, containers still run; names, ports and outbound
/// traffic are what is missing, and the log says so.
pub(super) async fn start(
    t: &Target,
    tr: &Translator,
    networks: &Arc<Networks>,
) -> Option<Arc<Router>> {
    let legs = t.network_legs()?;
    let dir = Arc::new(super::dns_directory::ContainerDirectory {
        tr: tr.clone(),
        networks: networks.clone(),
        upstreams: crate::router::dns::host_upstreams(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        ),
    });
    let router = match Router::start(legs, dir) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::warn!("no router for the networks (no DNS, published ports or outbound): {e}");
            return None;
        }
    };
    for n in networks.all() {
        if let Err(e) = router.add_network(leg(&n)).await {
            tracing::warn!(network = %n.name(), "router leg: {e}");
        }
    }
    follow_lifecycle(tr.clone(), router.clone(), networks.clone());
    Some(router)
}

pub(super) async fn network_added(b: &VchBackend, n: &Network) -> Result<()> {
    if let Some(r) = &b.inner.router {
        r.add_network(leg(n))
            .await
            .map_err(|e| Error::internal(format!("network {}: router: {e}", n.name())))?;
    }
    Ok(())
}

pub(super) fn network_removed(b: &VchBackend, n: &Network) {
    if let Some(r) = &b.inner.router {
        r.remove_network(n.id());
    }
}

/// The name servers of a new container's resolv.conf. On a user network: the VCH's
/// resolver on it (container names; it forwards the rest to `--dns` servers), as dockerd
/// names its own. On the default bridge: `--dns` as given (dockerd writes them there),
/// else the VCH's resolver, which forwards to the VCH's own name servers, loopback ones
/// included (where dockerd would fall back to 8.8.8.8). Without a router: `--dns` or the
/// VCH's own non-loopback name servers.
pub(super) fn dns_for(
    b: &VchBackend,
    first: Option<&container_vm::spec::Interface>,
    requested: Option<&Vec<String>>,
) -> Vec<String> {
    let given = requested.is_some_and(|r| !r.is_empty());
    let net = first.and_then(|i| b.inner.networks.by_id(&i.network));
    match (&b.inner.router, net) {
        (Some(_), Some(n)) if !(n.builtin && given) => vec![n.pool.gateway.to_string()],
        _ => crate::network::dns_servers(requested),
    }
}

/// `ExposedPorts` of the container's config (with the image's, merged at create).
fn exposed(c: &Container) -> Vec<String> {
    c.meta.config.exposed_ports.clone().unwrap_or_default()
}

/// The bindings a container asked for at create.
pub(super) fn bindings_of(c: &Container) -> Result<Vec<ports::Binding>> {
    let h = &c.meta.host_config;
    let all = h.publish_all_ports == Some(true);
    ports::bindings(h.port_bindings.as_ref(), all, &exposed(c))
}

/// The container's address its ports forward to: its first network's.
fn target_address(c: &Container) -> Option<Ipv4Addr> {
    c.spec.interfaces.first()?.address.parse().ok()
}

/// Publishes a container's ports before it starts (a conflict fails the start, as with
/// dockerd). Nothing to publish: nothing done.
pub(super) async fn publish(b: &VchBackend, id: &str) -> Result<()> {
    let c = b.get(id)?;
    let wanted = bindings_of(&c)?;
    if wanted.is_empty() {
        return Ok(());
    }
    let (Some(r), Some(to)) = (&b.inner.router, target_address(&c)) else {
        return Err(Error::not_implemented(
            "published ports (-p) on this VCH: it has no router on the container's network",
        ));
    };
    r.ports.publish(id, &c.meta.name, to, &wanted).await?;
    Ok(())
}

/// Every container's published ports, for `ps --filter publish=/expose=`.
pub(super) fn published_ports(
    b: &VchBackend,
) -> std::collections::HashMap<String, Vec<(u16, u16, &'static str)>> {
    let Some(r) = &b.inner.router else {
        return Default::default();
    };
    b.tr()
        .all()
        .into_iter()
        .map(|c| {
            let ports = r
                .ports
                .bound(&c.meta.id)
                .iter()
                .map(|p| (p.container_port, p.host_port, p.proto.name()))
                .collect();
            (c.meta.id, ports)
        })
        .collect()
}

/// Publishes the ports of every running container (after a VCH restart).
pub(super) async fn republish_running(b: &VchBackend) {
    let running: Vec<String> = b
        .tr()
        .all()
        .into_iter()
        .filter(|c| c.status == crate::containers::Status::Running)
        .map(|c| c.meta.id)
        .collect();
    for id in running {
        if let Err(e) = publish(b, &id).await {
            tracing::warn!(container = %id, "ports after a VCH restart: {e}");
        }
    }
}

/// `NetworkSettings.Ports` and `docker ps`'s ports of a container.
pub(super) fn ports_of(
    b: &VchBackend,
    c: &Container,
) -> (docker_api::models::PortMap, Vec<docker_api::models::Port>) {
    let bound = b
        .inner
        .router
        .as_ref()
        .map(|r| r.ports.bound(&c.meta.id))
        .unwrap_or_default();
    (
        ports::ports_map(&bound, &exposed(c)),
        ports::summary(&bound),
    )
}

/// Ports follow the container: published again when a restart policy starts it, gone
/// when it dies or is removed. Runs for the life of the VCH.
fn follow_lifecycle(tr: Translator, router: Arc<Router>, _networks: Arc<Networks>) {
    tokio::spawn(async move {
        let mut events = tr.events().subscribe(docker_api::Filters::default(), None);
        while let Some(ev) = events.next().await {
            let (Some(action), Some(id)) = (
                ev.action.as_deref(),
                ev.actor.as_ref().and_then(|a| a.id.clone()),
            ) else {
                continue;
            };
            match action {
                // A restart may have published again already: only a container that is
                // not running loses its ports.
                "die" | "destroy" => {
                    let running = tr
                        .get(&id)
                        .is_ok_and(|c| c.status == crate::containers::Status::Running);
                    if !running || action == "destroy" {
                        router.ports.unpublish(&id);
                    }
                }
                "start" if router.ports.bound(&id).is_empty() => {
                    let Ok(c) = tr.get(&id) else { continue };
                    let (Ok(wanted), Some(to)) = (bindings_of(&c), target_address(&c)) else {
                        continue;
                    };
                    if !wanted.is_empty() {
                        if let Err(e) = router.ports.publish(&id, &c.meta.name, to, &wanted).await {
                            tracing::warn!(container = %c.meta.name, "ports after a restart: {e}");
                        }
                    }
                }
                _ => {}
            }
        }
    });
}
