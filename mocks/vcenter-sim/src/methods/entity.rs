//! Folders, resource pools, port groups, and the ManagedEntity methods Rename/Destroy.

use super::{arg_elem, arg_text, Ctx};
use crate::model::*;
use crate::props::{self, apply_alloc};
use crate::sim::Sim;
use crate::soap::{Fault, Reply};
use crate::state::State;
use std::sync::Arc;
use vsphere_client::value::{MoRef, Value};
use vsphere_client::xml::Element;

/// Validates an entity name (non-empty, at most 80 characters) and returns it escaped
/// as vSphere stores it: `%` → `%25`, `/` → `%2f`, `\` → `%5c`. Escaped names are also
/// safe as datastore file and directory names.
pub fn check_name(name: &str) -> Result<String, Fault> {
    if name.trim().is_empty() || name.chars().count() > 80 {
        return Err(
            Fault::new("InvalidName", format!("The name '{name}' is invalid."))
                .with("name", Value::string(name)),
        );
    }
    Ok(name
        .replace('%', "%25")
        .replace('/', "%2f")
        .replace('\\', "%5c"))
}

/// A sibling with the same name under `parent`, if any.
pub fn sibling_named(
    inv: &Inventory,
    parent: &MoRef,
    name: &str,
    except: Option<&MoRef>,
) -> Option<MoRef> {
    let p = inv.get(parent)?;
    inv.children(p)
        .into_iter()
        .find(|c| Some(c) != except && inv.get(c).map(|e| e.name == name).unwrap_or(false))
}

impl Sim {
    pub(crate) fn create_folder(&self, this: &MoRef, a: &Element) -> Result<Reply, Fault> {
        let name = check_name(arg_text(a, "name")?)?;
        self.write(|st| {
            let inv = &mut st.inv;
            let child_type = match inv.get(this).map(|e| &e.kind) {
                Some(Kind::Folder(f)) => f.child_type.clone(),
                _ => return Err(Fault::not_found(this)),
            };
            if let Some(existing) = sibling_named(inv, this, &name, None) {
                return Err(Fault::duplicate_name(&name, &existing));
            }
            let moref = MoRef::new("Folder", inv.new_id("group"));
            inv.insert(Entity {
                moref: moref.clone(),
                name,
                parent: Some(this.clone()),
                kind: Kind::Folder(FolderData {
                    child_type,
                    children: vec![],
                }),
            });
            if let Some(Entity {
                kind: Kind::Folder(f),
                ..
            }) = inv.get_mut(this)
            {
                f.children.push(moref.clone());
            }
            Ok(Reply::One(Value::MoRef(moref)))
        })
    }

    /// `MoveIntoFolder_Task(list)`: entities move under this folder (govc `object.mv`).
    /// vCenter's faults: `NotSupported` for a type the folder does not hold,
    /// `InvalidFolder` for a folder moved into itself or below itself, `DuplicateName`.
    pub(crate) fn move_into_folder(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let list: Vec<MoRef> = a
            .children_named("list")
            .filter_map(MoRef::from_element)
            .collect();
        if !matches!(
            self.read_inv(|inv| inv.get(this).map(|e| matches!(e.kind, Kind::Folder(_)))),
            Some(true)
        ) {
            return Err(Fault::not_found(this));
        }
        let this = this.clone();
        self.run_task(
            ctx,
            "MoveIntoFolder_Task",
            Some(&this.clone()),
            move |sim| async move {
                sim.write(|st| {
                    let inv = &mut st.inv;
                    let child_type = match inv.get(&this).map(|e| &e.kind) {
                        Some(Kind::Folder(f)) => f.child_type.clone(),
                        _ => return Err(Fault::not_found(&this)),
                    };
                    // Checked whole before anything moves.
                    for m in &list {
                        let e = inv.get(m).ok_or_else(|| Fault::not_found(m))?;
                        if !child_type.iter().any(|t| t == &m.ty) {
                            return Err(Fault::not_supported(format!(
                                "a {} cannot be moved into folder {}",
                                m.ty, this.value
                            )));
                        }
                        let mut up = Some(this.clone());
                        while let Some(f) = up {
                            if &f == m {
                                return Err(Fault::new(
                                    "InvalidFolder",
                                    format!("folder {} cannot move into itself", m.value),
                                )
                                .with("target", Value::MoRef(m.clone())));
                            }
                            up = inv.get(&f).and_then(|e| e.parent.clone());
                        }
                        if let Some(existing) = sibling_named(inv, &this, &e.name, Some(m)) {
                            return Err(Fault::duplicate_name(&e.name, &existing));
                        }
                    }
                    for m in &list {
                        remove_from_parent(inv, m);
                        if let Some(e) = inv.get_mut(m) {
                            e.parent = Some(this.clone());
                            if let Kind::Vm(v) = &mut e.kind {
                                v.folder = this.clone();
                                v.change_version += 1;
                            }
                        }
                        if let Some(Kind::Folder(f)) = inv.get_mut(&this).map(|e| &mut e.kind) {
                            f.children.push(m.clone());
                        }
                    }
                    Ok(None)
                })
            },
        )
    }

