//! The real [`VmPlatform`]: vim25 calls on the VCH's Target, the template supervisor, and
//! the container log on the datastore. vSphere values are decoded here, once (kata's
//! `trans.rs` idea): the translator never sees a `Value` or a fault string.

use super::error::PlatformError;
use super::platform::*;
use crate::containers::{self, FinalState, Meta};
use crate::logfile::LogFile;
use crate::supervisor::TemplateSupervisor;
use crate::target::Target;
use crate::template::Template;
use docker_api::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use vsphere_client::types::{ObjectUpdate, UpdateKind};
use vsphere_client::{FilterSpec, MoRef, Value};

pub struct VspherePlatform {
    pub t: Arc<Target>,
    pub template: TemplateSupervisor,
}

impl VspherePlatform {
    fn err(&self, e: vsphere_client::Error) -> PlatformError {
        PlatformError::from_vsphere(&self.t.url, e)
    }

    /// The VM's virtual devices (`config.hardware.device`); none if it has no list.
    async fn devices(&self, vm: &MoRef) -> PResult<Vec<Value>> {
        match self
            .t
            .client
            .property(vm, "config.hardware.device")
            .await
            .map_err(|e| self.err(e))?
        {
            Some(Value::Array { items, .. }) => Ok(items),
            _ => Ok(vec![]),
        }
    }

    /// Removals of the VM's NICs with these MACs (keys and backings as vSphere has them).
    async fn nic_removals(
        &self,
        vm: &MoRef,
        macs: &[String],
    ) -> PResult<Vec<vsphere_client::spec::DeviceChange>> {
        use vsphere_client::spec::{Device, DeviceChange, DeviceOp, NicBacking};
        let devices = self.devices(vm).await?;
        let mut out = Vec::new();
        for d in devices.iter().filter_map(Value::as_obj) {
            let mac = d.text("macAddress").unwrap_or_default().to_lowercase();
            if !macs.iter().any(|m| m.eq_ignore_ascii_case(&mac)) {
                continue;
            }
            let b = d.get("backing").and_then(Value::as_obj);
            let port = b.and_then(|b| b.get("port")).and_then(Value::as_obj);
            let backing = match (b.and_then(|b| b.text("deviceName")), port) {
                (_, Some(p)) => NicBacking::Distributed {
                    switch_uuid: p.text("switchUuid").unwrap_or_default().to_string(),
                    portgroup_key: p.text("portgroupKey").unwrap_or_default().to_string(),
                },
                (name, None) => NicBacking::Network {
                    name: name.unwrap_or_default().to_string(),
                    network: b
                        .and_then(|b| b.get("network"))
                        .and_then(|n| n.as_moref().cloned())
                        .unwrap_or_else(|| MoRef::new("Network", "")),
                },
            };
            out.push(DeviceChange {
                op: DeviceOp::Remove,
                file_op: None,
                device: Device::Nic {
                    key: d.i64("key").unwrap_or_default(),
                    vmxnet3: d.ty == "VirtualVmxnet3",
                    backing,
                    mac: Some(mac),
                },
            });
        }
        Ok(out)
    }

    fn log(&self, vm_name: &str) -> LogFile {
        LogFile {
            client: self.t.client.clone(),
            datacenter: self.t.datacenter_name.clone(),
            datastore: self.t.datastore_name.clone(),
            path: format!("{vm_name}/container.log"),
        }
    }
}

/// Whether an update says the VM went off (powered off, or left the pool).
fn went_off(u: &ObjectUpdate) -> bool {
    u.kind == UpdateKind::Leave
        || u.changes
            .iter()
            .any(|ch| ch.val.as_ref().and_then(Value::as_text) == Some("poweredOff"))
}

