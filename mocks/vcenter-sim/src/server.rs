//! HTTPS front end: `/sdk` (SOAP), the version documents clients negotiate with, the
//! REST session endpoint, and datastore file transfer under `/folder`.

use crate::datastore_http;
use crate::props::API_VERSION;
use crate::runtime::HostRuntime;
use crate::sim::{Sim, SimConfig};
use crate::tls::{Identity, TlsError};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Request, Response, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower::Service;

/// SOAP bodies beyond this are refused (a 100K-VM RetrieveProperties request is a few KB).
const SOAP_BODY_LIMIT: usize = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// The client's address, for `UserSession.ipAddress`.
#[derive(Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A running simulator.
pub struct SimServer {
    pub sim: Arc<Sim>,
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT/sdk`
    pub url: String,
    pub sha1_thumbprint: String,
    pub sha256_thumbprint: String,
    pub cert_pem: String,
    shutdown: tokio::sync::watch::Sender<bool>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// Starts on `listen` (port 0 picks a free port) inside the current tokio runtime.
    pub async fn start(
        cfg: SimConfig,
        listen: SocketAddr,
        runtime: Arc<dyn HostRuntime>,
    ) -> Result<SimServer, StartError> {
        let identity = Identity::load_or_create(&cfg.data_dir)?;
        let tls = identity.server_config()?;
        let sim = Sim::open(cfg, runtime)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| StartError::Bind(listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Bind(listen, e))?;
        let app = router(sim.clone());
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let accept_loop = tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        let Ok((tcp, peer)) = r else { continue };
                        let _ = tcp.set_nodelay(true);
                        let acceptor = acceptor.clone();
                        let app = app.clone();
                        let mut stop = rx.clone();
                        tokio::spawn(async move {
                            let Ok(stream) = acceptor.accept(tcp).await else { return };
                            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                                req.extensions_mut().insert(Peer(peer));
                                let mut app = app.clone();
                                async move { app.call(req).await }
                            });
                            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                            let conn = builder.serve_connection(TokioIo::new(stream), svc);
                            // Shutdown drops live keep-alive connections too, so clients see
                            // the server go away as a real vCenter restart looks.
                            tokio::select! {
                                _ = conn => {}
                                _ = stop.changed() => {}
                            }
                        });
                    }
                    _ = rx.changed() => break,
                }
            }
        });
        let url = format!("https://{addr}/sdk");
        Ok(SimServer {
            sim,
            addr,
            url,
            sha1_thumbprint: identity.sha1_thumbprint(),
            sha256_thumbprint: identity.sha256_thumbprint(),
            cert_pem: identity.cert_pem.clone(),
            shutdown: tx,
            accept_loop,
        })
    }

    /// Stops accepting connections and folds the journal into a snapshot.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.accept_loop.await;
        if let Err(e) = self.sim.compact() {
            tracing::error!("final snapshot failed: {e}");
        }
    }
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/sdk", post(soap))
        .route("/sdk/", post(soap))
        .route("/sdk/vimServiceVersions.xml", get(service_versions))
        .route("/sdk/vimService.wsdl", get(service_wsdl))
        .route(
            "/api/session",
            post(datastore_http::rest_login)
                .get(datastore_http::rest_session)
                .delete(datastore_http::rest_logout),
        )
        .route(
            "/folder/{*path}",
            get(datastore_http::get_file)
                .head(datastore_http::get_file)
                .put(datastore_http::put_file)
                .delete(datastore_http::delete_file),
        )
        .layer(DefaultBodyLimit::disable())
        .with_state(sim)
}

async fn soap(State(sim): State<Arc<Sim>>, req: Request<Body>) -> Response<Body> {
    let peer = req
        .extensions()
        .get::<Peer>()
        .map(|p| p.0.ip().to_string())
        .unwrap_or_default();
    let headers: HeaderMap = req.headers().clone();
    let body: Bytes = match axum::body::to_bytes(req.into_body(), SOAP_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            let f = crate::soap::Fault::invalid_request(format!(
                "request body is larger than {SOAP_BODY_LIMIT} bytes or was cut short"
            ));
            return xml_response(500, None, f.to_envelope());
        }
    };
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let out = sim.soap(&body, cookie, &peer, agent).await;
    xml_response(out.status, out.set_cookie, out.body)
}

fn xml_response(status: u16, set_cookie: Option<String>, body: String) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "text/xml; charset=utf-8");
    if let Some(c) = set_cookie {
        b = b.header(header::SET_COOKIE, c);
    }
    b.body(Body::from(body)).expect("static headers are valid")
}

/// Versions clients may speak. pyvmomi only uses a version whose exact id it finds
/// here; govmomi reads the same document.
const PRIOR_VERSIONS: &[&str] = &[
    "8.0.2.0", "8.0.1.0", "8.0.0.2", "8.0.0.1", "8.0.0.0", "7.0.3.2", "7.0.3.1", "7.0.3.0",
    "7.0.2.1", "7.0.2.0", "7.0.1.1", "7.0.1.0", "7.0.0.2", "7.0.0.1", "7.0.0.0", "6.9.1", "6.8.7",
    "6.7.3", "6.7.2", "6.7.1", "6.7", "6.5", "6.0", "5.5", "5.1", "5.0", "4.1", "4.0",
];

async fn service_versions() -> Response<Body> {
    let mut prior = String::new();
    for v in PRIOR_VERSIONS {
        prior.push_str(&format!("<version>{v}</version>"));
    }
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8" ?>
<namespaces version="1.0">
 <namespace>
  <name>urn:vim25</name>
  <version>{API_VERSION}</version>
  <priorVersions>{prior}</priorVersions>
 </namespace>
</namespaces>
"#
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/xml")
        .body(Body::from(body))
        .expect("static headers are valid")
}

async fn service_wsdl() -> Response<Body> {
    let body = r#"<?xml version="1.0" encoding="UTF-8" ?>
<definitions targetNamespace="urn:vim25Service"
   xmlns="http://schemas.xmlsoap.org/wsdl/"
   xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
   xmlns:interface="urn:vim25">
   <import location="vim.wsdl" namespace="urn:vim25" />
   <service name="VimService">
      <port binding="interface:VimBinding" name="VimPort">
         <soap:address location="https://localhost/sdk/vimService" />
      </port>
   </service>
</definitions>
"#;
    Response::builder()
        .header(header::CONTENT_TYPE, "text/xml")
        .body(Body::from(body))
        .expect("static headers are valid")
}
