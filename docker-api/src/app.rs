//! The state every request handler shares: the backend, the front-end settings
//! ([`Config`]), the shutdown tokens, the hijacked-session tracker, the common response
//! headers and the connection limiter.
//!
//! It sits below both the listener side (`server`) and the handler side (`http`, `routes`):
//! handlers reach the backend through [`App`], and the server creates and drives it, so
//! neither needs the other.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::Backend;
use crate::hijack::{Hijacked, Session};
use crate::limits::ConnLimiter;
use crate::version::MAX_API_VERSION;

/// Front-end settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Limit for buffered (JSON) request bodies; tarball uploads are streamed and not
    /// limited. Larger bodies get 413.
    pub max_body_bytes: usize,
    /// How long requests in flight may run after shutdown starts.
    pub shutdown_grace: Duration,
    /// Engine version shown in the `Server` header.
    pub engine_version: String,
    /// `Docker-Experimental` header value.
    pub experimental: bool,
    /// `Builder-Version` header of /_ping ("1": classic builder; build is not supported,
    /// so clients should not try BuildKit sessions).
    pub builder_version: String,
    /// How long a client may take to send request headers.
    pub header_read_timeout: Duration,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// How long a buffered (JSON) request body may go without a byte arriving, and how
    /// long it may take in all (x4): a client that announces a body and stalls gets 408
    /// instead of holding a handler forever. Streamed uploads are not covered.
    pub body_read_timeout: Duration,
    /// Open connections one client may hold (peer IP for TCP, peer uid for unix
    /// sockets); over it the client gets 429 "too many connections".
    pub max_connections_per_client: usize,
    /// Open connections in all; over it clients get 503 "too many connections".
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_bytes: 16 << 20,
            shutdown_grace: Duration::from_secs(10),
            engine_version: "28.3.0".into(),
            experimental: false,
            builder_version: "1".into(),
            header_read_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            // dockerd has no limits; these are above what real clients hold: docker-py
            // keeps up to 25 idle connections per APIClient (one pool per URL), so 32
            // threads with a client each hold ~800 (a 256 cap broke the 1,000-container
            // benchmark). Far below the fd limit the daemon raises itself to (see `vch`).
            max_connections_per_client: 1024,
            max_connections: 4096,
        }
    }
}

/// Shared state of a running server, handed to every handler.
pub struct App {
    pub backend: Arc<dyn Backend>,
    pub config: Config,
    /// Fired at the end of the shutdown grace period: open-ended streams end cleanly.
    pub closing: CancellationToken,
    /// Fired shortly after `closing`: whatever is left is dropped.
    pub(crate) kill: CancellationToken,
    /// Hijacked sessions, which live outside hyper's connection tracking.
    pub(crate) sessions: TaskTracker,
    /// Headers on every response (dockerd's version middleware).
    pub(crate) common: Vec<(HeaderName, HeaderValue)>,
    /// Open connections per client and in total.
    pub(crate) limiter: ConnLimiter,
}

impl App {
    pub(crate) fn new(backend: Arc<dyn Backend>, config: Config) -> Self {
        let limiter = ConnLimiter::new(config.max_connections_per_client, config.max_connections);
        let server = format!("Docker/{} (linux)", config.engine_version);
        let common = [
            ("api-version", MAX_API_VERSION.to_string()),
            ("docker-experimental", config.experimental.to_string()),
            ("ostype", "linux".to_string()),
            ("server", server),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((HeaderName::from_static(k), HeaderValue::from_str(&v).ok()?)))
        .collect();
        App {
            backend,
            config,
            closing: CancellationToken::new(),
            kill: CancellationToken::new(),
            sessions: TaskTracker::new(),
            common,
            limiter,
        }
    }

    /// The common headers as dockerd spells them, for hand-written (hijack) heads.
    pub fn common_headers_canonical(&self) -> Vec<(&'static str, String)> {
        self.common
            .iter()
            .map(|(k, v)| {
                let name = match k.as_str() {
                    "api-version" => "Api-Version",
                    "docker-experimental" => "Docker-Experimental",
                    "ostype" => "Ostype",
                    _ => "Server",
                };
                (name, v.to_str().unwrap_or("").to_string())
            })
            .collect()
    }

    /// Runs a hijacked session: waits for the connection driver to hand over the
    /// connection, then runs `session` until it ends or the server drops it.
    pub fn spawn_session(
        &self,
        handover: tokio::sync::oneshot::Receiver<Hijacked>,
        session: Session,
    ) {
        let closing = self.closing.clone();
        let kill = self.kill.clone();
        self.sessions.spawn(async move {
            let Ok(conn) = handover.await else {
                return;
            };
            tokio::select! {
                _ = session.run(conn, closing) => {}
                _ = kill.cancelled() => {}
            }
        });
    }
}
