//! VirtualMachine: create, reconfigure (devices, extraConfig), power operations, clone,
//! instant clone, snapshots, destroy.

use super::entity::{check_name, remove_from_parent, sibling_named};
use super::files::{create_delta_vmdk, create_flat_vmdk, parse_ds_path, resolve_ds_path};
use super::hot_plug;
use super::{arg_elem, arg_moref, arg_text, opt_moref, Ctx};
use crate::model::*;
use crate::props::{self, is_nic, BASE_DEVICE_KEYS};
use crate::runtime::{GuestEvents, VmRuntimeSpec};
use crate::sim::Sim;
use crate::soap::{Fault, Reply};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use vsphere_client::value::{DataObject, MoRef, Value};
use vsphere_client::xml::Element;

/// The MACs of a VM's NICs, in device order.
fn nic_macs(devices: &[DataObject]) -> Vec<String> {
    devices
        .iter()
        .filter(|d| crate::props::is_nic(&d.ty))
        .map(|d| d.text("macAddress").unwrap_or_default().to_lowercase())
        .collect()
}

fn device_fault(msg: impl Into<String>, index: usize) -> Fault {
    Fault::new("InvalidDeviceSpec", msg)
        .with("property", Value::string("virtualDeviceSpec.device"))
        .with("deviceIndex", Value::int(index as i64))
}

fn is_controller(ty: &str) -> bool {
    ty.ends_with("Controller")
}

fn first_key_for(ty: &str) -> i64 {
    match ty {
        "VirtualDisk" => 2000,
        t if is_nic(t) => 4000,
        "VirtualSerialPort" => 9000,
        t if t.contains("SCSIController") || t == "ParaVirtualSCSIController" => 1000,
        "VirtualAHCIController" => 15000,
        "VirtualCdrom" => 3000,
        _ => 13000,
    }
}

fn random_mac() -> String {
    let b = uuid::Uuid::new_v4();
    let b = b.as_bytes();
    // 00:50:56 is VMware's OUI; the next bit pattern marks vCenter-assigned addresses.
    format!("00:50:56:{:02x}:{:02x}:{:02x}", b[0] & 0x3f, b[1], b[2])
}

fn all_keys(v: &VmData) -> Vec<i64> {
    let mut keys: Vec<i64> = BASE_DEVICE_KEYS.to_vec();
    keys.extend(v.devices.iter().filter_map(|d| d.i64("key")));
    keys
}

fn disk_file(d: &DataObject) -> Option<String> {
    d.get("backing")
        .and_then(Value::as_obj)
        .and_then(|b| b.text("fileName"))
        .map(|s| s.trim().to_string())
}

fn disk_mode(d: &DataObject) -> String {
    d.get("backing")
        .and_then(Value::as_obj)
        .and_then(|b| b.text("diskMode"))
        .unwrap_or("persistent")
        .trim()
        .to_string()
}

/// VM directory (`[ds] dir`) from its `.vmx` path.
fn vm_dir(v: &VmData) -> String {
    v.vmx_path
        .rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .unwrap_or_else(|| v.vmx_path.clone())
}

/// Applies a `VirtualMachineConfigSpec` to a VM. `create` relaxes checks that only make
/// sense on an existing VM.
fn apply_config_spec(
    inv: &Inventory,
    name: &mut String,
    v: &mut VmData,
    spec: &Element,
) -> Result<Vec<PathBuf>, Fault> {
    let running = v.power_state == PowerState::PoweredOn;
    if let Some(n) = spec.child_text("name").filter(|n| !n.is_empty()) {
        *name = check_name(n)?;
    }
    if let Some(g) = spec.child_text("guestId") {
        v.guest_id = g.to_string();
    }
    hot_plug::apply(v, spec)?;
    if let Some(n) = spec.child_i64("numCPUs") {
        if !(1..=768).contains(&n) {
            return Err(Fault::invalid_argument("numCPUs"));
        }
        v.num_cpu = n;
    }
    if let Some(n) = spec.child_i64("numCoresPerSocket") {
        v.cores_per_socket = n.max(1);
    }
    if let Some(m) = spec.child_i64("memoryMB") {
        if m < 4 || m % 4 != 0 {
            return Err(Fault::invalid_argument("memoryMB"));
        }
        v.memory_mb = m;
    }
    if let Some(a) = spec.child("annotation") {
        v.annotation = a.text.clone();
    }
    if let Some(a) = spec.child("cpuAllocation") {
        if let Some(o) = Value::from_element(a).as_obj() {
            props::apply_alloc(&mut v.cpu_alloc, o);
        }
    }
    if let Some(a) = spec.child("memoryAllocation") {
        if let Some(o) = Value::from_element(a).as_obj() {
            props::apply_alloc(&mut v.mem_alloc, o);
        }
    }
    for opt in spec.children_named("extraConfig") {
        let key = opt
            .child_text("key")
            .ok_or_else(|| Fault::invalid_argument("extraConfig.key"))?;
        let value = opt
            .child("value")
            .map(|x| x.text.clone())
            .unwrap_or_default();
        set_extra_config(v, key, &value, running);
    }
    let mut created_files = Vec::new();
    apply_device_changes(inv, name, v, spec, &mut created_files)?;
    v.change_version += 1;
    Ok(created_files)
}

/// Sets one extraConfig key. guestinfo written while the VM runs is volatile on
/// vSphere (gone at power-off), so it lands in the volatile overlay.
pub fn set_extra_config(v: &mut VmData, key: &str, value: &str, running: bool) {
    if running && key.starts_with("guestinfo.") {
        match v.volatile_guestinfo.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => v
                .volatile_guestinfo
                .push((key.to_string(), value.to_string())),
        }
        return;
    }
    if value.is_empty() {
        v.extra_config.retain(|(k, _)| k != key);
        return;
    }
    match v.extra_config.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => v.extra_config.push((key.to_string(), value.to_string())),
    }
}

