//! Containers as VMs: the record the VCH keeps of each container, the VM it creates for
//! it (devices and guestinfo per docs/container-vm.md), and rebuilding the records from
//! vSphere at start, since the truth lives there.

use crate::target::Target;
use serde::{Deserialize, Serialize};
use vsphere_client::spec::*;
use vsphere_client::{FilterSpec, MoRef, Value};

/// guestinfo key of the tether spec (see tether::spec).
pub const SPEC_KEY: &str = "guestinfo.vch.spec";
/// extraConfig key of the Docker-side record (name, image, create body, created time).
/// Not a guestinfo key: it changes while the VM runs (rename), and guestinfo written to a
/// running VM is volatile on vSphere.
pub const META_KEY: &str = "vch.meta";
/// Final state, persisted by the VCH once the VM is off (also not guestinfo).
pub const EXIT_KEY: &str = "vch.final";

/// The spec the tether reads (one definition, shared with the guest side).
pub use tether::spec::ContainerSpec as TetherSpec;

/// What Docker clients see of a container, kept in the VM's extraConfig.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub id: String,
    pub name: String,
    /// The image as the user named it, and its ID.
    pub image: String,
    pub image_id: String,
    pub created: String,
    pub auto_remove: bool,
    /// The create request body, for inspect.
    pub config: serde_json::Value,
    pub host_config: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct FinalState {
    /// The user stopped it (docker stop/kill): restart policies other than `always` hold off.
    #[serde(default)]
    pub stopped_by_user: bool,
    #[serde(default)]
    pub restart_count: i64,
    pub exit_code: i64,
    pub error: Option<String>,
    pub finished_at: String,
    pub started_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Exited,
    Removing,
}

#[derive(Debug, Clone)]
pub struct Container {
    pub meta: Meta,
    pub spec: TetherSpec,
    pub vm: MoRef,
    pub vm_name: String,
    pub status: Status,
    pub started_at: Option<String>,
    pub finished: Option<FinalState>,
}

/// SCSI unit numbers for container disks (unit 7 is the controller's own).
fn units() -> impl Iterator<Item = i64> {
    (0..64).filter(|u| *u != 7)
}

/// The VM spec of a new container: boot disk, layer disks (shared, read-only), a fresh
/// scratch disk, the log serial port, and the spec and record in guestinfo.
/// The hardware of a container VM.
pub struct Shape<'a> {
    pub memory_mb: i64,
    pub cpus: i64,
    /// `tcp://host:port` of the VCH's control channel listener.
    pub control_uri: &'a str,
}

pub fn vm_config(
    t: &Target,
    vm_name: &str,
    layers: &[String],
    spec: &mut TetherSpec,
    meta: &Meta,
    shape: &Shape,
) -> Result<VmConfigSpec, String> {
    let mut unit = units();
    let mut next = || {
        unit.next()
            .ok_or("an image with more than 62 layers must be flattened")
    };
    let disk = |key: i64, unit: i64, file: &str, mode: &str, kb: i64| Device::Disk {
        key,
        controller_key: -100,
        unit: Some(unit),
        capacity_kb: kb,
        file: file.to_string(),
        mode: mode.to_string(),
        thin: true,
    };
    let mut devices = vec![DeviceChange::add(Device::PvScsi { key: -100, bus: 0 })];
    devices.push(DeviceChange::add(disk(
        -1,
        next()?,
        &t.boot_disk,
        "independent_nonpersistent",
        0,
    )));
    spec.layers.clear();
    for (i, l) in layers.iter().enumerate() {
        let u = next()?;
        devices.push(DeviceChange::add(disk(
            -2 - i as i64,
            u,
            l,
            "independent_nonpersistent",
            0,
        )));
        spec.layers.push(format!("scsi0:{u}"));
    }
    let su = next()?;
    // Scratch: thin, so its size only bounds what the container may write.
    devices.push(DeviceChange::create(disk(
        -90,
        su,
        "",
        "persistent",
        8 << 20,
    )));
    spec.scratch = Some(format!("scsi0:{su}"));
    // Serial port 1: the control channel (the VM connects to the VCH).
    devices.push(DeviceChange::add(Device::Serial {
        key: -92,
        backing: SerialBacking::Uri {
            uri: shape.control_uri.to_string(),
        },
    }));
    // Serial port 2: the container log on the datastore.
    devices.push(DeviceChange::add(Device::Serial {
        key: -91,
        backing: SerialBacking::File {
            path: format!("[{}] {vm_name}/container.log", t.datastore_name),
        },
    }));
    let spec_json = serde_json::to_string(spec).map_err(|e| e.to_string())?;
    let meta_json = serde_json::to_string(meta).map_err(|e| e.to_string())?;
    Ok(VmConfigSpec {
        name: Some(vm_name.to_string()),
        guest_id: Some("otherLinux64Guest".into()),
        vm_path_name: Some(format!("[{}]", t.datastore_name)),
        num_cpus: Some(shape.cpus),
        memory_mb: Some(shape.memory_mb),
        // `docker update -m/--cpus` of a running container is a hot add/remove.
        memory_hot_add_enabled: Some(true),
        cpu_hot_add_enabled: Some(true),
        cpu_hot_remove_enabled: Some(true),
        annotation: Some(format!("VCH container {} ({})", meta.name, &meta.id[..12])),
        extra_config: vec![(SPEC_KEY.into(), spec_json), (META_KEY.into(), meta_json)],
        devices,
        ..Default::default()
    })
}

/// Reads every container VM of the VCH's pool back from vSphere.
pub async fn load(t: &Target) -> Result<Vec<Container>, vsphere_client::Error> {
    let objs = t
        .client
        .retrieve(
            &FilterSpec::pool_vms(
                &t.pool,
                &["name", "runtime.powerState", "config.extraConfig"],
            ),
            Some(500),
        )
        .await?;
    let mut out = Vec::new();
    for oc in objs {
        let mut spec = None;
        let mut meta = None;
        let mut fin = None;
        if let Some(Value::Array { items, .. }) = oc.get("config.extraConfig") {
            for o in items.iter().filter_map(Value::as_obj) {
                let (Some(k), Some(v)) = (o.text("key"), o.get("value").and_then(Value::as_text))
                else {
                    continue;
                };
                match k {
                    SPEC_KEY => spec = serde_json::from_str::<TetherSpec>(v).ok(),
                    META_KEY => meta = serde_json::from_str::<Meta>(v).ok(),
                    EXIT_KEY => fin = serde_json::from_str::<FinalState>(v).ok(),
                    _ => {}
                }
            }
        }
        let (Some(spec), Some(meta)) = (spec, meta) else {
            continue;
        };
        let power = oc.text("runtime.powerState").unwrap_or("poweredOff");
        let running = power != "poweredOff";
        out.push(Container {
            vm_name: oc.text("name").unwrap_or_default().to_string(),
            vm: oc.obj.clone(),
            status: if power == "suspended" {
                Status::Paused
            } else if running {
                Status::Running
            } else if fin.is_some() {
                Status::Exited
            } else {
                Status::Created
            },
            started_at: fin.as_ref().map(|f| f.started_at.clone()),
            finished: fin,
            meta,
            spec,
        });
    }
    Ok(out)
}
