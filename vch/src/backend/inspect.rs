//! `docker inspect` and `docker ps` of containers: the translator's records rendered as
//! Docker's models.

use super::VchBackend;
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
    let mut host_config = c.meta.host_config.clone();
    // Containers made before the driver was recorded had the default.
    host_config
        .log_config
        .get_or_insert_with(|| HostConfigLogConfig {
            typ: Some(super::create::LOG_DRIVER.into()),
            config: Some(Default::default()),
        });
    let config = ContainerConfig {
        hostname: Some(c.spec.hostname.clone()),
        env: Some(c.spec.env.clone()),
        ..c.meta.config.clone()
    };
    Ok(ContainerInspectResponse {
        id: Some(c.meta.id.clone()),
        created: Some(c.meta.created.clone()),
        path: Some(c.spec.cmd.first().cloned().unwrap_or_default()),
        args: Some(c.spec.cmd.iter().skip(1).cloned().collect()),
        state: Some(render::state(&c, b.tr().restart_pending(&c.meta.id))),
        image: Some(c.meta.image_id.clone()),
        name: Some(format!("/{}", c.meta.name)),
        restart_count: Some(c.finished.as_ref().map(|f| f.restart_count).unwrap_or(0)),
        driver: Some("vsphere".into()),
        platform: Some("linux".into()),
        host_config: Some(host_config),
        config: Some(config),
        mounts: Some(mounts(b, &c)),
        network_settings: Some(network_settings(b, &c)),
        ..Default::default()
    })
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
    let now = chrono::Utc::now();
    let summaries = filters::select(cs, &query)?
        .into_iter()
        .map(|c| {
            let restarting = restarting_now(b, &c);
            ContainerSummary {
                id: Some(c.meta.id.clone()),
                names: Some(vec![format!("/{}", c.meta.name)]),
                image: Some(c.meta.image.clone()),
                image_id: Some(c.meta.image_id.clone()),
                command: Some(render::command(&c)),
                created: Some(render::created_unix(&c)),
                state: Some(render::summary_state(&c, restarting)),
                status: Some(render::status_text(&c, restarting, now)),
                labels: Some(c.meta.config.labels.clone().unwrap_or_default()),
                ports: Some(super::routing::ports_of(b, &c).1),
                mounts: Some(mounts(b, &c)),
                host_config: Some(ContainerSummaryHostConfig {
                    network_mode: Some(
                        c.meta
                            .host_config
                            .network_mode
                            .clone()
                            .unwrap_or_else(|| "bridge".into()),
                    ),
                    annotations: None,
                }),
                network_settings: Some(ContainerSummaryNetworkSettings {
                    networks: Some(net_render::endpoints(
                        &b.inner.networks,
                        &c.meta.id,
                        &c.meta.name,
                        &c.spec,
                    )),
                }),
                ..Default::default()
            }
        })
        .collect();
    Ok(summaries)
}

/// Whether a restart policy's start is pending (only an exited container can be).
fn restarting_now(b: &VchBackend, c: &Container) -> bool {
    c.status == crate::containers::Status::Exited && b.tr().restart_pending(&c.meta.id)
}

/// Inspect's `NetworkSettings` of a container.
pub(super) fn network_settings(b: &VchBackend, c: &Container) -> NetworkSettings {
    let ports = super::routing::ports_of(b, c).0;
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

/// Inspect's and ps's `Mounts` of a container.
pub(super) fn mounts(b: &VchBackend, c: &Container) -> Vec<MountPoint> {
    c.meta
        .volumes
        .iter()
        .map(|v| MountPoint {
            typ: Some(MountPointTypeEnum::VOLUME),
            name: Some(v.name.clone()),
            source: Some(b.inner.volumes.disk_path(&v.name)),
            destination: Some(v.destination.clone()),
            driver: Some("local".into()),
            mode: Some(if v.rw { "" } else { "ro" }.into()),
            rw: Some(v.rw),
            propagation: Some(String::new()),
        })
        .collect()
}
