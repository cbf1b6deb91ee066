//! In-memory fakes of the translator's boundaries, modelling what its decisions depend
//! on: VMs with a power state and their extraConfig records, a template that can be
//! unready, off or hung, exits delivered through the pool watch, a guest that connects,
//! runs and exits with a code, and faults (vCenter unreachable, VM gone, not answering).

use super::journal::Starts;
use super::platform::*;
use super::{GuestChannel, Resources, Translator};
use crate::channel::{OpsSession, SessionEvent};
use crate::containers::{FinalState, Meta, TetherSpec};
use crate::template::Template;
use container_vm::channel::{ExecRequest, Frame};
use container_vm::ops::OpsRequest;
use container_vm::status::GuestStatus;
use docker_api::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use vsphere_client::MoRef;

#[derive(Debug, Clone)]
pub struct FakeVm {
    pub name: String,
    pub power: Power,
    pub spec: Option<TetherSpec>,
    pub meta: Option<Meta>,
    pub final_state: Option<FinalState>,
    pub guest_state: Option<String>,
    pub started: Option<String>,
    /// The exit record the current run wrote to its log (none: killed).
    pub exit: Option<ExitRecord>,
    pub oom: bool,
    pub memory_mb: i64,
    pub cpus: i64,
    pub volumes_detached: bool,
    /// How many NICs the VM has.
    pub nics: usize,
}

impl FakeVm {
    /// A VM as a crashed VCH would leave it (for recovery tests).
    pub fn container(name: &str, spec: TetherSpec, meta: Meta, power: Power) -> FakeVm {
        FakeVm {
            name: name.to_string(),
            power,
            spec: Some(spec),
            meta: Some(meta),
            final_state: None,
            guest_state: None,
            started: None,
            exit: None,
            oom: false,
            memory_mb: crate::template::MEMORY_MB,
            cpus: crate::template::CPUS,
            volumes_detached: false,
            nics: 0,
        }
    }
}

#[derive(Default)]
struct World {
    vms: HashMap<String, FakeVm>,
    next: u64,
    /// `None` while the template is not ready.
    template: Option<Template>,
    template_vm: Option<MoRef>,
    /// Every call, as `op vm` (for assertions on what was asked of vSphere).
    calls: Vec<String>,
    /// Errors the next calls of an operation answer with, in order.
    faults: HashMap<&'static str, VecDeque<PlatformError>>,
    /// vCenter is away: every operation fails.
    unreachable: bool,
    heals: u32,
    resets: u32,
}

pub struct FakePlatform {
    world: Mutex<World>,
    pool: Mutex<Vec<mpsc::UnboundedSender<MoRef>>>,
    off: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    /// The guest side: connects on power-on, drops on power-off.
    guest: Mutex<Option<Arc<FakeGuest>>>,
}

fn tpl(n: u64) -> Template {
    Template {
        vm: MoRef::new("VirtualMachine", format!("tpl-{n}")),
        controller_key: 1000,
        log_port_key: 9001,
    }
}

impl FakePlatform {
    pub fn new() -> Arc<FakePlatform> {
        let t = tpl(0);
        Arc::new(FakePlatform {
            world: Mutex::new(World {
                template_vm: Some(t.vm.clone()),
                template: Some(t),
                next: 1,
                ..Default::default()
            }),
            pool: Mutex::new(Vec::new()),
            off: Mutex::new(HashMap::new()),
            guest: Mutex::new(None),
        })
    }

    /// The next `n` calls of `op` fail with `e`.
    pub fn fail(&self, op: &'static str, e: PlatformError) {
        self.world.lock().faults.entry(op).or_default().push_back(e);
    }

    pub fn set_unreachable(&self, away: bool) {
        self.world.lock().unreachable = away;
    }

    pub fn set_template_ready(&self, ready: bool) {
        let mut w = self.world.lock();
        w.template = ready.then(|| tpl(0));
    }

    pub fn calls(&self) -> Vec<String> {
        self.world.lock().calls.clone()
    }

