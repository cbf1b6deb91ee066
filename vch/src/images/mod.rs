//! The image store: registry pulls into read-only layer disks on the datastore.

pub mod archive;
pub mod auth;
pub mod convert;
pub mod datastore;
pub mod digest;
pub mod erofs;
pub mod error;
pub mod index;
pub mod manifest;
pub mod platform;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod store;
pub mod tar_safety;
pub mod types;