fn apply_device_changes(
    inv: &Inventory,
    vm_name: &str,
    v: &mut VmData,
    spec: &Element,
    created: &mut Vec<PathBuf>,
) -> Result<(), Fault> {
    let mut temp_keys: HashMap<i64, i64> = HashMap::new();
    let changes: Vec<&Element> = spec.children_named("deviceChange").collect();
    // First pass: assign keys to added devices so later entries can refer to them.
    let mut planned: Vec<(usize, String, Option<String>, DataObject)> = Vec::new();
    for (i, ch) in changes.iter().enumerate() {
        let op = ch.child_text("operation").unwrap_or("add").to_string();
        let file_op = ch.child_text("fileOperation").map(str::to_string);
        let dev_el = ch
            .child("device")
            .ok_or_else(|| device_fault("device is required", i))?;
        let Value::Obj(mut dev) = Value::from_element(dev_el) else {
            return Err(device_fault("device must be a VirtualDevice", i));
        };
        if dev.ty.is_empty() {
            return Err(device_fault("device needs an xsi:type", i));
        }
        if op == "add" {
            let key = dev.i64("key").unwrap_or(-1);
            let mut used = all_keys(v);
            used.extend(temp_keys.values());
            if key < 0 || used.contains(&key) {
                let mut k = first_key_for(&dev.ty);
                while used.contains(&k) {
                    k += 1;
                }
                temp_keys.insert(key, k);
                dev.set(
                    "key",
                    Value::Prim {
                        ty: String::new(),
                        text: k.to_string(),
                    },
                );
            }
        }
        planned.push((i, op, file_op, dev));
    }
    for (i, op, file_op, mut dev) in planned {
        if let Some(ck) = dev.i64("controllerKey") {
            if let Some(real) = temp_keys.get(&ck) {
                dev.set(
                    "controllerKey",
                    Value::Prim {
                        ty: String::new(),
                        text: real.to_string(),
                    },
                );
            }
        }
        let key = dev.i64("key").unwrap_or(0);
        match op.as_str() {
            "add" => {
                prepare_added_device(inv, vm_name, v, &mut dev, file_op.as_deref(), i, created)?;
                v.devices.push(dev);
            }
            "edit" => {
                if BASE_DEVICE_KEYS.contains(&key) {
                    return Err(Fault::not_supported(format!(
                        "device {key} is built-in hardware and cannot be edited"
                    )));
                }
                let Some(slot) = v.devices.iter_mut().find(|d| d.i64("key") == Some(key)) else {
                    return Err(device_fault(format!("no device with key {key}"), i));
                };
                if dev.ty != slot.ty {
                    return Err(device_fault(
                        format!("device {key} is a {}, not a {}", slot.ty, dev.ty),
                        i,
                    ));
                }
                // Fields the client left out keep their values.
                for (name, val) in dev.fields {
                    slot.set(&name, val);
                }
            }
            "remove" => {
                if BASE_DEVICE_KEYS.contains(&key) {
                    return Err(Fault::not_supported(format!(
                        "device {key} is built-in hardware and cannot be removed"
                    )));
                }
                let Some(pos) = v.devices.iter().position(|d| d.i64("key") == Some(key)) else {
                    return Err(device_fault(format!("no device with key {key}"), i));
                };
                if v.devices
                    .iter()
                    .any(|d| d.i64("controllerKey") == Some(key))
                {
                    return Err(device_fault(
                        format!("controller {key} still has devices attached"),
                        i,
                    ));
                }
                let removed = v.devices.remove(pos);
                if file_op.as_deref() == Some("destroy") {
                    if let Some(f) = disk_file(&removed) {
                        delete_disk_files(inv, &f);
                    }
                }
            }
            other => return Err(device_fault(format!("unknown operation '{other}'"), i)),
        }
    }
    Ok(())
}

fn delete_disk_files(inv: &Inventory, file: &str) {
    if let Ok(p) = parse_ds_path(file) {
        if let Ok(local) = resolve_ds_path(inv, &p) {
            if let Ok(text) = std::fs::read_to_string(&local) {
                for line in text
                    .lines()
                    .filter(|l| l.starts_with("RW ") || l.starts_with("RDONLY "))
                {
                    if let Some(extent) = line.split('"').nth(1).filter(|e| !e.contains('/')) {
                        let _ = std::fs::remove_file(local.with_file_name(extent));
                    }
                }
            }
            let _ = std::fs::remove_file(local);
        }
    }
}

fn prepare_added_device(
    inv: &Inventory,
    vm_name: &str,
    v: &mut VmData,
    dev: &mut DataObject,
    file_op: Option<&str>,
    index: usize,
    created: &mut Vec<PathBuf>,
) -> Result<(), Fault> {
    // Controllers must exist; unit numbers are filled in like vCenter does.
    if let Some(ck) = dev.i64("controllerKey") {
        let exists = all_keys(v).contains(&ck);
        if !exists {
            return Err(device_fault(
                format!("controller {ck} does not exist"),
                index,
            ));
        }
        if dev.i64("unitNumber").is_none() {
            let mut used: Vec<i64> = v
                .devices
                .iter()
                .filter(|d| d.i64("controllerKey") == Some(ck))
                .filter_map(|d| d.i64("unitNumber"))
                .collect();
            let scsi = v
                .devices
                .iter()
                .find(|d| d.i64("key") == Some(ck))
                .map(|d| d.ty.contains("SCSI"))
                .unwrap_or(false);
            if scsi {
                used.push(7); // the SCSI controller itself
            }
            let unit = (0..).find(|u| !used.contains(u)).unwrap_or(0);
            dev.set(
                "unitNumber",
                Value::Prim {
                    ty: String::new(),
                    text: unit.to_string(),
                },
            );
        }
    } else if is_controller(&dev.ty) && dev.i64("busNumber").is_none() {
        let bus = v.devices.iter().filter(|d| d.ty == dev.ty).count();
        dev.set(
            "busNumber",
            Value::Prim {
                ty: String::new(),
                text: bus.to_string(),
            },
        );
    }
    if dev.ty == "VirtualDisk" {
        let backing = dev
            .get_mut("backing")
            .and_then(|b| match b {
                Value::Obj(o) => Some(o),
                _ => None,
            })
            .ok_or_else(|| device_fault("disk needs a backing", index))?;
        let mut file = backing.text("fileName").unwrap_or("").trim().to_string();
        if file_op == Some("create") {
            let capacity_kb = dev_capacity_kb(dev);
            let backing = match dev.get_mut("backing") {
                Some(Value::Obj(o)) => o,
                _ => unreachable!("checked above"),
            };
            if file.is_empty() || file.ends_with(']') {
                let dir = vm_dir(v);
                let mut n = 0;
                file = loop {
                    let candidate = if n == 0 {
                        format!("{dir}/{vm_name}.vmdk")
                    } else {
                        format!("{dir}/{vm_name}_{n}.vmdk")
                    };
                    let p = parse_ds_path(&candidate)?;
                    if !resolve_ds_path(inv, &p)?.exists() {
                        break candidate;
                    }
                    n += 1;
                };
                backing.set(
                    "fileName",
                    Value::Prim {
                        ty: String::new(),
                        text: file.clone(),
                    },
                );
            }
            let p = parse_ds_path(&file)?;
            let local = resolve_ds_path(inv, &p)?;
            if let Some(parent) = local.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Fault::new("CannotCreateFile", e.to_string()).with("file", Value::string(&file))
                })?;
            }
            create_flat_vmdk(&local, capacity_kb, "lsilogic", &file)?;
            created.push(local);
        } else {
            let p = parse_ds_path(&file)?;
            if !resolve_ds_path(inv, &p)?.exists() {
                return Err(Fault::file_not_found(&file));
            }
        }
        if dev.get("capacityInKB").is_none() {
            dev.set(
                "capacityInKB",
                Value::Prim {
                    ty: String::new(),
                    text: "0".into(),
                },
            );
        }
    }
    if is_nic(&dev.ty) {
        let backing = dev.get("backing").and_then(Value::as_obj);
        if let Some(b) = backing {
            if let Some(net) = b.get("network").and_then(Value::as_moref) {
                if inv.get(net).is_none() {
                    return Err(device_fault(
                        format!("network {} does not exist", net.value),
                        index,
                    ));
                }
            }
            if let Some(port) = b.get("port").and_then(Value::as_obj) {
                let key = port.text("portgroupKey").unwrap_or("").trim();
                if inv
                    .get(&MoRef::new("DistributedVirtualPortgroup", key))
                    .is_none()
                {
                    return Err(device_fault(
                        format!("distributed port group '{key}' does not exist"),
                        index,
                    ));
                }
            }
        }
        if dev
            .text("macAddress")
            .map(|m| m.trim().is_empty())
            .unwrap_or(true)
        {
            dev.set(
                "macAddress",
                Value::Prim {
                    ty: String::new(),
                    text: random_mac(),
                },
            );
            dev.set(
                "addressType",
                Value::Prim {
                    ty: String::new(),
                    text: "assigned".into(),
                },
            );
        }
    }
    if dev.ty == "VirtualDisk" {
        set_disk_datastore(inv, dev);
        // Both capacity fields, as vSphere reports them.
        let kb = dev_capacity_kb(dev);
        dev.set(
            "capacityInKB",
            Value::Prim {
                ty: String::new(),
                text: kb.to_string(),
            },
        );
        if dev.get("capacityInBytes").is_none() {
            dev.set(
                "capacityInBytes",
                Value::Prim {
                    ty: String::new(),
                    text: (kb * 1024).to_string(),
                },
            );
        }
    }
    if dev.get("deviceInfo").is_none() {
        let (label, summary) = device_label(v, dev);
        dev.set("deviceInfo", props::description(&label, &summary));
    }

    Ok(())
}

