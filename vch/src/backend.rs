//! The VCH's implementation of the Docker API backend: containers are VMs in the VCH's
//! resource pool, images are layer disks on its datastore. This first slice covers
//! the lifecycle `docker run` needs (create, start, attach, wait, logs, stop, kill, rm,
//! inspect, ps) and pull/list/inspect/tag of images; the rest answers 501.

use crate::containers::{self, Container, FinalState, Meta, Status, TetherSpec};
use crate::images::store::ImageStore;
use crate::images::types::ListFilters;
use crate::logfile::{LogFile, Record};
use crate::network::{Bridge, Mode};
use crate::target::Target;
use container_vm::channel::{resize_payload, Frame, Kind};
use docker_api::backend::*;
use docker_api::models::*;
use docker_api::options::*;
use docker_api::{async_trait, Error, Filters, JsonMessage, Result};
use futures_util::{FutureExt, StreamExt};
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use vsphere_client::{FilterSpec, MoRef, Value};

// Container operations: top, stats, update, cp, export.
mod archive;
mod guest_ops;
mod stats;
mod top;
mod update;

/// An exec session's record (for `exec inspect`).
#[derive(Clone)]
struct ExecRecord {
    container: String,
    req: container_vm::channel::ExecRequest,
    running: bool,
    exit: Option<i64>,
    /// The control channel session, once started (for resize).
    session: Option<u32>,
}

struct Inner {
    t: Target,
    /// The starts this VCH acknowledged, durable across its own crashes.
    starts: crate::start_journal::StartJournal,
    /// The bridge network: port group and address allocation.
    bridge: Bridge,
    channels: crate::channel::Channels,
    /// The running VM every container is instant-cloned from, healed when it goes away.
    template: crate::supervisor::TemplateSupervisor,
    volumes: crate::volumes::VolumeStore,
    execs: parking_lot::Mutex<HashMap<String, ExecRecord>>,
    images: ImageStore,
    containers: RwLock<HashMap<String, Container>>,
    /// Exit codes of containers removed after exiting, for `wait --condition removed`.
    removed: RwLock<HashMap<String, i64>>,
    /// Bumped on every container state change; waiters watch it.
    changed: tokio::sync::watch::Sender<u64>,
    /// Attach sessions still reading each container's output: `--rm` waits for them to
    /// reach the exit record before the VM (and its log) goes.
    readers: parking_lot::Mutex<HashMap<String, usize>>,
    /// `docker events`: live subscribers and the recent past (for `--since`).
    events: tokio::sync::broadcast::Sender<EventMessage>,
    event_log: parking_lot::Mutex<std::collections::VecDeque<EventMessage>>,
}

/// Events kept for `docker events --since`.
const EVENT_HISTORY: usize = 1000;

/// Counts an attach session while its output stream lives.
struct Reader {
    b: VchBackend,
    id: String,
}

impl Drop for Reader {
    fn drop(&mut self) {
        let mut r = self.b.inner.readers.lock();
        if let Some(n) = r.get_mut(&self.id) {
            *n = n.saturating_sub(1);
        }
    }
}

#[derive(Clone)]
pub struct VchBackend {
    inner: Arc<Inner>,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(e)
}

fn volume_busy(name: &str, user: &str) -> Error {
    Error::Conflict(format!(
        "volume {name} is in use by container {}: on vSphere a volume disk is attached to one running container VM at a time",
        &user[..user.len().min(12)]
    ))
}