/// The container records of one pool VM's extraConfig.
fn decode_record(oc: &vsphere_client::types::ObjectContent) -> VmRecord {
    let mut r = VmRecord {
        vm: oc.obj.clone(),
        name: oc.text("name").unwrap_or_default().to_string(),
        power: match oc.text("runtime.powerState").unwrap_or("poweredOff") {
            "poweredOn" => Power::On,
            "suspended" => Power::Suspended,
            _ => Power::Off,
        },
        spec: None,
        meta: None,
        final_state: None,
        guest_state: None,
        started: None,
    };
    // The spec's key, or its chunks (see container_vm::spec::encode).
    let mut spec_keys = std::collections::HashMap::new();
    if let Some(Value::Array { items, .. }) = oc.get("config.extraConfig") {
        for o in items.iter().filter_map(Value::as_obj) {
            let (Some(k), Some(v)) = (o.text("key"), o.get("value").and_then(Value::as_text))
            else {
                continue;
            };
            match k {
                k if container_vm::spec::is_spec_key(k) => {
                    spec_keys.insert(k.to_string(), v.to_string());
                }
                containers::META_KEY => r.meta = serde_json::from_str::<Meta>(v).ok(),
                containers::EXIT_KEY => r.final_state = serde_json::from_str::<FinalState>(v).ok(),
                containers::GUEST_STATE_KEY => r.guest_state = Some(v.to_string()),
                // Empty: a start that failed took it back.
                containers::STARTED_KEY if !v.is_empty() => r.started = Some(v.to_string()),
                _ => {}
            }
        }
    }
    r.spec = container_vm::spec::decode(|k| Ok(spec_keys.get(k).cloned()))
        .ok()
        .flatten();
    r
}

#[async_trait]
impl VmPlatform for VspherePlatform {
    async fn template(&self, bound: Duration) -> Result<Template, String> {
        self.template.get(bound).await
    }
    async fn heal_template(&self, why: &str) {
        self.template.heal(&self.t, why).await
    }
    async fn reset_template(&self, why: &str) {
        self.template.reset(&self.t, why).await
    }
    fn is_template(&self, vm: &MoRef) -> bool {
        self.template.is_template(vm)
    }

    async fn instant_clone(&self, tpl: &Template, req: &mut CloneRequest) -> PResult<MoRef> {
        let clone = containers::clone_spec(
            &self.t,
            tpl,
            &req.vm_name,
            &req.layers,
            &mut req.spec,
            &req.meta,
            &req.volume_disks,
            req.nics.clone(),
        )
        .map_err(PlatformError::Invalid)?;
        self.t
            .client
            .instant_clone(&tpl.vm, &clone)
            .await
            .map_err(|e| self.err(e))
    }

    async fn reconfigure(&self, vm: &MoRef, change: &VmChange) -> PResult<()> {
        let mut extra = Vec::new();
        if let Some(m) = &change.meta {
            let text = serde_json::to_string(m).map_err(|e| PlatformError::Other(e.to_string()))?;
            extra.push((containers::META_KEY.to_string(), text));
        }
        if let Some(f) = &change.final_state {
            extra.push((
                containers::EXIT_KEY.to_string(),
                serde_json::to_string(f).unwrap_or_default(),
            ));
        }
        if let Some(sc) = &change.spec {
            let new = container_vm::spec::encode(&sc.new)
                .map_err(|e| PlatformError::Other(e.to_string()))?;
            // An empty value removes a key: the old encoding's keys the new one lacks
            // (a chunked spec that became shorter) must not linger and be read back.
            for (k, _) in container_vm::spec::encode(&sc.old).unwrap_or_default() {
                if !new.iter().any(|(n, _)| *n == k) {
                    extra.push((k, String::new()));
                }
            }
            extra.extend(new);
        }
        let mut devices: Vec<vsphere_client::spec::DeviceChange> = change
            .add_nics
            .iter()
            .cloned()
            .map(vsphere_client::spec::DeviceChange::add)
            .collect();
        if !change.remove_nics.is_empty() {
            devices.extend(self.nic_removals(vm, &change.remove_nics).await?);
        }
        let spec = vsphere_client::spec::VmConfigSpec {
            memory_mb: change.memory_mb,
            num_cpus: change.cpus,
            extra_config: extra,
            devices,
            ..Default::default()
        };
        self.t
            .client
            .reconfigure_vm(vm, &spec)
            .await
            .map_err(|e| self.err(e))
    }

