//! `docker inspect` and `docker ps` of containers: the translator's records rendered as
//! Docker's models.

use super::{internal, VchBackend};
use crate::containers::Container;
use crate::network::render as net_render;
use crate::translator::{filters, render};
use docker_api::models::*;
use docker_api::options::*;
use docker_api::Result;

pub(super) async fn container_inspect(
    b: &VchBackend,
    id: &str,
    _size: bool,
) -> Result<ContainerInspectResponse> {
    let id = b.resolve(id)?;
    let c = b.get(&id)?;
    let path = c.spec.cmd.first().cloned().unwrap_or_default();
    let mut host_config = c.meta.host_config.clone();
    if let Some(h) = host_config.as_object_mut() {
        // docker-py reads LogConfig.Type; the log is the VM's serial-port file.
        h.insert(
            "LogConfig".into(),
            serde_json::json!({"Type": "json-file", "Config": {}}),
        );
    }
    let args: Vec<String> = c.spec.cmd.iter().skip(1).cloned().collect();
    let mut config = c.meta.config.clone();
    if let Some(o) = config.as_object_mut() {
        o.insert("Hostname".into(), c.spec.hostname.clone().into());
        o.insert(
            "Env".into(),
            serde_json::to_value(&c.spec.env).map_err(internal)?,
        );
        o.remove("HostConfig");
        o.remove("NetworkingConfig");
    }
    serde_json::from_value(serde_json::json!({
        "Id": c.meta.id, "Created": c.meta.created, "Path": path, "Args": args,
        "State": render::state_json(&c, b.tr().restart_pending(&c.meta.id)), "Image": c.meta.image_id, "Name": format!("/{}", c.meta.name),
        "RestartCount": c.finished.as_ref().map(|f| f.restart_count).unwrap_or(0), "Driver": "vsphere", "Platform": "linux",
        "HostConfig": host_config, "Config": config,
        "Mounts": mounts_json(b, &c), "NetworkSettings": network_settings(b, &c),
    }))
    .map_err(internal)
}

pub(super) async fn container_list(
    b: &VchBackend,
    opts: ContainerListOptions,
) -> Result<Vec<ContainerSummary>> {
    let cs = b.tr().all();
    let f = &opts.filters;
    // Only what a filter needs is gathered (ps -a over thousands of containers).
    let published = if f.contains("publish") || f.contains("expose") {
        super::routing::published_ports(b)
    } else {
        Default::default()
    };
    let restarting = if f.contains("status") {
        cs.iter()
            .filter(|c| b.tr().restart_pending(&c.meta.id))
            .map(|c| c.meta.id.clone())
            .collect()
    } else {
        Default::default()
    };
    let query = filters::Query {
        all: opts.all,
        limit: opts.limit,
        filters: network_filter_ids(b, opts.filters),
        default_network: b.inner.networks.bridge().id().to_string(),
        published,
        restarting,
    };
    let mut out = Vec::new();
    for c in filters::select(cs, &query)? {
        out.push(
            serde_json::from_value(serde_json::json!({
                "Id": c.meta.id, "Names": [format!("/{}", c.meta.name)], "Image": c.meta.image,
                "ImageID": c.meta.image_id, "Command": render::command(&c), "Created": render::created_unix(&c),
                "State": render::state_of(&c, restarting_now(b, &c)),
                "Status": render::status_text(&c, restarting_now(b, &c)),
                "Labels": c.meta.config.get("Labels").cloned().unwrap_or(serde_json::json!({})),
                "Ports": super::routing::ports_json(b, &c).1, "Mounts": mounts_json(b, &c),
                "HostConfig": {"NetworkMode": c.meta.host_config.get("NetworkMode").cloned().unwrap_or("bridge".into())},
                "NetworkSettings": {"Networks": network_settings_with(b, &c, serde_json::json!({}))["Networks"].clone()},
            }))
            .map_err(internal)?,
        );
    }
    Ok(out)
}

/// Whether a restart policy's start is pending (only an exited container can be).
fn restarting_now(b: &VchBackend, c: &Container) -> bool {
    c.status == crate::containers::Status::Exited && b.tr().restart_pending(&c.meta.id)
}

/// Inspect's `NetworkSettings` of a container.
pub(super) fn network_settings(b: &VchBackend, c: &Container) -> serde_json::Value {
    network_settings_with(b, c, super::routing::ports_json(b, c).0)
}

/// `NetworkSettings` with a given `Ports` map (`ps` shows only its `Networks`).
fn network_settings_with(
    b: &VchBackend,
    c: &Container,
    ports: serde_json::Value,
) -> serde_json::Value {
    net_render::settings(&b.inner.networks, &c.meta.id, &c.meta.name, &c.spec, ports)
}

/// `ps --filter network=X` names networks by name, id or id prefix; the translator
/// matches ids, so the values are resolved here (`none` stays `none`, an unknown
/// network matches nothing).
fn network_filter_ids(b: &VchBackend, f: docker_api::Filters) -> docker_api::Filters {
    let wanted = f.get("network");
    if wanted.is_empty() {
        return f;
    }
    let mut out = docker_api::Filters::default();
    for k in f.names() {
        for v in f.get(k) {
            let v = if k == "network" {
                match b.inner.networks.lookup(v) {
                    Some(crate::network::registry::Attachment::Network(n)) => n.id().to_string(),
                    Some(crate::network::registry::Attachment::None) => "none".into(),
                    None => format!("unknown network {v}"),
                }
            } else {
                v.to_string()
            };
            out.add(k, &v);
        }
    }
    out
}

/// Inspect's `Mounts` of a container.
pub(super) fn mounts_json(b: &VchBackend, c: &Container) -> serde_json::Value {
    c.meta
        .volumes
        .iter()
        .map(|v| {
            serde_json::json!({
                "Type": "volume", "Name": v.name,
                "Source": b.inner.volumes.disk_path(&v.name),
                "Destination": v.destination, "Driver": "local",
                "Mode": if v.rw { "" } else { "ro" }, "RW": v.rw, "Propagation": "",
            })
        })
        .collect()
}
