//! `docker network ...`: the networks of `crate::network` as Docker shows them, and
//! containers connected to and disconnected from them.

use super::VchBackend;
use crate::network::registry::{endpoint, Attachment, Network as Net};
use crate::network::render::{self, Member};
use docker_api::models::*;
use docker_api::{Error, Filters, Result};
use std::sync::Arc;

/// The filters `docker network ls` and `prune` accept (dockerd's set).
fn keep(b: &VchBackend, f: &Filters, net: Option<&Net>, in_use: bool) -> Result<bool> {
    let (name, id) = match net {
        Some(n) => (n.name(), n.id()),
        None => ("none", b.inner.networks.none_id()),
    };
    let builtin = net.is_none_or(|n| n.builtin);
    let labels = net.map(|n| n.rec.labels.clone()).unwrap_or_default();
    let any = |key: &str, ok: &dyn Fn(&str) -> bool| {
        let vs = f.get(key);
        vs.is_empty() || vs.iter().any(|v| ok(v))
    };
    for d in f.get("dangling") {
        if !matches!(d, "true" | "false" | "1" | "0") {
            return Err(Error::invalid(format!("invalid filter 'dangling={d}'")));
        }
    }
    for t in f.get("type") {
        if !matches!(t, "builtin" | "custom") {
            return Err(Error::invalid(format!("invalid filter 'type={t}'")));
        }
    }
    Ok(any("name", &|v| name.contains(v))
        && any("id", &|v| id.starts_with(v))
        && any("driver", &|v| {
            v == if net.is_some() { "bridge" } else { "null" }
        })
        && any("type", &|v| (v == "builtin") == builtin)
        && any("scope", &|v| v == "local")
        && any("dangling", &|v| {
            matches!(v, "true" | "1") == (!builtin && !in_use)
        })
        && f.match_labels(
            "label",
            labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))
}

fn members(b: &VchBackend) -> Vec<crate::containers::Container> {
    b.tr().all()
}

fn describe(
    b: &VchBackend,
    net: Option<&Net>,
    cs: &[crate::containers::Container],
) -> Result<Network> {
    let m: Vec<Member> = cs
        .iter()
        .map(|c| (c.meta.id.as_str(), c.meta.name.as_str(), &c.spec))
        .collect();
    Ok(render::network(&b.inner.networks, net, &m))
}

fn in_use(b: &VchBackend, net: &Net, cs: &[crate::containers::Container]) -> bool {
    cs.iter()
        .any(|c| render::interface_on(&b.inner.networks, &c.spec, net).is_some())
}

pub(super) async fn network_list(b: &VchBackend, filters: Filters) -> Result<Vec<Network>> {
    let cs = members(b);
    let mut out = Vec::new();
    let nets = b.inner.networks.all();
    if keep(b, &filters, None, true)? {
        out.push(describe(b, None, &cs)?);
    }
    for n in &nets {
        if keep(b, &filters, Some(n), in_use(b, n, &cs))? {
            out.push(describe(b, Some(n), &cs)?);
        }
    }
    Ok(out)
}

pub(super) async fn network_inspect(
    b: &VchBackend,
    id: &str,
    _verbose: bool,
    _scope: Option<String>,
) -> Result<Network> {
    let cs = members(b);
    match b.inner.networks.lookup(id) {
        Some(Attachment::None) => describe(b, None, &cs),
        Some(Attachment::Network(n)) => describe(b, Some(&n), &cs),
        None => Err(Error::NoSuchNetwork(id.to_string())),
    }
}

pub(super) async fn network_create(
    b: &VchBackend,
    req: NetworkCreateRequest,
) -> Result<NetworkCreateResponse> {
    let net = b.inner.networks.create(&b.inner.t, &req).await?;
    if let Err(e) = super::routing::network_added(b, &net).await {
        let _ = b.inner.networks.remove(&b.inner.t, &net).await;
        return Err(e);
    }
    b.network_event(&net, "create", None);
    Ok(NetworkCreateResponse {
        id: net.id().to_string(),
        warning: String::new(),
    })
}

pub(super) async fn network_remove(b: &VchBackend, key: &str) -> Result<()> {
    let net = match b.inner.networks.lookup(key) {
        Some(Attachment::Network(n)) => n,
        Some(Attachment::None) => {
            return Err(Error::Forbidden(
                "none is a pre-defined network and cannot be removed".into(),
            ))
        }
        None => return Err(Error::NoSuchNetwork(key.to_string())),
    };
    remove_unused(b, &net).await
}

async fn remove_unused(b: &VchBackend, net: &Arc<Net>) -> Result<()> {
    let cs = members(b);
    if !net.builtin && in_use(b, net, &cs) {
        // 409, as the reference dockerd answers it.
        return Err(Error::Conflict(format!(
            "error while removing network: network {} id {} has active endpoints",
            net.name(),
            net.id()
        )));
    }
    super::routing::network_removed(b, net);
    b.inner.networks.remove(&b.inner.t, net).await?;
    b.network_event(net, "destroy", None);
    Ok(())
}