    pub(crate) fn create_resource_pool(&self, this: &MoRef, a: &Element) -> Result<Reply, Fault> {
        let name = check_name(arg_text(a, "name")?)?;
        let spec = arg_elem(a, "spec")?;
        let spec = Value::from_element(spec);
        let spec = spec.as_obj().cloned().unwrap_or_default();
        self.write(|st| {
            let inv = &mut st.inv;
            let owner = match inv.get(this).map(|e| &e.kind) {
                Some(Kind::Pool(p)) => p.owner.clone(),
                _ => return Err(Fault::not_found(this)),
            };
            if let Some(existing) = sibling_named(inv, this, &name, None) {
                return Err(Fault::duplicate_name(&name, &existing));
            }
            let mut cpu = Allocation::default();
            let mut memory = Allocation::default();
            if let Some(c) = spec.get("cpuAllocation").and_then(Value::as_obj) {
                apply_alloc(&mut cpu, c);
            }
            if let Some(m) = spec.get("memoryAllocation").and_then(Value::as_obj) {
                apply_alloc(&mut memory, m);
            }
            let moref = MoRef::new("ResourcePool", inv.new_id("resgroup"));
            inv.insert(Entity {
                moref: moref.clone(),
                name,
                parent: Some(this.clone()),
                kind: Kind::Pool(PoolData {
                    owner,
                    children: vec![],
                    vms: vec![],
                    cpu,
                    memory,
                    change_version: 1,
                }),
            });
            if let Some(Entity {
                kind: Kind::Pool(p),
                ..
            }) = inv.get_mut(this)
            {
                p.children.push(moref.clone());
            }
            Ok(Reply::One(Value::MoRef(moref)))
        })
    }

    pub(crate) fn update_pool_config(&self, this: &MoRef, a: &Element) -> Result<Reply, Fault> {
        let name = a
            .child_text("name")
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        let name = name.map(|n| check_name(&n)).transpose()?;
        let config = a.child("config").map(Value::from_element);
        self.write(|st| {
            let inv = &mut st.inv;
            let parent = inv.get(this).and_then(|e| e.parent.clone());
            if let (Some(n), Some(p)) = (&name, &parent) {
                if let Some(existing) = sibling_named(inv, p, n, Some(this)) {
                    return Err(Fault::duplicate_name(n, &existing));
                }
            }
            let Some(e) = inv.get_mut(this) else {
                return Err(Fault::not_found(this));
            };
            if let Some(n) = name {
                e.name = n;
            }
            let Kind::Pool(p) = &mut e.kind else {
                return Err(Fault::not_found(this));
            };
            if let Some(cfg) = config.as_ref().and_then(Value::as_obj) {
                // changeVersion guards against lost updates, as on vCenter.
                if let Some(v) = cfg.text("changeVersion") {
                    if v.trim() != p.change_version.to_string() {
                        return Err(Fault::new(
                            "ConcurrentAccess",
                            "Cannot complete operation due to concurrent modification by another operation.",
                        ));
                    }
                }
                if let Some(c) = cfg.get("cpuAllocation").and_then(Value::as_obj) {
                    apply_alloc(&mut p.cpu, c);
                }
                if let Some(m) = cfg.get("memoryAllocation").and_then(Value::as_obj) {
                    apply_alloc(&mut p.memory, m);
                }
            }
            p.change_version += 1;
            Ok(Reply::Void)
        })
    }

