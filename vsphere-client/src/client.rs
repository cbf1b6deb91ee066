//! The vim25 SOAP client: HTTPS transport (hyper + rustls), the session cookie,
//! transparent re-login, and the REST `/api/session` side.

use crate::error::{Error, Result};
use crate::tls::{client_config, TlsTrust};
use crate::types::{ServiceContent, UserSession};
use crate::value::{MoRef, Value};
use crate::{decode, soap};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, COOKIE, SET_COOKIE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub(crate) type Body = BoxBody<Bytes, std::io::Error>;
type Http = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// Calls that have no deadline of their own (WaitForUpdatesEx sets one) give up after this.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
const SESSION_COOKIE: &str = "vmware_soap_session";

struct Inner {
    http: Http,
    /// `https://host:port`
    base: String,
    sdk: Uri,
    soap_action: HeaderValue,
    cookie: RwLock<Option<String>>,
    credentials: Mutex<Option<(String, String)>>,
    rest_session: Mutex<Option<String>>,
    content: ServiceContent,
    timeout: Duration,
}

/// A connection to one vCenter (or ESXi, or vcenter-sim). Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

pub(crate) fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

impl Client {
    /// Connects to `https://host[:port]/sdk` and reads the ServiceContent. The TLS trust is
    /// checked during this first handshake, before any credentials exist on the wire.
    pub async fn connect(url: &str, trust: TlsTrust) -> Result<Client> {
        let sdk: Uri = url
            .parse()
            .map_err(|e| Error::InvalidArgument(format!("bad vCenter URL '{url}': {e}")))?;
        let authority = sdk
            .authority()
            .ok_or_else(|| Error::InvalidArgument(format!("vCenter URL '{url}' has no host")))?
            .to_string();
        let base = format!("{}://{authority}", sdk.scheme_str().unwrap_or("https"));
        let tls = client_config(&trust)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .build();
        let http: Http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(50))
            .build(connector);
        let mut inner = Inner {
            http,
            base,
            sdk,
            soap_action: HeaderValue::from_static("urn:vim25/8.0.3.0"),
            cookie: RwLock::new(None),
            credentials: Mutex::new(None),
            rest_session: Mutex::new(None),
            content: placeholder_content(),
            timeout: DEFAULT_TIMEOUT,
        };
        let this = MoRef::new("ServiceInstance", "ServiceInstance");
        let body = Self::checked_call(&inner, "RetrieveServiceContent", &this, &[], None).await?;
        let v = decode::return_values(&body)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Decode("RetrieveServiceContent returned nothing".into()))?;
        inner.content = ServiceContent::from_value(&v)?;
        // Speak the server's own API version (at most the one this client was written for).
        let api = inner.content.about.api_version.clone();
        if let Ok(h) = HeaderValue::from_str(&format!("urn:vim25/{api}")) {
            inner.soap_action = h;
        }
        Ok(Client {
            inner: Arc::new(inner),
        })
    }

    pub fn service_content(&self) -> &ServiceContent {
        &self.inner.content
    }

    /// `https://host:port` of the server.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The current session cookie (`vmware_soap_session=...`), for HTTP file transfer.
    pub fn session_cookie(&self) -> Option<String> {
        self.inner.cookie.read().ok().and_then(|c| c.clone())
    }

    /// Logs in and remembers the credentials so an expired session is re-established
    /// transparently.
    pub async fn login(&self, user: &str, password: &str) -> Result<UserSession> {
        let s = self.login_once(user, password).await?;
        if let Ok(mut c) = self.inner.credentials.lock() {
            *c = Some((user.to_string(), password.to_string()));
        }
        Ok(s)
    }

    async fn login_once(&self, user: &str, password: &str) -> Result<UserSession> {
        let sm = self
            .inner
            .content
            .session_manager
            .clone()
            .ok_or_else(|| Error::Decode("server has no SessionManager".into()))?;
        let body = Self::checked_call(
            &self.inner,
            "Login",
            &sm,
            &[
                ("userName", Value::string(user)),
                ("password", Value::string(password)),
            ],
            None,
        )
        .await?;
        let v = decode::return_values(&body)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Decode("Login returned no session".into()))?;
        UserSession::from_value(&v)
    }

    /// Ends the session (best effort) and forgets the credentials.
    pub async fn logout(&self) -> Result<()> {
        if let Ok(mut c) = self.inner.credentials.lock() {
            *c = None;
        }
        if let Some(sm) = self.inner.content.session_manager.clone() {
            Self::checked_call(&self.inner, "Logout", &sm, &[], None).await?;
        }
        if let Ok(mut c) = self.inner.cookie.write() {
            *c = None;
        }
        Ok(())
    }

    /// Invokes a method; on `NotAuthenticated` with remembered credentials, logs in again
    /// and retries once.
    pub async fn call(
        &self,
        method: &str,
        this: &MoRef,
        args: &[(&str, Value)],
    ) -> Result<Vec<Value>> {
        self.call_with_timeout(method, this, args, None).await
    }

    pub async fn call_with_timeout(
        &self,
        method: &str,
        this: &MoRef,
        args: &[(&str, Value)],
        timeout: Option<Duration>,
    ) -> Result<Vec<Value>> {
        let body = self.call_bytes(method, this, args, timeout).await?;
        decode::return_values(&body)
    }

    /// Invokes a method and returns the raw response body (status 200 or a 500 fault
    /// body), re-logging in once on `NotAuthenticated`. Callers pick the decoder.
    pub async fn call_bytes(
        &self,
        method: &str,
        this: &MoRef,
        args: &[(&str, Value)],
        timeout: Option<Duration>,
    ) -> Result<Bytes> {
        match Self::checked_call(&self.inner, method, this, args, timeout).await {
            Err(Error::Fault(f)) if f.is("NotAuthenticated") => {
                let creds = self.inner.credentials.lock().ok().and_then(|c| c.clone());
                let Some((user, password)) = creds else {
                    return Err(Error::Fault(f));
                };
                tracing::info!(method, "session expired; logging in again");
                self.login_once(&user, &password).await?;
                Self::checked_call(&self.inner, method, this, args, timeout).await
            }
            other => other,
        }
    }

    /// A raw call whose fault (if any) is already turned into `Error::Fault`.
    async fn checked_call(
        inner: &Inner,
        method: &str,
        this: &MoRef,
        args: &[(&str, Value)],
        timeout: Option<Duration>,
    ) -> Result<Bytes> {
        let (status, body) = Self::raw_call(inner, method, this, args, timeout).await?;
        if status == 500 {
            // Faults are small; the element-tree decoder reads them.
            soap::response(&body)?;
            return Err(Error::Decode(format!(
                "{method}: HTTP 500 without a SOAP fault"
            )));
        }
        Ok(body)
    }

    /// The first return value, decoded.
    pub async fn call_value(
        &self,
        method: &str,
        this: &MoRef,
        args: &[(&str, Value)],
    ) -> Result<Option<Value>> {
        Ok(self.call(method, this, args).await?.into_iter().next())
    }

    /// A method that returns a managed object reference.
    pub async fn call_moref(
        &self,
        method: &str,
        this: &MoRef,
        args: &[(&str, Value)],
    ) -> Result<MoRef> {
        self.call_value(method, this, args)
            .await?
            .and_then(|v| v.as_moref().cloned())
            .ok_or_else(|| Error::Decode(format!("{method} did not return a reference")))
    }

    async fn raw_call(
        inner: &Inner,
        method: &str,
        this: &MoRef,
        args: &[(&str, Value)],
        timeout: Option<Duration>,
    ) -> Result<(u16, Bytes)> {
        let body = soap::request(method, this, args);
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(inner.sdk.clone())
            .header(CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("SOAPAction", inner.soap_action.clone());
        if let Some(c) = inner.cookie.read().ok().and_then(|c| c.clone()) {
            req = req.header(COOKIE, c);
        }
        let req = req
            .body(full(body))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let limit = timeout.unwrap_or(inner.timeout);
        let url = inner.sdk.to_string();
        let span = tracing::debug_span!("vim25", method, this = %this);
        let _enter = span.enter();
        drop(_enter);
        let resp = tokio::time::timeout(limit, inner.http.request(req))
            .await
            .map_err(|_| Error::Timeout(limit))?
            .map_err(|e| Error::Transport {
                url: url.clone(),
                msg: error_chain(&e),
            })?;
        if let Some(sc) = resp.headers().get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            if let Some(c) = parse_session_cookie(sc) {
                if let Ok(mut slot) = inner.cookie.write() {
                    *slot = Some(c);
                }
            }
        }
        let status = resp.status().as_u16();
        let bytes = tokio::time::timeout(limit, resp.into_body().collect())
            .await
            .map_err(|_| Error::Timeout(limit))?
            .map_err(|e| Error::Transport {
                url: url.clone(),
                msg: error_chain(&e),
            })?
            .to_bytes();
        if status != 200 && status != 500 {
            return Err(Error::Http {
                url,
                status,
                body: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
            });
        }
        Ok((status, bytes))
    }

    /// Sends an HTTP request to a path on the same server with the session cookie.
    pub(crate) async fn http(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let uri: Uri = format!("{}{path_and_query}", self.inner.base)
            .parse()
            .map_err(|e| Error::InvalidArgument(format!("bad path '{path_and_query}': {e}")))?;
        let mut req = Request::builder().method(method).uri(uri.clone());
        if let Some(c) = self.session_cookie() {
            req = req.header(COOKIE, c);
        }
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(body)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let limit = self.inner.timeout;
        tokio::time::timeout(limit, self.inner.http.request(req))
            .await
            .map_err(|_| Error::Timeout(limit))?
            .map_err(|e| Error::Transport {
                url: uri.to_string(),
                msg: error_chain(&e),
            })
    }

    /// REST login (`POST /api/session`); returns the `vmware-api-session-id`.
    pub async fn rest_login(&self, user: &str, password: &str) -> Result<String> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let resp = self
            .http(
                Method::POST,
                "/api/session",
                &[("Authorization", format!("Basic {basic}"))],
                full(""),
            )
            .await?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Transport {
                url: "/api/session".into(),
                msg: e.to_string(),
            })?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).to_string();
        if status != 200 && status != 201 {
            return Err(Error::Http {
                url: "/api/session".into(),
                status,
                body: text,
            });
        }
        let id = text.trim().trim_matches('"').to_string();
        if let Ok(mut s) = self.inner.rest_session.lock() {
            *s = Some(id.clone());
        }
        Ok(id)
    }

    /// The REST session id from `rest_login`, for the `vmware-api-session-id` header.
    pub fn rest_session_id(&self) -> Option<String> {
        self.inner.rest_session.lock().ok().and_then(|s| s.clone())
    }
}

