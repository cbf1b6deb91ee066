//! The template VM every container is instant-cloned from (`<vch>-template`): the boot
//! disk with the tether, the SCSI controller, the control serial port (network-backed,
//! to the VCH) and a log serial port. It is powered on and idles without a spec, so a
//! clone of it is a fork of an already running tether, not a boot.

use crate::target::Target;
use vsphere_client::spec::*;
use vsphere_client::{FilterSpec, MoRef, Value};

/// Hardware every clone starts with; a container asking for more is reconfigured right
/// after its clone (hot add, enabled on the template).
pub const MEMORY_MB: i64 = 512;
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
    let vm = match find(t, &name).await? {
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
        t.client.power_on(&vm).await?;
    }
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
        annotation: Some(format!(
            "Template of VCH {}: every container VM is an instant clone of it",
            t.name
        )),
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