/// vSphere's device labels ("Hard disk 1", "Network adapter 2", "SCSI controller 0"),
/// which admin scripts look devices up by.
fn device_label(v: &VmData, dev: &DataObject) -> (String, String) {
    let nth = |pred: &dyn Fn(&str) -> bool| v.devices.iter().filter(|d| pred(&d.ty)).count() + 1;
    let backing = dev.get("backing").and_then(Value::as_obj);
    match dev.ty.as_str() {
        "VirtualDisk" => (
            format!("Hard disk {}", nth(&|t| t == "VirtualDisk")),
            format!("{} KB", dev_capacity_kb(dev)),
        ),
        t if is_nic(t) => (
            format!("Network adapter {}", nth(&|t| is_nic(t))),
            backing
                .and_then(|b| b.text("deviceName"))
                .unwrap_or("DVSwitch")
                .to_string(),
        ),
        "VirtualSerialPort" => (
            format!("Serial port {}", nth(&|t| t == "VirtualSerialPort")),
            backing
                .and_then(|b| b.text("serviceURI").or_else(|| b.text("fileName")))
                .unwrap_or_default()
                .to_string(),
        ),
        "VirtualCdrom" => (
            format!("CD/DVD drive {}", nth(&|t| t == "VirtualCdrom")),
            "Remote device".into(),
        ),
        t if t.contains("SCSIController") || t == "ParaVirtualSCSIController" => {
            let bus = dev.i64("busNumber").unwrap_or(0);
            let label = format!("SCSI controller {bus}");
            (
                label.clone(),
                if t == "ParaVirtualSCSIController" {
                    "VMware paravirtual SCSI".into()
                } else {
                    label
                },
            )
        }
        t => {
            let label = format!("{} {}", t.trim_start_matches("Virtual"), nth(&|x| x == t));
            (label.clone(), label)
        }
    }
}

/// Points a disk's backing at the datastore its file lives on.
fn set_disk_datastore(inv: &Inventory, dev: &mut DataObject) {
    let Some(Value::Obj(backing)) = dev.get_mut("backing") else {
        return;
    };
    let ds = backing
        .text("fileName")
        .and_then(|f| parse_ds_path(f).ok())
        .and_then(|p| inv.datastore_by_name(&p.datastore))
        .map(|e| e.moref.clone());
    match ds {
        Some(m) => backing.set("datastore", Value::MoRef(m)),
        None => backing.remove("datastore"),
    }
}

fn dev_capacity_kb(dev: &DataObject) -> i64 {
    dev.i64("capacityInKB")
        .or_else(|| dev.i64("capacityInBytes").map(|b| b / 1024))
        .unwrap_or(0)
}

/// Resolves what the runtime needs to run a VM.
pub fn runtime_spec(inv: &Inventory, e: &Entity, v: &VmData) -> VmRuntimeSpec {
    let datastores = inv
        .all_of_kind("Datastore")
        .filter_map(|d| match &d.kind {
            Kind::Datastore(dd) => Some((d.name.clone(), PathBuf::from(&dd.dir))),
            _ => None,
        })
        .collect();
    VmRuntimeSpec {
        vm: e.moref.clone(),
        name: e.name.clone(),
        num_cpu: v.num_cpu,
        memory_mb: v.memory_mb,
        extra_config: v.effective_extra_config(),
        devices: v.devices.clone(),
        datastores,
    }
}

fn write_vmx(inv: &Inventory, name: &str, v: &VmData) {
    let Ok(p) = parse_ds_path(&v.vmx_path) else {
        return;
    };
    let Ok(local) = resolve_ds_path(inv, &p) else {
        return;
    };
    let mut text = format!(
        ".encoding = \"UTF-8\"\nconfig.version = \"8\"\nvirtualHW.version = \"{}\"\ndisplayName = \"{}\"\nguestOS = \"{}\"\nnumvcpus = \"{}\"\nmemSize = \"{}\"\nuuid.bios = \"{}\"\nvc.uuid = \"{}\"\n",
        v.hw_version.trim_start_matches("vmx-"),
        name.replace('"', "|22"),
        v.guest_id,
        v.num_cpu,
        v.memory_mb,
        v.uuid,
        v.instance_uuid
    );
    for (k, val) in &v.extra_config {
        text.push_str(&format!("{k} = \"{}\"\n", val.replace('"', "|22")));
    }
    let _ = std::fs::write(local, text);
}

/// Picks a host of the pool's cluster, spreading VMs round-robin.
fn pick_host(inv: &Inventory, pool: &MoRef, requested: Option<MoRef>) -> Result<MoRef, Fault> {
    let owner = match inv.get(pool).map(|e| &e.kind) {
        Some(Kind::Pool(p)) => p.owner.clone(),
        _ => return Err(Fault::not_found(pool)),
    };
    let hosts = match inv.get(&owner).map(|e| &e.kind) {
        Some(Kind::Cluster(c)) => c.hosts.clone(),
        _ => Vec::new(),
    };
    if let Some(h) = requested {
        if !hosts.contains(&h) {
            return Err(Fault::invalid_argument("host"));
        }
        return Ok(h);
    }
    hosts
        .get((inv.next_id as usize) % hosts.len().max(1))
        .cloned()
        .ok_or_else(|| Fault::invalid_state("the resource pool's cluster has no hosts"))
}

/// Adds a new VM to the inventory: its .vmx on the datastore, its entity, and its place
/// in the folder and the resource pool. Returns its reference.
fn register_vm(
    inv: &mut Inventory,
    name: String,
    v: VmData,
    folder: &MoRef,
    pool: &MoRef,
) -> MoRef {
    write_vmx(inv, &name, &v);
    let vm = MoRef::new("VirtualMachine", inv.new_id("vm"));
    inv.insert(Entity {
        moref: vm.clone(),
        name,
        parent: Some(folder.clone()),
        kind: Kind::Vm(Box::new(v)),
    });
    if let Some(Entity {
        kind: Kind::Folder(f),
        ..
    }) = inv.get_mut(folder)
    {
        f.children.push(vm.clone());
    }
    if let Some(Entity {
        kind: Kind::Pool(p),
        ..
    }) = inv.get_mut(pool)
    {
        p.vms.push(vm.clone());
    }
    vm
}

fn check_vm_folder(inv: &Inventory, folder: &MoRef) -> Result<(), Fault> {
    match inv.get(folder).map(|e| &e.kind) {
        Some(Kind::Folder(f)) if f.child_type.iter().any(|t| t == "VirtualMachine") => Ok(()),
        Some(_) => Err(Fault::not_supported(format!(
            "folder {} cannot hold virtual machines",
            folder.value
        ))),
        None => Err(Fault::not_found(folder)),
    }
}

/// A directory name for a new VM that does not exist yet on the datastore.
fn unique_vm_dir(inv: &Inventory, ds: &str, name: &str) -> Result<String, Fault> {
    let clean: String = name
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    let mut n = 0;
    loop {
        let dir = if n == 0 {
            clean.clone()
        } else {
            format!("{clean}_{n}")
        };
        let p = parse_ds_path(&format!("[{ds}] {dir}"))?;
        if !resolve_ds_path(inv, &p)?.exists() {
            return Ok(dir);
        }
        n += 1;
    }
}

