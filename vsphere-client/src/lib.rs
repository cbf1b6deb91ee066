//! vim25 building blocks shared by the VCH and the vCenter simulator: an XML element
//! tree for SOAP bodies and the dynamic vim25 value model with its wire encoding.
//!
//! The typed async client (sessions, PropertyCollector watch, finder, operations) is
//! tracked in its own issue and will live beside these modules.

pub mod tls;
pub mod value;
pub mod xml;

pub use value::{DataObject, MoRef, Value};

/// The vim25 XML namespace.
pub const VIM25_NS: &str = "urn:vim25";
