//! Typed operations the VCH performs: pools, folders, VMs, networks, datastore files
//! and disks. Task methods wait for their task and surface its fault as `Error::Fault`.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::spec::{self, Allocation, CloneSpec, InstantCloneSpec, VmConfigSpec};
use crate::value::{DataObject, MoRef, Value};

fn manager(m: &Option<MoRef>, what: &str) -> Result<MoRef> {
    m.clone()
        .ok_or_else(|| Error::Decode(format!("the server has no {what}")))
}

fn task_moref(v: Option<Value>, method: &str) -> Result<MoRef> {
    v.and_then(|v| v.as_moref().cloned())
        .ok_or_else(|| Error::Decode(format!("{method} did not return a reference")))
}

impl Client {
    pub async fn create_resource_pool(
        &self,
        parent: &MoRef,
        name: &str,
        cpu: &Allocation,
        memory: &Allocation,
    ) -> Result<MoRef> {
        self.call_moref(
            "CreateResourcePool",
            parent,
            &[
                ("name", Value::string(name)),
                ("spec", spec::resource_config(cpu, memory)),
            ],
        )
        .await
    }

    pub async fn update_resource_pool(
        &self,
        pool: &MoRef,
        cpu: &Allocation,
        memory: &Allocation,
    ) -> Result<()> {
        self.call(
            "UpdateConfig",
            pool,
            &[("config", spec::resource_config(cpu, memory))],
        )
        .await?;
        Ok(())
    }

    pub async fn create_folder(&self, parent: &MoRef, name: &str) -> Result<MoRef> {
        self.call_moref("CreateFolder", parent, &[("name", Value::string(name))])
            .await
    }

    /// Destroy_Task on any managed entity (VM, pool, folder, port group).
    pub async fn destroy(&self, entity: &MoRef) -> Result<()> {
        self.run_task("Destroy_Task", entity, &[]).await.map(|_| ())
    }

    pub async fn rename(&self, entity: &MoRef, name: &str) -> Result<()> {
        self.run_task("Rename_Task", entity, &[("newName", Value::string(name))])
            .await
            .map(|_| ())
    }

    pub async fn create_vm(
        &self,
        folder: &MoRef,
        pool: &MoRef,
        host: Option<&MoRef>,
        config: &VmConfigSpec,
    ) -> Result<MoRef> {
        let mut args = vec![("config", config.to_value()), ("pool", Value::moref(pool))];
        if let Some(h) = host {
            args.push(("host", Value::moref(h)));
        }
        task_moref(
            self.run_task("CreateVM_Task", folder, &args).await?,
            "CreateVM_Task",
        )
    }

    pub async fn reconfigure_vm(&self, vm: &MoRef, spec: &VmConfigSpec) -> Result<()> {
        self.run_task("ReconfigVM_Task", vm, &[("spec", spec.to_value())])
            .await
            .map(|_| ())
    }

    pub async fn power_on(&self, vm: &MoRef) -> Result<()> {
        self.run_task("PowerOnVM_Task", vm, &[]).await.map(|_| ())
    }

    pub async fn power_off(&self, vm: &MoRef) -> Result<()> {
        self.run_task("PowerOffVM_Task", vm, &[]).await.map(|_| ())
    }

    pub async fn suspend(&self, vm: &MoRef) -> Result<()> {
        self.run_task("SuspendVM_Task", vm, &[]).await.map(|_| ())
    }

    pub async fn reset(&self, vm: &MoRef) -> Result<()> {
        self.run_task("ResetVM_Task", vm, &[]).await.map(|_| ())
    }

    pub async fn clone_vm(
        &self,
        vm: &MoRef,
        folder: &MoRef,
        name: &str,
        spec: &CloneSpec,
    ) -> Result<MoRef> {
        let rv = self
            .run_task(
                "CloneVM_Task",
                vm,
                &[
                    ("folder", Value::moref(folder)),
                    ("name", Value::string(name)),
                    ("spec", spec.to_value()),
                ],
            )
            .await?;
        task_moref(rv, "CloneVM_Task")
    }

    pub async fn instant_clone(&self, vm: &MoRef, spec: &InstantCloneSpec) -> Result<MoRef> {
        let rv = self
            .run_task("InstantClone_Task", vm, &[("spec", spec.to_value())])
            .await?;
        task_moref(rv, "InstantClone_Task")
    }

    pub async fn create_snapshot(&self, vm: &MoRef, name: &str) -> Result<MoRef> {
        let rv = self
            .run_task(
                "CreateSnapshot_Task",
                vm,
                &[
                    ("name", Value::string(name)),
                    ("memory", Value::bool(false)),
                    ("quiesce", Value::bool(false)),
                ],
            )
            .await?;
        task_moref(rv, "CreateSnapshot_Task")
    }