/// What a clone takes from its source besides disks and devices.
fn inherit_hardware(v: &mut VmData, source: &VmData) {
    v.guest_id = source.guest_id.clone();
    v.num_cpu = source.num_cpu;
    v.cores_per_socket = source.cores_per_socket;
    v.memory_mb = source.memory_mb;
    v.hot_plug = source.hot_plug;
    v.annotation = source.annotation.clone();
}

fn new_vm_data(
    folder: MoRef,
    pool: MoRef,
    host: MoRef,
    datastore: MoRef,
    vmx_path: String,
) -> VmData {
    VmData {
        folder,
        pool,
        host,
        datastore,
        power_state: PowerState::PoweredOff,
        uuid: uuid::Uuid::new_v4().to_string(),
        instance_uuid: uuid::Uuid::new_v4().to_string(),
        guest_id: "otherGuest64".into(),
        num_cpu: 1,
        cores_per_socket: 1,
        memory_mb: 128,
        annotation: String::new(),
        hw_version: "vmx-19".into(),
        template: false,
        vmx_path,
        extra_config: Vec::new(),
        volatile_guestinfo: Vec::new(),
        devices: Vec::new(),
        snapshots: Vec::new(),
        current_snapshot: None,
        boot_time: None,
        create_date: props::now(),
        change_version: 0,
        instant_clone_parent: None,
        cpu_alloc: Allocation::default(),
        mem_alloc: Allocation {
            shares: 1280,
            ..Allocation::default()
        },
        hot_plug: HotPlug::default(),
    }
}

