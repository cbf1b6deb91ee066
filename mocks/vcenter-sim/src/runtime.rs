//! The seam between the vSphere model and whatever executes powered-on VMs.
//!
//! The simulator decides *whether* a power operation is valid (vSphere semantics, faults,
//! task bookkeeping); the runtime makes it *happen*. `StateOnlyRuntime` only tracks
//! state; the process-sandbox runtime that really runs the tether plugs in here, and
//! reports guest events back through [`GuestEvents`] (it never sees the simulator itself).

use crate::soap::Fault;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::path::PathBuf;
use vsphere_client::value::{DataObject, MoRef};

/// Everything a runtime needs to start a VM, resolved from its configuration.
#[derive(Debug, Clone)]
pub struct VmRuntimeSpec {
    pub vm: MoRef,
    pub name: String,
    pub num_cpu: i64,
    pub memory_mb: i64,
    pub extra_config: Vec<(String, String)>,
    pub devices: Vec<DataObject>,
    /// Datastore name -> local directory, to resolve `[ds] path` disk and file backings.
    pub datastores: HashMap<String, PathBuf>,
}

pub trait HostRuntime: Send + Sync + 'static {
    fn power_on(&self, spec: VmRuntimeSpec) -> BoxFuture<'static, Result<(), Fault>>;
    fn power_off(&self, vm: MoRef) -> BoxFuture<'static, Result<(), Fault>>;
    fn suspend(&self, vm: MoRef) -> BoxFuture<'static, Result<(), Fault>>;
    fn reset(&self, spec: VmRuntimeSpec) -> BoxFuture<'static, Result<(), Fault>>;
    /// Starts `child` as a copy of the running `parent` (vSphere instant clone).
    fn instant_clone(
        &self,
        parent: MoRef,
        child: VmRuntimeSpec,
    ) -> BoxFuture<'static, Result<(), Fault>>;
    /// Applies a running VM's new memory and vCPU count (a hot add/remove that vSphere
    /// semantics already allowed).
    fn resize(
        &self,
        _vm: MoRef,
        _memory_mb: i64,
        _cpus: i64,
    ) -> BoxFuture<'static, Result<(), Fault>> {
        ok()
    }
    /// Gives a running VM the NICs `devices` describe (a reconfigure hot-added or removed
    /// some).
    fn set_nics(
        &self,
        _vm: MoRef,
        _devices: Vec<vsphere_client::value::DataObject>,
    ) -> BoxFuture<'static, Result<(), Fault>> {
        ok()
    }
    /// Whether running VMs outlive a restart of the simulator. A runtime whose VMs are
    /// processes of the simulator says no, and VMs left "on" are marked off at start.
    fn vms_survive_restart(&self) -> bool {
        true
    }
    /// Gives the runtime a handle on the simulator, to report guest events (power-off,
    /// guestinfo writes). Called once, right after the simulator is created.
    fn bind(&self, _guests: std::sync::Weak<dyn GuestEvents>) {}
}

/// What a running guest can ask of, or tell, the simulator: the simulator implements
/// it (`methods/vm.rs`), runtimes call it. Narrow on purpose, so a runtime depends on
/// three calls rather than on the whole simulator.
pub trait GuestEvents: Send + Sync + 'static {
    /// The guest powered itself off.
    fn guest_powered_off(&self, vm: &MoRef);
    /// The guest reads a guestinfo key.
    fn guest_get_info(&self, vm: &MoRef, key: &str) -> Option<String>;
    /// The guest writes a guestinfo key (volatile: lost at power-off).
    fn guest_set_info(&self, vm: &MoRef, key: &str, value: &str) -> Result<(), Fault>;
}

/// Runs nothing: power operations only change the modelled state.
#[derive(Debug, Default)]
pub struct StateOnlyRuntime;

fn ok() -> BoxFuture<'static, Result<(), Fault>> {
    Box::pin(async { Ok(()) })
}

impl HostRuntime for StateOnlyRuntime {
    fn power_on(&self, _spec: VmRuntimeSpec) -> BoxFuture<'static, Result<(), Fault>> {
        ok()
    }
    fn power_off(&self, _vm: MoRef) -> BoxFuture<'static, Result<(), Fault>> {
        ok()
    }
    fn suspend(&self, _vm: MoRef) -> BoxFuture<'static, Result<(), Fault>> {
        ok()
    }
    fn reset(&self, _spec: VmRuntimeSpec) -> BoxFuture<'static, Result<(), Fault>> {
        ok()
    }
    fn instant_clone(
        &self,
        _parent: MoRef,
        _child: VmRuntimeSpec,
    ) -> BoxFuture<'static, Result<(), Fault>> {
        ok()
    }
}
