//! `docker version` and `docker info`.

use super::{internal, VchBackend};
use crate::containers::Status;
use crate::images::types::ListFilters;
use docker_api::models::*;
use docker_api::Result;

pub(super) async fn version(_b: &VchBackend) -> Result<SystemVersion> {
    serde_json::from_value(serde_json::json!({
        "Version": env!("CARGO_PKG_VERSION"), "Os": "linux", "Arch": "amd64",
        "KernelVersion": "vSphere", "GoVersion": "n/a (Rust)", "GitCommit": "vch",
        "Platform": {"Name": "VCH (Virtual Container Host)"},
    }))
    .map_err(internal)
}

pub(super) async fn info(b: &VchBackend) -> Result<SystemInfo> {
    let cs = b.tr().all();
    let running = cs.iter().filter(|c| c.status == Status::Running).count();
    let images = b
        .inner
        .images
        .list(&ListFilters::default())
        .map(|l| l.len())
        .unwrap_or(0);
    serde_json::from_value(serde_json::json!({
        "ID": b.inner.t.name, "Name": b.inner.t.name,
        "Containers": cs.len(), "ContainersRunning": running, "ContainersPaused": 0,
        "ContainersStopped": cs.len() - running, "Images": images,
        "Driver": "vSphere", "OperatingSystem": "VMware vSphere (VCH)", "OSType": "linux",
        "Architecture": "x86_64", "ServerVersion": env!("CARGO_PKG_VERSION"),
        "NCPU": 0, "MemTotal": 0, "DockerRootDir": format!("[{}] {}", b.inner.t.datastore_name, b.inner.t.name),
        "SystemStatus": [["VCH", b.inner.t.name], ["vCenter", b.inner.t.url]],
    }))
    .map_err(internal)
}