impl Sim {
    pub(crate) fn create_vm(
        self: &Arc<Self>,
        ctx: &Ctx,
        folder: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let config = arg_elem(a, "config")?.clone();
        let pool = arg_moref(a, "pool")?;
        let host = opt_moref(a, "host");
        let name = config
            .child_text("name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Fault::invalid_argument("config.name"))?
            .to_string();
        let name = check_name(&name)?;
        let vmx = config
            .child("files")
            .and_then(|f| f.child_text("vmPathName"))
            .ok_or_else(|| Fault::invalid_argument("config.files.vmPathName"))?
            .to_string();
        let ds_path = parse_ds_path(&vmx)?;
        self.read_inv(|inv| {
            check_vm_folder(inv, folder)?;
            resolve_ds_path(inv, &ds_path).map(|_| ())
        })?;
        let folder = folder.clone();
        self.run_task(
            ctx,
            "CreateVM_Task",
            Some(&folder.clone()),
            move |sim| async move {
                sim.write(|st| {
                    let inv = &mut st.inv;
                    check_vm_folder(inv, &folder)?;
                    if let Some(existing) = sibling_named(inv, &folder, &name, None) {
                        return Err(Fault::duplicate_name(&name, &existing));
                    }
                    let host = pick_host(inv, &pool, host)?;
                    let ds = inv
                        .datastore_by_name(&ds_path.datastore)
                        .map(|e| e.moref.clone())
                        .ok_or_else(|| Fault::invalid_argument("config.files.vmPathName"))?;
                    // "[ds]" alone means: make a directory named after the VM.
                    let vmx_path = if ds_path.path.is_empty() {
                        let dir = unique_vm_dir(inv, &ds_path.datastore, &name)?;
                        format!("[{}] {dir}/{name}.vmx", ds_path.datastore)
                    } else {
                        vmx.clone()
                    };
                    let vmx_local = resolve_ds_path(inv, &parse_ds_path(&vmx_path)?)?;
                    if vmx_local.exists() {
                        return Err(Fault::file_already_exists(&vmx_path));
                    }
                    let mut v =
                        new_vm_data(folder.clone(), pool.clone(), host, ds, vmx_path.clone());
                    let created_dir = vmx_local
                        .parent()
                        .filter(|d| !d.exists())
                        .map(|d| d.to_path_buf());
                    if let Some(dir) = vmx_local.parent() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            Fault::new("CannotCreateFile", e.to_string())
                                .with("file", Value::string(&vmx_path))
                        })?;
                    }
                    let mut vm_name = name.clone();
                    if let Err(f) = apply_config_spec(inv, &mut vm_name, &mut v, &config) {
                        // Nothing half-made stays behind, and nothing that was there before goes.
                        if let Some(dir) = &created_dir {
                            let _ = std::fs::remove_dir_all(dir);
                        }
                        return Err(f);
                    }
                    v.change_version = 1;
                    let moref = register_vm(inv, vm_name, v, &folder, &pool);
                    Ok(Some(Value::MoRef(moref)))
                })
            },
        )
    }

    pub(crate) fn reconfigure_vm(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let spec = arg_elem(a, "spec")?.clone();
        if self.read_inv(|inv| inv.vm(this).is_none()) {
            return Err(Fault::not_found(this));
        }
        let this = this.clone();
        self.run_task(
            ctx,
            "ReconfigVM_Task",
            Some(&this.clone()),
            move |sim| async move {
                let resize = sim.write(|st| {
                    let inv = &mut st.inv;
                    let e = inv
                        .get(&this)
                        .cloned()
                        .ok_or_else(|| Fault::not_found(&this))?;
                    let Kind::Vm(mut v) = e.kind else {
                        return Err(Fault::not_found(&this));
                    };
                    let mut name = e.name.clone();
                    if let Some(wanted) = spec.child_text("name").filter(|n| !n.is_empty()) {
                        let wanted = check_name(wanted)?;
                        if let Some(existing) = sibling_named(inv, &v.folder, &wanted, Some(&this))
                        {
                            return Err(Fault::duplicate_name(&wanted, &existing));
                        }
                    }
                    let before = (v.memory_mb, v.num_cpu);
                    let nics_before = nic_macs(&v.devices);
                    apply_config_spec(inv, &mut name, &mut v, &spec)?;
                    let on = v.power_state == PowerState::PoweredOn;
                    // A running VM's new size reaches the host (hot add/remove).
                    let resize = (on && before != (v.memory_mb, v.num_cpu))
                        .then_some((v.memory_mb, v.num_cpu));
                    // NICs hot-added or removed reach the running VM too.
                    let nics =
                        (on && nic_macs(&v.devices) != nics_before).then(|| v.devices.clone());
                    // Admins read the .vmx: keep it in step with the inventory.
                    write_vmx(inv, &name, &v);
                    let ent = inv.get_mut(&this).ok_or_else(|| Fault::not_found(&this))?;
                    ent.name = name;
                    ent.kind = Kind::Vm(v);
                    Ok((resize, nics))
                })?;
                let (resize, nics) = resize;
                if let Some((memory_mb, cpus)) = resize {
                    sim.runtime.resize(this.clone(), memory_mb, cpus).await?;
                }
                if let Some(devices) = nics {
                    sim.runtime.set_nics(this.clone(), devices).await?;
                }
                Ok(None)
            },
        )
    }

    fn vm_state(&self, this: &MoRef) -> Result<PowerState, Fault> {
        self.read_inv(|inv| {
            inv.vm(this)
                .map(|v| v.power_state)
                .ok_or_else(|| Fault::not_found(this))
        })
    }

    pub(crate) fn power_on(self: &Arc<Self>, ctx: &Ctx, this: &MoRef) -> Result<Reply, Fault> {
        self.vm_state(this)?;
        let this = this.clone();
        self.run_task(
            ctx,
            "PowerOnVM_Task",
            Some(&this.clone()),
            move |sim| async move {
                let (spec, before) = sim.write(|st| {
                    let inv = &mut st.inv;
                    let e = inv
                        .get(&this)
                        .cloned()
                        .ok_or_else(|| Fault::not_found(&this))?;
                    let Kind::Vm(v) = &e.kind else {
                        return Err(Fault::not_found(&this));
                    };
                    if v.template {
                        return Err(Fault::not_supported("a template cannot be powered on"));
                    }
                    if v.power_state == PowerState::PoweredOn {
                        return Err(Fault::invalid_power_state("poweredOn", Some("poweredOn")));
                    }
                    let spec = runtime_spec(inv, &e, v);
                    let before = v.power_state;
                    let vm = inv.vm_mut(&this).expect("checked above");
                    vm.power_state = PowerState::PoweredOn;
                    vm.boot_time = Some(props::now());
                    Ok((spec, before))
                })?;
                if let Err(f) = sim.runtime.power_on(spec).await {
                    sim.write(|st| {
                        if let Some(v) = st.inv.vm_mut(&this) {
                            v.power_state = before;
                            v.boot_time = None;
                        }
                    });
                    return Err(f);
                }
                Ok(None)
            },
        )
    }

    /// Marks a VM off and drops its volatile guestinfo; shared by PowerOff, ShutdownGuest
    /// and the guest powering itself off.
    pub fn mark_powered_off(&self, vm: &MoRef) -> bool {
        self.write(|st| match st.inv.vm_mut(vm) {
            Some(v) if v.power_state != PowerState::PoweredOff => {
                v.power_state = PowerState::PoweredOff;
                v.boot_time = None;
                v.volatile_guestinfo.clear();
                true
            }
            _ => false,
        })
    }

    pub(crate) fn power_off(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
        method: &str,
    ) -> Result<Reply, Fault> {
        self.vm_state(this)?;
        let this = this.clone();
        self.run_task(ctx, method, Some(&this.clone()), move |sim| async move {
            let state = sim.vm_state(&this)?;
            if state == PowerState::PoweredOff {
                return Err(Fault::invalid_power_state("poweredOff", Some("poweredOff")));
            }
            sim.runtime.power_off(this.clone()).await?;
            sim.mark_powered_off(&this);
            Ok(None)
        })
    }

    pub(crate) fn shutdown_guest(self: &Arc<Self>, this: &MoRef) -> Result<Reply, Fault> {
        let state = self.vm_state(this)?;
        if state != PowerState::PoweredOn {
            return Err(Fault::invalid_power_state(state.wire(), None));
        }
        let sim = self.clone();
        let vm = this.clone();
        // The guest shuts down on its own time; the call returns at once, as on vSphere.
        tokio::spawn(async move {
            if sim.runtime.power_off(vm.clone()).await.is_ok() {
                sim.mark_powered_off(&vm);
            }
        });
        Ok(Reply::Void)
    }

    /// `RelocateVM_Task(spec)`: moves a VM to another host, resource pool or folder of
    /// its datacenter (govc `vm.migrate`). A running VM keeps running: its processes are
    /// untouched, as a vMotion keeps the guest running. Storage vMotion (another
    /// datastore) and device changes are refused by name rather than ignored.
    pub(crate) fn relocate_vm(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        self.vm_state(this)?;
        let spec = arg_elem(a, "spec")?;
        let host = opt_moref(spec, "host");
        let pool = opt_moref(spec, "pool");
        let folder = opt_moref(spec, "folder");
        let datastore = opt_moref(spec, "datastore");
        let moves_disks = spec
            .children_named("disk")
            .filter_map(|d| opt_moref(d, "datastore"))
            .collect::<Vec<_>>();
        if spec.child("deviceChange").is_some() {
            return Err(Fault::not_supported(
                "RelocateVM_Task with deviceChange is not supported by vcenter-sim",
            ));
        }
        let this = this.clone();
        self.run_task(
            ctx,
            "RelocateVM_Task",
            Some(&this.clone()),
            move |sim| async move {
                sim.write(|st| {
                    let inv = &mut st.inv;
                    let v = inv.vm(&this).ok_or_else(|| Fault::not_found(&this))?.clone();
                    if let Some(ds) = datastore.iter().chain(&moves_disks).find(|d| **d != v.datastore) {
                        return Err(Fault::not_supported(format!(
                            "storage vMotion to datastore {} is not supported by vcenter-sim",
                            ds.value
                        )));
                    }
                    let host_cluster = |h: &MoRef| match inv.get(h).map(|e| &e.kind) {
                        Some(Kind::Host(hd)) => Ok(hd.cluster.clone()),
                        _ => Err(Fault::invalid_argument("spec.host")),
                    };
                    let pool_owner = |p: &MoRef| match inv.get(p).map(|e| &e.kind) {
                        Some(Kind::Pool(pd)) => Ok(pd.owner.clone()),
                        _ => Err(Fault::invalid_argument("spec.pool")),
                    };
                    let new_pool = pool.clone().unwrap_or_else(|| v.pool.clone());
                    let new_host = host.clone().unwrap_or_else(|| v.host.clone());
                    // The host must belong to the compute resource that owns the pool.
                    if !v.template && host_cluster(&new_host)? != pool_owner(&new_pool)? {
                        return Err(Fault::invalid_argument("spec.host"));
                    }
                    if let Some(f) = &folder {
                        let holds_vms = matches!(inv.get(f).map(|e| &e.kind),
                            Some(Kind::Folder(fd)) if fd.child_type.iter().any(|t| t == "VirtualMachine"));
                        if !holds_vms {
                            return Err(Fault::invalid_argument("spec.folder"));
                        }
                    }
                    if new_pool != v.pool && !v.template {
                        if let Some(Kind::Pool(p)) = inv.get_mut(&v.pool).map(|e| &mut e.kind) {
                            p.vms.retain(|m| m != &this);
                        }
                        if let Some(Kind::Pool(p)) = inv.get_mut(&new_pool).map(|e| &mut e.kind) {
                            p.vms.push(this.clone());
                        }
                    }
                    if let Some(f) = &folder {
                        if *f != v.folder {
                            remove_from_parent(inv, &this);
                            if let Some(Kind::Folder(fd)) = inv.get_mut(f).map(|e| &mut e.kind) {
                                fd.children.push(this.clone());
                            }
                            if let Some(e) = inv.get_mut(&this) {
                                e.parent = Some(f.clone());
                            }
                        }
                    }
                    let vm = inv.vm_mut(&this).ok_or_else(|| Fault::not_found(&this))?;
                    vm.host = new_host;
                    vm.pool = new_pool;
                    if let Some(f) = folder {
                        vm.folder = f;
                    }
                    vm.change_version += 1;
                    Ok(None)
                })
            },
        )
    }

    /// `VirtualMachineSnapshot.RemoveSnapshot_Task(removeChildren)`: the snapshot goes;
    /// its children go with it or move up to its parent; a removed current snapshot
    /// leaves its parent current (govc `snapshot.remove`).
    pub(crate) fn remove_snapshot(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let remove_children = a.child_bool("removeChildren").unwrap_or(false);
        let vm = snapshot_owner(this);
        let known = self.read_inv(|inv| {
            inv.vm(&vm)
                .is_some_and(|v| v.snapshots.iter().any(|s| &s.moref == this))
        });
        if !known {
            return Err(Fault::not_found(this));
        }
        let this = this.clone();
        self.run_task(
            ctx,
            "RemoveSnapshot_Task",
            Some(&vm.clone()),
            move |sim| async move {
                sim.write(|st| {
                    let v = st.inv.vm_mut(&vm).ok_or_else(|| Fault::not_found(&vm))?;
                    let parent = v
                        .snapshots
                        .iter()
                        .find(|s| s.moref == this)
                        .ok_or_else(|| Fault::not_found(&this))?
                        .parent
                        .clone();
                    let mut gone = vec![this.clone()];
                    if remove_children {
                        // Descendants, found level by level.
                        let mut i = 0;
                        while i < gone.len() {
                            let kids: Vec<MoRef> = v
                                .snapshots
                                .iter()
                                .filter(|s| s.parent.as_ref() == Some(&gone[i]))
                                .map(|s| s.moref.clone())
                                .collect();
                            gone.extend(kids);
                            i += 1;
                        }
                    } else {
                        for s in v
                            .snapshots
                            .iter_mut()
                            .filter(|s| s.parent.as_ref() == Some(&this))
                        {
                            s.parent = parent.clone();
                        }
                    }
                    v.snapshots.retain(|s| !gone.contains(&s.moref));
                    if v.current_snapshot
                        .as_ref()
                        .is_some_and(|c| gone.contains(c))
                    {
                        v.current_snapshot = parent;
                    }
                    v.change_version += 1;
                    Ok(None)
                })
            },
        )
    }

    /// `RemoveAllSnapshots_Task`: the VM keeps its current state and no snapshots.
    pub(crate) fn remove_all_snapshots(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
    ) -> Result<Reply, Fault> {
        self.vm_state(this)?;
        let this = this.clone();
        self.run_task(
            ctx,
            "RemoveAllSnapshots_Task",
            Some(&this.clone()),
            move |sim| async move {
                sim.write(|st| {
                    let v = st
                        .inv
                        .vm_mut(&this)
                        .ok_or_else(|| Fault::not_found(&this))?;
                    v.snapshots.clear();
                    v.current_snapshot = None;
                    v.change_version += 1;
                    Ok(None)
                })
            },
        )
    }

    /// `MarkAsTemplate`: a powered-off VM becomes a template: it leaves its resource pool
    /// and can no longer be powered on (vCenter's faults: `NotSupported` for a template,
    /// `InvalidPowerState` for a VM that is not off).
    pub(crate) fn mark_as_template(self: &Arc<Self>, this: &MoRef) -> Result<Reply, Fault> {
        self.write(|st| {
            let v = st.inv.vm_mut(this).ok_or_else(|| Fault::not_found(this))?;
            if v.template {
                return Err(Fault::not_supported(
                    "the virtual machine is already a template",
                ));
            }
            if v.power_state != PowerState::PoweredOff {
                return Err(Fault::invalid_power_state(
                    v.power_state.wire(),
                    Some("poweredOff"),
                ));
            }
            v.template = true;
            v.change_version += 1;
            let pool = v.pool.clone();
            if let Some(Kind::Pool(p)) = st.inv.get_mut(&pool).map(|e| &mut e.kind) {
                p.vms.retain(|m| m != this);
            }
            Ok(Reply::Void)
        })
    }

    /// `MarkAsVirtualMachine(pool, host)`: a template becomes a VM again, in `pool`.
    pub(crate) fn mark_as_virtual_machine(
        self: &Arc<Self>,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let pool = arg_moref(a, "pool")?;
        let host = opt_moref(a, "host");
        self.write(|st| {
            if !matches!(st.inv.get(&pool).map(|e| &e.kind), Some(Kind::Pool(_))) {
                return Err(Fault::invalid_argument("pool"));
            }
            if let Some(h) = &host {
                if !matches!(st.inv.get(h).map(|e| &e.kind), Some(Kind::Host(_))) {
                    return Err(Fault::invalid_argument("host"));
                }
            }
            let v = st.inv.vm_mut(this).ok_or_else(|| Fault::not_found(this))?;
            if !v.template {
                return Err(Fault::not_supported(
                    "the virtual machine is not a template",
                ));
            }
            v.template = false;
            v.pool = pool.clone();
            if let Some(h) = host {
                v.host = h;
            }
            v.change_version += 1;
            if let Some(Kind::Pool(p)) = st.inv.get_mut(&pool).map(|e| &mut e.kind) {
                if !p.vms.contains(this) {
                    p.vms.push(this.clone());
                }
            }
            Ok(Reply::Void)
        })
    }

    pub(crate) fn reset_vm(self: &Arc<Self>, ctx: &Ctx, this: &MoRef) -> Result<Reply, Fault> {
        self.vm_state(this)?;
        let this = this.clone();
        self.run_task(
            ctx,
            "ResetVM_Task",
            Some(&this.clone()),
            move |sim| async move {
                let spec = sim.write(|st| {
                    let e = st
                        .inv
                        .get(&this)
                        .cloned()
                        .ok_or_else(|| Fault::not_found(&this))?;
                    let Kind::Vm(v) = &e.kind else {
                        return Err(Fault::not_found(&this));
                    };
                    if v.power_state != PowerState::PoweredOn {
                        return Err(Fault::invalid_power_state(
                            v.power_state.wire(),
                            Some("poweredOn"),
                        ));
                    }
                    let spec = runtime_spec(&st.inv, &e, v);
                    if let Some(v) = st.inv.vm_mut(&this) {
                        v.boot_time = Some(props::now());
                    }
                    Ok(spec)
                })?;
                sim.runtime.reset(spec).await?;
                Ok(None)
            },
        )
    }

    pub(crate) fn suspend_vm(self: &Arc<Self>, ctx: &Ctx, this: &MoRef) -> Result<Reply, Fault> {
        self.vm_state(this)?;
        let this = this.clone();
        self.run_task(
            ctx,
            "SuspendVM_Task",
            Some(&this.clone()),
            move |sim| async move {
                let state = sim.vm_state(&this)?;
                if state != PowerState::PoweredOn {
                    return Err(Fault::invalid_power_state(state.wire(), Some("suspended")));
                }
                sim.runtime.suspend(this.clone()).await?;
                sim.write(|st| {
                    if let Some(v) = st.inv.vm_mut(&this) {
                        v.power_state = PowerState::Suspended;
                    }
                });
                Ok(None)
            },
        )
    }

    /// Destroys a powered-off VM: its directory on the datastore goes, and so do the
    /// persistent disks only it uses. Read-only/non-persistent disks (shared image
    /// layers) and disks another VM still references are kept.
    pub(crate) async fn destroy_vm_now(self: &Arc<Self>, this: &MoRef) -> Result<(), Fault> {
        self.write(|st| {
            let inv = &mut st.inv;
            let v = inv.vm(this).cloned().ok_or_else(|| Fault::not_found(this))?;
            if v.power_state != PowerState::PoweredOff {
                return Err(Fault::invalid_power_state(v.power_state.wire(), Some("poweredOff")));
            }
            let dir = vm_dir(&v);
            let in_dir = |f: &str| f.starts_with(&format!("{dir}/"));
            for d in v.devices.iter().filter(|d| d.ty == "VirtualDisk") {
                let Some(file) = disk_file(d) else { continue };
                let mode = disk_mode(d);
                let shared = inv.all_of_kind("VirtualMachine").any(|e| {
                    e.moref != *this
                        && matches!(&e.kind, Kind::Vm(o) if o.devices.iter().any(|od| disk_file(od).as_deref() == Some(file.as_str())))
                });
                let owned = mode == "persistent" || mode == "independent_persistent" || in_dir(&file);
                if !shared && owned {
                    delete_disk_files(inv, &file);
                }
            }
            // Only this VM's own files: another VM may share the directory.
            let mut own_files = vec![v.vmx_path.clone()];
            own_files.extend(
                v.devices
                    .iter()
                    .filter(|d| d.ty == "VirtualSerialPort")
                    .filter_map(|d| d.get("backing").and_then(Value::as_obj)?.text("fileName").map(str::to_string))
                    .filter(|f| in_dir(f)),
            );
            for f in own_files {
                if let Ok(local) = parse_ds_path(&f).and_then(|p| resolve_ds_path(inv, &p)) {
                    let _ = std::fs::remove_file(local);
                }
            }
            if let Ok(p) = parse_ds_path(&dir) {
                if let Ok(local) = resolve_ds_path(inv, &p) {
                    // The directory goes only once empty, and never a datastore root.
                    if !p.path.is_empty() {
                        let _ = std::fs::remove_dir(local);
                    }
                }
            }
            remove_from_parent(inv, this);
            if let Some(Entity { kind: Kind::Pool(p), .. }) = inv.get_mut(&v.pool) {
                p.vms.retain(|m| m != this);
            }
            inv.remove(this);
            Ok(())
        })
    }

    pub(crate) fn clone_vm(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let folder = arg_moref(a, "folder")?;
        let name = check_name(arg_text(a, "name")?)?;
        let spec = arg_elem(a, "spec")?.clone();
        if self.read_inv(|inv| inv.vm(this).is_none()) {
            return Err(Fault::not_found(this));
        }
        let src = this.clone();
        self.run_task(
            ctx,
            "CloneVM_Task",
            Some(&src.clone()),
            move |sim| async move {
                let loc = spec.child("location");
                let snapshot = spec.child("snapshot").and_then(MoRef::from_element);
                let disk_move = loc
                    .and_then(|l| l.child_text("diskMoveType"))
                    .unwrap_or("moveAllDiskBackingsAndDisallowSharing");
                let linked = disk_move == "createNewChildDiskBacking";
                if linked && snapshot.is_none() {
                    return Err(Fault::invalid_argument("spec.snapshot"));
                }
                let power_on = spec.child_bool("powerOn").unwrap_or(false);
                let vm = sim.write(|st| {
                    let inv = &mut st.inv;
                    check_vm_folder(inv, &folder)?;
                    let source = inv
                        .vm(&src)
                        .cloned()
                        .ok_or_else(|| Fault::not_found(&src))?;
                    if let Some(existing) = sibling_named(inv, &folder, &name, None) {
                        return Err(Fault::duplicate_name(&name, &existing));
                    }
                    let mut devices = source.devices.clone();
                    let mut extra = source.extra_config.clone();
                    if let Some(snap) = &snapshot {
                        let s = source
                            .snapshots
                            .iter()
                            .find(|s| s.moref == *snap)
                            .ok_or_else(|| Fault::invalid_argument("spec.snapshot"))?;
                        devices = s.devices.clone();
                        extra = s.extra_config.clone();
                    }
                    let pool = loc
                        .and_then(|l| l.child("pool"))
                        .and_then(MoRef::from_element)
                        .unwrap_or(source.pool.clone());
                    let ds = loc
                        .and_then(|l| l.child("datastore"))
                        .and_then(MoRef::from_element)
                        .unwrap_or(source.datastore.clone());
                    let ds_name = inv
                        .get(&ds)
                        .map(|e| e.name.clone())
                        .ok_or_else(|| Fault::not_found(&ds))?;
                    let host = pick_host(
                        inv,
                        &pool,
                        loc.and_then(|l| l.child("host"))
                            .and_then(MoRef::from_element),
                    )?;
                    let dir = unique_vm_dir(inv, &ds_name, &name)?;
                    let vmx_path = format!("[{ds_name}] {dir}/{name}.vmx");
                    let mut v = new_vm_data(folder.clone(), pool.clone(), host, ds, vmx_path);
                    inherit_hardware(&mut v, &source);
                    v.extra_config = extra;
                    v.template = spec.child_bool("template").unwrap_or(false);
                    let local_dir =
                        resolve_ds_path(inv, &parse_ds_path(&format!("[{ds_name}] {dir}"))?)?;
                    std::fs::create_dir_all(&local_dir).map_err(|e| {
                        Fault::new("CannotCreateFile", e.to_string())
                            .with("file", Value::string(&dir))
                    })?;
                    clone_disks(inv, &mut devices, &ds_name, &dir, &name, linked)?;
                    for d in devices.iter_mut().filter(|d| is_nic(&d.ty)) {
                        d.set(
                            "macAddress",
                            Value::Prim {
                                ty: String::new(),
                                text: random_mac(),
                            },
                        );
                    }
                    v.devices = devices;
                    let mut vm_name = name.clone();
                    if let Some(cfg) = spec.child("config") {
                        apply_config_spec(inv, &mut vm_name, &mut v, cfg)?;
                    }
                    v.change_version = 1;
                    Ok(register_vm(inv, vm_name, v, &folder, &pool))
                })?;
                if power_on {
                    sim.power_on_now(&vm).await?;
                }
                Ok(Some(Value::MoRef(vm)))
            },
        )
    }

    async fn power_on_now(self: &Arc<Self>, vm: &MoRef) -> Result<(), Fault> {
        let spec = self.write(|st| {
            let e = st
                .inv
                .get(vm)
                .cloned()
                .ok_or_else(|| Fault::not_found(vm))?;
            let Kind::Vm(v) = &e.kind else {
                return Err(Fault::not_found(vm));
            };
            let spec = runtime_spec(&st.inv, &e, v);
            let v = st.inv.vm_mut(vm).expect("exists");
            v.power_state = PowerState::PoweredOn;
            v.boot_time = Some(props::now());
            Ok(spec)
        })?;
        if let Err(f) = self.runtime.power_on(spec).await {
            self.mark_powered_off(vm);
            return Err(f);
        }
        Ok(())
    }

    pub(crate) fn instant_clone(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let spec = arg_elem(a, "spec")?.clone();
        let name = spec
            .child_text("name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Fault::invalid_argument("spec.name"))?
            .to_string();
        let name = check_name(&name)?;
        if self.read_inv(|inv| inv.vm(this).is_none()) {
            return Err(Fault::not_found(this));
        }
        let src = this.clone();
        self.run_task(
            ctx,
            "InstantClone_Task",
            Some(&src.clone()),
            move |sim| async move {
                let (vm, child_spec) = sim.write(|st| {
                    let inv = &mut st.inv;
                    let source = inv
                        .vm(&src)
                        .cloned()
                        .ok_or_else(|| Fault::not_found(&src))?;
                    if source.power_state != PowerState::PoweredOn {
                        return Err(Fault::invalid_power_state(
                            source.power_state.wire(),
                            Some("poweredOn"),
                        ));
                    }
                    let loc = spec.child("location");
                    let folder = loc
                        .and_then(|l| l.child("folder"))
                        .and_then(MoRef::from_element)
                        .unwrap_or(source.folder.clone());
                    check_vm_folder(inv, &folder)?;
                    if let Some(existing) = sibling_named(inv, &folder, &name, None) {
                        return Err(Fault::duplicate_name(&name, &existing));
                    }
                    let pool = loc
                        .and_then(|l| l.child("pool"))
                        .and_then(MoRef::from_element)
                        .unwrap_or(source.pool.clone());
                    let ds = loc
                        .and_then(|l| l.child("datastore"))
                        .and_then(MoRef::from_element)
                        .unwrap_or(source.datastore.clone());
                    let ds_name = inv
                        .get(&ds)
                        .map(|e| e.name.clone())
                        .ok_or_else(|| Fault::not_found(&ds))?;
                    // Instant clones share the parent's host: they fork its memory.
                    let host = source.host.clone();
                    let dir = unique_vm_dir(inv, &ds_name, &name)?;
                    let vmx_path = format!("[{ds_name}] {dir}/{name}.vmx");
                    let mut v = new_vm_data(folder.clone(), pool.clone(), host, ds, vmx_path);
                    inherit_hardware(&mut v, &source);
                    v.extra_config = source.extra_config.clone();
                    if let Some(b) = spec.child_text("biosUuid") {
                        v.uuid = b.to_string();
                    }
                    let local_dir =
                        resolve_ds_path(inv, &parse_ds_path(&format!("[{ds_name}] {dir}"))?)?;
                    std::fs::create_dir_all(&local_dir).map_err(|e| {
                        Fault::new("CannotCreateFile", e.to_string())
                            .with("file", Value::string(&dir))
                    })?;
                    let mut devices = source.devices.clone();
                    clone_disks(inv, &mut devices, &ds_name, &dir, &name, true)?;
                    for d in devices.iter_mut().filter(|d| is_nic(&d.ty)) {
                        d.set(
                            "macAddress",
                            Value::Prim {
                                ty: String::new(),
                                text: random_mac(),
                            },
                        );
                    }
                    if let Some(l) = loc {
                        // Device changes in the relocate spec (e.g. a NIC on another network).
                        let mut created = Vec::new();
                        v.devices = devices;
                        apply_device_changes(inv, &name, &mut v, l, &mut created)?;
                    } else {
                        v.devices = devices;
                    }
                    // The clone starts running: its config spec keys are persistent
                    // (written before power-on), not volatile.
                    for opt in spec.children_named("config") {
                        let key = opt
                            .child_text("key")
                            .ok_or_else(|| Fault::invalid_argument("spec.config.key"))?;
                        let value = opt
                            .child("value")
                            .map(|x| x.text.clone())
                            .unwrap_or_default();
                        set_extra_config(&mut v, key, &value, false);
                    }
                    v.power_state = PowerState::PoweredOn;
                    v.boot_time = Some(props::now());
                    v.instant_clone_parent = Some(src.clone());
                    v.change_version = 1;
                    let moref = register_vm(inv, name.clone(), v, &folder, &pool);
                    let e = inv
                        .get(&moref)
                        .cloned()
                        .ok_or_else(|| Fault::not_found(&moref))?;
                    let Kind::Vm(child) = &e.kind else {
                        return Err(Fault::not_found(&moref));
                    };
                    let child_spec = runtime_spec(inv, &e, child);
                    Ok((moref, child_spec))
                })?;
                if let Err(f) = sim.runtime.instant_clone(src.clone(), child_spec).await {
                    // A failed clone task leaves no VM behind, as on vCenter: its name
                    // is free for the next attempt.
                    sim.mark_powered_off(&vm);
                    if let Err(e) = sim.destroy_vm_now(&vm).await {
                        tracing::warn!(vm = %vm.value, "cannot remove a failed clone: {e:?}");
                    }
                    return Err(f);
                }
                Ok(Some(Value::MoRef(vm)))
            },
        )
    }

    pub(crate) fn create_snapshot(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let name = arg_text(a, "name")?.to_string();
        let description = a.child_text("description").unwrap_or_default().to_string();
        if self.read_inv(|inv| inv.vm(this).is_none()) {
            return Err(Fault::not_found(this));
        }
        let this = this.clone();
        self.run_task(
            ctx,
            "CreateSnapshot_Task",
            Some(&this.clone()),
            move |sim| async move {
                sim.write(|st| {
                    let id = st.inv.new_id("snapshot");
                    let n = id.trim_start_matches("snapshot-").parse().unwrap_or(0);
                    let v = st
                        .inv
                        .vm_mut(&this)
                        .ok_or_else(|| Fault::not_found(&this))?;
                    let moref =
                        MoRef::new("VirtualMachineSnapshot", format!("{}-{id}", this.value));
                    v.snapshots.push(Snapshot {
                        moref: moref.clone(),
                        id: n,
                        name,
                        description,
                        create_time: props::now(),
                        power_state: v.power_state,
                        parent: v.current_snapshot.clone(),
                        devices: v.devices.clone(),
                        extra_config: v.extra_config.clone(),
                    });
                    v.current_snapshot = Some(moref.clone());
                    Ok(Some(Value::MoRef(moref)))
                })
            },
        )
    }
}

