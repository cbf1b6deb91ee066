//! The simulator core: the [`Sim`] handle (state under one lock, journal store, host
//! runtime), its configuration, sessions and authentication, tasks, and the write path
//! that journals every mutation before a call is answered.
//!
//! It sits below the vim25 method handlers (`methods`, `impl Sim` blocks) and the SOAP
//! entry point that routes calls to them (`dispatch`): the core never names a method.

use crate::model::Inventory;
pub use crate::populate::Model;
use crate::props::{self, PropCtx};
use crate::runtime::{GuestEvents, HostRuntime};
use crate::soap::{Fault, Reply};
use crate::state::{State, TaskData, TaskState};
use crate::store::{Store, StoreError};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsphere_client::value::{DataObject, MoRef, Value};

pub const SESSION_COOKIE: &str = "vmware_soap_session";

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub data_dir: PathBuf,
    pub username: String,
    pub password: String,
    pub model: Model,
    /// Idle time after which a session is dropped (vCenter's default is 30 min).
    pub session_timeout: Duration,
}

impl SimConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        SimConfig {
            data_dir: data_dir.into(),
            username: "administrator@vsphere.local".into(),
            password: "vmware".into(),
            model: Model::default(),
            session_timeout: Duration::from_secs(30 * 60),
        }
    }

    /// The configuration of a simulator embedded in another program (the VCH): its data
    /// directory is private (0700) and its password is random, generated once per data
    /// directory and kept in `sim-password` (0600). Never the documented `vmware` of the
    /// hand-run binary: the embedded vCenter runs VMs as root on this machine.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let mut cfg = SimConfig::new(data_dir);
        crate::private::private_dir(&cfg.data_dir)?;
        cfg.password = crate::private::load_or_create_secret(&cfg.data_dir.join("sim-password"))?;
        Ok(cfg)
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub key: String,
    pub user: String,
    pub login_time: String,
    pub last_active: Instant,
    pub last_active_time: String,
    pub ip: String,
    pub user_agent: String,
    pub calls: i64,
}

impl Session {
    pub fn to_value(&self) -> Value {
        Value::Obj(
            DataObject::new("UserSession")
                .with("key", Value::string(&self.key))
                .with("userName", Value::string(&self.user))
                .with("fullName", Value::string(&self.user))
                .with("loginTime", Value::datetime(&self.login_time))
                .with("lastActiveTime", Value::datetime(&self.last_active_time))
                .with("locale", Value::string("en"))
                .with("messageLocale", Value::string("en"))
                .with("extensionSession", Value::bool(false))
                .with("ipAddress", Value::string(&self.ip))
                .with("userAgent", Value::string(&self.user_agent))
                .with("callCount", Value::long(self.calls)),
        )
    }
}

/// The caller of a method: the session it came in on and its user.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub session: String,
    pub user: String,
}

pub struct Sim {
    pub state: RwLock<State>,
    pub sessions: Mutex<HashMap<String, Session>>,
    /// Bumped after every change; PropertyCollector waiters wake on it.
    pub changes: tokio::sync::watch::Sender<u64>,
    pub store: Store,
    pub runtime: Arc<dyn HostRuntime>,
    pub cfg: SimConfig,
    pub instance_uuid: String,
}

/// Finds the session key in a `Cookie` header. pyvmomi echoes the whole `Set-Cookie`
/// value (attributes and quotes included), so parse leniently.
pub fn session_from_cookie(header: &str) -> Option<String> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k.trim() == SESSION_COOKIE).then(|| v.trim().trim_matches('"').to_string())
    })
}

impl Sim {
    pub fn open(cfg: SimConfig, runtime: Arc<dyn HostRuntime>) -> Result<Arc<Sim>, StoreError> {
        let store_dir = cfg.data_dir.join("inventory");
        let (store, loaded) = Store::open(&store_dir)?;
        let fresh = loaded.is_none();
        let inv = match loaded {
            Some(inv) => {
                tracing::info!(entities = inv.entities.len(), "inventory loaded");
                inv
            }
            None => {
                let inv = crate::populate::build(&cfg.model, &cfg.data_dir);
                Store::write_snapshot(&store_dir, &inv)?;
                inv
            }
        };
        if !fresh {
            crate::populate::ensure_datastore_dirs(&inv);
        }
        let mut inv = inv;
        if !fresh && !runtime.vms_survive_restart() {
            // Their processes died with the previous simulator: they are off now.
            for e in inv.entities.values_mut() {
                if let crate::model::Kind::Vm(v) = &mut e.kind {
                    if v.power_state != crate::model::PowerState::PoweredOff {
                        v.power_state = crate::model::PowerState::PoweredOff;
                        v.boot_time = None;
                        v.volatile_guestinfo.clear();
                        inv.dirty.insert(e.moref.value.clone());
                    }
                }
            }
        }
        let instance_uuid = crate::populate::instance_uuid(&cfg.data_dir);
        let (tx, _) = tokio::sync::watch::channel(0);
        let sim = Arc::new(Sim {
            state: RwLock::new(State {
                inv,
                ..Default::default()
            }),
            sessions: Mutex::new(HashMap::new()),
            changes: tx,
            store,
            runtime,
            cfg,
            instance_uuid,
        });
        let guests: std::sync::Weak<dyn GuestEvents> = Arc::downgrade(&sim) as _;
        sim.runtime.bind(guests);
        let appended = {
            let mut st = sim.state.write();
            sim.store.append_dirty(&mut st.inv)?
        };
        if let Some(seq) = appended {
            sim.store.sync(seq)?;
        }
        Ok(sim)
    }

