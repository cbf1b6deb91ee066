//! Datastore file transfer (`/folder/<path>?dcPath=..&dsName=..`, authenticated by the
//! SOAP session cookie) and the REST `/api/session` endpoint.

use crate::methods::{resolve_ds_path, DsPath};
use crate::model::Kind;
use crate::sim::Sim;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, Response, StatusCode};
use base64::Engine as _;
use futures_util::StreamExt;
use serde::Deserialize;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

#[derive(Deserialize)]
pub struct FolderQuery {
    #[serde(rename = "dcPath")]
    dc_path: Option<String>,
    #[serde(rename = "dsName")]
    ds_name: Option<String>,
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(msg.into()))
        .expect("static headers are valid")
}

fn authenticated(sim: &Sim, headers: &HeaderMap) -> bool {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    if sim.http_session(cookie).is_some() {
        return true;
    }
    let api = headers
        .get("vmware-api-session-id")
        .and_then(|v| v.to_str().ok());
    api.map(|k| {
        sim.http_session(Some(&format!("vmware_soap_session={k}")))
            .is_some()
    })
    .unwrap_or(false)
}

/// Resolves the request to a local path, or the HTTP error to answer.
/// Errors are boxed: a response is large and the happy path should not pay for it.
fn locate(
    sim: &Sim,
    headers: &HeaderMap,
    path: &str,
    q: &FolderQuery,
) -> Result<std::path::PathBuf, Box<Response<Body>>> {
    if !authenticated(sim, headers) {
        return Err(Box::new(text(
            StatusCode::UNAUTHORIZED,
            "a valid vmware_soap_session cookie is required",
        )));
    }
    let ds = q.ds_name.as_deref().ok_or_else(|| {
        Box::new(text(
            StatusCode::BAD_REQUEST,
            "the dsName query parameter is required",
        ))
    })?;
    sim.read_inv(|inv| {
        if let Some(dc) = q.dc_path.as_deref() {
            let found = inv
                .all_of_kind("Datacenter")
                .any(|e| e.name == dc.trim_matches('/'));
            if !found {
                return Err(Box::new(text(
                    StatusCode::NOT_FOUND,
                    format!("datacenter '{dc}' not found"),
                )));
            }
        }
        if !matches!(
            inv.datastore_by_name(ds).map(|e| &e.kind),
            Some(Kind::Datastore(_))
        ) {
            return Err(Box::new(text(
                StatusCode::NOT_FOUND,
                format!("datastore '{ds}' not found"),
            )));
        }
        resolve_ds_path(
            inv,
            &DsPath {
                datastore: ds.to_string(),
                path: path.trim_start_matches('/').to_string(),
            },
        )
        .map_err(|f| Box::new(text(StatusCode::BAD_REQUEST, f.msg)))
    })
}

/// Parses `bytes=a-b`, `bytes=a-`, `bytes=-n` against a length; Err means 416.
fn parse_range(h: &str, len: u64) -> Result<(u64, u64), ()> {
    let spec = h.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len.saturating_sub(1))
    } else {
        let s: u64 = a.parse().map_err(|_| ())?;
        let e: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse().map_err(|_| ())?
        };
        (s, e.min(len.saturating_sub(1)))
    };
    if len == 0 || start > end || start >= len {
        return Err(());
    }
    Ok((start, end))
}

