//! The simulator core: sessions, the SOAP method dispatcher, tasks, and the write path
//! that journals every mutation before a call is answered.

use crate::methods::Ctx;
use crate::model::Inventory;
use crate::props::{self, PropCtx};
use crate::runtime::HostRuntime;
use crate::soap::{self, Call, Fault, Reply};
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

/// Bulk inventory shape for a fresh data directory (like vcsim's model flags).
#[derive(Debug, Clone)]
pub struct Model {
    pub datacenters: usize,
    /// Clusters per datacenter.
    pub clusters: usize,
    /// Hosts per cluster.
    pub hosts: usize,
    /// Datastores per datacenter.
    pub datastores: usize,
    /// VMs in all, spread over the clusters' root pools.
    pub vms: usize,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            datacenters: 1,
            clusters: 1,
            hosts: 3,
            datastores: 1,
            vms: 0,
        }
    }
}

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

/// What the HTTP layer sends back for one SOAP call.
pub struct SoapOutcome {
    pub status: u16,
    pub set_cookie: Option<String>,
    pub body: String,
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
        sim.runtime.bind(Arc::downgrade(&sim));
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

    fn authenticate(&self, cookie: Option<&str>) -> Option<Ctx> {
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

    /// Handles one POST /sdk body.
    pub async fn soap(
        self: &Arc<Self>,
        body: &[u8],
        cookie: Option<&str>,
        ip: &str,
        agent: &str,
    ) -> SoapOutcome {
        let call = match soap::parse_call(body) {
            Ok(c) => c,
            Err(f) => return fault_outcome(&f),
        };
        let span = tracing::debug_span!("soap", method = %call.method, this = %call.this);
        let _enter = span.enter();
        drop(_enter);
        let started = Instant::now();
        let result = self.call(&call, cookie, ip, agent).await;
        tracing::debug!(method = %call.method, elapsed_us = started.elapsed().as_micros() as u64, ok = result.is_ok(), "call");
        match result {
            Ok((reply, set_cookie)) => SoapOutcome {
                status: 200,
                set_cookie,
                body: soap::response_envelope(&call.method, &reply),
            },
            Err(f) => fault_outcome(&f),
        }
    }

    async fn call(
        self: &Arc<Self>,
        call: &Call,
        cookie: Option<&str>,
        ip: &str,
        agent: &str,
    ) -> Result<(Reply, Option<String>), Fault> {
        match call.method.as_str() {
            "RetrieveServiceContent" => {
                let root = self.state.read().inv.root_folder.clone();
                return Ok((
                    Reply::One(props::service_content(&root, &self.instance_uuid)),
                    None,
                ));
            }
            "CurrentTime" => return Ok((Reply::One(Value::datetime(props::now())), None)),
            "Login" => {
                let user = call.args.child_text("userName").unwrap_or_default();
                let password = call.args.child_text("password").unwrap_or_default();
                let s = self.login(user, password, ip, agent)?;
                let set_cookie =
                    format!("{SESSION_COOKIE}=\"{}\"; Path=/; HttpOnly; Secure;", s.key);
                return Ok((Reply::One(s.to_value()), Some(set_cookie)));
            }
            _ => {}
        }
        let ctx = self
            .authenticate(cookie)
            .ok_or_else(Fault::not_authenticated)?;
        let reply = match call.method.as_str() {
            "WaitForUpdatesEx" | "WaitForUpdates" | "CheckForUpdates" => {
                self.wait_for_updates(&ctx, call).await?
            }
            _ => self.dispatch(&ctx, call)?,
        };
        Ok((reply, None))
    }

    fn dispatch(self: &Arc<Self>, ctx: &Ctx, call: &Call) -> Result<Reply, Fault> {
        let a = &call.args;
        let this = &call.this;
        match (this.ty.as_str(), call.method.as_str()) {
            ("SessionManager", "Logout") => {
                self.logout(&ctx.session);
                Ok(Reply::Void)
            }
            ("SessionManager", "SessionIsActive") => {
                let id = a.child_text("sessionID").unwrap_or_default();
                let user = a.child_text("userName").unwrap_or_default();
                let active = self
                    .sessions
                    .lock()
                    .get(id)
                    .map(|s| s.user == user && s.last_active.elapsed() <= self.cfg.session_timeout)
                    .unwrap_or(false);
                Ok(Reply::One(Value::bool(active)))
            }
            (_, "Fetch") => self.fetch(ctx, this, a),
            ("PropertyCollector", "RetrieveProperties") => self.retrieve_properties(ctx, a),
            ("PropertyCollector", "RetrievePropertiesEx") => {
                self.retrieve_properties_ex(ctx, this, a)
            }
            ("PropertyCollector", "ContinueRetrievePropertiesEx") => {
                self.continue_retrieve(ctx, this, a)
            }
            ("PropertyCollector", "CancelRetrievePropertiesEx") => {
                self.cancel_retrieve(ctx, this, a)
            }
            ("PropertyCollector", "CreateFilter") => self.create_filter(ctx, this, a),
            ("PropertyCollector", "CreatePropertyCollector") => self.create_collector(ctx),
            ("PropertyCollector", "DestroyPropertyCollector") => self.destroy_collector(ctx, this),
            ("PropertyCollector", "CancelWaitForUpdates") => self.cancel_wait(ctx, this),
            ("PropertyFilter", "DestroyPropertyFilter") => self.destroy_filter(ctx, this),
            ("ViewManager", "CreateContainerView") => self.create_container_view(ctx, a),
            ("ViewManager", "CreateListView") => self.create_list_view(ctx, a),
            ("ContainerView" | "ListView", "DestroyView") => self.destroy_view(this),
            ("SearchIndex", "FindByInventoryPath") => self.find_by_inventory_path(a),
            ("SearchIndex", "FindChild") => self.find_child(a),
            ("SearchIndex", "FindByUuid") => self.find_by_uuid(a, false),
            ("SearchIndex", "FindAllByUuid") => self.find_by_uuid(a, true),
            ("Folder", "CreateFolder") => self.create_folder(this, a),
            ("Folder", "CreateVM_Task") => self.create_vm(ctx, this, a),
            ("ResourcePool", "CreateResourcePool") => self.create_resource_pool(this, a),
            ("ResourcePool", "UpdateConfig") => self.update_pool_config(this, a),
            (_, "Rename_Task") => self.rename(ctx, this, a),
            (_, "Destroy_Task") => self.destroy(ctx, this),
            ("VirtualMachine", "ReconfigVM_Task") => self.reconfigure_vm(ctx, this, a),
            ("VirtualMachine", "PowerOnVM_Task") => self.power_on(ctx, this),
            ("VirtualMachine", "PowerOffVM_Task") => self.power_off(ctx, this, "PowerOffVM_Task"),
            ("VirtualMachine", "ShutdownGuest") => self.shutdown_guest(this),
            ("VirtualMachine", "ResetVM_Task") => self.reset_vm(ctx, this),
            ("VirtualMachine", "SuspendVM_Task") => self.suspend_vm(ctx, this),
            ("VirtualMachine", "CloneVM_Task") => self.clone_vm(ctx, this, a),
            ("VirtualMachine", "InstantClone_Task") => self.instant_clone(ctx, this, a),
            ("VirtualMachine", "CreateSnapshot_Task") => self.create_snapshot(ctx, this, a),
            ("HostNetworkSystem", "AddPortGroup") => self.add_port_group(this, a),
            ("HostNetworkSystem", "RemovePortGroup") => self.remove_port_group(this, a),
            (
                "VmwareDistributedVirtualSwitch" | "DistributedVirtualSwitch",
                "CreateDVPortgroup_Task",
            ) => self.create_dv_portgroup(ctx, this, a),
            ("FileManager", "MakeDirectory") => self.make_directory(a),
            ("FileManager", "DeleteDatastoreFile_Task") => self.delete_datastore_file(ctx, a),
            ("FileManager", "MoveDatastoreFile_Task") => self.move_datastore_file(ctx, a, false),
            ("FileManager", "CopyDatastoreFile_Task") => self.move_datastore_file(ctx, a, true),
            ("VirtualDiskManager", "CreateVirtualDisk_Task") => self.create_virtual_disk(ctx, a),
            ("VirtualDiskManager", "CopyVirtualDisk_Task") => self.copy_virtual_disk(ctx, a),
            ("VirtualDiskManager", "DeleteVirtualDisk_Task") => self.delete_virtual_disk(ctx, a),
            ("HostDatastoreBrowser", "SearchDatastore_Task") => {
                self.search_datastore(ctx, this, a, false)
            }
            ("HostDatastoreBrowser", "SearchDatastoreSubFolders_Task") => {
                self.search_datastore(ctx, this, a, true)
            }
            _ => {
                // An unknown object gets ManagedObjectNotFound, as vCenter answers.
                let known = crate::collector::exists(&self.state.read(), this);
                if !known {
                    return Err(Fault::not_found(this));
                }
                Err(Fault::method_not_found(this, &call.method))
            }
        }
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

fn fault_outcome(f: &Fault) -> SoapOutcome {
    SoapOutcome {
        status: 500,
        set_cookie: None,
        body: f.to_envelope(),
    }
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