    /// Adds a standard port group through a host's `configManager.networkSystem`.
    pub async fn add_port_group(
        &self,
        network_system: &MoRef,
        name: &str,
        vlan: i64,
        vswitch: &str,
    ) -> Result<()> {
        self.call(
            "AddPortGroup",
            network_system,
            &[("portgrp", spec::host_port_group(name, vlan, vswitch))],
        )
        .await
        .map(|_| ())
    }

    pub async fn remove_port_group(&self, network_system: &MoRef, name: &str) -> Result<()> {
        self.call(
            "RemovePortGroup",
            network_system,
            &[("pgName", Value::string(name))],
        )
        .await
        .map(|_| ())
    }

    pub async fn create_dv_portgroup(&self, dvs: &MoRef, name: &str, ports: i64) -> Result<()> {
        self.run_task(
            "CreateDVPortgroup_Task",
            dvs,
            &[("spec", spec::dv_portgroup(name, ports))],
        )
        .await
        .map(|_| ())
    }

    pub async fn make_directory(
        &self,
        datacenter: &MoRef,
        path: &str,
        parents: bool,
    ) -> Result<()> {
        let fm = manager(&self.service_content().file_manager, "FileManager")?;
        self.call(
            "MakeDirectory",
            &fm,
            &[
                ("name", Value::string(path)),
                ("datacenter", Value::moref(datacenter)),
                ("createParentDirectories", Value::bool(parents)),
            ],
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_datastore_file(&self, datacenter: &MoRef, path: &str) -> Result<()> {
        let fm = manager(&self.service_content().file_manager, "FileManager")?;
        self.run_task(
            "DeleteDatastoreFile_Task",
            &fm,
            &[
                ("name", Value::string(path)),
                ("datacenter", Value::moref(datacenter)),
            ],
        )
        .await
        .map(|_| ())
    }

    pub async fn move_datastore_file(
        &self,
        datacenter: &MoRef,
        from: &str,
        to: &str,
        force: bool,
    ) -> Result<()> {
        let fm = manager(&self.service_content().file_manager, "FileManager")?;
        self.run_task(
            "MoveDatastoreFile_Task",
            &fm,
            &[
                ("sourceName", Value::string(from)),
                ("sourceDatacenter", Value::moref(datacenter)),
                ("destinationName", Value::string(to)),
                ("destinationDatacenter", Value::moref(datacenter)),
                ("force", Value::bool(force)),
            ],
        )
        .await
        .map(|_| ())
    }

    /// Creates a thin flat VMDK of `capacity_kb`.
    pub async fn create_virtual_disk(
        &self,
        datacenter: &MoRef,
        path: &str,
        capacity_kb: i64,
    ) -> Result<()> {
        let vdm = manager(
            &self.service_content().virtual_disk_manager,
            "VirtualDiskManager",
        )?;
        let spec = Value::Obj(
            DataObject::new("FileBackedVirtualDiskSpec")
                .with("diskType", Value::string("thin"))
                .with("adapterType", Value::string("lsiLogic"))
                .with("capacityKb", Value::long(capacity_kb)),
        );
        self.run_task(
            "CreateVirtualDisk_Task",
            &vdm,
            &[
                ("name", Value::string(path)),
                ("datacenter", Value::moref(datacenter)),
                ("spec", spec),
            ],
        )
        .await
        .map(|_| ())
    }

    pub async fn copy_virtual_disk(
        &self,
        datacenter: &MoRef,
        from: &str,
        to: &str,
        force: bool,
    ) -> Result<()> {
        let vdm = manager(
            &self.service_content().virtual_disk_manager,
            "VirtualDiskManager",
        )?;
        self.run_task(
            "CopyVirtualDisk_Task",
            &vdm,
            &[
                ("sourceName", Value::string(from)),
                ("sourceDatacenter", Value::moref(datacenter)),
                ("destName", Value::string(to)),
                ("destDatacenter", Value::moref(datacenter)),
                ("force", Value::bool(force)),
            ],
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_virtual_disk(&self, datacenter: &MoRef, path: &str) -> Result<()> {
        let vdm = manager(
            &self.service_content().virtual_disk_manager,
            "VirtualDiskManager",
        )?;
        self.run_task(
            "DeleteVirtualDisk_Task",
            &vdm,
            &[
                ("name", Value::string(path)),
                ("datacenter", Value::moref(datacenter)),
            ],
        )
        .await
        .map(|_| ())
    }

    /// A ContainerView over `container` for the given types.
    pub async fn create_container_view(
        &self,
        container: &MoRef,
        types: &[&str],
        recursive: bool,
    ) -> Result<MoRef> {
        let vm = manager(&self.service_content().view_manager, "ViewManager")?;
        self.call_moref(
            "CreateContainerView",
            &vm,
            &[
                ("container", Value::moref(container)),
                ("type", Value::strings(types.iter().copied())),
                ("recursive", Value::bool(recursive)),
            ],
        )
        .await
    }

    pub async fn destroy_view(&self, view: &MoRef) -> Result<()> {
        self.call("DestroyView", view, &[]).await.map(|_| ())
    }
}