    pub fn prop_ctx(&self, ctx: Option<&Ctx>) -> PropCtx {
        PropCtx {
            instance_uuid: self.instance_uuid.clone(),
            session_key: ctx.map(|c| c.session.clone()),
            session: ctx.and_then(|c| self.sessions.lock().get(&c.session).map(Session::to_value)),
        }
    }

    pub fn bump(&self) {
        self.changes.send_modify(|g| *g += 1);
    }

    /// Runs a mutation under the write lock, journals what it touched, syncs the journal
    /// (outside the lock), and wakes PropertyCollector waiters.
    pub fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (r, wrote) = {
            let mut st = self.state.write();
            let r = f(&mut st);
            let wrote = match self.store.append_dirty(&mut st.inv) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!("journal append failed: {e}");
                    None
                }
            };
            (r, wrote)
        };
        if let Some(seq) = wrote {
            // The fsync blocks: on a multi-threaded runtime let the other tasks of this
            // worker move elsewhere meanwhile.
            let sync = || {
                if let Err(e) = self.store.sync(seq) {
                    tracing::error!("journal sync failed: {e}");
                }
            };
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(sync),
                _ => sync(),
            }
        }
        self.bump();
        r
    }

    /// Folds the journal into a fresh snapshot (used at shutdown).
    pub fn compact(&self) -> Result<(), StoreError> {
        let st = self.state.read();
        self.store.snapshot(&st.inv)
    }

    pub fn inventory_len(&self) -> usize {
        self.state.read().inv.entities.len()
    }

    pub(crate) fn authenticate(&self, cookie: Option<&str>) -> Option<Ctx> {
        let key = session_from_cookie(cookie?)?;
        let mut sessions = self.sessions.lock();
        let s = sessions.get_mut(&key)?;
        if s.last_active.elapsed() > self.cfg.session_timeout {
            sessions.remove(&key);
            return None;
        }
        s.last_active = Instant::now();
        s.last_active_time = props::now();
        s.calls += 1;
        Some(Ctx {
            session: key,
            user: s.user.clone(),
        })
    }

    /// Session key for a datastore HTTP request's cookie, if valid.
    pub fn http_session(&self, cookie: Option<&str>) -> Option<Ctx> {
        self.authenticate(cookie)
    }

    pub fn login(
        &self,
        user: &str,
        password: &str,
        ip: &str,
        agent: &str,
    ) -> Result<Session, Fault> {
        if user != self.cfg.username || password != self.cfg.password {
            return Err(Fault::new(
                "InvalidLogin",
                "Cannot complete login due to an incorrect user name or password.",
            ));
        }
        let now = props::now();
        let s = Session {
            key: uuid::Uuid::new_v4().to_string(),
            user: user.to_string(),
            login_time: now.clone(),
            last_active: Instant::now(),
            last_active_time: now,
            ip: ip.to_string(),
            user_agent: agent.to_string(),
            calls: 0,
        };
        self.sessions.lock().insert(s.key.clone(), s.clone());
        Ok(s)
    }

    /// Ends a session and everything it owned (views, collectors, filters).
    pub fn logout(&self, key: &str) {
        self.sessions.lock().remove(key);
        self.write(|st| {
            st.views.retain(|_, v| v.session != key);
            st.filters.retain(|_, f| f.session != key);
            let prefix = format!("{key}/");
            st.collectors.retain(|k, _| !k.starts_with(&prefix));
        });
    }

    /// Creates a task in `queued` state and runs `work` in the background. The task moves
    /// to `running`, then `success` with the returned result or `error` with the fault.
    pub fn run_task<F, Fut>(
        self: &Arc<Self>,
        ctx: &Ctx,
        method: &str,
        entity: Option<&MoRef>,
        work: F,
    ) -> Result<Reply, Fault>
    where
        F: FnOnce(Arc<Sim>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<Value>, Fault>> + Send + 'static,
    {
        let task = self.write(|st| {
            let id = st.transient_id("task");
            let moref = MoRef::new("Task", id.clone());
            let entity_name = entity.and_then(|e| st.inv.get(e)).map(|e| e.name.clone());
            st.add_task(TaskData {
                moref: moref.clone(),
                key: id,
                method: method.to_string(),
                description_id: description_id(method, entity),
                entity: entity.cloned(),
                entity_name,
                state: TaskState::Queued,
                progress: None,
                result: None,
                error: None,
                user: ctx.user.clone(),
                queue_time: props::now(),
                start_time: None,
                complete_time: None,
                event_chain_id: st.next_transient as i64,
            });
            moref
        });
        let sim = self.clone();
        let t = task.clone();
        tokio::spawn(async move {
            sim.write(|st| {
                if let Some(td) = st.tasks.get_mut(&t.value) {
                    td.state = TaskState::Running;
                    td.progress = Some(0);
                    td.start_time = Some(props::now());
                }
            });
            let outcome = work(sim.clone()).await;
            sim.write(|st| {
                if let Some(td) = st.tasks.get_mut(&t.value) {
                    td.complete_time = Some(props::now());
                    td.progress = None;
                    match outcome {
                        Ok(result) => {
                            td.state = TaskState::Success;
                            td.result = result;
                        }
                        Err(f) => {
                            tracing::debug!(task = %t.value, fault = %f.ty, "task failed: {}", f.msg);
                            td.state = TaskState::Error;
                            td.error = Some(f);
                        }
                    }
                }
            });
        });
        Ok(Reply::One(Value::MoRef(task)))
    }

    /// Read access for helpers that only inspect the inventory.
    pub fn read_inv<R>(&self, f: impl FnOnce(&Inventory) -> R) -> R {
        f(&self.state.read().inv)
    }
}

