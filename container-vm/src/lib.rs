//! The container VM contract as code: what `vch`, the guest agent (`tether`) and the
//! simulator (`vcenter-sim`) exchange across the VM boundary, as described in
//! `docs/container-vm.md`. Every encoding has its decoder next to it, and both are tested
//! together (round trips, and pinned wire forms: the bytes on the wire must not change by
//! accident, since a VM may run a tether older than the VCH that talks to it).
//!
//! - [`guestinfo`]: the `guestinfo.vch.*` key names and value chunking.
//! - [`spec`]: the container spec the VCH writes and the tether reads.
//! - [`state`]: the container states the tether reports.
//! - [`channel`]: frames of the control channel (serial port 1).
//! - [`status`]: what a tether reports unasked (pid, health); [`health`]: health checks.
//! - [`ops`]: container operations over the control channel (top, stats, cp, export).
//! - [`log`]: records of the container log (serial port 2).
//! - [`hardware`]: the simulator's description of a VM's devices (`VCSIM_HW`).
//! - [`fork`]: the simulator's instant-clone request to a VM monitor.
//! - [`caps`]: capability names and Docker's default set.
//!
//! Dependencies stay minimal (serde, serde_json, thiserror) so all three users, one of
//! them a static guest binary, can take it.

pub mod caps;
pub mod channel;
pub mod fork;
pub mod guestinfo;
pub mod hardware;
pub mod health;
pub mod log;
pub mod ops;
pub mod spec;
pub mod state;
pub mod status;
