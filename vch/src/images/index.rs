//! The store's index (`repositories.json` on the datastore): images by ID, the
//! references (tags and digests) that name them, and the layers stored.
//!
//! The `Repositories` map has dockerd's shape (repository → reference → image ID), with
//! fully-qualified names. One VCH owns its index; writes are serialised in-process and
//! replace the file whole (upload to a temporary name, then move over it).

use super::digest::Digest;
use super::reference::Reference;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Index {
    #[serde(default)]
    pub version: u32,
    #[serde(rename = "Repositories", default)]
    pub repositories: BTreeMap<String, BTreeMap<String, Digest>>,
    #[serde(default)]
    pub images: BTreeMap<Digest, ImageRecord>,
    #[serde(default)]
    pub layers: BTreeMap<Digest, LayerRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlobRef {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// What the store keeps about an image (the config has the rest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Diff ids, lowest layer first.
    pub layers: Vec<Digest>,
    /// Uncompressed size of the layers (what `docker images` shows).
    pub size: u64,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
    /// The platform manifest it was pulled or loaded with, if any.
    #[serde(default)]
    pub manifest: Option<BlobRef>,
    /// When the store got it (RFC 3339).
    pub added: String,
    #[serde(default)]
    pub last_tag_time: Option<String>,
    /// The one disk that replaces the layer disks for containers, when the image has
    /// more layers than a VM can attach (see `StoreConfig::max_layers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flattened: Option<Digest>,
    /// The image a build step made this one from (dockerd's `Parent`): untagged parents
    /// are a build's intermediate images, hidden by `docker images` and removed with
    /// their last child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
    /// The build cache key of the step that made it (see `build::cache_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_key: Option<String>,
}

/// A stored layer disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    /// Bytes of the filesystem image (the flat VMDK extent).
    pub disk_size: u64,
    /// The blob it came from (compressed), when pulled.
    #[serde(default)]
    pub blob: Option<BlobRef>,
    #[serde(default)]
    pub filesystem: String,
}

impl Index {
    /// Whether a build made another image from `id`.
    pub fn has_children(&self, id: &Digest) -> bool {
        self.images.values().any(|r| r.parent.as_ref() == Some(id))
    }

    /// The image a build step with cache key `key` made from `parent`, if kept.
    pub fn built_from(&self, parent: Option<&Digest>, key: &str) -> Option<Digest> {
        self.images
            .iter()
            .find(|(_, r)| r.parent.as_ref() == parent && r.build_key.as_deref() == Some(key))
            .map(|(id, _)| id.clone())
    }

    pub fn references_to(&self, id: &Digest) -> Vec<Reference> {
        let mut out = Vec::new();
        for refs in self.repositories.values() {
            for (r, target) in refs {
                if target == id {
                    if let Ok(r) = Reference::parse_normalized(r) {
                        out.push(r);
                    }
                }
            }
        }
        out
    }

    /// `busybox:latest`-style tags, sorted.
    pub fn repo_tags(&self, id: &Digest) -> Vec<String> {
        let mut v: Vec<String> = self
            .references_to(id)
            .into_iter()
            .filter(|r| r.tag().is_some() && r.digest().is_none())
            .map(|r| r.familiar())
            .collect();
        v.sort();
        v
    }

    /// `busybox@sha256:...`, sorted.
    pub fn repo_digests(&self, id: &Digest) -> Vec<String> {
        let mut v: Vec<String> = self
            .references_to(id)
            .into_iter()
            .filter(|r| r.digest().is_some())
            .map(|r| r.familiar())
            .collect();
        v.sort();
        v
    }

    pub fn get_ref(&self, r: &Reference) -> Option<&Digest> {
        self.repositories.get(&r.name())?.get(&r.to_string())
    }

    /// Points `r` at `id`; returns the image it pointed at before, if another.
    pub fn set_ref(&mut self, r: &Reference, id: &Digest) -> Option<Digest> {
        let old = self
            .repositories
            .entry(r.name())
            .or_default()
            .insert(r.to_string(), id.clone());
        old.filter(|o| o != id)
    }

    pub fn remove_ref(&mut self, r: &Reference) -> Option<Digest> {
        let repo = self.repositories.get_mut(&r.name())?;
        let old = repo.remove(&r.to_string());
        if repo.is_empty() {
            self.repositories.remove(&r.name());
        }
        old
    }

    /// Resolves what a user typed: a reference first (`busybox` means
    /// `busybox:latest`), then a full or abbreviated image ID, as dockerd does.
    pub fn lookup(&self, name: &str) -> Option<Digest> {
        if let Ok(r) = Reference::parse(name) {
            if let Some(id) = self.get_ref(&r) {
                return Some(id.clone());
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut found = self
            .images
            .keys()
            .filter(|id| id.hex().starts_with(&hex.to_ascii_lowercase()));
        let first = found.next()?;
        // An ambiguous prefix names nothing.
        found.next().is_none().then(|| first.clone())
    }

    /// Whether any image other than `except` uses the layer.
    pub fn layer_used(&self, diff_id: &Digest, except: Option<&Digest>) -> bool {
        self.images.iter().any(|(id, rec)| {
            Some(id) != except
                && (rec.layers.contains(diff_id) || rec.flattened.as_ref() == Some(diff_id))
        })
    }
}
