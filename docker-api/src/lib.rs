//! Docker Engine API (1.24–1.50) front end of the VCH.
//!
//! Speaks the Docker API over unix sockets, TCP and TLS well enough for the real docker
//! CLI and docker-py, and turns every operation into a call on a [`Backend`] — the VCH
//! implements that trait on vSphere; this crate knows nothing about it.
//!
//! Layout: [`server`] listeners, connections and dispatch, [`app`] the state handlers
//! share and the front-end [`Config`], [`http`] the request context and response helpers, [`version`] negotiation, [`routes`] the
//! route table and handlers, [`hijack`] attach/exec connection takeover, [`stdcopy`]
//! framing, [`streaming`] streamed bodies, [`errors`] the error type and its mapping to
//! HTTP, [`filters`] the `filters` parameter, [`backend`] + [`options`] the contract,
//! [`limits`] connection caps per client and in total, [`validate`] container spec checks.

pub mod app;
pub mod backend;
pub mod errors;
pub mod filters;
pub mod hijack;
pub mod http;
pub mod limits;
pub mod options;
pub mod progress;
pub mod routes;
pub mod server;
pub mod stdcopy;
pub mod streaming;
pub mod validate;
pub mod version;

/// Request/response models generated from Docker's swagger (API 1.49 family).
pub use bollard_stubs::models;

pub use app::Config;
pub use async_trait::async_trait;
pub use backend::{
    AttachStreams, Backend, ByteStream, LogChunk, LogStream, OutputChunk, ProgressStream,
    StdinWriter, StreamKind, WaitFuture,
};
pub use errors::{Error, Result};
pub use filters::Filters;
pub use progress::{JsonError, JsonMessage, JsonProgress};
pub use server::{Listener, LocalAddr, Server, ServerBuilder, ServerError};
pub use version::{ApiVersion, MAX_API_VERSION, MIN_API_VERSION};
