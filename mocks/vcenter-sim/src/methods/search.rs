//! SearchIndex: inventory paths, child lookup, and UUID lookup.

use super::{arg_moref, arg_text};
use crate::model::{Inventory, Kind};
use crate::sim::Sim;
use crate::soap::{Fault, Reply};
use vsphere_client::value::{MoRef, Value};
use vsphere_client::xml::Element;

/// A direct child by name, as `FindChild` and inventory paths see the tree.
pub fn child_by_name(inv: &Inventory, parent: &MoRef, name: &str) -> Option<MoRef> {
    let e = inv.get(parent)?;
    inv.children(e)
        .into_iter()
        .find(|c| inv.get(c).map(|ce| ce.name == name).unwrap_or(false))
}

/// Resolves `DC0/vm/folder/vm1` (leading slash optional) from the root folder.
pub fn resolve_inventory_path(inv: &Inventory, path: &str) -> Option<MoRef> {
    let mut cur = inv.root_folder.clone();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        // vSphere escapes '/' in names as %2f.
        let name = part.replace("%2f", "/").replace("%2F", "/");
        cur = child_by_name(inv, &cur, &name)?;
    }
    Some(cur)
}

impl Sim {
    pub(crate) fn find_by_inventory_path(&self, a: &Element) -> Result<Reply, Fault> {
        let path = arg_text(a, "inventoryPath")?;
        let st = self.state.read();
        Ok(match resolve_inventory_path(&st.inv, path) {
            Some(m) => Reply::One(Value::MoRef(m)),
            None => Reply::Void,
        })
    }

    pub(crate) fn find_child(&self, a: &Element) -> Result<Reply, Fault> {
        let entity = arg_moref(a, "entity")?;
        let name = arg_text(a, "name")?;
        let st = self.state.read();
        if st.inv.get(&entity).is_none() {
            return Err(Fault::not_found(&entity));
        }
        Ok(match child_by_name(&st.inv, &entity, name) {
            Some(m) => Reply::One(Value::MoRef(m)),
            None => Reply::Void,
        })
    }

    pub(crate) fn find_by_uuid(&self, a: &Element, all: bool) -> Result<Reply, Fault> {
        let uuid = arg_text(a, "uuid")?.to_ascii_lowercase();
        let vm_search = a.child_bool("vmSearch").unwrap_or(false);
        let instance = a.child_bool("instanceUuid").unwrap_or(false);
        let st = self.state.read();
        let dc = a.child("datacenter").and_then(MoRef::from_element);
        if let Some(dc) = &dc {
            if st.inv.get(dc).is_none() {
                return Err(Fault::not_found(dc));
            }
        }
        let mut found: Vec<MoRef> = st
            .inv
            .entities
            .values()
            .filter(|e| match &e.kind {
                Kind::Vm(v) if vm_search => {
                    let id = if instance { &v.instance_uuid } else { &v.uuid };
                    id.eq_ignore_ascii_case(&uuid)
                }
                Kind::Host(h) if !vm_search => h.uuid.eq_ignore_ascii_case(&uuid),
                _ => false,
            })
            .filter(|e| match &dc {
                Some(dc) => st.inv.datacenter_of(&e.moref).as_ref() == Some(dc),
                None => true,
            })
            .map(|e| e.moref.clone())
            .collect();
        found.sort();
        if all {
            return Ok(Reply::Many(found.into_iter().map(Value::MoRef).collect()));
        }
        Ok(match found.into_iter().next() {
            Some(m) => Reply::One(Value::MoRef(m)),
            None => Reply::Void,
        })
    }
}
