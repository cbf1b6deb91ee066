//! vcenter-sim: a vCenter/ESXi simulator that speaks vim25 SOAP over HTTPS.
//!
//! Start it in-process with [`SimServer::start`] (port 0 for an ephemeral loopback
//! port) or run the `vcenter-sim` binary. See docs/simulator.md for what is modelled.

pub mod collector;
pub mod datastore_http;
pub mod dispatch;
pub mod methods;
pub mod model;
pub mod populate;
pub mod private;
pub mod props;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod sim;
pub mod soap;
pub mod state;
pub mod store;
pub mod tls;

pub use populate::Model;
pub use runtime::{GuestEvents, HostRuntime, StateOnlyRuntime, VmRuntimeSpec};
pub use sandbox::SandboxRuntime;
pub use server::SimServer;
pub use sim::{Sim, SimConfig};