    pub(crate) fn rename(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let new_name = check_name(arg_text(a, "newName")?)?;
        if self.read_inv(|inv| inv.get(this).is_none()) {
            return Err(Fault::not_found(this));
        }
        let this = this.clone();
        self.run_task(
            ctx,
            "Rename_Task",
            Some(&this.clone()),
            move |sim| async move {
                sim.write(|st| {
                    let inv = &mut st.inv;
                    let parent = inv.get(&this).and_then(|e| e.parent.clone());
                    if let Some(p) = parent {
                        if let Some(existing) = sibling_named(inv, &p, &new_name, Some(&this)) {
                            return Err(Fault::duplicate_name(&new_name, &existing));
                        }
                    }
                    let e = inv.get_mut(&this).ok_or_else(|| Fault::not_found(&this))?;
                    e.name = new_name;
                    if let Kind::Vm(v) = &mut e.kind {
                        v.change_version += 1;
                    }
                    Ok(None)
                })
            },
        )
    }

    pub(crate) fn destroy(self: &Arc<Self>, ctx: &Ctx, this: &MoRef) -> Result<Reply, Fault> {
        let kind_ok = self.read_inv(|inv| match inv.get(this).map(|e| &e.kind) {
            None => Err(Fault::not_found(this)),
            Some(Kind::Vm(_) | Kind::Pool(_) | Kind::Folder(_) | Kind::DvPortgroup(_)) => Ok(()),
            Some(_) => Err(Fault::not_supported(format!(
                "Destroy_Task on {} is not supported by vcenter-sim",
                this.ty
            ))),
        });
        kind_ok?;
        let this = this.clone();
        self.run_task(
            ctx,
            "Destroy_Task",
            Some(&this.clone()),
            move |sim| async move {
                match this.ty.as_str() {
                    "VirtualMachine" => sim.destroy_vm_now(&this).await,
                    "Folder" => sim.destroy_folder_tree(&this).await,
                    _ => sim.write(|st| destroy_container(st, &this)),
                }?;
                Ok(None)
            },
        )
    }

