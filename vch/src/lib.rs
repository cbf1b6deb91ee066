//! The VCH: the translator between the Docker Engine API and vSphere.
//!
//! - [`target`]: connecting to vCenter (or the embedded simulator) and the VCH's pool,
//!   folder, datastore directory and boot disk.
//! - [`images`]: registry pulls into read-only layer disks on the datastore.
//! - [`containers`]: containers as VMs (devices, guestinfo) and their recovery.
//! - [`logfile`]: the container log on the datastore.
//! - [`backend`]: the Docker API backend.

pub mod backend;
pub mod channel;
pub mod containers;
pub mod images;
pub mod logfile;
pub mod network;
pub mod target;
