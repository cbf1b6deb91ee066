//! The image store's own vocabulary, for what neither Docker's API models nor the OCI
//! types describe: what a pull did, which containers use an image (the store knows no
//! containers; the VCH answers through [`ImageUsage`]), and the `filters` of list and
//! prune with dockerd's matching rules.
//!
//! The responses themselves (`ImageSummary`, `ImageInspect`, history, delete and prune
//! items, distribution inspect) are Docker's generated models (`bollard-stubs`, as
//! `docker_api::models`), built once in `store.rs`; re-exported here for the store's users.

use super::datastore::DatastorePath;
use super::digest::Digest;
use super::error::{ImageError, Result};
use std::collections::BTreeMap;

pub use docker_api::models::{
    DistributionInspect, HistoryResponseItem, ImageDeleteResponseItem, ImageInspect,
    ImagePruneResponse, ImageSummary,
};

/// What a pull did.
#[derive(Clone, Debug, PartialEq)]
pub struct PullOutcome {
    pub id: Digest,
    /// The reference as pulled (normalised, tag or digest).
    pub reference: String,
    /// Digest of what the reference resolved to (the index for multi-platform images).
    pub digest: Digest,
    /// False when the image and the reference were already there.
    pub downloaded: bool,
}

/// A container that uses an image (for removal and prune conflicts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerUse {
    pub id: String,
    pub running: bool,
}

/// Answers, for removal and prune, which images and layer disks containers still use.
/// The store knows nothing of containers; the VCH's container cache implements this.
pub trait ImageUsage: Send + Sync {
    /// Containers created from this image ID.
    fn containers_using(&self, image_id: &Digest) -> Vec<ContainerUse>;
    /// Whether some container VM still has this layer disk attached (a forced removal
    /// of a used image keeps the disks such containers need).
    fn layer_in_use(&self, disk: &DatastorePath) -> bool;
}

/// No containers at all (tests, tools).
pub struct NoContainers;

impl ImageUsage for NoContainers {
    fn containers_using(&self, _: &Digest) -> Vec<ContainerUse> {
        Vec::new()
    }
    fn layer_in_use(&self, _: &DatastorePath) -> bool {
        false
    }
}

/// `docker images --filter` (dangling, reference, label, before, since).
#[derive(Clone, Debug, Default)]
pub struct ListFilters {
    /// `docker images -a`: build intermediates too.
    pub all: bool,
    pub dangling: Option<bool>,
    pub reference: Vec<String>,
    pub label: Vec<String>,
    pub before: Option<String>,
    pub since: Option<String>,
}

impl ListFilters {
    /// From the decoded `filters` query (key → values), refusing unknown keys like dockerd.
    pub fn from_map(map: &BTreeMap<String, Vec<String>>) -> Result<ListFilters> {
        let mut f = ListFilters::default();
        for (k, vs) in map {
            match k.as_str() {
                "dangling" => {
                    for v in vs {
                        f.dangling = Some(parse_bool(v)?);
                    }
                }
                "reference" => f.reference.extend(vs.iter().cloned()),
                "label" => f.label.extend(vs.iter().cloned()),
                "before" => f.before = vs.last().cloned(),
                "since" => f.since = vs.last().cloned(),
                other => {
                    return Err(ImageError::InvalidArgument(format!(
                        "invalid filter '{other}'"
                    )))
                }
            }
        }
        Ok(f)
    }
}

/// `docker image prune --filter` (dangling, until, label).
#[derive(Clone, Debug)]
pub struct PruneFilters {
    /// true (default): only untagged images; false: every image no container uses.
    pub dangling: bool,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    pub label: Vec<String>,
}

impl Default for PruneFilters {
    fn default() -> Self {
        PruneFilters {
            dangling: true,
            until: None,
            label: Vec::new(),
        }
    }
}

impl PruneFilters {
    pub fn from_map(map: &BTreeMap<String, Vec<String>>) -> Result<PruneFilters> {
        let mut f = PruneFilters::default();
        for (k, vs) in map {
            match k.as_str() {
                "dangling" => {
                    for v in vs {
                        f.dangling = parse_bool(v)?;
                    }
                }
                "label" => f.label.extend(vs.iter().cloned()),
                "until" => {
                    if let Some(v) = vs.last() {
                        f.until = Some(parse_time(v)?);
                    }
                }
                other => {
                    return Err(ImageError::InvalidArgument(format!(
                        "invalid filter '{other}'"
                    )))
                }
            }
        }
        Ok(f)
    }
}

fn parse_bool(v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ImageError::InvalidArgument(format!(
            "invalid filter 'dangling={v}'"
        ))),
    }
}

/// `until`, read as dockerd does (docker_api::filters::parse_until).
fn parse_time(v: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    docker_api::filters::parse_until(v, chrono::Utc::now())
        .map_err(|e| ImageError::InvalidArgument(e.to_string()))
}

/// `label` filter terms: `key` or `key=value`.
pub fn labels_match(labels: &BTreeMap<String, String>, terms: &[String]) -> bool {
    terms.iter().all(|t| match t.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(t),
    })
}

/// Shell-style glob (`*`, `?`) as Go's path.Match uses for the reference filter
/// (`*` does not cross `/`).
pub fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_filters() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("busybox:*", "busybox:latest"));
        assert!(!glob("*", "a/b"));
        assert!(glob("a/*", "a/b"));
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(labels_match(&l, &["a".into(), "a=1".into()]));
        assert!(!labels_match(&l, &["a=2".into()]));
        let mut m = BTreeMap::new();
        m.insert("nope".to_string(), vec!["x".to_string()]);
        assert!(ListFilters::from_map(&m).is_err());
        assert!(parse_time("10m").is_ok());
        assert!(parse_time("2024-01-01T00:00:00Z").is_ok());
    }
}