/// The VM a snapshot belongs to: snapshot ids are `<vm>-snapshot-<n>` (see
/// `create_snapshot`).
fn snapshot_owner(snapshot: &MoRef) -> MoRef {
    let vm = snapshot
        .value
        .rsplit_once("-snapshot-")
        .map(|(vm, _)| vm)
        .unwrap_or_default();
    MoRef::new("VirtualMachine", vm)
}

/// Gives a cloned VM its own disks: child deltas of the source disks (linked/instant
/// clones) or full copies. Read-only shared disks (non-persistent modes) stay shared.
fn clone_disks(
    inv: &Inventory,
    devices: &mut [DataObject],
    ds_name: &str,
    dir: &str,
    vm_name: &str,
    linked: bool,
) -> Result<(), Fault> {
    let mut n = 0;
    for d in devices.iter_mut().filter(|d| d.ty == "VirtualDisk") {
        let Some(src_file) = disk_file(d) else {
            continue;
        };
        let mode = disk_mode(d);
        if mode.starts_with("independent_nonpersistent") || mode == "nonpersistent" {
            continue;
        }
        let new_file = if n == 0 {
            format!("[{ds_name}] {dir}/{vm_name}.vmdk")
        } else {
            format!("[{ds_name}] {dir}/{vm_name}_{n}.vmdk")
        };
        n += 1;
        let dst = resolve_ds_path(inv, &parse_ds_path(&new_file)?)?;
        let src = resolve_ds_path(inv, &parse_ds_path(&src_file)?)?;
        let Some(Value::Obj(backing)) = d.get_mut("backing") else {
            continue;
        };
        if linked {
            create_delta_vmdk(&dst, &src.to_string_lossy(), &new_file)?;
            let parent = backing.clone();
            backing.set("parent", Value::Obj(parent));
        } else {
            let capacity_kb = std::fs::metadata(src.with_file_name(format!(
                "{}-flat.vmdk",
                src.file_stem().and_then(|s| s.to_str()).unwrap_or_default()
            )))
            .map(|m| (m.len() / 1024) as i64)
            .unwrap_or(0);
            create_flat_vmdk(&dst, capacity_kb, "lsilogic", &new_file)?;
            let src_flat = src.with_file_name(format!(
                "{}-flat.vmdk",
                src.file_stem().and_then(|s| s.to_str()).unwrap_or_default()
            ));
            let dst_flat = dst.with_file_name(format!(
                "{}-flat.vmdk",
                dst.file_stem().and_then(|s| s.to_str()).unwrap_or_default()
            ));
            if src_flat.exists() {
                std::fs::copy(&src_flat, &dst_flat).map_err(|e| {
                    Fault::new("CannotCreateFile", e.to_string())
                        .with("file", Value::string(&new_file))
                })?;
            }
        }
        backing.set(
            "fileName",
            Value::Prim {
                ty: String::new(),
                text: new_file,
            },
        );
        let ds = inv.datastore_by_name(ds_name).map(|e| e.moref.clone());
        if let Some(m) = ds {
            backing.set("datastore", Value::MoRef(m));
        }
        if let Some(Value::Obj(b)) = d.get_mut("backing") {
            b.remove("uuid");
        }
    }
    Ok(())
}

/// The host runtime's calls back into the simulator (see `runtime.rs`).
impl GuestEvents for Sim {
    fn guest_powered_off(&self, vm: &MoRef) {
        self.mark_powered_off(vm);
    }

    fn guest_get_info(&self, vm: &MoRef, key: &str) -> Option<String> {
        let st = self.state.read();
        let v = st.inv.vm(vm)?;
        v.effective_extra_config()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    fn guest_set_info(&self, vm: &MoRef, key: &str, value: &str) -> Result<(), Fault> {
        self.write(|st| {
            let v = st.inv.vm_mut(vm).ok_or_else(|| Fault::not_found(vm))?;
            if v.power_state != PowerState::PoweredOn {
                return Err(Fault::invalid_power_state(v.power_state.wire(), None));
            }
            set_extra_config(v, key, value, true);
            Ok(())
        })
    }
}
