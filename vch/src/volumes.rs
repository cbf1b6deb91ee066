//! Named volumes: each one a thin VMDK on the datastore, `[ds] <vch>/volumes/<name>/<name>.vmdk`,
//! attached to the container VMs that mount it (independent-persistent, so snapshots and
//! clones leave it alone) and formatted ext4 by the tether on first use. The list of
//! volumes, with labels and options, is `volumes/index.json` on the same datastore, so it
//! survives the VCH like everything else.

use crate::images::datastore::Datastore;
use crate::target::Target;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use vsphere_client::MoRef;

const INDEX: &str = "index.json";
/// Default capacity; thin, so only what is written costs space.
const DEFAULT_KB: i64 = 8 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolumeRecord {
    pub name: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    #[serde(default)]
    pub options: HashMap<String, String>,
    pub capacity_kb: i64,
    /// Made for a `-v /path` mount; `docker rm -v` removes it with its container.
    #[serde(default)]
    pub anonymous: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{0}")]
    Invalid(String),
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("vSphere: {0}")]
    Vsphere(#[from] vsphere_client::Error),
    #[error("datastore: {0}")]
    Datastore(String),
}

pub struct VolumeStore {
    ds: Datastore,
    datacenter: MoRef,
    index: RwLock<BTreeMap<String, VolumeRecord>>,
    /// Serialises changes, so index writes never interleave.
    change: tokio::sync::Mutex<()>,
}

/// dockerd's rule for volume names.
pub fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    n.len() >= 2
        && c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
}

/// `size` option: bytes with an optional k/m/g/t suffix (binary units, as `docker`).
fn parse_size_kb(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.trim_end_matches('b').trim_end_matches('i');
    let (num, mul) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1i64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let bytes = num.trim().parse::<i64>().ok()?.checked_mul(mul)?;
    (bytes >= 1 << 20).then_some(bytes / 1024)
}

impl VolumeStore {
    pub async fn open(t: &Target) -> Result<VolumeStore, VolumeError> {
        let ds = Datastore::new(
            t.client.clone(),
            Some(&t.datacenter_name),
            Some(&t.datastore_name),
            &format!("{}/volumes", t.name),
        )
        .await
        .map_err(|e| VolumeError::Datastore(e.to_string()))?;
        ds.mkdir("")
            .await
            .map_err(|e| VolumeError::Datastore(e.to_string()))?;
        let index = match ds
            .get_bytes(INDEX)
            .await
            .map_err(|e| VolumeError::Datastore(e.to_string()))?
        {
            Some(raw) => serde_json::from_slice(&raw)
                .map_err(|e| VolumeError::Datastore(format!("volumes/{INDEX}: {e}")))?,
            None => BTreeMap::new(),
        };
        Ok(VolumeStore {
            ds,
            datacenter: t.datacenter.clone(),
            index: RwLock::new(index),
            change: tokio::sync::Mutex::new(()),
        })
    }

    /// `[ds] <vch>/volumes/<name>/<name>.vmdk`
    pub fn disk_path(&self, name: &str) -> String {
        self.ds.path(&format!("{name}/{name}.vmdk")).to_string()
    }

    pub fn get(&self, name: &str) -> Option<VolumeRecord> {
        self.index.read().get(name).cloned()
    }

    pub fn list(&self) -> Vec<VolumeRecord> {
        self.index.read().values().cloned().collect()
    }

    async fn save(&self) -> Result<(), VolumeError> {
        let raw = serde_json::to_vec_pretty(&*self.index.read())
            .map_err(|e| VolumeError::Datastore(e.to_string()))?;
        self.ds
            .put_bytes(INDEX, raw)
            .await
            .map_err(|e| VolumeError::Datastore(e.to_string()))
    }

    /// Creates a volume; an existing one of that name is returned as it is (dockerd).
    pub async fn create(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
        anonymous: bool,
    ) -> Result<VolumeRecord, VolumeError> {
        if !valid_name(name) {
            return Err(VolumeError::Invalid(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        let _g = self.change.lock().await;
        if let Some(v) = self.get(name) {
            return Ok(v);
        }
        let mut capacity_kb = DEFAULT_KB;
        for (k, v) in &options {
            match k.as_str() {
                "size" => {
                    capacity_kb = parse_size_kb(v).ok_or_else(|| {
                        VolumeError::Invalid(format!(
                            "volume option size={v}: not a size of at least 1 MiB (e.g. 512m, 2g)"
                        ))
                    })?
                }
                other => {
                    return Err(VolumeError::Invalid(format!(
                        "volume option {other:?} is not supported by this VCH (supported: size)"
                    )))
                }
            }
        }
        self.ds
            .mkdir(name)
            .await
            .map_err(|e| VolumeError::Datastore(e.to_string()))?;
        self.ds
            .client_ref()
            .create_virtual_disk(&self.datacenter, &self.disk_path(name), capacity_kb)
            .await?;
        let rec = VolumeRecord {
            name: name.to_string(),
            created_at: chrono_now(),
            labels,
            options,
            capacity_kb,
            anonymous,
        };
        self.index.write().insert(name.to_string(), rec.clone());
        if let Err(e) = self.save().await {
            self.index.write().remove(name);
            let _ = self.ds.delete(name).await;
            return Err(e);
        }
        Ok(rec)
    }

    /// Deletes the volume's disk and forgets it. The caller checks it is unused.
    pub async fn remove(&self, name: &str) -> Result<(), VolumeError> {
        let _g = self.change.lock().await;
        if self.get(name).is_none() {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        match self
            .ds
            .client_ref()
            .delete_virtual_disk(&self.datacenter, &self.disk_path(name))
            .await
        {
            Ok(()) => {}
            Err(e) if e.fault_type() == Some("FileNotFound") => {}
            Err(e) => return Err(e.into()),
        }
        self.ds
            .delete(name)
            .await
            .map_err(|e| VolumeError::Datastore(e.to_string()))?;
        let old = self.index.write().remove(name);
        if let Err(e) = self.save().await {
            if let Some(o) = old {
                self.index.write().insert(name.to_string(), o);
            }
            return Err(e);
        }
        Ok(())
    }
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        assert!(valid_name("data"));
        assert!(valid_name("my_vol-1.x"));
        assert!(!valid_name("a"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("../x"));
        assert_eq!(parse_size_kb("2g"), Some(2 << 20));
        assert_eq!(parse_size_kb("512M"), Some(512 << 10));
        assert_eq!(parse_size_kb("1GiB"), Some(1 << 20));
        assert_eq!(parse_size_kb("100"), None); // under 1 MiB
        assert_eq!(parse_size_kb("lots"), None);
    }
}
