//! Distribution manifests (Docker schema 2, OCI), manifest lists / OCI indexes, and the
//! image config: the subset of fields the store needs, parsed strictly enough that
//! something which is not a container image is refused before anything is downloaded.
//!
//! Why not oci-client's `OciImageManifest`/`OciImageIndex`/`ConfigFile`: its descriptors
//! carry the digest as a plain `String` (ours is a checked [`Digest`], refused at parse
//! time, before any URL or datastore path is built from it); its `ConfigFile` parses
//! `created` as a timestamp (real images carry odd ones that dockerd shows as they are)
//! and drops fields it does not know, which `import` must write back whole (`extra`).
//! Docker's API shapes come from `docker_api::models`; the conversions are below.

use super::digest::Digest;
use super::error::{ImageError, Result};
use super::platform::Platform;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod media {
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_FOREIGN_LAYER: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_ND: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_ND_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const OCI_LAYER_ND_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

    /// What we ask registries for, best first.
    pub const ACCEPTED_MANIFESTS: &[&str] =
        &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

    pub fn is_layer(m: &str) -> bool {
        matches!(
            m,
            DOCKER_LAYER
                | DOCKER_FOREIGN_LAYER
                | OCI_LAYER
                | OCI_LAYER_GZIP
                | OCI_LAYER_ZSTD
                | OCI_LAYER_ND
                | OCI_LAYER_ND_GZIP
                | OCI_LAYER_ND_ZSTD
        )
    }
    pub fn is_config(m: &str) -> bool {
        matches!(m, DOCKER_CONFIG | OCI_CONFIG)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageIndex {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug)]
pub enum Manifest {
    Image(Box<ImageManifest>),
    Index(ImageIndex),
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion", default)]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses a manifest; `content_type` (the HTTP header, when known) wins over the
    /// body's `mediaType`, which OCI allows to be absent.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest> {
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| ImageError::invalid("manifest", e))?;
        let ct = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain");
        let mt = ct.or(probe.media_type.clone());
        if probe.schema_version == 1
            || matches!(
                mt.as_deref(),
                Some(media::DOCKER_SCHEMA1) | Some(media::DOCKER_SCHEMA1_SIGNED)
            )
        {
            return Err(ImageError::UnsupportedMediaType {
                what: "Docker image manifest schema 1 is deprecated and not supported".into(),
                media_type: mt.unwrap_or_else(|| media::DOCKER_SCHEMA1.into()),
            });
        }
        if probe.schema_version != 2 {
            return Err(ImageError::invalid(
                "manifest",
                format!("schemaVersion {} is not 2", probe.schema_version),
            ));
        }
        let is_index = match mt.as_deref() {
            Some(media::OCI_INDEX) | Some(media::DOCKER_LIST) => true,
            Some(media::OCI_MANIFEST) | Some(media::DOCKER_MANIFEST) => false,
            None => probe.manifests.is_some() && probe.config.is_none(),
            Some(other) => {
                return Err(ImageError::UnsupportedMediaType {
                    what: "manifest".into(),
                    media_type: other.to_string(),
                })
            }
        };
        if is_index {
            let idx: ImageIndex =
                serde_json::from_slice(bytes).map_err(|e| ImageError::invalid("image index", e))?;
            Ok(Manifest::Index(idx))
        } else {
            let m: ImageManifest = serde_json::from_slice(bytes)
                .map_err(|e| ImageError::invalid("image manifest", e))?;
            Ok(Manifest::Image(Box::new(m)))
        }
    }
}

impl ImageManifest {
    /// Refuses artifacts that are not container images (Helm charts, WASM modules,
    /// signatures...) before any layer is fetched.
    pub fn check_media_types(&self) -> Result<()> {
        if !media::is_config(&self.config.media_type) {
            return Err(ImageError::UnsupportedMediaType {
                what: format!(
                    "config {} is not a container image config",
                    self.config.digest
                ),
                media_type: self.config.media_type.clone(),
            });
        }
        for l in &self.layers {
            if !media::is_layer(&l.media_type) {
                return Err(ImageError::UnsupportedMediaType {
                    what: format!("layer {}", l.digest),
                    media_type: l.media_type.clone(),
                });
            }
            if l.size < 0 {
                return Err(ImageError::invalid(
                    "manifest",
                    format!("layer {} has a negative size", l.digest),
                ));
            }
        }
        Ok(())
    }
}