    pub fn count(&self, op: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.split(' ').next() == Some(op))
            .count()
    }

    pub fn heals(&self) -> (u32, u32) {
        let w = self.world.lock();
        (w.heals, w.resets)
    }

    pub fn vm(&self, vm: &MoRef) -> Option<FakeVm> {
        self.world.lock().vms.get(&vm.value).cloned()
    }

    pub fn vm_count(&self) -> usize {
        self.world.lock().vms.len()
    }

    /// Puts a VM into the pool as it would be found at a VCH start.
    pub fn insert(&self, vm: FakeVm) -> MoRef {
        let mut w = self.world.lock();
        let r = MoRef::new("VirtualMachine", format!("vm-{}", w.next));
        w.next += 1;
        w.vms.insert(r.value.clone(), vm);
        r
    }

    fn call(&self, op: &'static str, vm: &MoRef) -> PResult<()> {
        let mut w = self.world.lock();
        w.calls.push(format!("{op} {}", vm.value));
        if w.unreachable {
            return Err(PlatformError::Unreachable(
                "vCenter https://vc.test/sdk is unreachable: connection refused".into(),
            ));
        }
        if let Some(e) = w.faults.get_mut(op).and_then(VecDeque::pop_front) {
            return Err(e);
        }
        Ok(())
    }

    fn id_of(&self, vm: &MoRef) -> Option<String> {
        let w = self.world.lock();
        w.vms
            .get(&vm.value)
            .and_then(|v| v.meta.as_ref().map(|m| m.id.clone()))
    }

    fn vm_of(&self, id: &str) -> Option<MoRef> {
        let w = self.world.lock();
        w.vms
            .iter()
            .find(|(_, v)| v.meta.as_ref().is_some_and(|m| m.id == id))
            .map(|(k, _)| MoRef::new("VirtualMachine", k))
    }

    /// The VM went off (or away): the pool watch and the VM's own watchers hear it.
    fn went_off(&self, vm: &MoRef) {
        if let Some(id) = self.id_of(vm) {
            if let Some(g) = self.guest.lock().clone() {
                g.disconnect(&id);
            }
        }
        self.pool.lock().retain(|tx| tx.send(vm.clone()).is_ok());
        for w in self.off.lock().remove(&vm.value).unwrap_or_default() {
            let _ = w.send(());
        }
    }

    /// The container's process exits with `code`: the tether writes the exit record and
    /// powers its VM off (what a real run ends with).
    pub fn exit(&self, id: &str, code: i64) {
        self.exit_with(id, code, None, false)
    }

    pub fn exit_with(&self, id: &str, code: i64, error: Option<&str>, oom: bool) {
        let vm = self.vm_of(id).expect("no VM for the container");
        {
            let mut w = self.world.lock();
            let v = w.vms.get_mut(&vm.value).unwrap();
            v.exit = Some(ExitRecord {
                code,
                error: error.map(str::to_string),
            });
            v.oom = oom;
            v.power = Power::Off;
        }
        self.went_off(&vm);
    }

    /// Someone (an admin, a crash) powers the VM off behind the VCH's back.
    pub fn power_off_out_of_band(&self, vm: &MoRef) {
        if let Some(v) = self.world.lock().vms.get_mut(&vm.value) {
            v.power = Power::Off;
        }
        self.went_off(vm);
    }

    /// The template VM goes off behind the VCH's back.
    pub fn template_goes_off(&self) {
        let vm = {
            let mut w = self.world.lock();
            w.template = None;
            w.template_vm.clone().unwrap()
        };
        self.went_off(&vm);
    }

    fn connect(&self, vm: &MoRef) {
        if let (Some(id), Some(g)) = (self.id_of(vm), self.guest.lock().clone()) {
            g.boot(&id);
        }
    }
}

