//! The persisted inventory: managed entities and what each kind owns.
//!
//! Entities hold compact typed state; the rich vim25 property trees (`config`, `summary`,
//! `runtime`...) are built from it on demand in `props.rs`, which keeps 100K VMs within
//! a few hundred bytes each. Questions answered from the model alone (a VM's networks,
//! which VMs use a datastore) live here too, so `props` builds on the model and never
//! the reverse.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use vsphere_client::value::{DataObject, MoRef, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entity {
    pub moref: MoRef,
    pub name: String,
    pub parent: Option<MoRef>,
    pub kind: Kind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Kind {
    Folder(FolderData),
    Datacenter(DatacenterData),
    Cluster(ClusterData),
    Host(HostData),
    Pool(PoolData),
    Vm(Box<VmData>),
    Datastore(DatastoreData),
    Network(NetworkData),
    DvSwitch(DvSwitchData),
    DvPortgroup(DvPortgroupData),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FolderData {
    /// `childType` as vSphere reports it (`Folder`, `VirtualMachine`, ...).
    pub child_type: Vec<String>,
    pub children: Vec<MoRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatacenterData {
    pub vm_folder: MoRef,
    pub host_folder: MoRef,
    pub datastore_folder: MoRef,
    pub network_folder: MoRef,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterData {
    pub hosts: Vec<MoRef>,
    pub root_pool: MoRef,
    pub datastores: Vec<MoRef>,
    pub networks: Vec<MoRef>,
    pub drs_enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostPortGroup {
    pub name: String,
    pub vlan_id: i64,
    pub vswitch: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostData {
    pub cluster: MoRef,
    pub datastores: Vec<MoRef>,
    pub networks: Vec<MoRef>,
    pub portgroups: Vec<HostPortGroup>,
    pub uuid: String,
    pub cpu_cores: i64,
    pub cpu_mhz: i64,
    pub memory_bytes: i64,
}

/// `ResourceAllocationInfo` for CPU or memory, as vSphere models it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Allocation {
    pub reservation: i64,
    pub expandable_reservation: bool,
    /// -1 means unlimited.
    pub limit: i64,
    pub shares: i64,
    pub level: String,
}

impl Default for Allocation {
    fn default() -> Self {
        Allocation {
            reservation: 0,
            expandable_reservation: true,
            limit: -1,
            shares: 4000,
            level: "normal".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolData {
    /// The cluster (compute resource) that owns the pool tree.
    pub owner: MoRef,
    pub children: Vec<MoRef>,
    pub vms: Vec<MoRef>,
    pub cpu: Allocation,
    pub memory: Allocation,
    pub change_version: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum PowerState {
    PoweredOn,
    PoweredOff,
    Suspended,
}

impl PowerState {
    pub fn wire(self) -> &'static str {
        match self {
            PowerState::PoweredOn => "poweredOn",
            PowerState::PoweredOff => "poweredOff",
            PowerState::Suspended => "suspended",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub moref: MoRef,
    pub id: i64,
    pub name: String,
    pub description: String,
    pub create_time: String,
    pub power_state: PowerState,
    pub parent: Option<MoRef>,
    pub devices: Vec<DataObject>,
    pub extra_config: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmData {
    pub folder: MoRef,
    pub pool: MoRef,
    pub host: MoRef,
    pub datastore: MoRef,
    pub power_state: PowerState,
    pub uuid: String,
    pub instance_uuid: String,
    pub guest_id: String,
    pub num_cpu: i64,
    pub cores_per_socket: i64,
    pub memory_mb: i64,
    pub annotation: String,
    pub hw_version: String,
    pub template: bool,
    /// `[datastore] dir/name.vmx`.
    pub vmx_path: String,
    /// Persistent `extraConfig`, in insertion order.
    pub extra_config: Vec<(String, String)>,
    /// guestinfo written while the VM runs (by the API or the guest). On real vSphere these
    /// values are volatile: they vanish at power-off. They are journaled only so that a
    /// restart of the simulator (vCenter) does not lose them while the VM still runs.
    #[serde(default)]
    pub volatile_guestinfo: Vec<(String, String)>,
    /// Devices beyond the fixed base hardware (see `props::base_devices`).
    pub devices: Vec<DataObject>,
    pub snapshots: Vec<Snapshot>,
    pub current_snapshot: Option<MoRef>,
    pub boot_time: Option<String>,
    pub create_date: String,
    pub change_version: u64,
    /// Instant-clone parent, if any.
    pub instant_clone_parent: Option<MoRef>,
    pub cpu_alloc: Allocation,
    pub mem_alloc: Allocation,
    /// Hot-plug switches (`config.memoryHotAddEnabled`...): whether memory and vCPUs may
    /// change while the VM runs. Settable only while it is off.
    #[serde(default)]
    pub hot_plug: HotPlug,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotPlug {
    pub memory_add: bool,
    pub cpu_add: bool,
    pub cpu_remove: bool,
}

impl VmData {
    /// The effective `extraConfig`: persistent keys overlaid with volatile guestinfo.
    pub fn effective_extra_config(&self) -> Vec<(String, String)> {
        let mut out = self.extra_config.clone();
        for (k, v) in &self.volatile_guestinfo {
            match out.iter_mut().find(|(ek, _)| ek == k) {
                Some(slot) => slot.1 = v.clone(),
                None => out.push((k.clone(), v.clone())),
            }
        }
        out.retain(|(_, v)| !v.is_empty());
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatastoreData {
    /// Directory on this machine that backs the datastore.
    pub dir: String,
    pub capacity: i64,
    pub hosts: Vec<MoRef>,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkData {
    pub hosts: Vec<MoRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DvSwitchData {
    pub uuid: String,
    pub portgroups: Vec<MoRef>,
    pub hosts: Vec<MoRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DvPortgroupData {
    pub dvs: MoRef,
    pub key: String,
    pub num_ports: i64,
    pub binding: String,
    pub vlan_id: i64,
}

/// vSphere type inheritance for the managed object types the simulator serves; used by
/// PropertySpec/TraversalSpec type matching ("ManagedEntity" matches every entity).
pub fn is_a(ty: &str, base: &str) -> bool {
    if ty == base {
        return true;
    }
    let parent = match ty {
        "ClusterComputeResource" => "ComputeResource",
        "VirtualApp" => "ResourcePool",
        "DistributedVirtualPortgroup" => "Network",
        "VmwareDistributedVirtualSwitch" => "DistributedVirtualSwitch",
        "ContainerView" | "ListView" | "InventoryView" => "ManagedObjectView",
        "ManagedObjectView" => "View",
        "Folder"
        | "Datacenter"
        | "ComputeResource"
        | "HostSystem"
        | "ResourcePool"
        | "VirtualMachine"
        | "Datastore"
        | "Network"
        | "DistributedVirtualSwitch" => "ManagedEntity",
        "ManagedEntity" | "Task" => "ExtensibleManagedObject",
        "ExtensibleManagedObject" | "View" => "ManagedObject",
        _ => return base == "ManagedObject",
    };
    is_a(parent, base)
}

/// The inventory plus bookkeeping for persistence.
#[derive(Default)]
pub struct Inventory {
    pub entities: HashMap<String, Entity>,
    pub next_id: u64,
    /// Entity ids changed since the last journal flush.
    pub dirty: HashSet<String>,
    pub root_folder: MoRef,
}

impl Inventory {
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    pub fn get(&self, m: &MoRef) -> Option<&Entity> {
        self.entities.get(&m.value).filter(|e| e.moref.ty == m.ty)
    }

    /// Mutable access that records the entity for the journal.
    pub fn get_mut(&mut self, m: &MoRef) -> Option<&mut Entity> {
        let e = self
            .entities
            .get_mut(&m.value)
            .filter(|e| e.moref.ty == m.ty)?;
        self.dirty.insert(m.value.clone());
        Some(e)
    }

    pub fn insert(&mut self, e: Entity) {
        self.dirty.insert(e.moref.value.clone());
        self.entities.insert(e.moref.value.clone(), e);
    }

    pub fn remove(&mut self, m: &MoRef) -> Option<Entity> {
        self.dirty.insert(m.value.clone());
        self.entities.remove(&m.value)
    }

    pub fn vm(&self, m: &MoRef) -> Option<&VmData> {
        match &self.get(m)?.kind {
            Kind::Vm(v) => Some(v),
            _ => None,
        }
    }

    pub fn vm_mut(&mut self, m: &MoRef) -> Option<&mut VmData> {
        match &mut self.get_mut(m)?.kind {
            Kind::Vm(v) => Some(v),
            _ => None,
        }
    }

    /// Inventory children, as a recursive ContainerView and FindChild see them.
    pub fn children(&self, e: &Entity) -> Vec<MoRef> {
        match &e.kind {
            Kind::Folder(f) => f.children.clone(),
            Kind::Datacenter(d) => vec![
                d.vm_folder.clone(),
                d.host_folder.clone(),
                d.datastore_folder.clone(),
                d.network_folder.clone(),
            ],
            Kind::Cluster(c) => {
                let mut v = c.hosts.clone();
                v.push(c.root_pool.clone());
                v
            }
            Kind::Pool(p) => {
                let mut v = p.children.clone();
                v.extend(p.vms.iter().cloned());
                v
            }
            Kind::DvSwitch(_) => Vec::new(),
            _ => Vec::new(),
        }
    }

    /// The datacenter an entity lives in.
    pub fn datacenter_of(&self, m: &MoRef) -> Option<MoRef> {
        let mut cur = self.get(m)?;
        loop {
            if let Kind::Datacenter(_) = cur.kind {
                return Some(cur.moref.clone());
            }
            let p = cur.parent.as_ref()?;
            // VMs hang off a folder, pools off a cluster: both chains reach a datacenter.
            cur = self.get(p)?;
        }
    }

    pub fn all_of_kind<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a Entity> + 'a {
        self.entities.values().filter(move |e| e.moref.ty == ty)
    }

    pub fn datastore_by_name(&self, name: &str) -> Option<&Entity> {
        self.all_of_kind("Datastore").find(|e| e.name == name)
    }

    /// VMs whose devices or placement reference `target` (a datastore or network).
    pub fn vms_using(&self, target: &MoRef) -> Vec<MoRef> {
        let mut out: Vec<MoRef> = self
            .all_of_kind("VirtualMachine")
            .filter(|e| match &e.kind {
                Kind::Vm(v) => {
                    v.datastore == *target || v.host == *target || vm_networks(v).contains(target)
                }
                _ => false,
            })
            .map(|e| e.moref.clone())
            .collect();
        out.sort();
        out
    }
}

/// Networks a VM's NICs are attached to (standard or distributed port groups).
pub fn vm_networks(v: &VmData) -> Vec<MoRef> {
    let mut out = Vec::new();
    for d in &v.devices {
        let Some(backing) = d.get("backing").and_then(Value::as_obj) else {
            continue;
        };
        if let Some(m) = backing.get("network").and_then(Value::as_moref) {
            out.push(m.clone());
        }
        if let Some(port) = backing.get("port").and_then(Value::as_obj) {
            if let Some(key) = port.text("portgroupKey") {
                out.push(MoRef::new("DistributedVirtualPortgroup", key.trim()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
