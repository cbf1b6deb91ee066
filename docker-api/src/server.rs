//! Listeners, connection driving, request dispatch and graceful shutdown.
//!
//! Owns the outside of the server: binding, accepting, the HTTP/1 connection and its
//! handover to hijacked sessions, and routing a request to its handler. The state the
//! handlers share lives in `app` below it, so handlers never import this module.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use docker_api::{Server, Listener, Backend};
//! # async fn demo(backend: Arc<dyn Backend>) -> Result<(), docker_api::ServerError> {
//! let server = Server::builder()
//!     .backend(backend)
//!     .listen(Listener::Unix("/run/vch/docker.sock".into()))
//!     .bind()
//!     .await?;
//! server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! Shutdown: when the `shutdown` future completes the listeners stop accepting, idle
//! connections close, and requests in flight — including streams and attach sessions —
//! get [`Config::shutdown_grace`] to finish on their own. Then open-ended streams (events,
//! followed logs, stats, waits, attach sessions, progress) are ended cleanly: chunked
//! bodies get their terminator (progress streams an error line first), hijacked
//! connections a FIN. Whatever is still open a moment later is dropped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, Config};
use crate::backend::Backend;
use crate::hijack::{ConnState, HijackIo, Hijacked};
use crate::http::{error_response, page_not_found, Body, Ctx, Query};
use crate::limits::{ClientKey, Counted};
use crate::routes;
use crate::version::{negotiate, split_version_prefix};

/// Where to listen.
#[derive(Clone, Debug)]
pub enum Listener {
    /// A unix socket (dockerd's default transport). A stale socket file is replaced; the
    /// file gets mode 0660 and is removed at shutdown.
    Unix(PathBuf),
    /// Plain HTTP over TCP. Refused on a non-loopback address unless `force` is set:
    /// the Docker API is root-equivalent and must not be exposed without TLS.
    Tcp { addr: SocketAddr, force: bool },
    /// HTTPS. With `client_ca` this is dockerd's `--tlsverify`: clients must present a
    /// certificate signed by that CA. Without it, any client may connect (`--tls`).
    Tls {
        addr: SocketAddr,
        cert: PathBuf,
        key: PathBuf,
        client_ca: Option<PathBuf>,
    },
}

/// An address actually bound (TCP port 0 resolved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalAddr {
    Unix(PathBuf),
    Tcp(SocketAddr),
    Tls(SocketAddr),
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("no backend configured")]
    NoBackend,
    #[error("no listener configured")]
    NoListener,
    #[error(
        "refusing to serve the Docker API over plain TCP on non-loopback address {0}; use TLS, \
         or force it"
    )]
    InsecureTcp(SocketAddr),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