#[async_trait]
impl VmPlatform for FakePlatform {
    async fn template(&self, bound: Duration) -> Result<Template, String> {
        let end = tokio::time::Instant::now() + bound;
        loop {
            if let Some(t) = self.world.lock().template.clone() {
                return Ok(t);
            }
            if tokio::time::Instant::now() >= end {
                return Err("the template VM that containers are cloned from is not ready".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn heal_template(&self, _why: &str) {
        let mut w = self.world.lock();
        w.heals += 1;
        if !w.unreachable {
            let t = tpl(w.heals as u64 + w.resets as u64);
            w.template_vm = Some(t.vm.clone());
            w.template = Some(t);
        }
    }

    async fn reset_template(&self, why: &str) {
        self.world.lock().resets += 1;
        self.heal_template(why).await
    }

    fn is_template(&self, vm: &MoRef) -> bool {
        self.world.lock().template_vm.as_ref() == Some(vm)
    }

    async fn instant_clone(&self, tpl: &Template, req: &mut CloneRequest) -> PResult<MoRef> {
        self.call("instant_clone", &tpl.vm)?;
        if req.layers.len() > 62 {
            return Err(PlatformError::Invalid(
                "an image with more than 62 layers must be flattened".into(),
            ));
        }
        req.spec.layers = (0..req.layers.len())
            .map(|u| format!("scsi0:{}", u + 2))
            .collect();
        req.spec.scratch = Some("scsi0:1".into());
        req.spec.parked = true;
        let mut vm = FakeVm::container(&req.vm_name, req.spec.clone(), req.meta.clone(), Power::On);
        vm.guest_state = Some(container_vm::state::ContainerState::Created.as_str().into());
        vm.nics = req.nics.len();
        let r = self.insert(vm);
        self.connect(&r);
        Ok(r)
    }

    async fn reconfigure(&self, vm: &MoRef, change: &VmChange) -> PResult<()> {
        self.call("reconfigure", vm)?;
        let mut w = self.world.lock();
        let v = w
            .vms
            .get_mut(&vm.value)
            .ok_or_else(|| PlatformError::NotFound("vSphere: gone".into()))?;
        if let Some(m) = change.memory_mb {
            v.memory_mb = m;
        }
        if let Some(c) = change.cpus {
            v.cpus = c;
        }
        if let Some(m) = &change.meta {
            v.meta = Some(m.clone());
        }
        if let Some(f) = &change.final_state {
            v.final_state = Some(f.clone());
        }
        if let Some(s) = &change.spec {
            v.spec = Some(s.new.clone());
        }
        v.nics += change.add_nics.len();
        v.nics -= change.remove_nics.len().min(v.nics);
        Ok(())
    }

    async fn power_on(&self, vm: &MoRef) -> PResult<()> {
        self.call("power_on", vm)?;
        {
            let mut w = self.world.lock();
            let v = w
                .vms
                .get_mut(&vm.value)
                .ok_or_else(|| PlatformError::NotFound("vSphere: gone".into()))?;
            if v.power == Power::On {
                return Err(PlatformError::InvalidPowerState(
                    "vSphere: already on".into(),
                ));
            }
            let resumed = v.power == Power::Suspended;
            v.power = Power::On;
            if resumed {
                return Ok(());
            }
            v.exit = None;
            v.oom = false;
            v.guest_state = Some("running".into());
        }
        self.connect(vm);
        Ok(())
    }

    async fn power_off(&self, vm: &MoRef) -> PResult<()> {
        self.call("power_off", vm)?;
        {
            let mut w = self.world.lock();
            let v = w
                .vms
                .get_mut(&vm.value)
                .ok_or_else(|| PlatformError::NotFound("vSphere: gone".into()))?;
            if v.power == Power::Off {
                return Err(PlatformError::InvalidPowerState(
                    "vSphere: already off".into(),
                ));
            }
            v.power = Power::Off;
        }
        self.went_off(vm);
        Ok(())
    }

    async fn suspend(&self, vm: &MoRef) -> PResult<()> {
        self.call("suspend", vm)?;
        let mut w = self.world.lock();
        let v = w
            .vms
            .get_mut(&vm.value)
            .ok_or_else(|| PlatformError::NotFound("vSphere: gone".into()))?;
        v.power = Power::Suspended;
        Ok(())
    }

    async fn destroy(&self, vm: &MoRef) -> PResult<()> {
        self.call("destroy", vm)?;
        let gone = {
            let mut w = self.world.lock();
            match w.vms.get(&vm.value).map(|v| v.power) {
                None => return Err(PlatformError::NotFound("vSphere: gone".into())),
                Some(Power::On) => {
                    return Err(PlatformError::InvalidPowerState(
                        "vSphere: powered on".into(),
                    ))
                }
                Some(_) => w.vms.remove(&vm.value),
            }
        };
        drop(gone);
        self.went_off(vm);
        Ok(())
    }

    async fn detach_volumes(&self, vm: &MoRef) -> PResult<()> {
        self.call("detach_volumes", vm)?;
        if let Some(v) = self.world.lock().vms.get_mut(&vm.value) {
            v.volumes_detached = true;
        }
        Ok(())
    }

    async fn list_vms(&self) -> PResult<Vec<VmRecord>> {
        self.call("list_vms", &MoRef::new("ResourcePool", "pool"))?;
        let w = self.world.lock();
        Ok(w.vms
            .iter()
            .map(|(k, v)| VmRecord {
                vm: MoRef::new("VirtualMachine", k),
                name: v.name.clone(),
                power: v.power,
                spec: v.spec.clone(),
                meta: v.meta.clone(),
                final_state: v.final_state.clone(),
                guest_state: v.guest_state.clone(),
                started: v.started.clone(),
            })
            .collect())
    }

    fn watch_pool(&self) -> BoxStream<'static, MoRef> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.pool.lock().push(tx);
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
            .boxed()
    }

    fn watch_off(&self, vm: &MoRef) -> BoxFuture<'static, ()> {
        let off = self
            .world
            .lock()
            .vms
            .get(&vm.value)
            .is_none_or(|v| v.power == Power::Off);
        if off {
            return futures_util::future::ready(()).boxed();
        }
        let (tx, rx) = oneshot::channel();
        self.off
            .lock()
            .entry(vm.value.clone())
            .or_default()
            .push(tx);
        rx.map(|_| ()).boxed()
    }

    async fn exit_record(&self, vm_name: &str, _since: Option<&str>) -> Option<ExitRecord> {
        let w = self.world.lock();
        w.vms.values().find(|v| v.name == vm_name)?.exit.clone()
    }

    async fn oom_killed(&self, vm_name: &str, _since: Option<&str>) -> bool {
        let w = self.world.lock();
        w.vms.values().any(|v| v.name == vm_name && v.oom)
    }
}

/// A tether per container: connects when its VM is on (unless told not to), takes
/// `Start`, and records signals; `exit_on` signals end the process with 128+signal.
pub struct FakeGuest {
    platform: Arc<FakePlatform>,
    connected: Mutex<HashSet<String>>,
    hello: tokio::sync::Notify,
    /// Containers whose tether never connects (a broken clone).
    pub mute: Mutex<HashSet<String>>,
    pub started: Mutex<Vec<String>>,
    pub signals: Mutex<Vec<(String, i32)>>,
    pub frames: Mutex<Vec<(String, Frame)>>,
    /// Signals the process dies of (the others it ignores, like a shell ignores TERM).
    pub exit_on: Mutex<HashSet<i32>>,
    /// Exec sessions handed out so far.
    pub sessions: Mutex<u32>,
    /// The translator's end of the status reports (see `report`).
    statuses: Mutex<Option<mpsc::UnboundedSender<(String, GuestStatus)>>>,
}

impl FakeGuest {
    pub fn new(platform: Arc<FakePlatform>) -> Arc<FakeGuest> {
        let g = Arc::new(FakeGuest {
            platform: platform.clone(),
            connected: Mutex::new(HashSet::new()),
            hello: tokio::sync::Notify::new(),
            mute: Mutex::new(HashSet::new()),
            started: Mutex::new(Vec::new()),
            signals: Mutex::new(Vec::new()),
            frames: Mutex::new(Vec::new()),
            exit_on: Mutex::new([2, 9, 15].into_iter().collect()),
            sessions: Mutex::new(0),
            statuses: Mutex::new(None),
        });
        *platform.guest.lock() = Some(g.clone());
        g
    }

    fn boot(&self, id: &str) {
        if self.mute.lock().contains(id) {
            return;
        }
        self.connected.lock().insert(id.to_string());
        self.hello.notify_waiters();
    }

    fn disconnect(&self, id: &str) {
        self.connected.lock().remove(id);
    }

    /// A tether's status report (pid, health), as the control channel delivers it.
    pub fn report(&self, id: &str, status: GuestStatus) {
        if let Some(tx) = self.statuses.lock().as_ref() {
            let _ = tx.send((id.to_string(), status));
        }
    }

    pub fn signals_of(&self, id: &str) -> Vec<i32> {
        self.signals
            .lock()
            .iter()
            .filter(|(c, _)| c == id)
            .map(|(_, s)| *s)
            .collect()
    }
}

#[async_trait]
impl GuestChannel for FakeGuest {
    fn connected(&self, id: &str) -> bool {
        self.connected.lock().contains(id)
    }
    async fn wait_connected(&self, id: &str, timeout: Duration) -> bool {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let next = self.hello.notified();
            if self.connected(id) {
                return true;
            }
            if tokio::time::timeout_at(end, next).await.is_err() {
                return self.connected(id);
            }
        }
    }
    fn start(&self, id: &str) -> bool {
        if !self.connected(id) {
            return false;
        }
        self.started.lock().push(id.to_string());
        true
    }
    fn signal(&self, id: &str, sig: i32) -> bool {
        if !self.connected(id) {
            return false;
        }
        self.signals.lock().push((id.to_string(), sig));
        if self.exit_on.lock().contains(&sig) {
            self.platform.exit(id, 128 + sig as i64);
        }
        true
    }
    fn send(&self, id: &str, frame: Frame) -> bool {
        if !self.connected(id) {
            return false;
        }
        self.frames.lock().push((id.to_string(), frame));
        true
    }
    /// Runs the command at once: it prints its argv on stdout and exits with the
    /// number of its arguments (`false`: 1, as the real one).
    fn exec(
        &self,
        id: &str,
        req: &ExecRequest,
    ) -> Option<(u32, mpsc::UnboundedReceiver<SessionEvent>)> {
        if !self.connected(id) {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let out = bytes::Bytes::from(format!("{}\n", req.cmd.join(" ")));
        let _ = tx.send(SessionEvent::Out {
            stderr: false,
            data: out,
        });
        let code = if req.cmd.first().map(String::as_str) == Some("false") {
            1
        } else {
            req.cmd.len() as i64 - 1
        };
        let _ = tx.send(SessionEvent::Exit { code, error: None });
        let mut sessions = self.sessions.lock();
        *sessions += 1;
        Some((*sessions, rx))
    }
    fn credits(&self, _id: &str, _session: u32) -> Arc<tokio::sync::Semaphore> {
        Arc::new(tokio::sync::Semaphore::new(0))
    }
    fn ops(&self, _id: &str, _req: &OpsRequest) -> Option<OpsSession> {
        None
    }
    fn statuses(&self) -> mpsc::UnboundedReceiver<(String, GuestStatus)> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.statuses.lock() = Some(tx);
        rx
    }
}

/// The start journal, in memory.
#[derive(Default)]
pub struct MemStarts {
    pub starts: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl Starts for MemStarts {
    fn started(&self, id: &str) -> Option<String> {
        self.starts.lock().get(id).cloned()
    }
    async fn record(&self, id: &str, started: &str) -> std::io::Result<()> {
        let mut s = self.starts.lock();
        if started.is_empty() {
            s.remove(id);
        } else {
            s.insert(id.to_string(), started.to_string());
        }
        Ok(())
    }
    async fn forget(&self, id: &str) {
        self.starts.lock().remove(id);
    }
}

/// Records what removals give back.
#[derive(Default)]
pub struct FakeResources {
    pub released: Mutex<Vec<String>>,
    pub removed_volumes: Mutex<Vec<String>>,
}

#[async_trait]
impl Resources for FakeResources {
    fn release_addresses(&self, interfaces: &[container_vm::spec::Interface]) {
        self.released
            .lock()
            .extend(interfaces.iter().map(|i| i.address.clone()));
    }
    async fn remove_volume(&self, name: &str) -> Result<(), String> {
        self.removed_volumes.lock().push(name.to_string());
        Ok(())
    }
}

/// A translator wired to fakes.
pub struct Rig {
    pub p: Arc<FakePlatform>,
    pub g: Arc<FakeGuest>,
    pub starts: Arc<MemStarts>,
    pub res: Arc<FakeResources>,
    pub t: Translator,
}

impl Rig {
    /// A translator serving from an empty pool, its pool watch running (needs a runtime).
    pub fn new() -> Rig {
        let p = FakePlatform::new();
        let rig = Rig::on(p, Arc::new(MemStarts::default()));
        rig.t.watch_pool();
        rig.t.watch_statuses();
        rig
    }

    /// A translator over an existing platform and journal (a VCH that restarts).
    pub fn on(p: Arc<FakePlatform>, starts: Arc<MemStarts>) -> Rig {
        let g = FakeGuest::new(p.clone());
        let res = Arc::new(FakeResources::default());
        let t = Translator::new(p.clone(), g.clone(), starts.clone(), res.clone());
        Rig {
            p,
            g,
            starts,
            res,
            t,
        }
    }
}
