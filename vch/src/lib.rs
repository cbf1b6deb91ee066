//! The VCH: the translator between the Docker Engine API and vSphere.
//!
//! - [`target`]: connecting to vCenter (or the embedded simulator) and the VCH's pool,
//!   folder, datastore directory and boot disk.
//! - [`tether_binary`]: which tether binary the boot disk is built from.
//! - [`images`]: registry pulls into read-only layer disks on the datastore.
//! - [`template`]: the running template VM containers are instant-cloned from.
//! - [`supervisor`]: heals the template VM when vSphere takes it away.
//! - [`vsphere_errors`]: vSphere errors as Docker API errors (503 when vCenter is away).
//! - [`containers`]: containers as VMs (devices, guestinfo) and their recovery.
//! - [`volumes`]: named volumes as VMDKs on the datastore.
//! - [`logfile`]: the container log on the datastore.
//! - [`stdin`]: attached clients' stdin on its way to the container VM.
//! - [`start_journal`]: the starts the VCH acknowledged, durable across a kill -9.
//! - [`security`]: a container's confinement options, honoured or refused by name.
//! - [`translator`]: containers as VMs: state, lifecycle, supervision, restart policies,
//!   recovery, behind the `VmPlatform` and `GuestChannel` traits (unit-tested with fakes).
//! - [`backend`]: the Docker API backend, a thin surface over the translator.

pub mod backend;
pub mod build;
pub mod channel;
pub mod containers;
pub mod images;
pub mod logfile;
pub mod mounts;
pub mod network;
pub mod router;
pub mod security;
pub mod start_journal;
pub mod stdin;
pub mod supervisor;
pub mod target;
pub mod template;
pub mod tether_binary;
pub mod translator;
pub mod volumes;
pub mod vsphere_errors;
