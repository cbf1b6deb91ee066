//! The translator: Docker containers as vSphere VMs. Split by concern, one job per
//! module; vSphere and the guests are reached only through two traits, so every
//! decision here is unit-tested with in-memory fakes (`fakes.rs`, `tests/`).
//!
//! - [`platform`] / [`vsphere`]: `VmPlatform`, what the translator asks of vSphere, and
//!   its real implementation (the one place vSphere values and faults are decoded).
//! - [`guest`]: `GuestChannel`, what it asks of a container's tether (`channel::Channels`).
//! - [`error`]: the translator's error classes and the one mapping to Docker errors.
//! - [`create`]: a create request as a container spec (command, env, shape).
//! - `lifecycle`: start, stop, kill, restart, pause, rename, remove.
//! - `supervision`: exits seen through the pool watch, final states, restart policies.
//! - [`restart`]: the policy decision and dockerd's restart back-off, as pure functions.
//! - [`recovery`]: what a VCH that (re)starts makes of the VMs it finds.
//! - `wait`: `docker wait` conditions.
//! - [`events`]: `docker events`, live and recent.
//! - [`naming`]: name rules, generated names, id/name/prefix resolution.
//! - [`filters`]: `docker ps` filters and order; [`render`]: state as Docker shows it.
//! - [`signals`]: signal names and the stop/kill mapping.
//! - [`health`]: health checks asked for at create, and the tethers' reports (pid, health).

pub mod connect;
pub mod create;
pub mod error;
pub mod events;
pub mod exec;
pub mod filters;
pub mod guest;
pub mod health;
pub mod journal;
mod lifecycle;
pub mod naming;
pub mod platform;
pub mod prune;
pub mod recovery;
pub mod render;
pub mod restart;
pub mod signals;
mod supervision;
pub mod vsphere;
mod wait;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

use crate::containers::{Container, Status};
use container_vm::spec::Interface;
use docker_api::async_trait;
pub use error::{Error, PlatformError, Result};
pub use guest::GuestChannel;
pub use journal::Starts;
use parking_lot::{Mutex, RwLock};
pub use platform::VmPlatform;
use std::collections::HashMap;
use std::sync::Arc;

/// What a removal gives back besides the VM: the container's addresses, and anonymous
/// volumes nobody else mounts. The backend owns the bridge and the volume store.
#[async_trait]
pub trait Resources: Send + Sync + 'static {
    fn release_addresses(&self, interfaces: &[Interface]);
    async fn remove_volume(&self, name: &str) -> std::result::Result<(), String>;
}

/// The container state machine and its cache. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct Translator {
    inner: Arc<Inner>,
}

struct Inner {
    platform: Arc<dyn VmPlatform>,
    guest: Arc<dyn GuestChannel>,
    /// The starts this VCH acknowledged, durable across its own crashes.
    starts: Arc<dyn Starts>,
    resources: Arc<dyn Resources>,
    containers: RwLock<HashMap<String, Container>>,
    /// Exit codes of containers removed after exiting, for `wait --condition removed`.
    removed: RwLock<HashMap<String, i64>>,
    /// Bumped on every container state change; waiters watch it.
    changed: tokio::sync::watch::Sender<u64>,
    /// Attach sessions still reading each container's output: `--rm` waits for them to
    /// reach the exit record before the VM (and its log) goes.
    readers: Mutex<HashMap<String, usize>>,
    events: events::EventBus,
    /// Restart back-off per container (see `restart`), and the restart in waiting.
    restarts: Mutex<HashMap<String, restart::History>>,
    /// The exec instances of running containers.
    execs: exec::Execs,
}