/// Keeps only `vmware_soap_session=<value>` from a `Set-Cookie` header.
fn parse_session_cookie(header: &str) -> Option<String> {
    let first = header.split(';').next()?.trim();
    let (k, v) = first.split_once('=')?;
    (k.trim() == SESSION_COOKIE).then(|| format!("{SESSION_COOKIE}={}", v.trim()))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

fn placeholder_content() -> ServiceContent {
    ServiceContent {
        root_folder: MoRef::default(),
        property_collector: MoRef::new("PropertyCollector", "propertyCollector"),
        view_manager: None,
        session_manager: None,
        search_index: None,
        file_manager: None,
        virtual_disk_manager: None,
        task_manager: None,
        about: crate::types::AboutInfo {
            name: String::new(),
            full_name: String::new(),
            version: String::new(),
            build: String::new(),
            api_type: String::new(),
            api_version: String::new(),
            instance_uuid: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::parse_session_cookie;

    #[test]
    fn session_cookie_keeps_only_the_pair() {
        assert_eq!(
            parse_session_cookie(r#"vmware_soap_session="52a1"; Path=/; HttpOnly; Secure;"#)
                .as_deref(),
            Some(r#"vmware_soap_session="52a1""#)
        );
        assert_eq!(parse_session_cookie("other=1; Path=/"), None);
    }
}