    pub(crate) fn add_port_group(&self, this: &MoRef, a: &Element) -> Result<Reply, Fault> {
        let spec = arg_elem(a, "portgrp")?;
        let name = spec
            .child_text("name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Fault::invalid_argument("portgrp.name"))?
            .to_string();
        let vlan = spec.child_i64("vlanId").unwrap_or(0);
        if !(0..=4095).contains(&vlan) {
            return Err(Fault::invalid_argument("portgrp.vlanId"));
        }
        let vswitch = spec
            .child_text("vswitchName")
            .unwrap_or("vSwitch0")
            .to_string();
        if vswitch != "vSwitch0" {
            return Err(Fault::new(
                "NotFound",
                format!("The virtual switch '{vswitch}' was not found."),
            ));
        }
        let host = MoRef::new(
            "HostSystem",
            this.value.trim_start_matches("networkSystem-"),
        );
        self.write(|st| {
            let inv = &mut st.inv;
            let (cluster, exists) = match inv.get(&host).map(|e| &e.kind) {
                Some(Kind::Host(h)) => (
                    h.cluster.clone(),
                    h.portgroups.iter().any(|p| p.name == name),
                ),
                _ => return Err(Fault::not_found(this)),
            };
            if exists {
                return Err(Fault::new(
                    "AlreadyExists",
                    format!("The specified key, name, or identifier '{name}' already exists."),
                )
                .with("name", Value::string(&name)));
            }
            // One Network entity per port-group name per datacenter, as vCenter shows it.
            let dc = inv
                .datacenter_of(&host)
                .ok_or_else(|| Fault::not_found(&host))?;
            let net_folder = match inv.get(&dc).map(|e| &e.kind) {
                Some(Kind::Datacenter(d)) => d.network_folder.clone(),
                _ => return Err(Fault::not_found(&dc)),
            };
            let existing = inv
                .all_of_kind("Network")
                .find(|e| e.name == name && inv.datacenter_of(&e.moref).as_ref() == Some(&dc))
                .map(|e| e.moref.clone());
            let net = match existing {
                Some(n) => n,
                None => {
                    let n = MoRef::new("Network", inv.new_id("network"));
                    inv.insert(Entity {
                        moref: n.clone(),
                        name: name.clone(),
                        parent: Some(net_folder.clone()),
                        kind: Kind::Network(NetworkData { hosts: vec![] }),
                    });
                    if let Some(Entity {
                        kind: Kind::Folder(f),
                        ..
                    }) = inv.get_mut(&net_folder)
                    {
                        f.children.push(n.clone());
                    }
                    n
                }
            };
            if let Some(Entity {
                kind: Kind::Network(nd),
                ..
            }) = inv.get_mut(&net)
            {
                if !nd.hosts.contains(&host) {
                    nd.hosts.push(host.clone());
                }
            }
            if let Some(Entity {
                kind: Kind::Host(h),
                ..
            }) = inv.get_mut(&host)
            {
                h.portgroups.push(HostPortGroup {
                    name: name.clone(),
                    vlan_id: vlan,
                    vswitch,
                });
                if !h.networks.contains(&net) {
                    h.networks.push(net.clone());
                }
            }
            if let Some(Entity {
                kind: Kind::Cluster(c),
                ..
            }) = inv.get_mut(&cluster)
            {
                if !c.networks.contains(&net) {
                    c.networks.push(net.clone());
                }
            }
            Ok(Reply::Void)
        })
    }

    pub(crate) fn remove_port_group(&self, this: &MoRef, a: &Element) -> Result<Reply, Fault> {
        let name = arg_text(a, "pgName")?.to_string();
        let host = MoRef::new(
            "HostSystem",
            this.value.trim_start_matches("networkSystem-"),
        );
        self.write(|st| {
            let inv = &mut st.inv;
            let Some(Entity {
                kind: Kind::Host(h),
                ..
            }) = inv.get(&host)
            else {
                return Err(Fault::not_found(this));
            };
            if !h.portgroups.iter().any(|p| p.name == name) {
                return Err(Fault::new(
                    "NotFound",
                    format!("The port group '{name}' was not found on this host."),
                ));
            }
            let cluster = h.cluster.clone();
            let dc = inv.datacenter_of(&host);
            let net = inv
                .all_of_kind("Network")
                .find(|e| e.name == name && inv.datacenter_of(&e.moref) == dc)
                .map(|e| e.moref.clone());
            if let Some(Entity {
                kind: Kind::Host(h),
                ..
            }) = inv.get_mut(&host)
            {
                h.portgroups.retain(|p| p.name != name);
                if let Some(n) = &net {
                    h.networks.retain(|x| x != n);
                }
            }
            if let Some(n) = net {
                let orphan = match inv.get_mut(&n) {
                    Some(Entity {
                        kind: Kind::Network(nd),
                        ..
                    }) => {
                        nd.hosts.retain(|x| x != &host);
                        nd.hosts.is_empty()
                    }
                    _ => false,
                };
                if orphan && inv.vms_using(&n).is_empty() {
                    remove_from_parent(inv, &n);
                    inv.remove(&n);
                    if let Some(Entity {
                        kind: Kind::Cluster(c),
                        ..
                    }) = inv.get_mut(&cluster)
                    {
                        c.networks.retain(|x| x != &n);
                    }
                }
            }
            Ok(Reply::Void)
        })
    }

    pub(crate) fn create_dv_portgroup(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let spec = arg_elem(a, "spec")?;
        let name = spec
            .child_text("name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Fault::invalid_argument("spec.name"))?
            .to_string();
        let name = check_name(&name)?;
        let num_ports = spec.child_i64("numPorts").unwrap_or(8);
        let binding = spec
            .child_text("type")
            .unwrap_or("earlyBinding")
            .to_string();
        let vlan = spec
            .child("defaultPortConfig")
            .and_then(|c| c.child("vlan"))
            .and_then(|v| v.child_i64("vlanId"))
            .unwrap_or(0);
        if self.read_inv(|inv| inv.get(this).is_none()) {
            return Err(Fault::not_found(this));
        }
        let dvs = this.clone();
        self.run_task(
            ctx,
            "CreateDVPortgroup_Task",
            Some(&dvs.clone()),
            move |sim| async move {
                sim.write(|st| {
                    let inv = &mut st.inv;
                    let parent = inv
                        .get(&dvs)
                        .and_then(|e| e.parent.clone())
                        .ok_or_else(|| Fault::not_found(&dvs))?;
                    let dc = inv.datacenter_of(&dvs);
                    if let Some(e) = inv.entities.values().find(|e| {
                        matches!(e.kind, Kind::Network(_) | Kind::DvPortgroup(_))
                            && e.name == name
                            && inv.datacenter_of(&e.moref) == dc
                    }) {
                        return Err(Fault::duplicate_name(&name, &e.moref));
                    }
                    let id = inv.new_id("dvportgroup");
                    let pg = MoRef::new("DistributedVirtualPortgroup", id.clone());
                    inv.insert(Entity {
                        moref: pg.clone(),
                        name,
                        parent: Some(parent.clone()),
                        kind: Kind::DvPortgroup(DvPortgroupData {
                            dvs: dvs.clone(),
                            key: id,
                            num_ports,
                            binding,
                            vlan_id: vlan,
                        }),
                    });
                    if let Some(Entity {
                        kind: Kind::Folder(f),
                        ..
                    }) = inv.get_mut(&parent)
                    {
                        f.children.push(pg.clone());
                    }
                    if let Some(Entity {
                        kind: Kind::DvSwitch(d),
                        ..
                    }) = inv.get_mut(&dvs)
                    {
                        d.portgroups.push(pg.clone());
                    }
                    Ok(None)
                })
            },
        )
    }
}

/// The root folder and a datacenter's vm/host/datastore/network folders.
fn is_system_folder(e: &Entity) -> bool {
    e.parent.as_ref().map(|p| p.ty != "Folder").unwrap_or(true)
}

impl Sim {
    /// Folder.Destroy_Task: destroys everything inside (VMs must be powered off, as on
    /// vSphere), then the folder. Nothing is touched if any VM is still running.
    pub(crate) async fn destroy_folder_tree(self: &Arc<Self>, folder: &MoRef) -> Result<(), Fault> {
        let (vms, folders) = self.read_inv(|inv| {
            let root = inv.get(folder).ok_or_else(|| Fault::not_found(folder))?;
            if is_system_folder(root) {
                return Err(Fault::invalid_request("system folders cannot be destroyed"));
            }
            let (mut vms, mut folders) = (Vec::new(), Vec::new());
            let mut stack = vec![folder.clone()];
            while let Some(f) = stack.pop() {
                folders.push(f.clone());
                let Some(e) = inv.get(&f) else { continue };
                for c in inv.children(e) {
                    match c.ty.as_str() {
                        "Folder" => stack.push(c),
                        "VirtualMachine" => {
                            if let Some(v) = inv.vm(&c) {
                                if v.power_state != PowerState::PoweredOff {
                                    return Err(Fault::invalid_power_state(
                                        v.power_state.wire(),
                                        Some("poweredOff"),
                                    ));
                                }
                            }
                            vms.push(c);
                        }
                        other => {
                            return Err(Fault::new(
                                "ResourceInUse",
                                format!("folder holds a {other}, which Destroy_Task cannot remove"),
                            ))
                        }
                    }
                }
            }
            Ok((vms, folders))
        })?;
        for vm in &vms {
            self.destroy_vm_now(vm).await?;
        }
        self.write(|st| {
            // Innermost folders first, so each is empty when it goes.
            for f in folders.iter().rev() {
                remove_from_parent(&mut st.inv, f);
                st.inv.remove(f);
            }
        });
        Ok(())
    }
}

/// Unlinks an entity from whatever lists it as a child.
pub fn remove_from_parent(inv: &mut Inventory, m: &MoRef) {
    let Some(parent) = inv.get(m).and_then(|e| e.parent.clone()) else {
        return;
    };
    if let Some(p) = inv.get_mut(&parent) {
        match &mut p.kind {
            Kind::Folder(f) => f.children.retain(|c| c != m),
            Kind::Pool(pd) => {
                pd.children.retain(|c| c != m);
                pd.vms.retain(|c| c != m);
            }
            _ => {}
        }
    }
}

/// Destroys a pool (its VMs and child pools move to the parent pool, as vSphere does),
/// an empty folder, or a distributed port group with no VMs on it.
fn destroy_container(st: &mut State, m: &MoRef) -> Result<(), Fault> {
    let inv = &mut st.inv;
    let e = inv.get(m).cloned().ok_or_else(|| Fault::not_found(m))?;
    match &e.kind {
        Kind::Pool(p) => {
            let parent = e.parent.clone().ok_or_else(|| Fault::not_found(m))?;
            if parent.ty != "ResourcePool" {
                return Err(Fault::invalid_request(
                    "the root resource pool of a cluster cannot be destroyed",
                ));
            }
            for vm in &p.vms {
                if let Some(v) = inv.vm_mut(vm) {
                    v.pool = parent.clone();
                }
            }
            for child in &p.children {
                if let Some(c) = inv.get_mut(child) {
                    c.parent = Some(parent.clone());
                }
            }
            if let Some(Entity {
                kind: Kind::Pool(pp),
                ..
            }) = inv.get_mut(&parent)
            {
                pp.children.retain(|c| c != m);
                pp.children.extend(p.children.iter().cloned());
                pp.vms.extend(p.vms.iter().cloned());
            }
            inv.remove(m);
        }
        Kind::Folder(f) => {
            if !f.children.is_empty() {
                return Err(Fault::new(
                    "ResourceInUse",
                    format!("The folder '{}' is not empty.", e.name),
                ));
            }
            if is_system_folder(&e) {
                return Err(Fault::invalid_request("system folders cannot be destroyed"));
            }
            remove_from_parent(inv, m);
            inv.remove(m);
        }
        Kind::DvPortgroup(pg) => {
            if !inv.vms_using(m).is_empty() {
                return Err(Fault::new(
                    "ResourceInUse",
                    format!("The port group '{}' is in use.", e.name),
                ));
            }
            let dvs = pg.dvs.clone();
            remove_from_parent(inv, m);
            if let Some(Entity {
                kind: Kind::DvSwitch(d),
                ..
            }) = inv.get_mut(&dvs)
            {
                d.portgroups.retain(|p| p != m);
            }
            inv.remove(m);
        }
        _ => return Err(Fault::not_supported("Destroy_Task on this object")),
    }
    let _ = props::now;
    Ok(())
}