/// Counts an attach session while its output stream lives.
pub struct ReaderGuard {
    t: Translator,
    id: String,
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        let mut r = self.t.inner.readers.lock();
        if let Some(n) = r.get_mut(&self.id) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Translator {
    pub fn new(
        platform: Arc<dyn VmPlatform>,
        guest: Arc<dyn GuestChannel>,
        starts: Arc<dyn Starts>,
        resources: Arc<dyn Resources>,
    ) -> Translator {
        Translator {
            inner: Arc::new(Inner {
                platform,
                guest,
                starts,
                resources,
                containers: RwLock::new(HashMap::new()),
                removed: RwLock::new(HashMap::new()),
                changed: tokio::sync::watch::channel(0).0,
                readers: Mutex::new(HashMap::new()),
                events: events::EventBus::new(),
                restarts: Mutex::new(HashMap::new()),
                execs: exec::Execs::default(),
            }),
        }
    }

    pub fn platform(&self) -> &Arc<dyn VmPlatform> {
        &self.inner.platform
    }

    pub fn guest(&self) -> &Arc<dyn GuestChannel> {
        &self.inner.guest
    }

    pub fn events(&self) -> &events::EventBus {
        &self.inner.events
    }

    /// Publishes a container event (`create`, `start`, `die`, `destroy`, ...).
    pub fn event(&self, id: &str, action: &str, extra: &[(&str, String)]) {
        let (name, image) = self
            .inner
            .containers
            .read()
            .get(id)
            .map(|c| (c.meta.name.clone(), c.meta.image.clone()))
            .unwrap_or_default();
        self.inner.events.publish(id, &name, &image, action, extra);
    }

    /// Wakes everyone who waits on a container state change.
    pub fn bump(&self) {
        self.inner.changed.send_modify(|g| *g += 1);
    }

    pub fn subscribe_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Full id from an id, unique id prefix or name.
    pub fn resolve(&self, key: &str) -> Result<String> {
        naming::resolve(&self.inner.containers.read(), key)
    }

    pub fn get(&self, id: &str) -> Result<Container> {
        self.inner
            .containers
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoSuchContainer(id.to_string()))
    }

    pub fn exists(&self, id: &str) -> bool {
        self.inner.containers.read().contains_key(id)
    }

    /// Every container, in no particular order.
    pub fn all(&self) -> Vec<Container> {
        self.inner.containers.read().values().cloned().collect()
    }

    /// Reads every container record under the lock, without copies (for hot paths such
    /// as DNS lookups).
    pub fn scan<T>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &Container>) -> T) -> T {
        let g = self.inner.containers.read();
        f(&mut g.values())
    }

    /// Changes a container's record in place; `None` when it is gone.
    pub fn update<T>(&self, id: &str, f: impl FnOnce(&mut Container) -> T) -> Option<T> {
        self.inner.containers.write().get_mut(id).map(f)
    }

    /// Counts an attach session reading the container's output until the guard drops.
    pub fn reader(&self, id: &str) -> ReaderGuard {
        *self.inner.readers.lock().entry(id.to_string()).or_insert(0) += 1;
        ReaderGuard {
            t: self.clone(),
            id: id.to_string(),
        }
    }

    /// A name a container may take: Docker's syntax, and no other container has it.
    pub fn check_new_name(&self, name: &str) -> Result<()> {
        naming::check_new(&self.inner.containers.read(), name)
    }

    /// Containers (other than `except`) that mount the volume.
    pub fn volume_users(&self, name: &str, except: Option<&str>) -> Vec<String> {
        self.inner
            .containers
            .read()
            .values()
            .filter(|c| Some(c.meta.id.as_str()) != except)
            .filter(|c| c.meta.volumes.iter().any(|v| v.name == name))
            .map(|c| c.meta.id.clone())
            .collect()
    }

    /// Users whose VM is on (running, paused or a parked clone): the volume's disk is
    /// attached read-write to that VM, and a VMDK is writable by one running VM at a time.
    pub fn active_volume_users(&self, name: &str, except: Option<&str>) -> Vec<String> {
        let users = self.volume_users(name, except);
        let cs = self.inner.containers.read();
        users
            .into_iter()
            .filter(|id| cs.get(id).is_some_and(|c| c.status != Status::Exited))
            .collect()
    }
}

/// Docker's 409 for a volume whose disk another running container VM holds.
pub fn volume_busy(name: &str, user: &str) -> Error {
    Error::Conflict(format!(
        "volume {name} is in use by container {}: on vSphere a volume disk is attached to one running container VM at a time",
        &user[..user.len().min(12)]
    ))
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
