//! The template VM every container is instant-cloned from (`<vch>-template`): the boot
//! disk with the tether, a scratch disk (formatted by the template's tether; each clone
//! gets a delta of it), the SCSI controller, the control serial port (network-backed,
//! to the VCH) and a log serial port. It is powered on and idles without a spec, so a
//! clone of it is a fork of an already running tether, not a boot.

use crate::target::Target;
use futures_util::StreamExt;
use vsphere_client::spec::*;
use vsphere_client::types::{PropertyChange, UpdateKind};
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
    let waited = std::time::Instant::now();
    wait_ready(t, &vm).await?;
    tracing::info!(vm = %vm.value, waited_ms = waited.elapsed().as_secs_f64() * 1e3, "template VM ready");
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

/// How long a template may take from power-on to ready (its tether formats the scratch
/// disk first).
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits for the template's tether to have formatted the scratch disk clones inherit: it
/// says so in guestinfo (state `template-ready`), or writes an error there.
///
/// Event-driven: a PropertyCollector watch on the VM's extraConfig and power state. Its
/// first update is the current state, so a tether that was ready before the watch began
/// is seen at once; after that each guestinfo write arrives as it happens. A template
/// that powers off first fails the wait (its guestinfo, and any error in it, is gone).
async fn wait_ready(t: &Target, vm: &MoRef) -> Result<(), vsphere_client::Error> {
    let spec = FilterSpec::object(vm, &[EXTRA_CONFIG, "runtime.powerState"]);
    // Dropping the watch (on return) destroys its collector.
    let mut watch = Box::pin(t.client.watch(spec));
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let mut seen = Readiness::default();
    loop {
        let updates = match tokio::time::timeout_at(deadline, watch.next()).await {
            Err(_) => return Err(vsphere_client::Error::Timeout(READY_TIMEOUT)),
            Ok(None) => {
                return Err(vsphere_client::Error::Decode(
                    "template VM: the property watch ended".into(),
                ))
            }
            Ok(Some(update)) => update?,
        };
        for u in &updates {
            if u.kind == UpdateKind::Leave {
                return Err(vsphere_client::Error::Decode(
                    "template VM: deleted before it was ready".into(),
                ));
            }
            seen.apply(&u.changes);
        }
        if let Some(done) = seen.outcome() {
            return done;
        }
    }
}

const EXTRA_CONFIG: &str = "config.extraConfig";

/// What the template's watch has told so far: its guestinfo state and error keys and its
/// power state.
#[derive(Debug, Default)]
struct Readiness {
    state: Option<String>,
    error: Option<String>,
    power: Option<String>,
}

impl Readiness {
    /// Folds in one update's changes. vCenter reports `config.extraConfig` whole, or one
    /// key at a time as `config.extraConfig["key"]` (op add/assign/remove): both count.
    fn apply(&mut self, changes: &[PropertyChange]) {
        for ch in changes {
            if ch.name == "runtime.powerState" {
                self.power = ch.val.as_ref().and_then(Value::as_text).map(str::to_string);
            } else if ch.name == EXTRA_CONFIG {
                self.state = None;
                self.error = None;
                if let Some(Value::Array { items, .. }) = &ch.val {
                    for o in items.iter().filter_map(Value::as_obj) {
                        let value = o.get("value").and_then(Value::as_text);
                        self.set(o.text("key").unwrap_or_default(), value);
                    }
                }
            } else if let Some(key) = ch
                .name
                .strip_prefix("config.extraConfig[\"")
                .and_then(|k| k.strip_suffix("\"]"))
            {
                let value = match ch.op.as_str() {
                    "remove" => None,
                    _ => ch
                        .val
                        .as_ref()
                        .and_then(Value::as_obj)
                        .and_then(|o| o.get("value"))
                        .and_then(Value::as_text),
                };
                self.set(key, value);
            }
        }
    }