    async fn power_on(&self, vm: &MoRef) -> PResult<()> {
        self.t.client.power_on(vm).await.map_err(|e| self.err(e))
    }
    async fn power_off(&self, vm: &MoRef) -> PResult<()> {
        self.t.client.power_off(vm).await.map_err(|e| self.err(e))
    }
    async fn suspend(&self, vm: &MoRef) -> PResult<()> {
        self.t.client.suspend(vm).await.map_err(|e| self.err(e))
    }
    async fn destroy(&self, vm: &MoRef) -> PResult<()> {
        self.t.client.destroy(vm).await.map_err(|e| self.err(e))
    }

    async fn detach_volumes(&self, vm: &MoRef) -> PResult<()> {
        use vsphere_client::spec::{Device, DeviceChange, DeviceOp, VmConfigSpec};
        let devices = self.devices(vm).await?;
        let mut changes = Vec::new();
        let volumes_dir = format!("] {}/volumes/", self.t.name);
        for d in devices.iter().filter_map(Value::as_obj) {
            let backing = d.get("backing").and_then(Value::as_obj);
            let file = backing.and_then(|b| b.text("fileName")).unwrap_or_default();
            if d.ty != "VirtualDisk" || !file.contains(&volumes_dir) {
                continue;
            }
            changes.push(DeviceChange {
                op: DeviceOp::Remove,
                file_op: None,
                device: Device::Disk {
                    key: d.i64("key").unwrap_or_default(),
                    controller_key: d.i64("controllerKey").unwrap_or_default(),
                    unit: d.i64("unitNumber"),
                    capacity_kb: 0,
                    file: file.to_string(),
                    mode: backing
                        .and_then(|b| b.text("diskMode"))
                        .unwrap_or("independent_persistent")
                        .to_string(),
                    thin: true,
                },
            });
        }
        if changes.is_empty() {
            return Ok(());
        }
        let spec = VmConfigSpec {
            devices: changes,
            ..Default::default()
        };
        self.t
            .client
            .reconfigure_vm(vm, &spec)
            .await
            .map_err(|e| self.err(e))
    }

    async fn list_vms(&self) -> PResult<Vec<VmRecord>> {
        let objs = self
            .t
            .client
            .retrieve(
                &FilterSpec::pool_vms(
                    &self.t.pool,
                    &["name", "runtime.powerState", "config.extraConfig"],
                ),
                Some(500),
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(objs.iter().map(decode_record).collect())
    }

    fn watch_pool(&self) -> BoxStream<'static, MoRef> {
        let spec = FilterSpec::pool_vms(&self.t.pool, &["runtime.powerState"]);
        self.t
            .client
            .watch(spec)
            .filter_map(|update| async move { update.ok() })
            .flat_map(|updates| {
                futures_util::stream::iter(
                    updates
                        .into_iter()
                        .filter(went_off)
                        .map(|u| u.obj)
                        .collect::<Vec<_>>(),
                )
            })
            .boxed()
    }

    fn watch_off(&self, vm: &MoRef) -> BoxFuture<'static, ()> {
        let watch = self
            .t
            .client
            .watch(FilterSpec::object(vm, &["runtime.powerState"]));
        async move {
            let mut watch = Box::pin(watch);
            while let Some(update) = watch.next().await {
                let Ok(updates) = update else { continue };
                if updates.iter().any(went_off) {
                    return;
                }
            }
        }
        .boxed()
    }

    async fn exit_record(&self, vm_name: &str, since: Option<&str>) -> Option<ExitRecord> {
        self.log(vm_name)
            .exit_since(since)
            .await
            .map(|(code, error)| ExitRecord { code, error })
    }

    async fn oom_killed(&self, vm_name: &str, since: Option<&str>) -> bool {
        self.log(vm_name).oom_killed_since(since).await
    }
}
