//! vsphere-client: the crate through which the VCH talks to vCenter.
//!
//! - [`xml`] and [`value`]: the vim25 XML element tree and the dynamic value model with
//!   its SOAP encoding (shared with the simulator).
//! - [`client::Client`]: HTTPS (rustls) SOAP client with a session that re-logs in
//!   transparently; [`collector`]: paged retrieval, `watch`, task waiting;
//!   [`finder`]: inventory paths with govc-like defaults; [`ops`]: typed operations;
//!   [`datastore`]: streaming file transfer; [`spec`]: request specs; [`types`]: typed
//!   views of responses.

pub mod client;
pub mod collector;
pub mod datastore;
pub mod decode;
pub mod error;
pub mod finder;
pub mod ops;
pub mod soap;
pub mod spec;
pub mod tls;
pub mod types;
pub mod value;
pub mod xml;

pub use client::Client;
pub use collector::FilterSpec;
pub use error::{Error, Fault, Result};
pub use tls::TlsTrust;
pub use value::{DataObject, MoRef, Value};

/// The vim25 XML namespace.
pub const VIM25_NS: &str = "urn:vim25";