fn volume_error(e: crate::volumes::VolumeError) -> Error {
    use crate::volumes::VolumeError as V;
    match e {
        V::Invalid(m) => Error::invalid(m),
        V::NotFound(n) => Error::NoSuchVolume(n),
        // Without the URL at hand: the 503 still says vCenter is away.
        V::Vsphere(e) => crate::vsphere_errors::to_docker("", e),
        other => internal(other),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn random_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Docker's container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphanumeric())
        && n.len() >= 2
        && c.all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
}

impl VchBackend {
    /// A vSphere error as the Docker client sees it (see vsphere_errors).
    fn vs(&self, e: vsphere_client::Error) -> Error {
        crate::vsphere_errors::to_docker(&self.inner.t.url, e)
    }

    pub async fn new(
        t: Target,
        images: ImageStore,
        channels: crate::channel::Channels,
        bridge: Bridge,
        starts: crate::start_journal::StartJournal,
    ) -> Result<VchBackend> {
        let template = crate::template::ensure(&t, &channels.uri)
            .await
            .map_err(|e| internal(format!("template VM: {e}")))?;
        let volumes = crate::volumes::VolumeStore::open(&t)
            .await
            .map_err(|e| internal(format!("volume store: {e}")))?;
        let loaded = containers::load(&t, &starts)
            .await
            .map_err(|e| crate::vsphere_errors::to_docker(&t.url, e))?;
        // Addresses of containers that exist are taken before any new one is handed out.
        bridge.rebuild(loaded.iter().map(|c| &c.spec));
        let (tx, _) = tokio::sync::watch::channel(0);
        let template = crate::supervisor::TemplateSupervisor::new(template, channels.uri.clone());
        let b = VchBackend {
            inner: Arc::new(Inner {
                t,
                starts,
                bridge,
                channels,
                template,
                volumes,
                execs: parking_lot::Mutex::new(HashMap::new()),
                images,
                containers: RwLock::new(HashMap::new()),
                removed: RwLock::new(HashMap::new()),
                changed: tx,
                readers: parking_lot::Mutex::new(HashMap::new()),
                events: tokio::sync::broadcast::channel(256).0,
                event_log: parking_lot::Mutex::new(std::collections::VecDeque::new()),
            }),
        };
        // Recovery is the normal start path: containers that were running are watched
        // again; ones that exited while the VCH was away get their final state. All are
        // known before the pool watch reports their VMs.
        let loaded: Vec<(String, Status, bool)> = loaded
            .into_iter()
            .map(|c| {
                let entry = (c.meta.id.clone(), c.status, c.interrupted);
                b.inner.containers.write().insert(c.meta.id.clone(), c);
                entry
            })
            .collect();
        b.watch_pool();
        for (id, status, interrupted) in loaded {
            if interrupted {
                // Its start was acknowledged and its VM is off: it exited (with the code
                // in its log, or 137 when the VM was killed) - never `created`.
                b.record_exit(&id).await;
            } else if status == Status::Running {
                // The pool watch (started above) sees its VM power off.
            } else if status == Status::Exited {
                // Policies are enforced by the VCH, also across its own restarts.
                let c = b.get(&id)?;
                let fin = c.finished.clone().unwrap_or_default();
                let policy = restart_policy(&c.meta);
                if matches!(policy.0.as_str(), "always" | "unless-stopped") && !fin.stopped_by_user
                {
                    let _ = b.start_now(&id).await;
                }
            }
            // A created container without a start record never ran, whatever its log
            // says: a parked clone's tether writes an exit record (125) when it loses its
            // control channel, as when the VCH dies.
        }
        Ok(b)
    }

    /// Publishes a container event (`create`, `start`, `die`, `destroy`, ...).
    fn event(&self, id: &str, action: &str, extra: &[(&str, String)]) {
        let (name, image) = self
            .inner
            .containers
            .read()
            .get(id)
            .map(|c| (c.meta.name.clone(), c.meta.image.clone()))
            .unwrap_or_default();
        let mut attrs = serde_json::json!({"name": name, "image": image});
        for (k, v) in extra {
            attrs[*k] = serde_json::Value::String(v.clone());
        }
        let t = chrono::Utc::now();
        let Ok(ev) = serde_json::from_value::<EventMessage>(serde_json::json!({
            "Type": "container", "Action": action, "scope": "local",
            "Actor": {"ID": id, "Attributes": attrs},
            "time": t.timestamp(), "timeNano": t.timestamp_nanos_opt().unwrap_or(0),
        })) else {
            return;
        };
        let mut log = self.inner.event_log.lock();
        log.push_back(ev.clone());
        while log.len() > EVENT_HISTORY {
            log.pop_front();
        }
        drop(log);
        let _ = self.inner.events.send(ev);
    }

    fn bump(&self) {
        self.inner.changed.send_modify(|g| *g += 1);
    }

    /// Full id from an id, unique id prefix or name.
    fn resolve(&self, key: &str) -> Result<String> {
        let key = key.trim_start_matches('/');
        let cs = self.inner.containers.read();
        if cs.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(c) = cs.values().find(|c| c.meta.name == key) {
            return Ok(c.meta.id.clone());
        }
        let matches: Vec<&String> = cs.keys().filter(|id| id.starts_with(key)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NoSuchContainer(key.to_string())),
            _ => Err(Error::invalid(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
        }
    }

    fn get(&self, id: &str) -> Result<Container> {
        self.inner
            .containers
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoSuchContainer(id.to_string()))
    }

    fn log_file(&self, id: &str) -> Option<LogFile> {
        let c = self.inner.containers.read().get(id).cloned()?;
        Some(LogFile {
            client: self.inner.t.client.clone(),
            datacenter: self.inner.t.datacenter_name.clone(),
            datastore: self.inner.t.datastore_name.clone(),
            path: format!("{}/container.log", c.vm_name),
        })
    }

    /// Records the exit, persists it in the (now powered-off) VM's extraConfig, and
    /// removes the container if it was created with --rm.
    async fn finish(&self, id: &str, code: i64, error: Option<String>) {
        // A SIGKILL (137) may be the VM's OOM killer: the exit record says so.
        let started_at = self
            .inner
            .containers
            .read()
            .get(id)
            .and_then(|c| c.started_at.clone());
        let oom_killed = code == 137
            && match self.log_file(id) {
                Some(lf) => lf.oom_killed_since(started_at.as_deref()).await,
                None => false,
            };
        let (vm, fin, auto_remove, policy) = {
            let mut cs = self.inner.containers.write();
            let Some(c) = cs.get_mut(id) else { return };
            let before = c.finished.clone().unwrap_or_default();
            let fin = FinalState {
                stopped_by_user: before.stopped_by_user,
                restart_count: before.restart_count,
                exit_code: code,
                error,
                oom_killed,
                finished_at: now(),
                started_at: c.started_at.clone().unwrap_or_default(),
            };
            c.status = Status::Exited;
            c.watched = false;
            c.finished = Some(fin.clone());
            (
                c.vm.clone(),
                fin,
                c.meta.auto_remove,
                restart_policy(&c.meta),
            )
        };
        self.bump();
        self.event(id, "die", &[("exitCode", code.to_string())]);
        if auto_remove {
            // Let attached clients read the output up to the exit record first.
            for _ in 0..2500 {
                if self.inner.readers.lock().get(id).copied().unwrap_or(0) == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            let _ = self.remove_now(id, false, true).await;
            return;
        }
        self.persist_final(&vm, &fin).await;
        if should_restart(&policy, &fin) {
            if let Some(c) = self.inner.containers.write().get_mut(id) {
                if let Some(f) = c.finished.as_mut() {
                    f.restart_count += 1;
                }
            }
            tracing::info!(container = id, policy = %policy.0, "restarting per restart policy");
            if let Err(e) = self.start_now(id).await {
                tracing::warn!(container = id, "restart policy: {e}");
            }
        }
    }

    async fn persist_final(&self, vm: &MoRef, fin: &FinalState) {
        let spec = vsphere_client::spec::VmConfigSpec {
            extra_config: vec![(
                containers::EXIT_KEY.into(),
                serde_json::to_string(fin).unwrap_or_default(),
            )],
            ..Default::default()
        };
        if let Err(e) = self.inner.t.client.reconfigure_vm(vm, &spec).await {
            tracing::warn!(vm = %vm.value, "cannot persist the exit state: {e}");
        }
    }

    /// Records whether the user stopped the container (restart policies hold off).
    fn mark_stopped_by_user(&self, id: &str, stopped: bool) {
        if let Some(c) = self.inner.containers.write().get_mut(id) {
            c.finished
                .get_or_insert_with(FinalState::default)
                .stopped_by_user = stopped;
        }
    }

    async fn start_now(&self, id: &str) -> Result<()> {
        let c = self.get(id)?;
        // Taken before the guest can run: the run's exit record is never older.
        let started = now();
        if c.parked {
            // A created container is a running clone whose tether waits for the word.
            // Running before the word: the pool watch may see the exit right after it.
            let ch = &self.inner.channels;
            let connected = ch.wait_connected(id, Duration::from_secs(10)).await;
            if connected {
                self.persist_started(id, &started).await;
            }
            self.set_running(id, false, &started);
            if !connected || !ch.start(id) {
                if let Some(cc) = self.inner.containers.write().get_mut(id) {
                    cc.status = Status::Created;
                    cc.parked = true;
                }
                if connected {
                    self.persist_started(id, "").await;
                }
                return Err(internal(format!(
                    "container VM {} did not connect its control channel",
                    c.vm_name
                )));
            }
        } else {
            // A second start is a cold power-on of the container's own VM, with its own
            // watch: the pool watch could miss an on-off cycle between two of its polls.
            for v in &c.meta.volumes {
                if let Some(other) = self.active_volume_users(&v.name, Some(id)).first() {
                    return Err(volume_busy(&v.name, other));
                }
            }
            if let Some(cc) = self.inner.containers.write().get_mut(id) {
                cc.watched = true;
            }
            self.persist_started(id, &started).await;
            if let Err(e) = self.inner.t.client.power_on(&c.vm).await {
                if let Some(cc) = self.inner.containers.write().get_mut(id) {
                    cc.watched = false;
                }
                self.persist_started(id, "").await;
                return Err(self.vs(e));
            }
            self.set_running(id, true, &started);
            self.monitor(id.to_string());
        }
        self.bump();
        self.event(id, "start", &[]);
        Ok(())
    }

    fn set_running(&self, id: &str, watched: bool, started: &str) {
        if let Some(cc) = self.inner.containers.write().get_mut(id) {
            cc.status = Status::Running;
            cc.parked = false;
            cc.watched = watched;
            cc.started_at = Some(started.to_string());
        }
    }

    /// Persists that a run starts, before the guest is told to run (see
    /// containers::STARTED_KEY): a start that is acknowledged is never lost, one that
    /// was cut short may show as exited. `""` takes it back (the start failed). Not
    /// guestinfo: it must outlive the run.
    /// Records the start durably before it is acknowledged (see `start_journal`); an
    /// empty `started` takes a failed start back.
    async fn persist_started(&self, id: &str, started: &str) {
        if let Err(e) = self.inner.starts.record(id, started).await {
            tracing::warn!(container = id, "cannot record the start: {e}");
        }
    }

    /// One PropertyCollector watch over the VCH pool's VMs records the exit of every
    /// container whose VM powers off (a watch per container would hold a long poll per
    /// running container). A parked clone goes from on to off exactly once, so the
    /// pool view cannot miss it.
    fn watch_pool(&self) {
        let b = self.clone();
        tokio::spawn(async move {
            let spec = FilterSpec::pool_vms(&b.inner.t.pool, &["runtime.powerState"]);
            let mut watch = Box::pin(b.inner.t.client.watch(spec));
            while let Some(update) = watch.next().await {
                let Ok(updates) = update else { continue };
                for u in updates {
                    let off = u.kind == vsphere_client::types::UpdateKind::Leave
                        || u.changes.iter().any(|ch| {
                            ch.val.as_ref().and_then(Value::as_text) == Some("poweredOff")
                        });
                    if !off {
                        continue;
                    }
                    if b.inner.template.is_template(&u.obj) {
                        // Off or deleted, by an admin, a crash or a restarted vCenter.
                        let b = b.clone();
                        tokio::spawn(async move {
                            let why = "the template VM was powered off or removed";
                            b.inner.template.heal(&b.inner.t, why).await;
                        });
                    } else {
                        b.vm_powered_off(&u.obj);
                    }
                }
            }
        });
    }

    fn vm_powered_off(&self, vm: &MoRef) {
        let claimed = {
            let mut cs = self.inner.containers.write();
            let Some(c) = cs.values_mut().find(|c| &c.vm == vm) else {
                return;
            };
            // A parked clone that went away: its next start is a cold power-on.
            c.parked = false;
            let claim = matches!(c.status, Status::Running | Status::Paused) && !c.watched;
            if claim {
                c.watched = true;
            }
            claim.then(|| c.meta.id.clone())
        };
        if let Some(id) = claimed {
            let b = self.clone();
            tokio::spawn(async move { b.record_exit(&id).await });
        }
    }

    /// The durable exit record is the log's last line; none means the VM was killed.
    async fn record_exit(&self, id: &str) {
        let since = self.get(id).ok().and_then(|c| c.started_at);
        let exit = match self.log_file(id) {
            Some(lf) => lf.exit_since(since.as_deref()).await,
            None => None,
        };
        let (code, error) = exit.unwrap_or((137, None));
        self.finish(id, code, error).await;
    }

    /// Resolves once the container is no longer running.
    async fn until_not_running(&self, id: &str) {
        let mut rx = self.inner.changed.subscribe();
        loop {
            rx.borrow_and_update();
            let running = self
                .inner
                .containers
                .read()
                .get(id)
                .map(|c| matches!(c.status, Status::Running | Status::Paused))
                .unwrap_or(false);
            if !running || rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Watches a running container's VM until it powers off, then finishes it.
    fn monitor(&self, id: String) {
        let b = self.clone();
        tokio::spawn(async move {
            let Ok(c) = b.get(&id) else { return };
            let mut watch = Box::pin(
                b.inner
                    .t
                    .client
                    .watch(FilterSpec::object(&c.vm, &["runtime.powerState"])),
            );
            while let Some(update) = watch.next().await {
                let Ok(updates) = update else { continue };
                let off = updates.iter().any(|u| {
                    u.kind == vsphere_client::types::UpdateKind::Leave
                        || u.changes.iter().any(|ch| {
                            ch.val.as_ref().and_then(Value::as_text) == Some("poweredOff")
                        })
                });
                if off {
                    break;
                }
            }
            b.record_exit(&id).await;
        });
    }

    fn volume_json(&self, rec: &crate::volumes::VolumeRecord) -> Result<Volume> {
        let mut labels = rec.labels.clone();
        if rec.anonymous {
            labels.insert("com.docker.volume.anonymous".into(), String::new());
        }
        serde_json::from_value(serde_json::json!({
            "Name": rec.name, "Driver": "local",
            "Mountpoint": self.inner.volumes.disk_path(&rec.name),
            "CreatedAt": rec.created_at, "Labels": labels, "Scope": "local",
            "Options": rec.options,
        }))
        .map_err(internal)
    }

    /// Inspect's `Mounts` of a container.
    fn mounts_json(&self, c: &Container) -> serde_json::Value {
        c.meta
            .volumes
            .iter()
            .map(|v| {
                serde_json::json!({
                    "Type": "volume", "Name": v.name,
                    "Source": self.inner.volumes.disk_path(&v.name),
                    "Destination": v.destination, "Driver": "local",
                    "Mode": if v.rw { "" } else { "ro" }, "RW": v.rw, "Propagation": "",
                })
            })
            .collect()
    }

    /// A name a container may take: Docker's syntax, and no other container has it.
    fn check_new_name(&self, name: &str) -> Result<()> {
        if !valid_name(name) {
            return Err(Error::invalid(format!(
                "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        match self
            .inner
            .containers
            .read()
            .values()
            .find(|c| c.meta.name == name)
        {
            Some(other) => Err(Error::name_conflict(name, &other.meta.id)),
            None => Ok(()),
        }
    }

    /// Containers (other than `except`) that mount the volume.
    fn volume_users(&self, name: &str, except: Option<&str>) -> Vec<String> {
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
    fn active_volume_users(&self, name: &str, except: Option<&str>) -> Vec<String> {
        let cs = self.inner.containers.read();
        self.volume_users(name, except)
            .into_iter()
            .filter(|id| cs.get(id).is_some_and(|c| c.status != Status::Exited))
            .collect()
    }

    /// Finds or creates the volumes a create asks for.
    async fn volumes_for(
        &self,
        id: &str,
        body: &ContainerCreateBody,
    ) -> Result<Vec<crate::mounts::VolumeMountRecord>> {
        let mut out = Vec::new();
        for r in crate::mounts::requested(body).map_err(Error::invalid)? {
            let (name, anonymous) = match r.name {
                Some(n) => (n, false),
                None => (random_id(), true),
            };
            if let Some(other) = self.active_volume_users(&name, Some(id)).first() {
                return Err(volume_busy(&name, other));
            }
            self.inner
                .volumes
                .create(&name, HashMap::new(), HashMap::new(), anonymous)
                .await
                .map_err(volume_error)?;
            out.push(crate::mounts::VolumeMountRecord {
                name,
                destination: r.destination,
                rw: r.rw,
                anonymous,
            });
        }
        Ok(out)
    }

    /// Removes the volume disks from a powered-off VM without deleting them.
    async fn detach_volumes(&self, vm: &MoRef) -> Result<()> {
        use vsphere_client::spec::{Device, DeviceChange, DeviceOp, VmConfigSpec};
        let devices = match self
            .inner
            .t
            .client
            .property(vm, "config.hardware.device")
            .await
            .map_err(|e| self.vs(e))?
        {
            Some(Value::Array { items, .. }) => items,
            _ => return Ok(()),
        };
        let mut changes = Vec::new();
        for d in devices.iter().filter_map(Value::as_obj) {
            let backing = d.get("backing").and_then(Value::as_obj);
            let file = backing.and_then(|b| b.text("fileName")).unwrap_or_default();
            if d.ty != "VirtualDisk" || !file.contains(&format!("] {}/volumes/", self.inner.t.name))
            {
                continue;
            }
            changes.push(DeviceChange {
                op: DeviceOp::Remove,
                file_op: None,
                device: Device::Disk {
                    key: d.i64("key").unwrap_or_default(),
                    controller_key: d.i64("controllerKey").unwrap_or_default(),
                    unit: d.i64("unitNumber"),
                    capacity_kb: 0,
                    file: file.to_string(),
                    mode: backing
                        .and_then(|b| b.text("diskMode"))
                        .unwrap_or("independent_persistent")
                        .to_string(),
                    thin: true,
                },
            });
        }
        if changes.is_empty() {
            return Ok(());
        }
        let spec = VmConfigSpec {
            devices: changes,
            ..Default::default()
        };
        self.inner
            .t
            .client
            .reconfigure_vm(vm, &spec)
            .await
            .map_err(|e| self.vs(e))
    }

    async fn remove_now(&self, id: &str, force: bool, anonymous_volumes: bool) -> Result<()> {
        let c = self.get(id)?;
        if c.status == Status::Running && !force {
            return Err(Error::Conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                c.meta.name
            )));
        }
        if c.status != Status::Exited || c.parked {
            // Running (forced), paused, or a parked clone: the VM is on. An already-off VM
            // answers InvalidPowerState, which is fine.
            let _ = self.inner.t.client.power_off(&c.vm).await;
        }
        if let Some(cc) = self.inner.containers.write().get_mut(id) {
            cc.status = Status::Removing;
        }
        if !c.meta.volumes.is_empty() {
            // Destroy deletes every persistent disk of a VM: volumes are detached first.
            self.detach_volumes(&c.vm).await?;
        }
        if let Err(e) = self.inner.t.client.destroy(&c.vm).await {
            if e.fault_type() != Some("ManagedObjectNotFound") {
                return Err(self.vs(e));
            }
        }
        if anonymous_volumes {
            for v in c.meta.volumes.iter().filter(|v| v.anonymous) {
                if self.volume_users(&v.name, Some(id)).is_empty() {
                    if let Err(e) = self.inner.volumes.remove(&v.name).await {
                        tracing::warn!(volume = %v.name, "removing anonymous volume: {e}");
                    }
                }
            }
        }
        self.inner.bridge.release(&c.spec.interfaces);
        let code = c.finished.map(|f| f.exit_code).unwrap_or(0);
        self.inner.removed.write().insert(id.to_string(), code);
        self.event(id, "destroy", &[]);
        self.inner.containers.write().remove(id);
        self.inner.starts.forget(id).await;
        self.bump();
        Ok(())
    }

    fn state_of(c: &Container) -> serde_json::Value {
        let (status, running) = match c.status {
            Status::Created => ("created", false),
            Status::Running => ("running", true),
            Status::Exited => ("exited", false),
            Status::Removing => ("removing", false),
            Status::Paused => ("paused", true),
        };
        let f = c.finished.clone().unwrap_or_default();
        serde_json::json!({
            "Status": status, "Running": running, "Paused": c.status == Status::Paused, "Restarting": false,
            "OOMKilled": f.oom_killed, "Dead": false, "Pid": 0, "ExitCode": f.exit_code,
            "Error": f.error.unwrap_or_default(),
            "StartedAt": c.started_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "FinishedAt": if f.finished_at.is_empty() { "0001-01-01T00:00:00Z".to_string() } else { f.finished_at },
        })
    }

    /// `docker network inspect` of a built-in network with its containers.
    fn describe_network(&self, mode: Mode) -> serde_json::Value {
        let cs = self.inner.containers.read();
        let members: Vec<(String, String, &TetherSpec)> = cs
            .values()
            .map(|c| (c.meta.id.clone(), c.meta.name.clone(), &c.spec))
            .collect();
        self.inner.bridge.describe(mode, &members)
    }

    /// Flags this VCH cannot honour are refused by name rather than ignored.
    fn check_supported(body: &ContainerCreateBody) -> Result<()> {
        if let Some(h) = &body.host_config {
            crate::security::from_host_config(h)?;
            if h.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(Error::not_implemented("port publishing (-p)"));
            }
            let mode = Mode::parse(h.network_mode.as_deref())?;
            crate::network::check_endpoints(mode, body.networking_config.as_ref())?;
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for VchBackend {
    async fn version(&self) -> Result<SystemVersion> {
        Ok(serde_json::from_value(serde_json::json!({
            "Version": env!("CARGO_PKG_VERSION"), "Os": "linux", "Arch": "amd64",
            "KernelVersion": "vSphere", "GoVersion": "n/a (Rust)", "GitCommit": "vch",
            "Platform": {"Name": "VCH (Virtual Container Host)"},
        }))
        .map_err(internal)?)
    }

    async fn info(&self) -> Result<SystemInfo> {
        let cs = self.inner.containers.read();
        let running = cs.values().filter(|c| c.status == Status::Running).count();
        let images = self
            .inner
            .images
            .list(&ListFilters::default())
            .map(|l| l.len())
            .unwrap_or(0);
        Ok(serde_json::from_value(serde_json::json!({
            "ID": self.inner.t.name, "Name": self.inner.t.name,
            "Containers": cs.len(), "ContainersRunning": running, "ContainersPaused": 0,
            "ContainersStopped": cs.len() - running, "Images": images,
            "Driver": "vSphere", "OperatingSystem": "VMware vSphere (VCH)", "OSType": "linux",
            "Architecture": "x86_64", "ServerVersion": env!("CARGO_PKG_VERSION"),
            "NCPU": 0, "MemTotal": 0, "DockerRootDir": format!("[{}] {}", self.inner.t.datastore_name, self.inner.t.name),
            "SystemStatus": [["VCH", self.inner.t.name], ["vCenter", self.inner.t.url]],
        }))
        .map_err(internal)?)
    }

    async fn events(
        &self,
        opts: EventsOptions,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<EventMessage>>> {
        let f = opts.filters.clone();
        let keep = move |e: &EventMessage| -> bool {
            let ty = e.typ.map(|t| t.to_string()).unwrap_or_default();
            let action = e.action.clone().unwrap_or_default();
            let actor = e.actor.clone().unwrap_or_default();
            let id = actor.id.unwrap_or_default();
            let name = actor
                .attributes
                .and_then(|a| a.get("name").cloned())
                .unwrap_or_default();
            let any = |key: &str, ok: &dyn Fn(&str) -> bool| {
                let vs = f.get(key);
                vs.is_empty() || vs.iter().any(|v| ok(v))
            };
            any("type", &|v| v == ty)
                && any("event", &|v| v == action)
                && any("container", &|v| v == name || id.starts_with(v))
        };
        let since = opts.since;
        let rx = self.inner.events.subscribe();
        let past: Vec<EventMessage> = match since {
            Some(s) => self
                .inner
                .event_log
                .lock()
                .iter()
                .filter(|e| e.time_nano.unwrap_or(0) >= s.timestamp_nanos_opt().unwrap_or(0))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let keep2 = keep.clone();
        let live = futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Some((e, rx)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        })
        .filter(move |e| futures_util::future::ready(keep2(e)));
        Ok(futures_util::stream::iter(past.into_iter().filter(keep))
            .chain(live)
            .map(Ok)
            .boxed())
    }

    async fn image_pull(&self, opts: PullOptions) -> Result<ProgressStream> {
        let reference = match &opts.tag {
            Some(t) if t.starts_with("sha256:") => format!("{}@{t}", opts.from_image),
            Some(t) if !t.is_empty() => format!("{}:{t}", opts.from_image),
            _ => opts.from_image.clone(),
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<JsonMessage>>();
        let images = self.inner.images.clone();
        let url = self.inner.t.url.clone();
        let auth = opts.auth.clone().and_then(|a| serde_json::to_value(a).ok());
        let auth: Option<crate::images::auth::RegistryAuth> =
            auth.and_then(|v| serde_json::from_value(v).ok());
        tokio::spawn(async move {
            let progress_tx = tx.clone();
            let r = images
                .pull(
                    &reference,
                    opts.platform.as_deref(),
                    auth.as_ref(),
                    move |ev| {
                        if let Ok(m) = serde_json::from_value::<JsonMessage>(ev.to_json()) {
                            let _ = progress_tx.send(Ok(m));
                        }
                    },
                )
                .await;
            if let Err(e) = r {
                let _ = tx.send(Err(match e {
                    crate::images::error::ImageError::NotFound(n) => Error::NoSuchImage(n),
                    // Layer disks go to the datastore: vCenter away is a 503 here too.
                    crate::images::error::ImageError::Datastore(e) => {
                        crate::vsphere_errors::to_docker(&url, e)
                    }
                    other => Error::internal(other),
                }));
            }
        });
        Ok(tokio_stream_from(rx))
    }

    async fn image_list(&self, opts: ImageListOptions) -> Result<Vec<ImageSummary>> {
        let f = ListFilters::from_map(&filter_map(&opts.filters))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let list = self.inner.images.list(&f).map_err(internal)?;
        serde_json::from_value(serde_json::to_value(list).map_err(internal)?).map_err(internal)
    }

    async fn image_inspect(&self, name: &str, _manifests: bool) -> Result<ImageInspect> {
        let i = self
            .inner
            .images
            .inspect(name)
            .await
            .map_err(|_| Error::NoSuchImage(name.to_string()))?;
        serde_json::from_value(serde_json::to_value(i).map_err(internal)?).map_err(internal)
    }

    async fn image_tag(&self, name: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        self.inner
            .images
            .resolve(name)
            .map_err(|_| Error::NoSuchImage(name.to_string()))?;
        self.inner
            .images
            .tag(name, repo, tag)
            .await
            .map_err(|e| Error::invalid(e.to_string()))
    }

    async fn image_history(
        &self,
        name: &str,
        _platform: Option<String>,
    ) -> Result<Vec<HistoryResponseItem>> {
        self.inner
            .images
            .resolve(name)
            .map_err(|_| Error::NoSuchImage(name.to_string()))?;
        let h = self.inner.images.history(name).await.map_err(internal)?;
        serde_json::from_value(serde_json::to_value(h).map_err(internal)?).map_err(internal)
    }

    async fn image_remove(
        &self,
        name: &str,
        opts: ImageRemoveOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        self.inner
            .images
            .resolve(name)
            .map_err(|_| Error::NoSuchImage(name.to_string()))?;
        let usage = Usage(self.clone());
        let items = self
            .inner
            .images
            .remove(name, opts.force, &usage)
            .await
            .map_err(|e| match e {
                crate::images::error::ImageError::NotFound(n) => Error::NoSuchImage(n),
                crate::images::error::ImageError::Conflict(m) => Error::Conflict(m),
                crate::images::error::ImageError::Datastore(e) => self.vs(e),
                other => internal(other),
            })?;
        serde_json::from_value(serde_json::to_value(items).map_err(internal)?).map_err(internal)
    }

    async fn image_save(&self, names: Vec<String>, _platforms: Vec<String>) -> Result<ByteStream> {
        for n in &names {
            self.inner
                .images
                .resolve(n)
                .map_err(|_| Error::NoSuchImage(n.clone()))?;
        }
        let s = self.inner.images.save_stream(names);
        Ok(s.map(|r| r.map_err(internal)).boxed())
    }

    async fn image_load(
        &self,
        _opts: ImageLoadOptions,
        body: ByteStream,
    ) -> Result<ProgressStream> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<JsonMessage>>();
        let images = self.inner.images.clone();
        let input =
            tokio_util::io::StreamReader::new(body.map(|r| r.map_err(std::io::Error::other)));
        tokio::spawn(async move {
            let ptx = tx.clone();
            match images
                .load(input, move |ev| {
                    if let Ok(m) = serde_json::from_value::<JsonMessage>(ev.to_json()) {
                        let _ = ptx.send(Ok(m));
                    }
                })
                .await
            {
                Ok(refs) => {
                    for r in refs {
                        let msg = if r.starts_with("sha256:") {
                            format!("Loaded image ID: {r}\n")
                        } else {
                            format!("Loaded image: {r}\n")
                        };
                        let _ = tx.send(Ok(JsonMessage {
                            stream: Some(msg),
                            ..Default::default()
                        }));
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(Error::invalid(e.to_string())));
                }
            }
        });
        Ok(tokio_stream_from(rx))
    }

    async fn image_prune(&self, filters: Filters) -> Result<ImagePruneResponse> {
        let map = filter_map(&filters);
        let f = crate::images::types::PruneFilters::from_map(&map)
            .map_err(|e| Error::invalid(e.to_string()))?;
        let report = self
            .inner
            .images
            .prune(&f, &Usage(self.clone()))
            .await
            .map_err(internal)?;
        serde_json::from_value(serde_json::to_value(report).map_err(internal)?).map_err(internal)
    }

    async fn image_import(&self, opts: ImportOptions, body: ByteStream) -> Result<ProgressStream> {
        if opts.from_src != "-" {
            return Err(Error::not_implemented(
                "importing from a URL (fromSrc other than -)",
            ));
        }
        let reference = match (&opts.repo, &opts.tag) {
            (Some(r), Some(t)) if !r.is_empty() && !t.is_empty() => Some(format!("{r}:{t}")),
            (Some(r), _) if !r.is_empty() => Some(r.clone()),
            _ => None,
        };
        let input =
            tokio_util::io::StreamReader::new(body.map(|r| r.map_err(std::io::Error::other)));
        let id = self
            .inner
            .images
            .import(
                input,
                reference.as_deref(),
                opts.message.as_deref(),
                &opts.changes,
                opts.platform.as_deref(),
            )
            .await
            .map_err(|e| Error::invalid(e.to_string()))?;
        let msg = JsonMessage {
            status: Some(id.to_string()),
            ..Default::default()
        };
        Ok(futures_util::stream::iter([Ok(msg)]).boxed())
    }

    async fn distribution_inspect(
        &self,
        name: &str,
        auth: Option<RegistryAuth>,
    ) -> Result<DistributionInspect> {
        let auth: Option<crate::images::auth::RegistryAuth> = auth
            .and_then(|a| serde_json::to_value(a).ok())
            .and_then(|v| serde_json::from_value(v).ok());
        let d = self
            .inner
            .images
            .distribution_inspect(name, auth.as_ref())
            .await
            .map_err(|e| Error::NotFound(e.to_string()))?;
        serde_json::from_value(serde_json::to_value(d).map_err(internal)?).map_err(internal)
    }

    async fn container_create(
        &self,
        opts: ContainerCreateOptions,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        Self::check_supported(&body)?;
        let image = body
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| Error::invalid("config.Image is required"))?;
        let image_id = self
            .inner
            .images
            .resolve(&image)
            .map_err(|_| Error::NoSuchImage(image.clone()))?;
        let layers = self.inner.images.layer_disks(&image).map_err(internal)?;
        let (_, cfg) = self
            .inner
            .images
            .image_config(&image)
            .await
            .map_err(internal)?;
        let icfg = cfg.config.clone().unwrap_or_default();
        let id = random_id();
        let name = match opts.name.filter(|n| !n.is_empty()) {
            Some(n) => n.trim_start_matches('/').to_string(),
            None => format!("vch_{}", &id[..8]),
        };
        self.check_new_name(&name)?;
        let entrypoint = body
            .entrypoint
            .clone()
            .or(icfg.entrypoint.clone())
            .unwrap_or_default();
        let cmd = match (&body.cmd, &body.entrypoint) {
            (Some(c), _) => c.clone(),
            (None, Some(_)) => Vec::new(),
            (None, None) => icfg.cmd.clone().unwrap_or_default(),
        };
        let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
        if argv.is_empty() {
            return Err(Error::invalid("no command specified"));
        }
        let mut env = icfg.env.clone().unwrap_or_default();
        for kv in body.env.clone().unwrap_or_default() {
            let key = kv.split('=').next().unwrap_or_default().to_string();
            env.retain(|e| e.split('=').next() != Some(key.as_str()));
            env.push(kv);
        }
        let mut host = body.host_config.clone().unwrap_or_default();
        let mode = Mode::parse(host.network_mode.as_deref())?;
        // Reported as dockerd does: the default network by its name.
        host.network_mode = Some(mode.name().to_string());
        let memory_mb = match host.memory.unwrap_or(0) {
            0 => 512,
            b if b < 6 << 20 => return Err(Error::invalid("Minimum memory limit allowed is 6MB")),
            b => ((b >> 20) + 3) / 4 * 4,
        };
        let cpus = match host.nano_cpus.unwrap_or(0) {
            0 => 1,
            n => (n + 999_999_999) / 1_000_000_000,
        };
        let mut spec = TetherSpec {
            id: id.clone(),
            name: name.clone(),
            hostname: body
                .hostname
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| id[..12].to_string()),
            cmd: argv,
            env,
            user: body
                .user
                .clone()
                .filter(|u| !u.is_empty())
                .or(icfg.user.clone())
                .unwrap_or_default(),
            workdir: body
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .or(icfg.working_dir.clone())
                .unwrap_or_default(),
            layers: vec![],
            scratch: None,
            dns: crate::network::dns_servers(host.dns.as_ref()),
            hosts: vec![],
            tty: body.tty == Some(true),
            open_stdin: body.open_stdin == Some(true),
            stdin_once: body.stdin_once == Some(true),
            console_size: crate::stdin::console_size(host.console_size.as_ref()),
            parked: false,
            mounts: vec![],
            interfaces: vec![],
            security: crate::security::from_host_config(&host)?,
        };
        let volumes = self.volumes_for(&id, &body).await?;
        let volume_disks: Vec<String> = volumes
            .iter()
            .map(|v| self.inner.volumes.disk_path(&v.name))
            .collect();
        let meta = Meta {
            id: id.clone(),
            name: name.clone(),
            image: image.clone(),
            image_id: image_id.to_string(),
            created: now(),
            auto_remove: host.auto_remove == Some(true),
            config: serde_json::to_value(&body).map_err(internal)?,
            host_config: serde_json::to_value(&host).map_err(internal)?,
            volumes,
        };
        let vm_name = format!("{name}-{}", &id[..12]);
        let layer_paths: Vec<String> = layers.iter().map(|l| l.to_string()).collect();
        // The address is taken now; it goes back unless the VM is made (lease.keep()).
        let lease = self.inner.bridge.lease(mode)?;
        spec.interfaces = lease.interfaces().to_vec();
        let client = &self.inner.t.client;
        let mut healed = false;
        let vm = loop {
            // While the template is healed, creates wait for it (bounded), then 503.
            let tpl = self
                .inner
                .template
                .get(crate::supervisor::READY_BOUND)
                .await
                .map_err(Error::Unavailable)?;
            let clone = containers::clone_spec(
                &self.inner.t,
                &tpl,
                &vm_name,
                &layer_paths,
                &mut spec,
                &meta,
                &volume_disks,
                lease.nic(),
            )
            .map_err(Error::invalid)?;
            match client.instant_clone(&tpl.vm, &clone).await {
                Ok(vm) => break vm,
                // The parent is off or gone and the pool watch has not said so yet:
                // heal it now and clone once more.
                Err(e)
                    if !healed
                        && matches!(
                            e.fault_type(),
                            Some("InvalidPowerState" | "ManagedObjectNotFound")
                        ) =>
                {
                    healed = true;
                    let why = format!("instant clone refused: {e}");
                    self.inner.template.heal(&self.inner.t, &why).await;
                }
                // The template is on but does not answer (hung): power-cycle it, once.
                Err(e) if !healed && crate::supervisor::not_answering(&e) => {
                    healed = true;
                    let why = format!("instant clone failed: {e}");
                    self.inner.template.reset(&self.inner.t, &why).await;
                }
                Err(e) => return Err(self.vs(e)),
            }
        };
        if (memory_mb, cpus) != (crate::template::MEMORY_MB, crate::template::CPUS) {
            // Clones start with the template's hardware; the rest is a hot reconfigure.
            let shape = vsphere_client::spec::VmConfigSpec {
                memory_mb: Some(memory_mb),
                num_cpus: Some(cpus),
                ..Default::default()
            };
            if let Err(e) = client.reconfigure_vm(&vm, &shape).await {
                let _ = client.power_off(&vm).await;
                let _ = client.destroy(&vm).await;
                return Err(self.vs(e));
            }
        }
        lease.keep();
        self.inner.containers.write().insert(
            id.clone(),
            Container {
                meta,
                spec,
                vm,
                vm_name,
                status: Status::Created,
                started_at: None,
                finished: None,
                parked: true,
                watched: false,
                interrupted: false,
            },
        );
        self.bump();
        self.event(&id, "create", &[]);
        Ok(ContainerCreateResponse {
            id,
            warnings: vec![],
        })
    }

    async fn container_start(&self, id: &str, _detach_keys: Option<String>) -> Result<()> {
        let id = self.resolve(id)?;
        let c = self.get(&id)?;
        if c.status == Status::Running {
            return Err(Error::NotModified("container already started".into()));
        }
        // A second start is a cold power-on of the same VM; the next exit record in the
        // log supersedes the previous one.
        self.mark_stopped_by_user(&id, false);
        self.start_now(&id).await
    }

    async fn container_attach(&self, id: &str, opts: AttachOptions) -> Result<AttachStreams> {
        let id = self.resolve(id)?;
        let lf = self
            .log_file(&id)
            .ok_or_else(|| Error::NoSuchContainer(id.clone()))?;
        let spec = self.get(&id)?.spec;
        // Output (TTY output too) comes from the log the tether writes; input goes over
        // the control channel. Without OpenStdin there is nothing to attach stdin to.
        let (stdin, client_eof) = if opts.stdin && spec.open_stdin {
            let (w, end) =
                crate::stdin::attach_main(self.inner.channels.clone(), id.clone(), spec.stdin_once);
            (Some(Box::pin(w) as StdinWriter), end)
        } else {
            (None, std::future::pending().boxed())
        };
        // Attach streams what comes next, as dockerd does (with `logs`, everything from
        // the start): a running container or one that ran before has output in its log
        // already (re-attaching to a TTY must not replay the whole session). `docker run`
        // attaches before the start, and gets everything.
        let c = self.get(&id)?;
        let ran = c.finished.is_some() || matches!(c.status, Status::Running | Status::Paused);
        let from = if ran && !opts.logs {
            lf.size().await
        } else {
            0
        };
        let b = self.clone();
        let gone_id = id.clone();
        let stop = move || !b.inner.containers.read().contains_key(&gone_id);
        let (want_out, want_err) = (opts.stdout, opts.stderr);
        *self.inner.readers.lock().entry(id.clone()).or_insert(0) += 1;
        let reader = Reader {
            b: self.clone(),
            id: id.clone(),
        };
        let output = lf
            .follow(from, stop)
            .map(move |r| {
                let _alive = &reader;
                r
            })
            .filter_map(move |r| async move {
                match r {
                    Record::Output {
                        stderr: false,
                        data,
                        ..
                    } if want_out => Some(Ok(OutputChunk::stdout(data))),
                    Record::Output {
                        stderr: true, data, ..
                    } if want_err => Some(Ok(OutputChunk::stderr(data))),
                    _ => None,
                }
            })
            // The client's EOF ends a session whose stdin stays open (no StdinOnce).
            .take_until(client_eof)
            .boxed();
        Ok(AttachStreams {
            tty: spec.tty,
            stdin,
            output,
            detach_keys: None,
        })
    }

    async fn container_wait(&self, id: &str, condition: WaitCondition) -> Result<WaitFuture> {
        let id = self.resolve(id)?;
        let start = self.get(&id)?;
        let b = self.clone();
        let mut rx = self.inner.changed.subscribe();
        Ok(Box::pin(async move {
            let started_finish = start.finished.as_ref().map(|f| f.finished_at.clone());
            loop {
                rx.borrow_and_update();
                let now = b.inner.containers.read().get(&id).cloned();
                match (condition, now) {
                    (WaitCondition::Removed, None) | (_, None) => {
                        let code = b.inner.removed.read().get(&id).copied().unwrap_or(0);
                        return Ok(ContainerWaitResponse {
                            status_code: code,
                            error: None,
                        });
                    }
                    (WaitCondition::NotRunning, Some(c)) if c.status != Status::Running => {
                        return Ok(ContainerWaitResponse {
                            status_code: c.finished.map(|f| f.exit_code).unwrap_or(0),
                            error: None,
                        })
                    }
                    (WaitCondition::NextExit, Some(c))
                        if c.status == Status::Exited
                            && c.finished.as_ref().map(|f| f.finished_at.clone())
                                != started_finish =>
                    {
                        return Ok(ContainerWaitResponse {
                            status_code: c.finished.map(|f| f.exit_code).unwrap_or(0),
                            error: None,
                        })
                    }
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return Err(Error::internal("the VCH is shutting down"));
                }
            }
        }))
    }

    async fn container_logs(&self, id: &str, opts: LogsOptions) -> Result<LogStream> {
        let id = self.resolve(id)?;
        let lf = self
            .log_file(&id)
            .ok_or_else(|| Error::NoSuchContainer(id.clone()))?;
        let to_chunk = move |r: Record| -> Option<LogChunk> {
            match r {
                Record::Output { stderr, data, time } => {
                    if (stderr && !opts.stderr) || (!stderr && !opts.stdout) {
                        return None;
                    }
                    let ts = chrono::DateTime::parse_from_rfc3339(&time)
                        .ok()?
                        .with_timezone(&chrono::Utc);
                    if opts.since.is_some_and(|s| ts < s) || opts.until.is_some_and(|u| ts > u) {
                        return None;
                    }
                    Some(LogChunk {
                        kind: if stderr {
                            StreamKind::Stderr
                        } else {
                            StreamKind::Stdout
                        },
                        timestamp: ts,
                        data,
                    })
                }
                Record::Exit { .. } => None,
            }
        };
        let all: Vec<LogChunk> = lf
            .read_all()
            .await
            .into_iter()
            .filter_map(to_chunk)
            .collect();
        let seen = all.len();
        let shown = match opts.tail {
            Tail::All => all,
            Tail::Lines(n) => all[all.len().saturating_sub(n as usize)..].to_vec(),
        };
        let running = self.get(&id)?.status == Status::Running;
        let past = futures_util::stream::iter(shown.into_iter().map(Ok));
        let stream = if opts.follow && running {
            let b = self.clone();
            let gone_id = id.clone();
            let stop = move || !b.inner.containers.read().contains_key(&gone_id);
            // The follower reads the file from the start: skip what was already shown.
            let live = lf
                .follow(0, stop)
                .filter_map(move |r| async move { to_chunk(r) })
                .skip(seen)
                .map(Ok);
            past.chain(live).boxed()
        } else {
            past.boxed()
        };
        Ok(LogStream {
            tty: self.get(&id)?.spec.tty,
            chunks: stream,
        })
    }

    async fn container_stop(&self, id: &str, opts: StopOptions) -> Result<()> {
        let id = self.resolve(id)?;
        let c = self.get(&id)?;
        if c.status != Status::Running {
            return Err(Error::NotModified("container already stopped".into()));
        }
        self.mark_stopped_by_user(&id, true);
        // dockerd's stop: the stop signal through the control channel, then after the
        // timeout (default 10 s) a hard stop, which for a VM is power-off.
        let sig = opts
            .signal
            .as_deref()
            .and_then(signal_number)
            .unwrap_or(libc_sigterm());
        // A container started a moment ago may not have connected its channel yet.
        let connected = self
            .inner
            .channels
            .wait_connected(&id, std::time::Duration::from_secs(2))
            .await;
        if connected && self.inner.channels.signal(&id, sig) {
            let grace = std::time::Duration::from_secs(opts.timeout.unwrap_or(10).max(0) as u64);
            if tokio::time::timeout(grace, self.until_not_running(&id))
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        // It may have ended meanwhile (its own exit): powered off already is stopped.
        match self.inner.t.client.power_off(&c.vm).await {
            Err(e) if e.fault_type() != Some("InvalidPowerState") => return Err(self.vs(e)),
            _ => {}
        }
        self.until_not_running(&id).await;
        Ok(())
    }

    async fn container_kill(&self, id: &str, signal: Option<String>) -> Result<()> {
        let id = self.resolve(id)?;
        let c = self.get(&id)?;
        if c.status != Status::Running {
            return Err(Error::not_running(&id));
        }
        let sig = match signal.as_deref().filter(|s| !s.is_empty()) {
            None => 9,
            Some(s) => {
                signal_number(s).ok_or_else(|| Error::invalid(format!("Invalid signal: {s}")))?
            }
        };
        self.mark_stopped_by_user(&id, true);
        if sig != 9 {
            self.inner
                .channels
                .wait_connected(&id, std::time::Duration::from_secs(2))
                .await;
        }
        if sig == 9 || !self.inner.channels.signal(&id, sig) {
            if sig != 9 {
                return Err(Error::Conflict(format!(
                    "cannot send signal {sig}: container {id} has no control channel connected"
                )));
            }
            return self
                .inner
                .t
                .client
                .power_off(&c.vm)
                .await
                .map_err(|e| self.vs(e));
        }
        Ok(())
    }

    async fn container_restart(&self, id: &str, opts: StopOptions) -> Result<()> {
        let id = self.resolve(id)?;
        if matches!(self.get(&id)?.status, Status::Running | Status::Paused) {
            self.container_stop(&id, opts).await?;
        }
        self.mark_stopped_by_user(&id, false);
        self.start_now(&id).await
    }

    async fn container_rename(&self, id: &str, new_name: &str) -> Result<()> {
        let id = self.resolve(id)?;
        let new_name = new_name.trim_start_matches('/').to_string();
        self.check_new_name(&new_name)?;
        let (vm, meta) = {
            let mut cs = self.inner.containers.write();
            let c = cs
                .get_mut(&id)
                .ok_or_else(|| Error::NoSuchContainer(id.clone()))?;
            c.meta.name = new_name;
            (c.vm.clone(), c.meta.clone())
        };
        // Persisted outside guestinfo, so it survives even while the VM runs.
        let spec = vsphere_client::spec::VmConfigSpec {
            extra_config: vec![(
                containers::META_KEY.into(),
                serde_json::to_string(&meta).map_err(internal)?,
            )],
            ..Default::default()
        };
        self.inner
            .t
            .client
            .reconfigure_vm(&vm, &spec)
            .await
            .map_err(|e| self.vs(e))?;
        self.bump();
        self.event(&id, "rename", &[]);
        Ok(())
    }

    async fn container_pause(&self, id: &str) -> Result<()> {
        let id = self.resolve(id)?;
        let c = self.get(&id)?;
        match c.status {
            Status::Running => {}
            Status::Paused => {
                return Err(Error::Conflict(format!("Container {id} is already paused")))
            }
            _ => return Err(Error::not_running(&id)),
        }
        // A paused container is a suspended VM.
        self.inner
            .t
            .client
            .suspend(&c.vm)
            .await
            .map_err(|e| self.vs(e))?;
        if let Some(cc) = self.inner.containers.write().get_mut(&id) {
            cc.status = Status::Paused;
        }
        self.bump();
        self.event(&id, "pause", &[]);
        Ok(())
    }

    async fn container_unpause(&self, id: &str) -> Result<()> {
        let id = self.resolve(id)?;
        let c = self.get(&id)?;
        if c.status != Status::Paused {
            return Err(Error::Conflict(format!("Container {id} is not paused")));
        }
        self.inner
            .t
            .client
            .power_on(&c.vm)
            .await
            .map_err(|e| self.vs(e))?;
        if let Some(cc) = self.inner.containers.write().get_mut(&id) {
            cc.status = Status::Running;
        }
        self.bump();
        self.event(&id, "unpause", &[]);
        Ok(())
    }

    async fn exec_create(&self, container: &str, config: ExecConfig) -> Result<IdResponse> {
        let cid = self.resolve(container)?;
        let c = self.get(&cid)?;
        if c.status != Status::Running {
            return Err(Error::Conflict(format!("container {cid} is not running")));
        }
        if config.privileged == Some(true) {
            return Err(Error::invalid("--privileged is not supported by this VCH"));
        }
        let cmd = config
            .cmd
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::invalid("No exec command specified"))?;
        let id = random_id();
        self.inner.execs.lock().insert(
            id.clone(),
            ExecRecord {
                container: cid,
                req: container_vm::channel::ExecRequest {
                    cmd,
                    env: config.env.clone().unwrap_or_default(),
                    user: config.user.clone().unwrap_or_default(),
                    workdir: config.working_dir.clone().unwrap_or_default(),
                    tty: config.tty == Some(true),
                    attach_stdin: config.attach_stdin == Some(true),
                    console_size: crate::stdin::console_size(config.console_size.as_ref()),
                },
                running: false,
                exit: None,
                session: None,
            },
        );
        serde_json::from_value(serde_json::json!({"Id": id})).map_err(internal)
    }

    async fn exec_start(&self, id: &str, config: ExecStartConfig) -> Result<AttachStreams> {
        let mut rec = self
            .inner
            .execs
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoSuchExec(id.to_string()))?;
        if !self
            .inner
            .channels
            .wait_connected(&rec.container, std::time::Duration::from_secs(5))
            .await
        {
            return Err(Error::Conflict(format!(
                "container {} has no control channel connected (is it running?)",
                rec.container
            )));
        }
        if let Some(size) = crate::stdin::console_size(config.console_size.as_ref()) {
            rec.req.console_size = Some(size);
        }
        let (session, mut rx) = self
            .inner
            .channels
            .exec(&rec.container, &rec.req)
            .ok_or_else(|| {
                Error::Conflict(format!("container {} is not running", rec.container))
            })?;
        if let Some(r) = self.inner.execs.lock().get_mut(id) {
            r.running = true;
            r.session = Some(session);
        }
        let stdin = rec.req.attach_stdin.then(|| {
            let w = crate::stdin::forward(
                self.inner.channels.clone(),
                rec.container.clone(),
                session,
                crate::stdin::OnEof::Close,
            );
            Box::pin(w) as StdinWriter
        });
        let b = self.clone();
        let exec_id = id.to_string();
        let output = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .filter_map(move |ev| {
                let b = b.clone();
                let exec_id = exec_id.clone();
                async move {
                    match ev {
                        crate::channel::SessionEvent::Out {
                            stderr: false,
                            data,
                        } => Some(Ok(OutputChunk::stdout(data))),
                        crate::channel::SessionEvent::Out { stderr: true, data } => {
                            Some(Ok(OutputChunk::stderr(data)))
                        }
                        crate::channel::SessionEvent::Exit { code, error } => {
                            // Recorded before the output ends: the CLI inspects right away.
                            if let Some(r) = b.inner.execs.lock().get_mut(&exec_id) {
                                r.running = false;
                                r.exit = Some(code);
                            }
                            error.map(|e| Ok(OutputChunk::stderr(format!("{e}\n"))))
                        }
                    }
                }
            })
            .boxed();
        Ok(AttachStreams {
            // dockerd frames the stream by the start request's Tty.
            tty: config.tty.unwrap_or(rec.req.tty),
            stdin,
            output,
            detach_keys: None,
        })
    }

    async fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let rec = self
            .inner
            .execs
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoSuchExec(id.to_string()))?;
        let session = match rec.session {
            Some(s) if rec.running => s,
            _ => return Err(Error::Conflict(format!("exec {id} is not running"))),
        };
        let frame = Frame::new(Kind::Resize, session, resize_payload(height, width));
        if !self.inner.channels.send(&rec.container, frame) {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                rec.container
            )));
        }
        Ok(())
    }

    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let id = self.resolve(id)?;
        if self.get(&id)?.status != Status::Running {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        let frame = Frame::new(Kind::Resize, 0, resize_payload(height, width));
        if !self.inner.channels.send(&id, frame.clone()) {
            // Just started (the CLI resizes right after the start): the VM's channel is
            // not up yet. The tether keeps the frame until the process runs.
            let channels = self.inner.channels.clone();
            tokio::spawn(async move {
                if channels
                    .wait_connected(&id, std::time::Duration::from_secs(10))
                    .await
                {
                    channels.send(&id, frame);
                }
            });
        }
        Ok(())
    }

    async fn exec_inspect(&self, id: &str) -> Result<ExecInspectResponse> {
        let r = self
            .inner
            .execs
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoSuchExec(id.to_string()))?;
        serde_json::from_value(serde_json::json!({
            "ID": id, "Running": r.running, "ExitCode": r.exit, "ContainerID": r.container,
            "OpenStdin": r.req.attach_stdin, "OpenStdout": true, "OpenStderr": true, "CanRemove": false, "Pid": 0,
            "ProcessConfig": {"tty": r.req.tty, "entrypoint": r.req.cmd.first().cloned().unwrap_or_default(),
                              "arguments": r.req.cmd.iter().skip(1).collect::<Vec<_>>(), "privileged": false, "user": r.req.user},
        }))
        .map_err(internal)
    }

    async fn container_remove(&self, id: &str, opts: ContainerRemoveOptions) -> Result<()> {
        let id = self.resolve(id)?;
        self.remove_now(&id, opts.force, opts.volumes).await
    }

    async fn volume_create(&self, opts: VolumeCreateOptions) -> Result<Volume> {
        match opts.driver.as_deref() {
            None | Some("") | Some("local") | Some("vsphere") => {}
            Some(other) => {
                return Err(Error::invalid(format!(
                    "volume driver {other:?} is not supported by this VCH (local: a VMDK on the datastore)"
                )))
            }
        }
        let name = opts
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(random_id);
        let rec = self
            .inner
            .volumes
            .create(
                &name,
                opts.labels.unwrap_or_default(),
                opts.driver_opts.unwrap_or_default(),
                false,
            )
            .await
            .map_err(volume_error)?;
        self.volume_json(&rec)
    }

    async fn volume_list(&self, filters: Filters) -> Result<VolumeListResponse> {
        let mut vols = Vec::new();
        for rec in self.inner.volumes.list() {
            let names = filters.get("name");
            if !names.is_empty() && !names.iter().any(|n| rec.name.contains(n)) {
                continue;
            }
            let dangling = self.volume_users(&rec.name, None).is_empty();
            if filters
                .get("dangling")
                .iter()
                .any(|v| (*v == "true" || *v == "1") != dangling)
            {
                continue;
            }
            let labels_ok = filters
                .get("label")
                .iter()
                .all(|l| match l.split_once('=') {
                    Some((k, v)) => rec.labels.get(k).map(String::as_str) == Some(v),
                    None => rec.labels.contains_key(*l),
                });
            if !labels_ok {
                continue;
            }
            vols.push(self.volume_json(&rec)?);
        }
        Ok(VolumeListResponse {
            volumes: Some(vols),
            warnings: Some(vec![]),
        })
    }

    async fn volume_inspect(&self, name: &str) -> Result<Volume> {
        let rec = self
            .inner
            .volumes
            .get(name)
            .ok_or_else(|| Error::NoSuchVolume(name.to_string()))?;
        self.volume_json(&rec)
    }

    async fn volume_remove(&self, name: &str, _force: bool) -> Result<()> {
        if self.inner.volumes.get(name).is_none() {
            return Err(Error::NoSuchVolume(name.to_string()));
        }
        let users = self.volume_users(name, None);
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        self.inner.volumes.remove(name).await.map_err(volume_error)
    }

    async fn volume_prune(&self, filters: Filters) -> Result<VolumePruneResponse> {
        // As dockerd 23+: only anonymous volumes unless `all=true`.
        let all = filters.get("all").iter().any(|x| *x == "true" || *x == "1");
        let mut deleted = Vec::new();
        let mut reclaimed = 0i64;
        for rec in self.inner.volumes.list() {
            if (all || rec.anonymous) && self.volume_users(&rec.name, None).is_empty() {
                self.inner
                    .volumes
                    .remove(&rec.name)
                    .await
                    .map_err(volume_error)?;
                reclaimed += rec.capacity_kb * 1024;
                deleted.push(rec.name);
            }
        }
        Ok(VolumePruneResponse {
            volumes_deleted: Some(deleted),
            space_reclaimed: Some(reclaimed),
        })
    }

    async fn container_inspect(&self, id: &str, _size: bool) -> Result<ContainerInspectResponse> {
        let id = self.resolve(id)?;
        let c = self.get(&id)?;
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
            "State": Self::state_of(&c), "Image": c.meta.image_id, "Name": format!("/{}", c.meta.name),
            "RestartCount": c.finished.as_ref().map(|f| f.restart_count).unwrap_or(0), "Driver": "vsphere", "Platform": "linux",
            "HostConfig": host_config, "Config": config,
            "Mounts": self.mounts_json(&c), "NetworkSettings": self.inner.bridge.settings(&c.spec),
        }))
        .map_err(internal)
    }

    async fn network_list(&self, filters: Filters) -> Result<Vec<Network>> {
        let f = filter_map(&filters);
        let mut out = Vec::new();
        for mode in [Mode::Bridge, Mode::None] {
            let n = self.describe_network(mode);
            let keep = f.iter().all(|(k, vals)| match k.as_str() {
                "name" => vals.iter().any(|v| mode.name().contains(v.as_str())),
                "id" => vals
                    .iter()
                    .any(|v| n["Id"].as_str().is_some_and(|i| i.starts_with(v.as_str()))),
                "driver" => vals.iter().any(|v| n["Driver"] == v.as_str()),
                "type" => vals.iter().any(|v| v == "builtin"),
                "scope" => vals.iter().any(|v| v == "local"),
                _ => true,
            });
            if keep {
                out.push(serde_json::from_value(n).map_err(internal)?);
            }
        }
        Ok(out)
    }

    async fn network_inspect(
        &self,
        id: &str,
        _verbose: bool,
        _scope: Option<String>,
    ) -> Result<Network> {
        let mode = self
            .inner
            .bridge
            .lookup(id)
            .ok_or_else(|| Error::NoSuchNetwork(id.to_string()))?;
        serde_json::from_value(self.describe_network(mode)).map_err(internal)
    }

    // --- container operations (see the backend/ modules) ---
    async fn container_top(
        &self,
        id: &str,
        ps_args: Option<String>,
    ) -> Result<ContainerTopResponse> {
        self.top(id, ps_args).await
    }
    async fn container_stats(
        &self,
        id: &str,
        opts: StatsOptions,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<ContainerStatsResponse>>> {
        self.stats(id, opts).await
    }
    async fn container_update(
        &self,
        id: &str,
        body: ContainerUpdateBody,
    ) -> Result<ContainerUpdateResponse> {
        self.update(id, body).await
    }
    async fn container_archive_stat(&self, id: &str, path: &str) -> Result<PathStat> {
        self.archive_stat(id, path).await
    }
    async fn container_archive_get(&self, id: &str, path: &str) -> Result<(PathStat, ByteStream)> {
        self.archive_get(id, path).await
    }
    async fn container_archive_put(
        &self,
        id: &str,
        opts: PutArchiveOptions,
        body: ByteStream,
    ) -> Result<()> {
        self.archive_put(id, opts, body).await
    }
    async fn container_export(&self, id: &str) -> Result<ByteStream> {
        self.export(id).await
    }

    async fn container_list(&self, opts: ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        let mut cs: Vec<Container> = self.inner.containers.read().values().cloned().collect();
        cs.sort_by(|a, b| b.meta.created.cmp(&a.meta.created));
        let all = opts.all || opts.limit.is_some();
        let mut out = Vec::new();
        for c in cs
            .into_iter()
            .filter(|c| all || c.status == Status::Running)
        {
            let state = Self::state_of(&c);
            let status = match c.status {
                Status::Running => "Up".to_string(),
                Status::Paused => "Up (Paused)".to_string(),
                Status::Exited => format!(
                    "Exited ({})",
                    c.finished.as_ref().map(|f| f.exit_code).unwrap_or(0)
                ),
                Status::Created => "Created".into(),
                Status::Removing => "Removal In Progress".into(),
            };
            let created = chrono::DateTime::parse_from_rfc3339(&c.meta.created)
                .map(|d| d.timestamp())
                .unwrap_or(0);
            out.push(
                serde_json::from_value(serde_json::json!({
                    "Id": c.meta.id, "Names": [format!("/{}", c.meta.name)], "Image": c.meta.image,
                    "ImageID": c.meta.image_id, "Command": c.spec.cmd.join(" "), "Created": created,
                    "State": state["Status"], "Status": status, "Labels": c.meta.config.get("Labels").cloned().unwrap_or(serde_json::json!({})),
                    "Ports": [], "Mounts": self.mounts_json(&c), "HostConfig": {"NetworkMode": Mode::of(&c.spec).name()},
                    "NetworkSettings": {"Networks": self.inner.bridge.settings(&c.spec)["Networks"].clone()},
                }))
                .map_err(internal)?,
            );
            if opts.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        let _ = Filters::default();
        Ok(out)
    }
}

/// Tells the image store which images and layer disks containers still use.
struct Usage(VchBackend);

impl crate::images::types::ImageUsage for Usage {
    fn containers_using(
        &self,
        image_id: &crate::images::digest::Digest,
    ) -> Vec<crate::images::types::ContainerUse> {
        let id = image_id.to_string();
        self.0
            .inner
            .containers
            .read()
            .values()
            .filter(|c| c.meta.image_id == id)
            .map(|c| crate::images::types::ContainerUse {
                id: c.meta.id.clone(),
                running: c.status == Status::Running,
            })
            .collect()
    }

    fn layer_in_use(&self, disk: &crate::images::datastore::DatastorePath) -> bool {
        let _ = disk;
        // Layer disks are only attached to containers of images that use them, and a used
        // image is never deleted without force; forced, its containers keep their VMs'
        // disks because Destroy_Task does not delete shared non-persistent disks.
        !self.0.inner.containers.read().is_empty()
    }
}

fn libc_sigterm() -> i32 {
    15
}

/// A signal given as a name (`TERM`, `SIGTERM`) or a number.
fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    Some(match name.as_str() {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "WINCH" => 28,
        _ => return None,
    })
}

