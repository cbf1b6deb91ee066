//! `docker network connect` and `disconnect`: a container's NICs and the interfaces of
//! its spec change together, in one reconfigure, so vSphere never holds one without the
//! other. A running VM gets its NICs hot-added or removed; the backend then tells its
//! tether the new interface list.

use super::error::{Error, Result};
use super::platform::{SpecChange, VmChange};
use super::Translator;
use crate::containers::Status;
use container_vm::spec::Interface;
use vsphere_client::spec::Device;

impl Translator {
    /// Gives container `id` the interfaces `interfaces` and the /etc/hosts lines `hosts`
    /// (links of a connect): `add` are the NICs of the new interfaces, `remove` the MACs
    /// of those that go.
    pub async fn set_interfaces(
        &self,
        id: &str,
        interfaces: Vec<Interface>,
        hosts: Vec<String>,
        add: Vec<Device>,
        remove: Vec<String>,
    ) -> Result<()> {
        let c = self.get(id)?;
        if c.status == Status::Paused {
            return Err(Error::Conflict(format!(
                "container {} is paused (its VM is suspended): unpause it first",
                c.meta.name
            )));
        }
        let mut new = c.spec.clone();
        new.interfaces = interfaces;
        new.hosts = hosts;
        let change = VmChange {
            spec: Some(SpecChange {
                old: c.spec.clone(),
                new: new.clone(),
            }),
            add_nics: add,
            remove_nics: remove,
            ..Default::default()
        };
        self.platform().reconfigure(&c.vm, &change).await?;
        self.update(id, |c| {
            c.spec.interfaces = new.interfaces;
            c.spec.hosts = new.hosts;
        });
        self.bump();
        Ok(())
    }
}
