//! The template VM every container is instant-cloned from (`<vch>-template`): the boot
//! disk with the tether, a scratch disk (formatted by the template's tether; each clone
//! gets a delta of it), the SCSI controller, the control serial port (network-backed,
//! to the VCH) and a log serial port. It is powered on and idles without a spec, so a
//! clone of it is a fork of an already running tether, not a boot.

use crate::target::Target;
use vsphere_client::spec::*;
use vsphere_client::{FilterSpec, MoRef, Value};

/// The template's scratch disk: clones inherit a delta of it, already formatted.
pub const SCRATCH_UNIT: i64 = 1;
/// Its size bounds what a container may write (thin: costs nothing until written).
const SCRATCH_KB: i64 = 8 << 20;

/// Hardware every clone starts with; a container's real size is a hot add right after its
/// clone (enabled on the template). vSphere cannot hot-remove memory, so the template has
/// the least a container may ask for (`-m 6m`, rounded up to vSphere's 4 MB steps).
pub const MEMORY_MB: i64 = 8;
pub const CPUS: i64 = 1;

/// What clones need to know of their template.
#[derive(Debug, Clone)]
pub struct Template {
    pub vm: MoRef,
    pub controller_key: i64,
    /// The file-backed serial port; each clone points it at its own log file.
    pub log_port_key: i64,
}

pub fn vm_name(t: &Target) -> String {
    format!("{}-template", t.name)
}

/// Finds or creates the template, points its control port at `control_uri` (the
/// listener changes with each VCH start) and powers it on.
pub async fn ensure(t: &Target, control_uri: &str) -> Result<Template, vsphere_client::Error> {
    let name = vm_name(t);
    let existing = match find(t, &name).await? {
        // A template from before the scratch disk was part of it is replaced.
        Some(vm) if !has_key(t, &vm, container_vm::guestinfo::TEMPLATE_SCRATCH_KEY).await? => {
            let _ = t.client.power_off(&vm).await;
            t.client.destroy(&vm).await?;
            None
        }
        other => other,
    };
    let vm = match existing {
        Some(vm) => vm,
        None => {
            t.client
                .create_vm(&t.folder, &t.pool, None, &config(t, &name, control_uri))
                .await?
        }
    };
    let (power, devices) = state(t, &vm).await?;
    let control = devices
        .iter()
        .find(|d| d.ty == "VirtualSerialPort" && backing_text(d, "serviceURI").is_some());
    if let Some(port) = control {
        if backing_text(port, "serviceURI") != Some(control_uri) {
            if power != "poweredOff" {
                t.client.power_off(&vm).await?;
            }
            let key = port.i64("key").unwrap_or_default();
            let edit = DeviceChange {
                op: DeviceOp::Edit,
                file_op: None,
                device: Device::Serial {
                    key,
                    backing: SerialBacking::Uri {
                        uri: control_uri.to_string(),
                    },
                },
            };
            t.client
                .reconfigure_vm(
                    &vm,
                    &VmConfigSpec {
                        devices: vec![edit],
                        ..Default::default()
                    },
                )
                .await?;
        }
    }
    let (power, devices) = state(t, &vm).await?;
    if power != "poweredOn" {
        // A template from before hot add was enabled gets it while it is off.
        let hot = VmConfigSpec {
            memory_hot_add_enabled: Some(true),
            cpu_hot_add_enabled: Some(true),
            cpu_hot_remove_enabled: Some(true),
            ..Default::default()
        };
        t.client.reconfigure_vm(&vm, &hot).await?;
        t.client.power_on(&vm).await?;
    }
    wait_ready(t, &vm).await?;
    let key_of = |pred: &dyn Fn(&vsphere_client::value::DataObject) -> bool| {
        devices
            .iter()
            .find(|d| pred(d))
            .and_then(|d| d.i64("key"))
            .unwrap_or_default()
    };
    Ok(Template {
        controller_key: key_of(&|d| d.ty == "ParaVirtualSCSIController"),
        log_port_key: key_of(&|d| {
            d.ty == "VirtualSerialPort" && backing_text(d, "serviceURI").is_none()
        }),
        vm,
    })
}

async fn has_key(t: &Target, vm: &MoRef, key: &str) -> Result<bool, vsphere_client::Error> {
    Ok(extra_config(t, vm).await?.iter().any(|(k, _)| k == key))
}

