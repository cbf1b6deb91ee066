//! The image store: registry pulls into read-only layer disks on the datastore.

pub mod convert;
pub mod digest;
pub mod erofs;
pub mod error;
pub mod manifest;
pub mod platform;
pub mod reference;
pub mod tar_safety;
