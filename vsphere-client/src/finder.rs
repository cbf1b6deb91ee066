//! Finding inventory objects by path and by name, with govc-like defaults: when a
//! datacenter, datastore or cluster is not named and there is exactly one, use it.

use crate::client::Client;
use crate::collector::FilterSpec;
use crate::error::{Error, Result};
use crate::value::{MoRef, Value};

impl Client {
    fn search_index(&self) -> Result<MoRef> {
        self.service_content()
            .search_index
            .clone()
            .ok_or_else(|| Error::Decode("the server has no SearchIndex".into()))
    }

    /// FindByInventoryPath: `/DC0/host/Cluster0/Resources/vch1` (leading slash optional).
    pub async fn find_by_path(&self, path: &str) -> Result<Option<MoRef>> {
        let si = self.search_index()?;
        let v = self
            .call_value(
                "FindByInventoryPath",
                &si,
                &[("inventoryPath", Value::string(path.trim_start_matches('/')))],
            )
            .await?;
        Ok(v.and_then(|v| v.as_moref().cloned()))
    }

    /// Like `find_by_path`, but a missing object is an error naming the path.
    pub async fn must_find(&self, what: &'static str, path: &str) -> Result<MoRef> {
        self.find_by_path(path)
            .await?
            .ok_or_else(|| Error::NotFound {
                what,
                path: path.to_string(),
            })
    }

    pub async fn find_child(&self, parent: &MoRef, name: &str) -> Result<Option<MoRef>> {
        let si = self.search_index()?;
        let v = self
            .call_value(
                "FindChild",
                &si,
                &[
                    ("entity", Value::moref(parent)),
                    ("name", Value::string(name)),
                ],
            )
            .await?;
        Ok(v.and_then(|v| v.as_moref().cloned()))
    }

    /// Every object of `ty` under `container` with its name, sorted by name.
    pub async fn list(&self, container: &MoRef, ty: &str) -> Result<Vec<(String, MoRef)>> {
        let view = self.create_container_view(container, &[ty], true).await?;
        let got = self
            .retrieve(&FilterSpec::view(&view, ty, &["name"]), None)
            .await;
        let _ = self.destroy_view(&view).await;
        let mut out: Vec<(String, MoRef)> = got?
            .into_iter()
            .map(|oc| (oc.text("name").unwrap_or_default().to_string(), oc.obj))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn pick(
        &self,
        container: &MoRef,
        ty: &str,
        what: &'static str,
        name: Option<&str>,
    ) -> Result<(String, MoRef)> {
        let all = self.list(container, ty).await?;
        match name {
            Some(n) => all
                .into_iter()
                .find(|(name, _)| name == n)
                .ok_or_else(|| Error::NotFound {
                    what,
                    path: n.to_string(),
                }),
            None => match all.len() {
                1 => Ok(all.into_iter().next().expect("one element")),
                0 => Err(Error::NotFound {
                    what,
                    path: "(any)".into(),
                }),
                _ => Err(Error::Ambiguous {
                    what,
                    detail: format!(
                        "{} of them ({}); name one",
                        all.len(),
                        all.iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
            },
        }
    }

    /// The named datacenter, or the only one.
    pub async fn datacenter(&self, name: Option<&str>) -> Result<(String, MoRef)> {
        let root = self.service_content().root_folder.clone();
        self.pick(&root, "Datacenter", "datacenter", name).await
    }

    /// The named datastore of a datacenter, or its only one.
    pub async fn datastore(
        &self,
        datacenter: &MoRef,
        name: Option<&str>,
    ) -> Result<(String, MoRef)> {
        self.pick(datacenter, "Datastore", "datastore", name).await
    }

    /// The named cluster/compute resource of a datacenter, or its only one.
    pub async fn compute_resource(
        &self,
        datacenter: &MoRef,
        name: Option<&str>,
    ) -> Result<(String, MoRef)> {
        self.pick(datacenter, "ComputeResource", "compute resource", name)
            .await
    }

    /// A network (standard or distributed port group) by name.
    pub async fn network(&self, datacenter: &MoRef, name: &str) -> Result<MoRef> {
        self.pick(datacenter, "Network", "network", Some(name))
            .await
            .map(|(_, m)| m)
    }
}