pub(super) async fn network_prune(
    b: &VchBackend,
    filters: Filters,
) -> Result<NetworkPruneResponse> {
    let cs = members(b);
    let mut deleted = Vec::new();
    for n in b.inner.networks.all() {
        if n.builtin || in_use(b, &n, &cs) {
            continue;
        }
        let until_ok = filters
            .get("until")
            .iter()
            .all(|u| until_matches(&n.rec.created, u));
        if !until_ok || !keep(b, &without_until(&filters), Some(&n), false)? {
            continue;
        }
        if remove_unused(b, &n).await.is_ok() {
            deleted.push(n.name().to_string());
        }
    }
    Ok(NetworkPruneResponse {
        networks_deleted: Some(deleted),
    })
}

fn without_until(f: &Filters) -> Filters {
    let mut out = Filters::default();
    for k in f.names().filter(|k| *k != "until") {
        for v in f.get(k) {
            out.add(k, v);
        }
    }
    out
}

/// `until=<timestamp>`: unix seconds or RFC 3339; created before it.
fn until_matches(created: &str, until: &str) -> bool {
    let created = chrono::DateTime::parse_from_rfc3339(created);
    let until = docker_api::filters::parse_until(until, chrono::Utc::now());
    matches!((created, until), (Ok(c), Ok(u)) if c < u)
}

/// The network and the container (its id and record) a connect or disconnect names.
fn network_and_container(
    b: &VchBackend,
    key: &str,
    container: Option<&str>,
) -> Result<(Arc<Net>, String, crate::containers::Container)> {
    let net = b.inner.networks.get(key)?;
    let cid = container
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::invalid("a container must be specified"))?;
    let id = b.resolve(cid)?;
    let c = b.get(&id)?;
    Ok((net, id, c))
}

pub(super) async fn network_connect(
    b: &VchBackend,
    key: &str,
    req: NetworkConnectRequest,
) -> Result<()> {
    let (net, id, c) = network_and_container(b, key, req.container.as_deref())?;
    // `--network none` asked for no network; a container disconnected from all of its
    // networks (Compose does that before it connects them again) may join one.
    if c.meta.host_config.network_mode.as_deref() == Some("none") {
        return Err(Error::invalid(format!(
            "container {} is on network none and cannot be connected to other networks",
            c.meta.name
        )));
    }
    if render::interface_on(&b.inner.networks, &c.spec, &net).is_some() {
        return Err(Error::Forbidden(format!(
            "endpoint with name {} already exists in network {}",
            c.meta.name,
            net.name()
        )));
    }
    let ep = endpoint(net.clone(), req.endpoint_config.as_ref())?;
    if !ep.links.is_empty() && c.status == crate::containers::Status::Running {
        return Err(Error::invalid(
            "--link on network connect of a running container is not supported by this VCH: use --alias (names resolve through the VCH's DNS)",
        ));
    }
    let lease = b
        .inner
        .networks
        .lease(std::slice::from_ref(&ep), &c.spec.interfaces)?;
    let mut interfaces = c.spec.interfaces.clone();
    interfaces.extend(lease.interfaces().iter().cloned());
    let mut hosts = c.spec.hosts.clone();
    for l in &ep.links {
        let line = super::hosts::link(l, &interfaces, b)?;
        if !hosts.contains(&line) {
            hosts.push(line);
        }
    }
    let nic = lease.nics(-300);
    b.tr()
        .set_interfaces(&id, interfaces, hosts, nic, vec![])
        .await?;
    lease.keep();
    configure_running(b, &id).await?;
    b.network_event(&net, "connect", Some(&id));
    Ok(())
}

pub(super) async fn network_disconnect(
    b: &VchBackend,
    key: &str,
    req: NetworkDisconnectRequest,
) -> Result<()> {
    let (net, id, c) = network_and_container(b, key, req.container.as_deref())?;
    let Some(gone) = render::interface_on(&b.inner.networks, &c.spec, &net).cloned() else {
        return Err(Error::Forbidden(format!(
            "container {} is not connected to network {}",
            c.meta.id,
            net.name()
        )));
    };
    let mut interfaces: Vec<_> = c
        .spec
        .interfaces
        .iter()
        .filter(|i| i.mac != gone.mac)
        .cloned()
        .collect();
    // The default route moves to the first remaining interface, as at create.
    if gone.gateway.is_some() {
        if let Some(first) = interfaces.first_mut() {
            first.gateway = b
                .inner
                .networks
                .by_id(&first.network)
                .map(|n| n.pool.gateway.to_string());
        }
    }
    b.tr()
        .set_interfaces(
            &id,
            interfaces,
            c.spec.hosts.clone(),
            vec![],
            vec![gone.mac.clone()],
        )
        .await?;
    b.inner.networks.release(std::slice::from_ref(&gone));
    configure_running(b, &id).await?;
    b.network_event(&net, "disconnect", Some(&id));
    Ok(())
}

/// A running container's tether configures its interfaces as they are now (hot-added
/// NICs get their addresses; the default route stays). Stopped and parked containers
/// read them at their next start.
async fn configure_running(b: &VchBackend, id: &str) -> Result<()> {
    let c = b.get(id)?;
    if c.status != crate::containers::Status::Running {
        return Ok(());
    }
    let req = container_vm::ops::OpsRequest::Interfaces {
        interfaces: c.spec.interfaces.clone(),
    };
    let (id, mut s) = b.guest_request(id, "network connect", &req).await?;
    b.guest_answer(&id, &mut s).await?;
    Ok(())
}