impl ImageIndex {
    /// The entry for `platform`, skipping attestation manifests (`unknown/unknown`).
    pub fn select(&self, platform: &Platform) -> Result<&Descriptor> {
        self.manifests
            .iter()
            .filter(|d| {
                matches!(
                    d.media_type.as_str(),
                    media::OCI_MANIFEST | media::DOCKER_MANIFEST | ""
                )
            })
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
            })
            .ok_or_else(|| ImageError::NoMatchingPlatform {
                platform: platform.to_string(),
            })
    }
}

/// The image config (`application/vnd.oci.image.config.v1+json`), the fields we use.
/// Unknown fields are kept in `extra` so a config we re-serialise (import) stays whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The container defaults an image carries (`Config` in `docker inspect`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<docker_api::models::HealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ContainerConfig {
    /// As Docker's API model (`Config` of `docker image inspect`). Through serde on
    /// purpose: the two share dockerd's field names, and fields only the image carries
    /// (`extra`, kept whole for import) reach the model wherever it has them.
    pub fn to_docker(&self) -> Result<docker_api::models::ImageConfig> {
        serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .map_err(|e| ImageError::invalid("image config", e))
    }
}

impl DescriptorPlatform {
    /// As Docker's API model (distribution inspect's `Platforms`).
    pub fn to_docker(&self) -> docker_api::models::OciPlatform {
        docker_api::models::OciPlatform {
            architecture: Some(self.architecture.clone()),
            os: Some(self.os.clone()),
            variant: self.variant.clone(),
            os_version: self.os_version.clone(),
            ..Default::default()
        }
    }
}

impl ImageConfigFile {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfigFile> {
        let c: ImageConfigFile =
            serde_json::from_slice(bytes).map_err(|e| ImageError::invalid("image config", e))?;
        if c.rootfs.kind != "layers" {
            return Err(ImageError::invalid(
                "image config",
                format!("rootfs type {:?} is not \"layers\"", c.rootfs.kind),
            ));
        }
        Ok(c)
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        self.config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default()
    }

    pub fn created_time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn parses_manifests_and_indexes() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{D}","size":1}},"layers":[{{"mediaType":"{}","digest":"{D}","size":2}}]}}"#,
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            media::DOCKER_LAYER
        );
        let Manifest::Image(im) = Manifest::parse(m.as_bytes(), None).unwrap() else {
            panic!()
        };
        im.check_media_types().unwrap();
        // OCI without mediaType, index detected by shape.
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{D}","size":3,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},{{"mediaType":"{}","digest":"{D}","size":3,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            media::OCI_MANIFEST,
            media::OCI_MANIFEST
        );
        let Manifest::Index(ix) = Manifest::parse(i.as_bytes(), None).unwrap() else {
            panic!()
        };
        assert!(ix.select(&Platform::linux_amd64()).is_ok());
        assert!(ix.select(&Platform::parse("linux/arm64").unwrap()).is_ok());
        let e = ix
            .select(&Platform::parse("linux/s390x").unwrap())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
        let s1 = r#"{"schemaVersion":1,"name":"x"}"#;
        assert!(matches!(
            Manifest::parse(s1.as_bytes(), None),
            Err(ImageError::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn refuses_artifacts() {
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{D}","size":1}},"layers":[]}}"#
        );
        let Manifest::Image(im) = Manifest::parse(m.as_bytes(), None).unwrap() else {
            panic!()
        };
        let e = im.check_media_types().unwrap_err().to_string();
        assert!(
            e.contains("application/vnd.cncf.helm.config.v1+json"),
            "{e}"
        );
    }
}
