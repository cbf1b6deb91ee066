//! The image store: registry pulls into read-only layer disks on the datastore.
//!
//! - [`store::ImageStore`]: the API the Docker image routes and container create call
//!   (pull, list, inspect, history, tag, remove, prune, distribution inspect,
//!   `layer_disks`, `image_config`); [`archive`] adds save, load and import to it.
//! - [`reference`], [`platform`], [`digest`], [`auth`], [`manifest`]: what is pulled.
//! - [`registry`]: the OCI distribution client (oci-client).
//! - [`tar_safety`], [`convert`], [`erofs`]: layer tar → EROFS image, defensively.
//! - [`datastore`], [`index`]: the files on the datastore and the index of images.
//! - [`progress`], [`error`]: Docker-shaped events and errors; [`types`]: pull outcome,
//!   image usage and filters (responses are Docker's models, `docker_api::models`).
//!
//! Layout on the datastore and the filesystem choice: docs/container-vm.md, "Layer disks".

pub mod archive;
pub mod auth;
pub mod commit;
pub mod convert;
pub mod datastore;
pub mod digest;
pub mod erofs;
pub mod error;
pub mod index;
pub mod manifest;
pub mod platform;
pub mod progress;
pub mod push;
pub mod reference;
pub mod registry;
pub mod store;
pub mod tar_safety;
pub mod types;

pub use auth::RegistryAuth;
pub use datastore::DatastorePath;
pub use digest::Digest;
pub use error::ImageError;
pub use progress::ProgressEvent;
pub use reference::Reference;
pub use store::{ImageStore, StoreConfig};
pub use types::{
    ContainerUse, DistributionInspect, HistoryResponseItem, ImageDeleteResponseItem, ImageInspect,
    ImagePruneResponse, ImageSummary, ImageUsage, ListFilters, NoContainers, PruneFilters,
    PullOutcome,
};