/// `TaskInfo.descriptionId`: the managed object type and the vmodl method name, as
/// vCenter reports them (`VirtualMachine.powerOn`, `Folder.createVm`).
fn description_id(method: &str, entity: Option<&MoRef>) -> String {
    let (ty, name) = match method {
        "PowerOnVM_Task" => ("VirtualMachine", "powerOn"),
        "PowerOffVM_Task" => ("VirtualMachine", "powerOff"),
        "ResetVM_Task" => ("VirtualMachine", "reset"),
        "SuspendVM_Task" => ("VirtualMachine", "suspend"),
        "ReconfigVM_Task" => ("VirtualMachine", "reconfigure"),
        "CloneVM_Task" => ("VirtualMachine", "clone"),
        "InstantClone_Task" => ("VirtualMachine", "instantClone"),
        "CreateSnapshot_Task" => ("VirtualMachine", "createSnapshot"),
        "CreateVM_Task" => ("Folder", "createVm"),
        "MoveIntoFolder_Task" => ("Folder", "moveInto"),
        "RelocateVM_Task" => ("VirtualMachine", "relocate"),
        "RemoveAllSnapshots_Task" => ("VirtualMachine", "removeAllSnapshots"),
        "RemoveSnapshot_Task" => ("vm.Snapshot", "remove"),
        "CreateDVPortgroup_Task" => ("DistributedVirtualSwitch", "addPortgroup"),
        "DeleteDatastoreFile_Task" => ("FileManager", "deleteFile"),
        "MoveDatastoreFile_Task" => ("FileManager", "moveFile"),
        "CopyDatastoreFile_Task" => ("FileManager", "copyFile"),
        "CreateVirtualDisk_Task" => ("VirtualDiskManager", "createVirtualDisk"),
        "CopyVirtualDisk_Task" => ("VirtualDiskManager", "copyVirtualDisk"),
        "DeleteVirtualDisk_Task" => ("VirtualDiskManager", "deleteVirtualDisk"),
        "SearchDatastore_Task" => ("HostDatastoreBrowser", "search"),
        "SearchDatastoreSubFolders_Task" => ("HostDatastoreBrowser", "searchSubFolders"),
        "Destroy_Task" => (
            entity.map(|e| e.ty.as_str()).unwrap_or("ManagedEntity"),
            "destroy",
        ),
        "Rename_Task" => (
            entity.map(|e| e.ty.as_str()).unwrap_or("ManagedEntity"),
            "rename",
        ),
        other => ("ManagedObject", other.trim_end_matches("_Task")),
    };
    format!("{ty}.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsing_accepts_pyvmomi_echo() {
        assert_eq!(
            session_from_cookie(r#"vmware_soap_session="abc-1"; Path=/; HttpOnly; Secure;"#)
                .as_deref(),
            Some("abc-1")
        );
        assert_eq!(
            session_from_cookie("a=b; vmware_soap_session=xyz").as_deref(),
            Some("xyz")
        );
        assert_eq!(session_from_cookie("a=b"), None);
    }
}