    fn set(&mut self, key: &str, value: Option<&str>) {
        let slot = match key {
            container_vm::guestinfo::STATE_KEY => &mut self.state,
            container_vm::guestinfo::ERROR_KEY => &mut self.error,
            _ => return,
        };
        *slot = value.map(str::to_string);
    }

    /// `Some` once the wait is over: ready, failed in the guest, or powered off.
    fn outcome(&self) -> Option<Result<(), vsphere_client::Error>> {
        if self.state.as_deref()
            == Some(container_vm::state::ContainerState::TemplateReady.as_str())
        {
            return Some(Ok(()));
        }
        if let Some(e) = &self.error {
            return Some(Err(vsphere_client::Error::Decode(format!(
                "template VM: {e}"
            ))));
        }
        if self.power.as_deref() == Some("poweredOff") {
            return Some(Err(vsphere_client::Error::Decode(
                "template VM: powered off before it was ready".into(),
            )));
        }
        None
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

#[cfg(test)]
mod tests {
    use super::*;
    use container_vm::guestinfo::{ERROR_KEY, STATE_KEY};
    const STATE_TEMPLATE_READY: &str = container_vm::state::ContainerState::TemplateReady.as_str();
    use vsphere_client::DataObject;

    fn option(key: &str, value: &str) -> Value {
        Value::Obj(
            DataObject::new("OptionValue")
                .with("key", Value::string(key))
                .with("value", Value::string(value)),
        )
    }

    fn change(name: &str, op: &str, val: Option<Value>) -> PropertyChange {
        PropertyChange {
            name: name.into(),
            op: op.into(),
            val,
        }
    }

    fn whole(pairs: &[(&str, &str)]) -> PropertyChange {
        let items = pairs.iter().map(|(k, v)| option(k, v)).collect();
        change(
            EXTRA_CONFIG,
            "assign",
            Some(Value::array("OptionValue", items)),
        )
    }

    #[test]
    fn waits_until_the_tether_says_ready_in_the_whole_extra_config() {
        let mut r = Readiness::default();
        r.apply(&[
            whole(&[("guestinfo.vch.template.scratch", "scsi0:1")]),
            change(
                "runtime.powerState",
                "assign",
                Some(Value::string("poweredOn")),
            ),
        ]);
        assert!(r.outcome().is_none());
        r.apply(&[whole(&[(STATE_KEY, "created")])]);
        assert!(r.outcome().is_none());
        r.apply(&[whole(&[(STATE_KEY, STATE_TEMPLATE_READY)])]);
        assert!(matches!(r.outcome(), Some(Ok(()))));
    }

    #[test]
    fn per_key_changes_count_as_vcenter_reports_them() {
        let mut r = Readiness::default();
        let key = |k: &str| format!("{EXTRA_CONFIG}[\"{k}\"]");
        r.apply(&[change(&key(STATE_KEY), "add", Some(option(STATE_KEY, "x")))]);
        assert!(r.outcome().is_none());
        r.apply(&[change(
            &key(STATE_KEY),
            "assign",
            Some(option(STATE_KEY, STATE_TEMPLATE_READY)),
        )]);
        assert!(matches!(r.outcome(), Some(Ok(()))));
        r.apply(&[change(&key(STATE_KEY), "remove", None)]);
        assert!(r.outcome().is_none());
    }

    #[test]
    fn a_guest_error_or_a_power_off_ends_the_wait_with_an_error() {
        let mut r = Readiness::default();
        r.apply(&[whole(&[(ERROR_KEY, "mkfs failed")])]);
        let err = r.outcome().unwrap().unwrap_err().to_string();
        assert!(err.contains("mkfs failed"), "{err}");

        let mut r = Readiness::default();
        r.apply(&[change(
            "runtime.powerState",
            "assign",
            Some(Value::string("poweredOff")),
        )]);
        let err = r.outcome().unwrap().unwrap_err().to_string();
        assert!(err.contains("powered off"), "{err}");
    }
}
