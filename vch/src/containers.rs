//! Containers as VMs: the record the VCH keeps of each container, the VM it creates for
//! it (devices and guestinfo per docs/container-vm.md). Rebuilding the records from
//! vSphere at start is translator::recovery's job.

use crate::target::Target;
use crate::template::Template;
use serde::{Deserialize, Serialize};
use vsphere_client::spec::*;
use vsphere_client::MoRef;

/// extraConfig key of the Docker-side record (name, image, create body, created time).
/// Not a guestinfo key: it changes while the VM runs (rename), and guestinfo written to a
/// running VM is volatile on vSphere.
pub const META_KEY: &str = "vch.meta";
/// The tether's state key (guest-written): `created` while a parked clone waits.
pub const GUEST_STATE_KEY: &str = container_vm::guestinfo::STATE_KEY;
/// Final state, persisted by the VCH once the VM is off (also not guestinfo).
pub const EXIT_KEY: &str = "vch.final";
/// When the current run started, persisted before a start is acknowledged: a run whose
/// VM went off while nobody watched (the VCH was killed, and the embedded vCenter and
/// its VMs with it) is then known to have run, and is recovered as exited, not created.
pub const STARTED_KEY: &str = "vch.started";

/// The spec the tether reads (one definition, the contract's).
pub use container_vm::spec::ContainerSpec as TetherSpec;

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
    /// The create request's container config (image ports merged), for inspect and
    /// the filters. Typed: stored and read as Docker's model, converted nowhere else.
    pub config: docker_api::models::ContainerConfig,
    /// The create request's host config as the VCH applied it (network mode filled in,
    /// updates folded in).
    pub host_config: docker_api::models::HostConfig,
    /// Volume mounts, in the order of the spec's `mounts`.
    #[serde(default)]
    pub volumes: Vec<crate::mounts::VolumeMountRecord>,
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
    /// The kernel killed the process for exceeding the VM's memory (`State.OOMKilled`).
    #[serde(default)]
    pub oom_killed: bool,
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
    /// The VM is on and its tether waits for `Start` (a created instant clone).
    pub parked: bool,
    /// Someone is already waiting for this VM to power off (the pool watch claimed it,
    /// or a cold power-on has its own watch): the exit is recorded once.
    pub watched: bool,
    /// Found at load: a started run whose VM is off with no final state recorded (it
    /// ended while the VCH was away). The VCH records its exit before it serves.
    pub interrupted: bool,
    /// What the tether last reported unasked: the process's pid in the VM (0 when it does
    /// not run) and its health (kept after the exit, as dockerd shows it).
    pub reported: container_vm::status::GuestStatus,
}

/// SCSI unit numbers for container disks (unit 7 is the controller's own).
fn units() -> impl Iterator<Item = i64> {
    (0..64).filter(|u| *u != 7)
}

/// The instant clone that makes a container's VM from the template: its name and place,
/// the layer disks (shared, read-only), a fresh scratch disk, the log serial port pointed
/// at the container's own file, and the spec (parked: it waits for `docker start`) and
/// record in its configuration.
#[allow(clippy::too_many_arguments)] // each is one part of the clone
pub fn clone_spec(
    t: &Target,
    tpl: &Template,
    vm_name: &str,
    layers: &[String],
    spec: &mut TetherSpec,
    meta: &Meta,
    volume_disks: &[String],
    nics: Vec<Device>,
) -> Result<InstantCloneSpec, String> {
    // scsi0:0 and scsi0:1 are the template's boot and scratch disks.
    let mut unit = units().filter(|u| *u > crate::template::SCRATCH_UNIT);
    let mut next = || {
        unit.next()
            .ok_or("an image with more than 62 layers must be flattened")
    };
    let disk = |key: i64, unit: i64, file: &str, mode: &str, kb: i64| Device::Disk {
        key,
        controller_key: tpl.controller_key,
        unit: Some(unit),
        capacity_kb: kb,
        file: file.to_string(),
        mode: mode.to_string(),
        thin: true,
    };
    let mut devices = Vec::new();
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
    // Volumes: independent-persistent, so snapshots and clones leave them alone.
    spec.mounts.clear();
    for (i, (file, m)) in volume_disks.iter().zip(&meta.volumes).enumerate() {
        let u = next()?;
        devices.push(DeviceChange::add(disk(
            -60 - i as i64,
            u,
            file,
            "independent_persistent",
            0,
        )));
        spec.mounts.push(container_vm::spec::VolumeMount {
            disk: format!("scsi0:{u}"),
            path: m.destination.clone(),
            readonly: !m.rw,
        });
    }
    // Scratch: the clone's own delta of the template's formatted scratch disk.
    spec.scratch = Some(format!("scsi0:{}", crate::template::SCRATCH_UNIT));
    devices.push(DeviceChange {
        op: DeviceOp::Edit,
        file_op: None,
        device: Device::Serial {
            key: tpl.log_port_key,
            backing: SerialBacking::File {
                path: format!("[{}] {vm_name}/container.log", t.datastore_name),
            },
        },
    });
    // Network: a NIC per attached network (network.rs decides which and how).
    devices.extend(nics.into_iter().map(DeviceChange::add));
    spec.parked = true;
    let mut config = container_vm::spec::encode(spec).map_err(|e| e.to_string())?;
    let meta_json = serde_json::to_string(meta).map_err(|e| e.to_string())?;
    config.push((META_KEY.into(), meta_json));
    Ok(InstantCloneSpec {
        name: vm_name.to_string(),
        location: Placement {
            folder: Some(t.folder.clone()),
            pool: Some(t.pool.clone()),
            devices,
            ..Default::default()
        },
        config,
        bios_uuid: None,
    })
}
