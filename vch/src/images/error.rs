//! The image store's one error type. Variants are what a Docker route needs to pick a
//! status code (`NotFound` → 404, `Conflict` → 409, `InvalidArgument`/`InvalidReference`
//! → 400, `Unauthorized` → 401/403, everything else → 500) and their messages name the
//! thing that failed (the reference, the layer digest, the tar entry).

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A reference that dockerd would also refuse (`invalid reference format`).
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// No such image locally (`No such image: busybox:latest`).
    #[error("No such image: {0}")]
    NotFound(String),
    /// The registry has no such repository, tag or digest.
    #[error("manifest for {0} not found: manifest unknown")]
    ManifestUnknown(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Image in use, referenced by several repositories without force, etc.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A manifest list or index without an entry for the requested platform.
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform { platform: String },
    /// A media type the store does not know how to turn into a container image.
    #[error("unsupported media type {media_type} ({what})")]
    UnsupportedMediaType { what: String, media_type: String },
    /// Content whose digest is not the one that was asked for.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// A manifest, config or archive that is not what it claims to be.
    #[error("invalid {what}: {detail}")]
    Invalid { what: String, detail: String },
    /// A layer tarball rejected by the safety checks; `entry` is the tar path as given.
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    HostileLayer {
        layer: String,
        entry: String,
        reason: String,
    },
    /// Talking to the registry failed (connection refused or reset, HTTP errors...).
    #[error("registry {registry}: {detail}")]
    Registry { registry: String, detail: String },
    /// The datastore side (vSphere faults, /folder transfers).
    #[error("datastore: {0}")]
    Datastore(#[from] vsphere_client::Error),
    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Internal(String),
}

impl ImageError {
    pub fn invalid(what: impl Into<String>, detail: impl fmt::Display) -> Self {
        ImageError::Invalid {
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    /// True for errors worth retrying the transfer for (the connection broke), as opposed
    /// to the content being wrong.
    pub fn is_transient(&self) -> bool {
        matches!(self, ImageError::Registry { .. })
    }
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;
