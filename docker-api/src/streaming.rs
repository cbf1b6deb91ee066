//! Streamed response bodies: JSON lines (events, stats, progress), logs, tarballs.
//!
//! Each item becomes one body frame; hyper writes and flushes it as soon as the stream
//! is pending, so every message reaches the client when it is produced. All of them stop
//! cleanly (proper end of the chunked body) when the server closes streams at shutdown.

use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::backend::{ByteStream, LogStream, ProgressStream, StreamKind};
use crate::errors::{Error, Result};
use crate::http::{self, Body, APPLICATION_JSON};
use crate::progress::JsonMessage;
use crate::stdcopy;

type BodyStream = BoxStream<'static, io::Result<Bytes>>;

/// Ends `s` when `closing` fires.
fn until_closing<S>(
    s: S,
    closing: &CancellationToken,
) -> impl Stream<Item = S::Item> + Send + 'static
where
    S: Stream + Send + 'static,
{
    s.take_until(closing.clone().cancelled_owned())
}

/// `v` as one JSON line.
pub fn json_line<T: Serialize>(v: &T) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// One JSON object per line, ending at the first error (logged) or at shutdown.
pub fn json_lines<T>(
    s: BoxStream<'static, Result<T>>,
    closing: &CancellationToken,
) -> Response<Body>
where
    T: Serialize + Send + 'static,
{
    let body = s
        .take_while(|item| {
            if let Err(e) = item {
                tracing::debug!(error = %e, "stream ended by backend error");
            }
            std::future::ready(item.is_ok())
        })
        .filter_map(|item| std::future::ready(item.ok().map(|v| Ok(json_line(&v)))));
    http::streaming(
        StatusCode::OK,
        APPLICATION_JSON,
        until_closing(body, closing),
    )
}

/// A progress stream. An error before anything was sent is returned as such (so the
/// client gets a real status code, e.g. 404 for an unknown image, as with dockerd);
/// afterwards errors are written in-stream as `errorDetail` and end the stream.
pub async fn progress(
    mut s: ProgressStream,
    closing: &CancellationToken,
) -> Result<Response<Body>> {
    let first = match s.next().await {
        Some(Err(e)) => return Err(e),
        other => other,
    };
    let items = stream::iter(first).chain(s);
    let closing = closing.clone();
    // (stream, finished) -> next line
    let body = stream::unfold((items.boxed(), false), move |(mut items, done)| {
        let closing = closing.clone();
        async move {
            if done {
                return None;
            }
            let next = tokio::select! {
                n = items.next() => n,
                _ = closing.cancelled() => Some(Err(Error::Unavailable("the daemon is shutting down".into()))),
            };
            match next {
                None => None,
                Some(Ok(msg)) => Some((Ok(Bytes::from(msg.to_line())), (items, false))),
                Some(Err(e)) => {
                    let line = JsonMessage::error(e.to_string()).to_line();
                    Some((Ok(Bytes::from(line)), (items, true)))
                }
            }
        }
    });
    Ok(http::streaming(StatusCode::OK, APPLICATION_JSON, body))
}

/// A tarball (export, save, archive). A backend error mid-stream aborts the connection:
/// the client must not take a truncated tarball for a complete one.
pub fn bytes(
    s: ByteStream,
    content_type: HeaderValue,
    closing: &CancellationToken,
) -> Response<Body> {
    let body: BodyStream = s
        .map(|r| r.map_err(|e| io::Error::other(e.to_string())))
        .boxed();
    http::streaming(StatusCode::OK, content_type, until_closing(body, closing))
}

/// Container logs: optional RFC 3339 timestamp prefix, stdcopy framing unless TTY.
pub fn logs(logs: LogStream, timestamps: bool, closing: &CancellationToken) -> BodyStream {
    let tty = logs.tty;
    let body = logs
        .chunks
        .take_while(|item| std::future::ready(item.is_ok()))
        .filter_map(move |item| {
            let out = item.ok().map(|chunk| {
                let mut payload = BytesMut::with_capacity(chunk.data.len() + 32);
                if timestamps {
                    payload.extend_from_slice(
                        chunk
                            .timestamp
                            .format("%Y-%m-%dT%H:%M:%S%.9fZ ")
                            .to_string()
                            .as_bytes(),
                    );
                }
                payload.extend_from_slice(&chunk.data);
                if tty {
                    Ok(payload.freeze())
                } else {
                    Ok(stdcopy::frame(kind_or_stdout(chunk.kind), &payload))
                }
            });
            std::future::ready(out)
        });
    until_closing(body, closing).boxed()
}

/// Log records never carry stdin; treat a stray one as stdout.
fn kind_or_stdout(k: StreamKind) -> StreamKind {
    match k {
        StreamKind::Stdin => StreamKind::Stdout,
        other => other,
    }
}
