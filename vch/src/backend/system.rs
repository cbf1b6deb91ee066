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
        logging_driver: Some(super::create::LOG_DRIVER.into()),
        // Shown under "Storage Driver" by the CLI: where the containers live.
        driver_status: Some(vec![
            vec!["VCH".into(), t.name.clone()],
            vec!["vCenter".into(), t.url.clone()],
        ]),
        ..Default::default()
    })
}

/// `docker system df`: images with what they share and how many containers use them,
/// containers, volumes with their users. Sizes are the image store's uncompressed layer
/// sizes; a container's scratch disk and a volume's use are not asked of vCenter (-1,
/// dockerd's "not computed").
pub(super) async fn data_usage(
    b: &VchBackend,
    opts: docker_api::options::DataUsageOptions,
) -> Result<SystemDataUsageResponse> {
    let want = |t: &str| opts.types.is_empty() || opts.types.iter().any(|x| x == t);
    let cs = b.tr().all();
    let mut out = SystemDataUsageResponse::default();
    if want("image") {
        let idx = b.inner.images.index();
        let mut users: std::collections::HashMap<_, usize> = Default::default();
        for rec in idx.images.values() {
            for l in &rec.layers {
                *users.entry(l.clone()).or_default() += 1;
            }
        }
        let size_of =
            |l: &crate::images::digest::Digest| idx.layers.get(l).map_or(0, |r| r.tar_size as i64);
        out.layers_size = Some(idx.layers.keys().map(size_of).sum());
        let mut images = b
            .inner
            .images
            .list(&ListFilters::default())
            .map_err(super::internal)?;
        for im in &mut images {
            let layers = crate::images::digest::Digest::parse(&im.id)
                .ok()
                .and_then(|d| idx.images.get(&d))
                .map(|r| r.layers.clone())
                .unwrap_or_default();
            im.shared_size = layers
                .iter()
                .filter(|l| users.get(*l).copied().unwrap_or(0) > 1)
                .map(size_of)
                .sum();
            im.containers = cs.iter().filter(|c| c.meta.image_id == im.id).count() as i64;
        }
        out.images = Some(images);
    }
    if want("container") {
        let opts = docker_api::options::ContainerListOptions {
            all: true,
            ..Default::default()
        };
        out.containers = Some(super::inspect::container_list(b, opts).await?);
    }
    if want("volume") {
        let mut volumes = Vec::new();
        for rec in b.inner.volumes.list() {
            let mut v = super::volumes::volume_json(b, &rec)?;
            v.usage_data = Some(VolumeUsageData {
                size: -1,
                ref_count: b.tr().volume_users(&rec.name, None).len() as i64,
            });
            volumes.push(v);
        }
        out.volumes = Some(volumes);
    }
    if want("build-cache") {
        out.build_cache = Some(vec![]);
    }
    Ok(out)
}