pub async fn get_file(
    State(sim): State<Arc<Sim>>,
    method: Method,
    Path(path): Path<String>,
    Query(q): Query<FolderQuery>,
    headers: HeaderMap,
) -> Response<Body> {
    let local = match locate(&sim, &headers, &path, &q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let meta = match tokio::fs::metadata(&local).await {
        Ok(m) => m,
        Err(_) => return text(StatusCode::NOT_FOUND, format!("{path} not found")),
    };
    if meta.is_dir() {
        let mut names = Vec::new();
        if let Ok(mut rd) = tokio::fs::read_dir(&local).await {
            while let Ok(Some(e)) = rd.next_entry().await {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        let mut html = String::from("<html><body><ul>\n");
        for n in names {
            let esc = vsphere_client::xml::escape(&n);
            html.push_str(&format!("<li>{esc}</li>\n"));
        }
        html.push_str("</ul></body></html>\n");
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/html")
            .body(Body::from(html))
            .expect("static headers are valid");
    }
    let len = meta.len();
    let (status, start, end) = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(r) => match parse_range(r, len) {
            Ok((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
            Err(()) => {
                return Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                    .body(Body::empty())
                    .expect("static headers are valid")
            }
        },
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, count);
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    if method == Method::HEAD {
        return b.body(Body::empty()).expect("static headers are valid");
    }
    let mut f = match tokio::fs::File::open(&local).await {
        Ok(f) => f,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if let Err(e) = f.seek(std::io::SeekFrom::Start(start)).await {
        return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(f.take(count), 256 * 1024);
    b.body(Body::from_stream(stream))
        .expect("static headers are valid")
}

pub async fn put_file(
    State(sim): State<Arc<Sim>>,
    Path(path): Path<String>,
    Query(q): Query<FolderQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let local = match locate(&sim, &headers, &path, &q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let Some(dir) = local.parent().filter(|d| d.is_dir()) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("the directory for {path} does not exist"),
        );
    };
    if local.is_dir() {
        return text(StatusCode::CONFLICT, format!("{path} is a directory"));
    }
    let existed = local.exists();
    // Stream into a temporary sibling and rename: an upload cut short leaves nothing.
    let tmp = dir.join(format!(".upload-{}", uuid::Uuid::new_v4()));
    let result: Result<(), String> = async {
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("upload interrupted: {e}"))?;
            f.write_all(&chunk).await.map_err(|e| e.to_string())?;
        }
        f.flush().await.map_err(|e| e.to_string())?;
        f.sync_data().await.map_err(|e| e.to_string())?;
        tokio::fs::rename(&tmp, &local)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(()) => text(
            if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            "",
        ),
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            text(StatusCode::BAD_REQUEST, e)
        }
    }
}

pub async fn delete_file(
    State(sim): State<Arc<Sim>>,
    Path(path): Path<String>,
    Query(q): Query<FolderQuery>,
    headers: HeaderMap,
) -> Response<Body> {
    let local = match locate(&sim, &headers, &path, &q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    match tokio::fs::symlink_metadata(&local).await {
        Err(_) => text(StatusCode::NOT_FOUND, format!("{path} not found")),
        Ok(m) if m.is_dir() => text(StatusCode::CONFLICT, format!("{path} is a directory")),
        Ok(_) => match tokio::fs::remove_file(&local).await {
            Ok(()) => text(StatusCode::NO_CONTENT, ""),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .expect("static headers are valid")
}

fn rest_error(status: StatusCode, kind: &str, msg: &str) -> Response<Body> {
    json(
        status,
        serde_json::json!({"error_type": kind, "messages": [{"id": "vcenter-sim", "default_message": msg, "args": []}]}),
    )
}

/// `POST /api/session` with HTTP Basic credentials; answers the session id as a JSON
/// string, as vCenter 7+ does.
pub async fn rest_login(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response<Body> {
    let creds = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, pass)) = creds.as_deref().and_then(|c| c.split_once(':')) else {
        return rest_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "HTTP Basic credentials are required",
        );
    };
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match sim.login(user, pass, "", agent) {
        Ok(s) => json(StatusCode::CREATED, serde_json::Value::String(s.key)),
        Err(f) => rest_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", &f.msg),
    }
}

fn rest_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("vmware-api-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub async fn rest_session(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response<Body> {
    let Some(key) = rest_key(&headers) else {
        return rest_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "no session");
    };
    if sim
        .http_session(Some(&format!("vmware_soap_session={key}")))
        .is_none()
    {
        return rest_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "the session is not valid",
        );
    }
    let s = sim.sessions.lock().get(&key).cloned();
    match s {
        Some(s) => json(
            StatusCode::OK,
            serde_json::json!({"user": s.user, "created_time": s.login_time, "last_accessed_time": s.last_active_time}),
        ),
        None => rest_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "the session is not valid",
        ),
    }
}

pub async fn rest_logout(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response<Body> {
    match rest_key(&headers) {
        Some(k) if sim.sessions.lock().contains_key(&k) => {
            sim.logout(&k);
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .expect("static headers are valid")
        }
        _ => rest_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "the session is not valid",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Ok((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Ok((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Ok((95, 99)));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=5-1", 100).is_err());
        assert!(parse_range("items=0-1", 100).is_err());
    }
}
