//! Responses shaped like the Docker Engine API's (field names and units as dockerd
//! writes them), so the routes can serialise them as they are.

use super::datastore::DatastorePath;
use super::digest::Digest;
use super::error::{ImageError, Result};
use super::manifest::ContainerConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET /images/json` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    pub size: i64,
    pub shared_size: i64,
    pub labels: BTreeMap<String, String>,
    pub containers: i64,
}

/// `GET /images/{name}/json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    /// RFC 3339 with nanoseconds.
    pub created: Option<String>,
    pub docker_version: String,
    pub author: String,
    pub config: Option<ContainerConfig>,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    pub size: i64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFsInfo,
    pub metadata: Metadata,
    /// Not in Docker's API: the layer disks, lowest first (also in `GraphDriver.Data`).
    #[serde(skip)]
    pub layer_disks: Vec<DatastorePath>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFsInfo {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Metadata {
    pub last_tag_time: Option<String>,
}

/// `GET /images/{name}/history` item (newest first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: i64,
    pub comment: String,
}

/// `DELETE /images/{name}` and prune item: exactly one field is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

impl DeleteItem {
    pub fn untagged(s: impl Into<String>) -> Self {
        DeleteItem {
            untagged: Some(s.into()),
            deleted: None,
        }
    }
    pub fn deleted(s: impl Into<String>) -> Self {
        DeleteItem {
            untagged: None,
            deleted: Some(s.into()),
        }
    }
}

/// `POST /images/prune`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PruneReport {
    pub images_deleted: Vec<DeleteItem>,
    pub space_reclaimed: i64,
}

/// `GET /distribution/{name}/json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DistributionInspect {
    pub descriptor: DistributionDescriptor,
    pub platforms: Vec<super::manifest::DescriptorPlatform>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistributionDescriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: i64,
}

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

/// `until`: unix seconds, RFC 3339, or a Go-style duration ago (`10m`, `24h`).
fn parse_time(v: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(secs) = v.parse::<f64>() {
        return chrono::DateTime::from_timestamp(secs as i64, 0)
            .ok_or_else(|| ImageError::InvalidArgument(format!("invalid until {v:?}")));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let (num, unit) = v.split_at(v.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let n: i64 = num
        .parse()
        .map_err(|_| ImageError::InvalidArgument(format!("invalid until {v:?}")))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(ImageError::InvalidArgument(format!("invalid until {v:?}"))),
    };
    Ok(chrono::Utc::now() - chrono::Duration::seconds(secs))
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
