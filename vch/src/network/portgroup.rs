//! Port groups in vSphere: found, created and removed through the vSphere API. A Docker
//! network is one port group: a standard one on `vSwitch0` of every host of the VCH's
//! cluster (`HostNetworkSystem.AddPortGroup`), or a distributed one on the switch the
//! bridge network's port group belongs to (`CreateDVPortgroup_Task`).

use crate::target::Target;
use vsphere_client::spec::NicBacking;
use vsphere_client::{MoRef, Value};

/// Where a port group is made, and how NICs connect to it.
#[derive(Debug, Clone)]
pub struct PortGroup {
    pub name: String,
    /// The port group's `Network` (or `DistributedVirtualPortgroup`) object.
    pub network: MoRef,
    pub backing: NicBacking,
}

impl PortGroup {
    pub fn is_distributed(&self) -> bool {
        matches!(self.backing, NicBacking::Distributed { .. })
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The hosts of the VCH's compute resource and their network systems.
async fn network_systems(t: &Target) -> Result<Vec<(MoRef, MoRef)>, String> {
    let c = &t.client;
    let cr = c
        .property(&t.pool, "owner")
        .await
        .map_err(err)?
        .and_then(|v| v.as_moref().cloned())
        .ok_or("the VCH's resource pool has no owner")?;
    let hosts: Vec<MoRef> = match c.property(&cr, "host").await.map_err(err)? {
        Some(Value::Array { items, .. }) => {
            items.iter().filter_map(|v| v.as_moref().cloned()).collect()
        }
        _ => vec![],
    };
    if hosts.is_empty() {
        return Err(format!("{} has no hosts to add port groups to", cr.value));
    }
    let mut out = Vec::new();
    for h in hosts {
        let ns = c
            .property(&h, "configManager")
            .await
            .map_err(err)?
            .and_then(|v| {
                v.as_obj()
                    .and_then(|o| o.get("networkSystem"))
                    .and_then(|n| n.as_moref().cloned())
            })
            .ok_or_else(|| format!("host {} has no network system", h.value))?;
        out.push((h, ns));
    }
    Ok(out)
}

/// The port group `name`, if it exists.
pub async fn find(t: &Target, name: &str) -> Result<Option<PortGroup>, String> {
    match t.client.network(&t.datacenter, name).await {
        Ok(network) => Ok(Some(PortGroup {
            name: name.to_string(),
            backing: backing(t, name, &network).await?,
            network,
        })),
        Err(vsphere_client::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(format!("port group {name}: {e}")),
    }
}

/// Finds `name`, or creates it: on the distributed switch of `like` when `like` is a
/// distributed port group, else as a standard port group on every host.
pub async fn ensure(t: &Target, name: &str, like: Option<&PortGroup>) -> Result<PortGroup, String> {
    if let Some(pg) = find(t, name).await? {
        return Ok(pg);
    }
    let c = &t.client;
    match like.filter(|l| l.is_distributed()) {
        Some(l) => {
            let dvs = switch_of(t, &l.network).await?;
            c.create_dv_portgroup(&dvs, name, 128)
                .await
                .map_err(|e| format!("create distributed port group {name}: {e}"))?;
        }
        None => {
            let systems = network_systems(t).await?;
            for (h, ns) in &systems {
                match c.add_port_group(ns, name, 0, "vSwitch0").await {
                    Ok(()) => {}
                    // An earlier, interrupted create made it already.
                    Err(e) if e.fault_type() == Some("AlreadyExists") => {}
                    Err(e) => {
                        return Err(format!("add port group {name} on host {}: {e}", h.value))
                    }
                }
            }
        }
    }
    tracing::info!(portgroup = %name, "created port group");
    find(t, name)
        .await?
        .ok_or_else(|| format!("port group {name} was created but cannot be found"))
}

/// Removes a port group this VCH made. Already gone is fine.
pub async fn remove(t: &Target, pg: &PortGroup) -> Result<(), String> {
    let c = &t.client;
    if pg.is_distributed() {
        match c.destroy(&pg.network).await {
            Ok(()) => {}
            Err(e) if e.fault_type() == Some("ManagedObjectNotFound") => {}
            Err(e) => return Err(format!("remove port group {}: {e}", pg.name)),
        }
    } else {
        for (h, ns) in network_systems(t).await? {
            match c.remove_port_group(&ns, &pg.name).await {
                Ok(()) => {}
                Err(e) if e.fault_type() == Some("NotFound") => {}
                Err(e) => {
                    return Err(format!(
                        "remove port group {} on host {}: {e}",
                        pg.name, h.value
                    ))
                }
            }
        }
    }
    tracing::info!(portgroup = %pg.name, "removed port group");
    Ok(())
}

async fn switch_of(t: &Target, network: &MoRef) -> Result<MoRef, String> {
    t.client
        .property(network, "config")
        .await
        .map_err(err)?
        .and_then(|v| {
            v.as_obj()
                .and_then(|o| o.get("distributedVirtualSwitch"))
                .and_then(|d| d.as_moref().cloned())
        })
        .ok_or_else(|| "distributed port group without a switch".to_string())
}

/// How a NIC connects to the port group: by network (standard) or by switch and key
/// (distributed).
async fn backing(t: &Target, name: &str, network: &MoRef) -> Result<NicBacking, String> {
    if network.ty != "DistributedVirtualPortgroup" {
        return Ok(NicBacking::Network {
            name: name.to_string(),
            network: network.clone(),
        });
    }
    let c = &t.client;
    let text = |v: Option<Value>| v.and_then(|v| v.as_text().map(str::to_string));
    let key = text(c.property(network, "key").await.map_err(err)?)
        .ok_or("distributed port group without a key")?;
    let dvs = switch_of(t, network).await?;
    let switch_uuid = text(c.property(&dvs, "uuid").await.map_err(err)?)
        .ok_or("distributed switch without a uuid")?;
    Ok(NicBacking::Distributed {
        switch_uuid,
        portgroup_key: key,
    })
}