/// Serves one request: route, version check, handler, common headers, log line.
async fn handle(app: Arc<App>, req: Request<Incoming>, conn: Arc<ConnState>) -> Response<Body> {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path();
    // dockerd routes on the decoded path.
    let path = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
    let (raw_version, path) = split_version_prefix(&path);

    let resp = match routes::lookup(&parts.method, path) {
        // Not wrapped by the version middleware in dockerd either: no common headers.
        None => {
            drain(body);
            page_not_found()
        }
        Some((route, params)) => {
            let mut resp = match negotiate(raw_version) {
                Err(e) => {
                    drain(body);
                    error_response(&e)
                }
                Ok(version) => {
                    let mut ctx = Ctx {
                        app: app.clone(),
                        version,
                        method: parts.method.clone(),
                        query: Query::parse(parts.uri.query()),
                        headers: parts.headers,
                        params,
                        body: Some(body),
                        conn,
                    };
                    let resp = match routes::dispatch(route.handler, &mut ctx).await {
                        Ok(r) => r,
                        Err(e) => error_response(&e),
                    };
                    if let Some(body) = ctx.body.take() {
                        drain(body);
                    }
                    resp
                }
            };
            let h = resp.headers_mut();
            for (k, v) in &app.common {
                h.insert(k.clone(), v.clone());
            }
            resp
        }
    };
    tracing::info!(
        method = %parts.method,
        path = raw_path,
        status = resp.status().as_u16(),
        duration_us = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// Reads and discards what is left of a request body the handler did not consume (an
/// early error), like Go's net/http does: otherwise hyper closes the connection with
/// unread data, the kernel resets it, and a client still writing its body (the docker
/// CLI) reports "broken pipe" instead of our answer. Runs beside the response; bounded in
/// size and time, like Go.
fn drain(mut body: Incoming) {
    use http_body_util::BodyExt;
    const MAX: usize = 256 << 10;
    if hyper::body::Body::is_end_stream(&body) {
        return;
    }
    tokio::spawn(async move {
        let read = async {
            let mut n = 0;
            while let Some(Ok(frame)) = body.frame().await {
                n += frame.data_ref().map_or(0, |d| d.len());
                if n > MAX {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    });
}

/// Builds a [`Server`].
#[derive(Default)]
pub struct ServerBuilder {
    backend: Option<Arc<dyn Backend>>,
    listeners: Vec<Listener>,
    config: Config,
}

impl ServerBuilder {
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Adds a listener (any number, any mix).
    pub fn listen(mut self, listener: Listener) -> Self {
        self.listeners.push(listener);
        self
    }

    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.config.max_body_bytes = n;
        self
    }

    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.config.shutdown_grace = d;
        self
    }

    pub fn engine_version(mut self, v: impl Into<String>) -> Self {
        self.config.engine_version = v.into();
        self
    }

    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.config.header_read_timeout = d;
        self
    }

    pub fn body_read_timeout(mut self, d: Duration) -> Self {
        self.config.body_read_timeout = d;
        self
    }

    /// Connection limits: per client, and in total.
    pub fn max_connections(mut self, per_client: usize, total: usize) -> Self {
        self.config.max_connections_per_client = per_client;
        self.config.max_connections = total;
        self
    }

    /// Binds every listener (so that errors such as a busy port surface here, before
    /// anything is served) and returns the server ready to [`Server::serve`].
    pub async fn bind(self) -> Result<Server, ServerError> {
        let backend = self.backend.ok_or(ServerError::NoBackend)?;
        if self.listeners.is_empty() {
            return Err(ServerError::NoListener);
        }
        let mut bound = Vec::new();
        for l in self.listeners {
            bound.push(bind_one(l).await?);
        }
        Ok(Server {
            app: Arc::new(App::new(backend, self.config)),
            bound,
        })
    }
}

enum Bound {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
    Tls(TcpListener, TlsAcceptor),
}

impl Bound {
    fn local_addr(&self) -> Option<LocalAddr> {
        match self {
            Bound::Unix(_, p) => Some(LocalAddr::Unix(p.clone())),
            Bound::Tcp(l) => l.local_addr().ok().map(LocalAddr::Tcp),
            Bound::Tls(l, _) => l.local_addr().ok().map(LocalAddr::Tls),
        }
    }
}

async fn bind_one(l: Listener) -> Result<Bound, ServerError> {
    match l {
        Listener::Unix(path) => {
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)
                        .map_err(io_err(format!("creating {}", dir.display())))?;
                }
            }
            // A socket left behind by a previous run would make bind fail.
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("removing stale {}", path.display()))(e)),
            }
            let listener =
                UnixListener::bind(&path).map_err(io_err(format!("binding {}", path.display())))?;
            set_socket_mode(&path)?;
            tracing::info!(path = %path.display(), "listening on unix socket");
            Ok(Bound::Unix(listener, path))
        }
        Listener::Tcp { addr, force } => {
            if !addr.ip().is_loopback() && !force {
                return Err(ServerError::InsecureTcp(addr));
            }
            let listener = TcpListener::bind(addr)
                .await
                .map_err(io_err(format!("binding {addr}")))?;
            tracing::info!(addr = %addr, "listening on tcp");
            Ok(Bound::Tcp(listener))
        }
        Listener::Tls {
            addr,
            cert,
            key,
            client_ca,
        } => {
            let config = tls_config(&cert, &key, client_ca.as_deref())?;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(io_err(format!("binding {addr}")))?;
            tracing::info!(addr = %addr, verify_clients = client_ca.is_some(), "listening on tls");
            Ok(Bound::Tls(listener, TlsAcceptor::from(Arc::new(config))))
        }
    }
}

