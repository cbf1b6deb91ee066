//! Request context and response helpers shared by the route handlers.
//!
//! Query parsing follows dockerd's helpers (`httputils.BoolValue` & co) so that clients
//! that send `1`, `true`, `yes` or nothing get the same meaning as with dockerd; bodies are
//! read with a size limit and decoded with errors that name the offending field.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::App;
use crate::backend::ByteStream;
use crate::errors::{Error, Result};
use crate::filters::Filters;
use crate::hijack::ConnState;
use crate::options::RegistryAuth;
use crate::options::Timestamp;
use crate::version::ApiVersion;

/// Response body type: any stream of byte frames. A body error aborts the connection
/// (the client sees a truncated transfer rather than a clean end).
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
pub const APPLICATION_TAR: HeaderValue = HeaderValue::from_static("application/x-tar");

/// Everything a handler gets.
pub struct Ctx {
    pub app: Arc<App>,
    /// The API version the request is served at.
    pub version: ApiVersion,
    pub method: hyper::Method,
    pub headers: HeaderMap,
    pub query: Query,
    /// Decoded `{name}` path parameters, in pattern order.
    pub params: Vec<String>,
    pub body: Option<Incoming>,
    pub conn: Arc<ConnState>,
}

impl Ctx {
    /// The `i`-th path parameter (the router guarantees it exists for the pattern).
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or("")
    }

    /// Reads and decodes a JSON body. `Ok(None)` for an empty body (dockerd accepts an
    /// empty body wherever a JSON one is optional).
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        self.json_limited(self.app.config.max_body_bytes).await
    }

    /// [`Ctx::json`] with a body limit of its own (container create keeps a tighter one).
    pub async fn json_limited<T: DeserializeOwned>(&mut self, limit: usize) -> Result<Option<T>> {
        check_json_content_type(&self.headers)?;
        let bytes = self.body_bytes_limited(limit).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        decode_json(&bytes).map(Some)
    }

    /// Reads the whole body, refusing more than the configured limit with 413.
    pub async fn body_bytes(&mut self) -> Result<Bytes> {
        self.body_bytes_limited(self.app.config.max_body_bytes)
            .await
    }

    /// Reads the whole body, refusing more than `limit` bytes with 413 and a client that
    /// stalls (no data for `body_read_timeout`, or 4x that in all) with 408: the body
    /// is buffered, so a client trickling it must not hold the handler forever.
    pub async fn body_bytes_limited(&mut self, limit: usize) -> Result<Bytes> {
        let Some(mut body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        if let Some(len) = self
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > limit as u64 {
                return Err(too_large(limit));
            }
        }
        let idle = self.app.config.body_read_timeout;
        let deadline = tokio::time::Instant::now() + idle * 4;
        let mut buf = bytes::BytesMut::new();
        loop {
            let wait_until = deadline.min(tokio::time::Instant::now() + idle);
            let frame = match tokio::time::timeout_at(wait_until, body.frame()).await {
                Err(_) => {
                    return Err(Error::RequestTimeout(format!(
                    "timed out reading the request body after {} bytes (limit: {}s without data)",
                    buf.len(),
                    idle.as_secs_f64()
                )))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Error::invalid(format!("error reading request body: {e}")))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(too_large(limit));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    }

    /// The body as an unbounded byte stream (tarballs: load, import, archive upload).
    pub fn body_stream(&mut self) -> ByteStream {
        match self.body.take() {
            None => futures_util::stream::empty().boxed(),
            Some(body) => body
                .into_data_stream()
                .map_err(|e| Error::invalid(format!("error reading request body: {e}")))
                .boxed(),
        }
    }

    /// Decodes `X-Registry-Config` (base64 JSON: registry → credentials), sent with
    /// builds; a malformed header is a 400.
    pub fn registry_config(&self) -> Result<std::collections::BTreeMap<String, RegistryAuth>> {
        let Some(raw) = self.headers.get("x-registry-config") else {
            return Ok(Default::default());
        };
        raw.to_str()
            .ok()
            .and_then(|s| decode_base64_lenient(s.trim()))
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| Error::invalid("invalid X-Registry-Config header"))
    }

    /// Decodes `X-Registry-Auth` (base64url JSON). `strict` makes a malformed header a
    /// 400; pulls ignore it like dockerd does, for compatibility with old clients.
    pub fn registry_auth(&self, strict: bool) -> Result<Option<RegistryAuth>> {
        let Some(raw) = self.headers.get("x-registry-auth") else {
            return Ok(None);
        };
        let decoded = raw
            .to_str()
            .ok()
            .and_then(|s| decode_base64_lenient(s.trim()))
            .and_then(|b| serde_json::from_slice::<RegistryAuth>(&b).ok());
        match decoded {
            Some(a) => Ok(Some(a)),
            None if strict => Err(Error::invalid("invalid X-Registry-Auth header")),
            None => Ok(None),
        }
    }
}

fn too_large(limit: usize) -> Error {
    Error::TooLarge(format!("request body too large (limit {limit} bytes)"))
}

