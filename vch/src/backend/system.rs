//! `docker version` and `docker info`.

use super::VchBackend;
use crate::containers::Status;
use crate::images::types::ListFilters;
use docker_api::models::*;
use docker_api::Result;
use vsphere_client::FilterSpec;

pub(super) async fn version(_b: &VchBackend) -> Result<SystemVersion> {
    Ok(SystemVersion {
        version: Some(env!("CARGO_PKG_VERSION").into()),
        os: Some("linux".into()),
        arch: Some("amd64".into()),
        kernel_version: Some("vSphere".into()),
        go_version: Some("n/a (Rust)".into()),
        git_commit: Some("vch".into()),
        platform: Some(SystemVersionPlatform {
            name: "VCH (Virtual Container Host)".into(),
        }),
        ..Default::default()
    })
}

/// The compute resource's CPU cores and memory (bytes): what the VCH's containers can
/// use, as `NCPU` and `MemTotal` describe a Docker host. Unknown (0) if vCenter does not
/// answer: `info` still answers.
async fn capacity(b: &VchBackend) -> (i64, i64) {
    const CORES: &str = "summary.numCpuCores";
    const MEMORY: &str = "summary.totalMemory";
    let spec = FilterSpec::object(&b.inner.t.compute_resource, &[CORES, MEMORY]);
    let Ok(objs) = b.inner.t.client.retrieve(&spec, None).await else {
        return (0, 0);
    };
    let num = |p: &str| {
        objs.first()
            .and_then(|o| o.text(p))
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    (num(CORES), num(MEMORY))
}

pub(super) async fn info(b: &VchBackend) -> Result<SystemInfo> {
    let cs = b.tr().all();
    let count = |s: Status| cs.iter().filter(|c| c.status == s).count() as i64;
    let (running, paused) = (count(Status::Running), count(Status::Paused));
    let images = b
        .inner
        .images
        .list(&ListFilters::default())
        .map(|l| l.len())
        .unwrap_or(0);
    let (ncpu, mem_total) = capacity(b).await;
    let t = &b.inner.t;
    Ok(SystemInfo {
        id: Some(t.name.clone()),
        name: Some(t.name.clone()),
        containers: Some(cs.len() as i64),
        containers_running: Some(running),
        containers_paused: Some(paused),
        containers_stopped: Some(cs.len() as i64 - running - paused),
        images: Some(images as i64),
        driver: Some("vSphere".into()),
        operating_system: Some("VMware vSphere (VCH)".into()),
        os_type: Some("linux".into()),
        architecture: Some("x86_64".into()),
        server_version: Some(env!("CARGO_PKG_VERSION").into()),
        ncpu: Some(ncpu),
        mem_total: Some(mem_total),
        docker_root_dir: Some(format!("[{}] {}", t.datastore_name, t.name)),
        logging_driver: Some("json-file".into()),
        // Shown under "Storage Driver" by the CLI: where the containers live.
        driver_status: Some(vec![
            vec!["VCH".into(), t.name.clone()],
            vec!["vCenter".into(), t.url.clone()],
        ]),
        ..Default::default()
    })
}
