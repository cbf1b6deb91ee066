//! The client's one error type. vim25 faults keep their type name, message and detail;
//! transport, timeout and decoding problems are distinct variants.

use crate::value::DataObject;

/// A vim25 fault (`InvalidLogin`, `ManagedObjectNotFound`, `InvalidPowerState`...).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// The vim25 fault type name.
    pub ty: String,
    pub msg: String,
    /// The fault's own fields (e.g. `existingState` of InvalidPowerState).
    pub detail: DataObject,
}

impl Fault {
    pub fn is(&self, ty: &str) -> bool {
        self.ty == ty
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.ty, self.msg)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("vSphere fault {0}")]
    Fault(Fault),
    #[error("transport error talking to {url}: {msg}")]
    Transport { url: String, msg: String },
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("cannot decode the server's answer: {0}")]
    Decode(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsConfigError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{what} '{path}' not found")]
    NotFound { what: &'static str, path: String },
    #[error("{what}: {detail}")]
    Ambiguous { what: &'static str, detail: String },
    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The vim25 fault type, if this is a fault.
    pub fn fault_type(&self) -> Option<&str> {
        match self {
            Error::Fault(f) => Some(&f.ty),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