fn set_socket_mode(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(io_err(format!("chmod {}", path.display())))
}

/// rustls server config (ring provider). With `client_ca`, client certificates are
/// required and verified against it.
fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, ServerError> {
    let tls = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
        ServerError::Tls(format!("{what} {}: {e}", p.display()))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls("reading certificate", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls("parsing certificate", cert, &e))?;
    if certs.is_empty() {
        return Err(tls("reading certificate", cert, &"no certificate found"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls("reading key", key, &e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| tls("reading CA", ca, &e))? {
                let c = c.map_err(|e| tls("parsing CA", ca, &e))?;
                roots.add(c).map_err(|e| tls("adding CA", ca, &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| tls("client verifier for", ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(certs, key_der)
        .map_err(|e| tls("using certificate", cert, &e))
}

/// A bound server, ready to serve.
pub struct Server {
    app: Arc<App>,
    bound: Vec<Bound>,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The bound addresses, in listener order.
    pub fn local_addrs(&self) -> Vec<LocalAddr> {
        self.bound.iter().filter_map(Bound::local_addr).collect()
    }

    /// Serves until `shutdown` completes, then shuts down gracefully (module docs).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let app = self.app;
        let stop = CancellationToken::new();
        let conns = TaskTracker::new();
        let mut socket_files = Vec::new();

        let mut loops = Vec::new();
        for b in self.bound {
            if let Bound::Unix(_, p) = &b {
                socket_files.push(p.clone());
            }
            loops.push(accept_loop(b, app.clone(), stop.clone(), conns.clone()));
        }
        {
            let accepting = futures_util::future::join_all(loops);
            let mut accepting = pin!(accepting);
            let mut shutdown = pin!(shutdown);
            tokio::select! {
                _ = &mut accepting => {}
                _ = &mut shutdown => {}
            }
            tracing::info!("shutting down: no longer accepting connections");
            stop.cancel();
            accepting.await;
        }
        for p in &socket_files {
            let _ = std::fs::remove_file(p);
        }

        conns.close();
        app.sessions.close();
        let drained = async {
            conns.wait().await;
            app.sessions.wait().await;
        };
        if tokio::time::timeout(app.config.shutdown_grace, drained)
            .await
            .is_err()
        {
            tracing::info!("shutdown grace period over: closing open streams");
            app.closing.cancel();
            let drained = async {
                conns.wait().await;
                app.sessions.wait().await;
            };
            if tokio::time::timeout(Duration::from_secs(2), drained)
                .await
                .is_err()
            {
                tracing::warn!("dropping connections that did not close");
                app.kill.cancel();
                conns.wait().await;
                app.sessions.wait().await;
            }
        }
        tracing::info!("shut down");
        Ok(())
    }
}

async fn accept_loop(b: Bound, app: Arc<App>, stop: CancellationToken, conns: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = accept(&b) => a,
        };
        let (accepted, key) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match app.limiter.acquire(key.clone()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(client = %key, error = %e, "connection refused");
                reject(&app, accepted, e);
                continue;
            }
        };
        let (app, stop) = (app.clone(), stop.clone());
        match accepted {
            Accepted::Plain(io) => {
                let io = Counted::new(io, permit);
                conns.spawn(async move { serve_connection(io, app, stop).await });
            }
            Accepted::Unix(io) => {
                let io = Counted::new(io, permit);
                conns.spawn(async move { serve_connection(io, app, stop).await });
            }
            Accepted::Tls(tcp, acceptor) => {
                let tcp = Counted::new(tcp, permit);
                conns.spawn(async move {
                    // Handshake in the connection task: a slow client must not stall
                    // the accept loop.
                    let hs = tokio::time::timeout(
                        app.config.tls_handshake_timeout,
                        acceptor.accept(tcp),
                    );
                    match hs.await {
                        Ok(Ok(tls)) => serve_connection(tls, app, stop).await,
                        Ok(Err(e)) => tracing::info!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::info!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// Answers a connection over the limits with `err` (TLS clients after a handshake, so
/// they can read it) and closes it; see `limits.rs`.
fn reject(app: &Arc<App>, accepted: Accepted, err: crate::Error) {
    let headers = app.common_headers_canonical();
    match accepted {
        Accepted::Plain(io) => app.limiter.reject(io, err, headers),
        Accepted::Unix(io) => app.limiter.reject(io, err, headers),
        Accepted::Tls(tcp, acceptor) => {
            let limiter = app.limiter.clone();
            let timeout = app.config.tls_handshake_timeout.min(Duration::from_secs(2));
            tokio::spawn(async move {
                if let Ok(Ok(tls)) = tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                    limiter.reject(tls, err, headers);
                }
            });
        }
    }
}

enum Accepted {
    Plain(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
    Tls(tokio::net::TcpStream, TlsAcceptor),
}

/// Accepts one connection and says who the client is (for the connection limits).
async fn accept(b: &Bound) -> io::Result<(Accepted, ClientKey)> {
    match b {
        Bound::Unix(l, _) => {
            let (s, _) = l.accept().await?;
            let key = s
                .peer_cred()
                .map(|c| ClientKey::Uid(c.uid()))
                .unwrap_or(ClientKey::Unknown);
            Ok((Accepted::Unix(s), key))
        }
        Bound::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            // Small request/response exchanges: don't wait for Nagle.
            let _ = s.set_nodelay(true);
            Ok((Accepted::Plain(s), ClientKey::Ip(peer.ip().to_canonical())))
        }
        Bound::Tls(l, acc) => {
            let (s, peer) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((
                Accepted::Tls(s, acc.clone()),
                ClientKey::Ip(peer.ip().to_canonical()),
            ))
        }
    }
}

/// Drives one HTTP/1.1 connection, handing it over to a hijacked session when a handler
/// asks for it (see `hijack.rs` for why this is not hyper's upgrade mechanism).
async fn serve_connection<I>(io: I, app: Arc<App>, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let state = Arc::new(ConnState::default());
    let io = TokioIo::new(HijackIo::new(io, state.clone()));
    let svc_app = app.clone();
    let svc_state = state.clone();
    let svc = service_fn(move |req| {
        let app = svc_app.clone();
        let state = svc_state.clone();
        // Boxed so the connection is Unpin, which poll_without_shutdown requires.
        Box::pin(async move { Ok::<_, std::convert::Infallible>(handle(app, req, state).await) })
    });
    let mut conn = http1::Builder::new()
        // A client that half-closes after its request (old hijack clients) still gets
        // its response.
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(app.config.header_read_timeout)
        .serve_connection(io, svc);

    let mut stopping = pin!(stop.cancelled());
    let mut killed = pin!(app.kill.cancelled());
    let mut graceful = false;
    let res = std::future::poll_fn(|cx| {
        if killed.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Err(None));
        }
        if !graceful && stopping.as_mut().poll(cx).is_ready() {
            graceful = true;
            std::pin::Pin::new(&mut conn).graceful_shutdown();
        }
        conn.poll_without_shutdown(cx).map_err(Some)
    })
    .await;

    match res {
        Err(None) => {}
        Err(Some(e)) => tracing::debug!(error = %e, "connection error"),
        Ok(()) => {
            let parts = conn.into_parts();
            let io = parts.io.into_inner().into_inner();
            match state.take() {
                Some(handover) => {
                    let _ = handover.send(Hijacked {
                        io: Box::new(io),
                        read_buf: parts.read_buf,
                    });
                }
                None => {
                    let mut io = io;
                    let _ = io.shutdown().await;
                }
            }
        }
    }
}