/// Go encodes X-Registry-Auth with URL-safe base64, with or without padding; some clients
/// use the standard alphabet. Accept all of them.
fn decode_base64_lenient(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [URL_SAFE, URL_SAFE_NO_PAD, STANDARD, STANDARD_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

/// dockerd's `CheckForJSON`: a body must be declared as JSON (or not declared at all).
pub fn check_json_content_type(headers: &HeaderMap) -> Result<()> {
    let Some(ct) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.is_empty() || mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "unsupported Content-Type header ({ct}): must be 'application/json'"
        )))
    }
}

/// Decodes JSON, naming the field that failed ("invalid JSON: HostConfig.Memory: ...").
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            Error::invalid(format!("invalid JSON: {inner}"))
        } else {
            Error::invalid(format!("invalid JSON: field {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|_| Error::invalid("unexpected content after JSON"))?;
    Ok(value)
}

/// Parsed query string.
#[derive(Default, Debug)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v): (Cow<str>, Cow<str>)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    /// First value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// First non-empty value of `key`.
    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// All values of a repeated `key`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every parameter, in the order sent.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// dockerd's `BoolValue`: anything but "", "0", "no", "false", "none" is true.
    pub fn bool(&self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }

    /// dockerd's `BoolValueOrDefault`: `default` when the key is absent.
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        if self.has(key) {
            self.bool(key)
        } else {
            default
        }
    }

    /// A number; absent or empty is `None`, garbage is a 400 naming the parameter.
    pub fn num<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                Error::invalid(format!(
                    "invalid value for parameter {key}: {v:?} is not a valid number"
                ))
            }),
        }
    }

    /// A point in time as the CLI sends it: unix seconds with optional fraction
    /// ("1700000000.5"); RFC 3339 is accepted too.
    pub fn timestamp(&self, key: &str) -> Result<Option<Timestamp>> {
        match self.get(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => parse_timestamp(v).map(Some).ok_or_else(|| {
                Error::invalid(format!(
                    "invalid value for parameter {key}: {v:?} is not a timestamp"
                ))
            }),
        }
    }

    /// The `filters` parameter, checked against the names the endpoint accepts.
    pub fn filters(&self, accepted: &[&str]) -> Result<Filters> {
        let f = Filters::parse(self.get("filters").unwrap_or(""))?;
        f.validate(accepted)?;
        Ok(f)
    }
}

// ---- responses -----------------------------------------------------------------------

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

pub fn empty_body() -> Body {
    full(Bytes::new())
}

/// A JSON response with Go's trailing newline.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Result<Response<Body>> {
    let mut v = serde_json::to_vec(value).map_err(Error::internal)?;
    v.push(b'\n');
    let mut resp = Response::new(full(v));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, APPLICATION_JSON);
    Ok(resp)
}

/// An empty response (204, or 200/201 with Content-Length: 0).
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(empty_body());
    *resp.status_mut() = status;
    resp
}

/// A streamed response; each item of `stream` is written (and flushed) as it comes.
pub fn streaming<S>(status: StatusCode, content_type: HeaderValue, stream: S) -> Response<Body>
where
    S: Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + 'static,
{
    let body = StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}

/// The error response for `e`: status from [`Error::status`], `{"message": ...}` body.
pub fn error_response(e: &Error) -> Response<Body> {
    let status = e.status();
    if status == StatusCode::NOT_MODIFIED {
        return empty(status);
    }
    let mut resp = Response::new(full(e.to_json_body()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, APPLICATION_JSON);
    resp
}

/// dockerd's 404 for paths that match no route.
pub fn page_not_found() -> Response<Body> {
    error_response(&Error::NotFound("page not found".into()))
}

/// Parses "secs[.fraction]" (the docker CLI's format) or RFC 3339.
pub fn parse_timestamp(v: &str) -> Option<Timestamp> {
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    if let Ok(secs) = secs.parse::<i64>() {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let nanos: u32 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().ok()?
        };
        return chrono::DateTime::from_timestamp(secs, nanos);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bools_and_numbers() {
        let q = Query::parse(Some(
            "a=1&b=false&c=&d=yes&n=12&bad=x&f=%7B%22x%22%3A%5B%5D%7D",
        ));
        assert!(q.bool("a") && !q.bool("b") && !q.bool("c") && q.bool("d") && !q.bool("zz"));
        assert!(q.bool_or("zz", true) && !q.bool_or("b", true));
        assert_eq!(q.num::<u32>("n").unwrap(), Some(12));
        assert!(q.num::<u32>("bad").unwrap_err().to_string().contains("bad"));
        assert_eq!(q.get("f"), Some("{\"x\":[]}"));
    }

    #[test]
    fn timestamps() {
        let t = parse_timestamp("1700000000.5").unwrap();
        assert_eq!(t.timestamp(), 1_700_000_000);
        assert_eq!(t.timestamp_subsec_nanos(), 500_000_000);
        assert!(parse_timestamp("2023-11-14T22:13:20Z").is_some());
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[test]
    fn json_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            #[serde(rename = "HostConfig")]
            host_config: Inner,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            #[serde(rename = "Memory")]
            memory: i64,
        }
        let e = decode_json::<Outer>(br#"{"HostConfig":{"Memory":"lots"}}"#).unwrap_err();
        assert!(e.to_string().contains("HostConfig.Memory"), "{e}");
        assert!(decode_json::<Outer>(b"{").is_err());
        let e = decode_json::<serde_json::Value>(b"{} x").unwrap_err();
        assert_eq!(e.to_string(), "unexpected content after JSON");
    }
}