async fn extra_config(
    t: &Target,
    vm: &MoRef,
) -> Result<Vec<(String, String)>, vsphere_client::Error> {
    Ok(match t.client.property(vm, "config.extraConfig").await? {
        Some(Value::Array { items, .. }) => items
            .iter()
            .filter_map(Value::as_obj)
            .filter_map(|o| {
                Some((
                    o.text("key")?.to_string(),
                    o.get("value")?.as_text()?.to_string(),
                ))
            })
            .collect(),
        _ => Vec::new(),
    })
}

/// Waits for the template's tether to have formatted the scratch disk clones inherit.
async fn wait_ready(t: &Target, vm: &MoRef) -> Result<(), vsphere_client::Error> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let extra = extra_config(t, vm).await?;
        let get = |k: &str| {
            extra
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        if get(container_vm::guestinfo::STATE_KEY).as_deref()
            == Some(container_vm::state::ContainerState::TemplateReady.as_str())
        {
            return Ok(());
        }
        if let Some(e) = get(container_vm::guestinfo::ERROR_KEY) {
            return Err(vsphere_client::Error::Decode(format!("template VM: {e}")));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(vsphere_client::Error::Timeout(
                std::time::Duration::from_secs(60),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn backing_text<'a>(d: &'a vsphere_client::value::DataObject, field: &str) -> Option<&'a str> {
    d.get("backing")
        .and_then(Value::as_obj)
        .and_then(|b| b.text(field))
}

async fn find(t: &Target, name: &str) -> Result<Option<MoRef>, vsphere_client::Error> {
    let objs = t
        .client
        .retrieve(&FilterSpec::pool_vms(&t.pool, &["name"]), None)
        .await?;
    Ok(objs
        .into_iter()
        .find(|o| o.text("name") == Some(name))
        .map(|o| o.obj))
}

async fn state(
    t: &Target,
    vm: &MoRef,
) -> Result<(String, Vec<vsphere_client::value::DataObject>), vsphere_client::Error> {
    let power = t
        .client
        .property(vm, "runtime.powerState")
        .await?
        .and_then(|v| v.as_text().map(str::to_string))
        .unwrap_or_default();
    let devices = match t.client.property(vm, "config.hardware.device").await? {
        Some(Value::Array { items, .. }) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::Obj(o) => Some(o),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok((power, devices))
}

fn config(t: &Target, name: &str, control_uri: &str) -> VmConfigSpec {
    VmConfigSpec {
        name: Some(name.to_string()),
        guest_id: Some("otherLinux64Guest".into()),
        vm_path_name: Some(format!("[{}]", t.datastore_name)),
        num_cpus: Some(CPUS),
        memory_mb: Some(MEMORY_MB),
        // Clones inherit these: `docker create -m` and `docker update` resize a running
        // clone (hot add), and they can only be set while a VM is off.
        memory_hot_add_enabled: Some(true),
        cpu_hot_add_enabled: Some(true),
        cpu_hot_remove_enabled: Some(true),
        annotation: Some(format!(
            "Template of VCH {}: every container VM is an instant clone of it",
            t.name
        )),
        extra_config: vec![(
            container_vm::guestinfo::TEMPLATE_SCRATCH_KEY.into(),
            format!("scsi0:{SCRATCH_UNIT}"),
        )],
        devices: vec![
            DeviceChange::add(Device::PvScsi { key: -100, bus: 0 }),
            DeviceChange::add(Device::Disk {
                key: -1,
                controller_key: -100,
                unit: Some(0),
                capacity_kb: 0,
                file: t.boot_disk.clone(),
                mode: "independent_nonpersistent".into(),
                thin: true,
            }),
            DeviceChange::create(Device::Disk {
                key: -2,
                controller_key: -100,
                unit: Some(SCRATCH_UNIT),
                capacity_kb: SCRATCH_KB,
                file: String::new(),
                mode: "persistent".into(),
                thin: true,
            }),
            // Serial port 1: the control channel (the VM connects to the VCH).
            DeviceChange::add(Device::Serial {
                key: -92,
                backing: SerialBacking::Uri {
                    uri: control_uri.to_string(),
                },
            }),
            // Serial port 2: a log file; each clone is pointed at its own.
            DeviceChange::add(Device::Serial {
                key: -91,
                backing: SerialBacking::File {
                    path: format!("[{}] {name}/template.log", t.datastore_name),
                },
            }),
        ],
        ..Default::default()
    }
}