/// (policy name, maximum retries) from the create request's HostConfig.
fn restart_policy(meta: &Meta) -> (String, i64) {
    let p = &meta.host_config["RestartPolicy"];
    (
        p["Name"].as_str().unwrap_or("").to_string(),
        p["MaximumRetryCount"].as_i64().unwrap_or(0),
    )
}

/// Docker's rules: `always` and `unless-stopped` restart unless the user stopped the
/// container; `on-failure` only after a non-zero exit and within the retry budget.
fn should_restart(policy: &(String, i64), fin: &FinalState) -> bool {
    match policy.0.as_str() {
        "always" | "unless-stopped" => !fin.stopped_by_user,
        "on-failure" => {
            !fin.stopped_by_user
                && fin.exit_code != 0
                && (policy.1 <= 0 || fin.restart_count < policy.1)
        }
        _ => false,
    }
}

/// The `filters` query as key -> values, the shape the image store's filters parse.
fn filter_map(filters: &Filters) -> BTreeMap<String, Vec<String>> {
    filters
        .names()
        .map(|n| {
            (
                n.to_string(),
                filters.get(n).into_iter().map(str::to_string).collect(),
            )
        })
        .collect()
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Result<JsonMessage>>,
) -> ProgressStream {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Docker reports which VM backs a container nowhere; admins find it by this name.
pub fn vm_moref(b: &VchBackend, id: &str) -> Option<MoRef> {
    b.inner.containers.read().get(id).map(|c| c.vm.clone())
}
