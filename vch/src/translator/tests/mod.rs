//! Unit tests of the translator's decisions, on the fakes (no root, no simulator;
//! time is virtual where timeouts or back-off are involved).

mod create;
mod events;
mod exec;
mod filters;
mod health;
mod lifecycle;
mod naming;
mod prune;
mod recovery;
mod restart;
mod signals;
mod supervision;

use super::create::Plan;
use super::fakes::Rig;
use crate::containers::{Container, Meta, Status, TetherSpec};
use docker_api::models::{ContainerConfig, HostConfig, RestartPolicy};
use std::time::Duration;

/// A 64-hex-digit id that starts with `prefix`.
pub fn id(prefix: &str) -> String {
    format!("{prefix}{}", "0".repeat(64 - prefix.len()))
}

pub fn meta(id: &str, name: &str, host_config: HostConfig) -> Meta {
    Meta {
        id: id.to_string(),
        name: name.to_string(),
        image: "busybox".into(),
        image_id: "sha256:beef00000000".into(),
        created: super::now(),
        auto_remove: host_config.auto_remove == Some(true),
        config: ContainerConfig {
            image: Some("busybox".into()),
            labels: Some(Default::default()),
            ..Default::default()
        },
        host_config,
        volumes: vec![],
    }
}

pub fn spec(id: &str) -> TetherSpec {
    TetherSpec {
        id: id.to_string(),
        cmd: vec!["sh".into(), "-c".into(), "true".into()],
        ..Default::default()
    }
}

pub fn plan(id: &str, name: &str, host_config: HostConfig) -> Plan {
    Plan {
        meta: meta(id, name, host_config),
        spec: spec(id),
        layers: vec!["[ds] layers/a.vmdk".into()],
        volume_disks: vec![],
        nics: vec![],
        memory_mb: crate::template::MEMORY_MB,
        cpus: crate::template::CPUS,
    }
}

/// No options: what `docker run IMAGE` sends.
pub fn defaults() -> HostConfig {
    HostConfig::default()
}

/// `--rm`.
pub fn auto_remove() -> HostConfig {
    HostConfig {
        auto_remove: Some(true),
        ..Default::default()
    }
}

pub fn restart_policy(name: &str, retries: i64) -> HostConfig {
    HostConfig {
        restart_policy: Some(RestartPolicy {
            name: name.parse().ok(),
            maximum_retry_count: Some(retries),
        }),
        ..Default::default()
    }
}

impl Rig {
    /// `docker create --name <name>` with a host config.
    pub async fn create(&self, name: &str, host_config: HostConfig) -> String {
        let i = super::naming::random_id();
        self.t.create(plan(&i, name, host_config)).await.unwrap()
    }

    /// `docker run -d`: create and start.
    pub async fn run(&self, name: &str, host_config: HostConfig) -> String {
        let i = self.create(name, host_config).await;
        self.t.start(&i).await.unwrap();
        i
    }

    pub fn c(&self, id: &str) -> Container {
        self.t.get(id).unwrap()
    }

    pub fn status(&self, id: &str) -> Option<Status> {
        self.t.get(id).ok().map(|c| c.status)
    }

    /// Waits (virtual time, bounded) until `cond` holds.
    pub async fn until(&self, what: &str, cond: impl Fn(&Rig) -> bool) {
        let end = tokio::time::Instant::now() + Duration::from_secs(120);
        while !cond(self) {
            assert!(tokio::time::Instant::now() < end, "never happened: {what}");
            // allow-sleep: poll interval of a deadline loop
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub async fn until_status(&self, id: &str, s: Status) {
        self.until(&format!("{id} {s:?}"), |r| r.status(id) == Some(s))
            .await
    }

    /// The actions of the events published so far, for container `id`.
    pub fn events_of(&self, id: &str) -> Vec<String> {
        self.t
            .events()
            .recent()
            .into_iter()
            .filter(|e| e.actor.as_ref().and_then(|a| a.id.as_deref()) == Some(id))
            .filter_map(|e| e.action)
            .collect()
    }
}

/// A fresh container id.
pub fn naming_id() -> String {
    super::naming::random_id()
}
