//! `VmPlatform`: everything the translator asks of vSphere, in the translator's own
//! types. The real implementation (`vsphere.rs`) turns these into vim25 calls and
//! classifies vSphere's answers ([`PlatformError`]); the fakes (`fakes.rs`) model them
//! in memory so the translator's decisions are unit-tested without a simulator.

use crate::containers::{FinalState, Meta, TetherSpec};
use crate::template::Template;
use docker_api::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use std::time::Duration;
use vsphere_client::spec::Device;
use vsphere_client::MoRef;

pub use super::error::PlatformError;

pub type PResult<T> = std::result::Result<T, PlatformError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    On,
    Off,
    Suspended,
}

/// One VM of the VCH's pool as recovery reads it: its power state and the container
/// records of its extraConfig, decoded (`None`: absent or unreadable).
#[derive(Debug, Clone)]
pub struct VmRecord {
    pub vm: MoRef,
    pub name: String,
    pub power: Power,
    pub spec: Option<TetherSpec>,
    pub meta: Option<Meta>,
    pub final_state: Option<FinalState>,
    /// The tether's own state key (`created` while a parked clone waits).
    pub guest_state: Option<String>,
    /// `vch.started` of VCHs before the start journal (empty: taken back).
    pub started: Option<String>,
}

/// The instant clone of a container VM: its name, layer disks (shared, read-only),
/// volume disks, NIC, and the records it carries. The platform lays the disks out and
/// writes the resulting device names into `spec` (layers, mounts, scratch; parked).
#[derive(Debug, Clone)]
pub struct CloneRequest {
    pub vm_name: String,
    pub layers: Vec<String>,
    pub spec: TetherSpec,
    pub meta: Meta,
    pub volume_disks: Vec<String>,
    pub nics: Vec<Device>,
}

/// A change of a VM's configuration; what is `None` stays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmChange {
    pub memory_mb: Option<i64>,
    pub cpus: Option<i64>,
    /// The Docker-side record (`vch.meta`): renames, `docker update --restart`.
    pub meta: Option<Meta>,
    /// The final state of a run, persisted once the VM is off (`vch.final`).
    pub final_state: Option<FinalState>,
    /// A new container spec (network connect and disconnect change its interfaces);
    /// the previous one is given so keys of a longer encoding can be cleared.
    pub spec: Option<SpecChange>,
    /// NICs to add (`docker network connect`).
    pub add_nics: Vec<Device>,
    /// NICs to remove, by MAC (`docker network disconnect`).
    pub remove_nics: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpecChange {
    pub old: TetherSpec,
    pub new: TetherSpec,
}

/// The exit record a run's tether wrote to the container log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitRecord {
    pub code: i64,
    pub error: Option<String>,
}

#[async_trait]
pub trait VmPlatform: Send + Sync + 'static {
    /// The ready template VM, waiting up to `bound` while it is healed; the error says
    /// why it is not ready.
    async fn template(&self, bound: Duration) -> Result<Template, String>;
    /// Makes the template ready again (power on, or recreate); creates wait meanwhile.
    async fn heal_template(&self, why: &str);
    /// Power-cycles a template that is on but does not answer, then heals it.
    async fn reset_template(&self, why: &str);
    fn is_template(&self, vm: &MoRef) -> bool;

    async fn instant_clone(&self, tpl: &Template, req: &mut CloneRequest) -> PResult<MoRef>;
    async fn reconfigure(&self, vm: &MoRef, change: &VmChange) -> PResult<()>;
    async fn power_on(&self, vm: &MoRef) -> PResult<()>;
    async fn power_off(&self, vm: &MoRef) -> PResult<()>;
    async fn suspend(&self, vm: &MoRef) -> PResult<()>;
    async fn destroy(&self, vm: &MoRef) -> PResult<()>;
    /// Removes the volume disks from a powered-off VM without deleting them (destroy
    /// deletes every persistent disk of a VM).
    async fn detach_volumes(&self, vm: &MoRef) -> PResult<()>;

    /// Every VM of the VCH's pool, with its container records.
    async fn list_vms(&self) -> PResult<Vec<VmRecord>>;
    /// VMs of the pool that power off or leave it, as they do (one watch for all).
    fn watch_pool(&self) -> BoxStream<'static, MoRef>;
    /// Resolves once `vm` is off or gone (a cold power-on's own watch: the pool watch
    /// could miss an on-off cycle between two of its polls).
    fn watch_off(&self, vm: &MoRef) -> BoxFuture<'static, ()>;

    /// The exit record of the run of `vm_name` that started at `since`.
    async fn exit_record(&self, vm_name: &str, since: Option<&str>) -> Option<ExitRecord>;
    /// Whether that run's exit record says the kernel killed it for memory.
    async fn oom_killed(&self, vm_name: &str, since: Option<&str>) -> bool;
}
