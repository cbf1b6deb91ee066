//! The SOAP entry point: parses a POST /sdk body, answers the session-less calls
//! (`RetrieveServiceContent`, `CurrentTime`, `Login`), authenticates the rest, and routes
//! each vim25 call to its handler in `methods` through one flat table.
//!
//! It is the only module that knows every method; `sim` (the core) and `methods` (the
//! handlers) sit below it.

use crate::props;
use crate::sim::{Ctx, Sim, SESSION_COOKIE};
use crate::soap::{self, Call, Fault, Reply};
use std::sync::Arc;
use std::time::Instant;
use vsphere_client::value::Value;

/// What the HTTP layer sends back for one SOAP call.
pub struct SoapOutcome {
    pub status: u16,
    pub set_cookie: Option<String>,
    pub body: String,
}

impl Sim {
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
            ("Folder", "MoveIntoFolder_Task") => self.move_into_folder(ctx, this, a),
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
            ("VirtualMachine", "MarkAsTemplate") => self.mark_as_template(this),
            ("VirtualMachine", "RelocateVM_Task") => self.relocate_vm(ctx, this, a),
            ("VirtualMachine", "RemoveAllSnapshots_Task") => self.remove_all_snapshots(ctx, this),
            ("VirtualMachineSnapshot", "RemoveSnapshot_Task") => self.remove_snapshot(ctx, this, a),
            ("VirtualMachine", "MarkAsVirtualMachine") => self.mark_as_virtual_machine(this, a),
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
                let known = crate::state::exists(&self.state.read(), this);
                if !known {
                    return Err(Fault::not_found(this));
                }
                Err(Fault::method_not_found(this, &call.method))
            }
        }
    }
}

fn fault_outcome(f: &Fault) -> SoapOutcome {
    SoapOutcome {
        status: 500,
        set_cookie: None,
        body: f.to_envelope(),
    }
}
