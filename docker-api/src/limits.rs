//! Connection limits: how many sockets one client, and all clients together, may hold.
//!
//! Every accepted socket takes a [`Permit`] before anything else happens; the permit
//! travels inside the socket ([`Counted`]) so it is released exactly when the file
//! descriptor is closed — including after a hijacked attach/exec session, which outlives
//! the HTTP connection driver. A client over its share gets a Docker-style JSON error
//! (429 for one greedy client, 503 when the server as a whole is full) and the socket is
//! closed, so a hostile client runs into a clear error instead of the daemon running
//! out of file descriptors.
//!
//! A "client" is the peer IP address for TCP/TLS (ports are cheap) and the peer uid for
//! unix sockets (SO_PEERCRED; pids are cheap too).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Semaphore;

use crate::errors::Error;

/// Who is on the other end of a socket, for accounting.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Ip(IpAddr),
    Uid(u32),
    /// The peer could not be identified (SO_PEERCRED failed): all such sockets share
    /// one budget rather than each getting its own.
    Unknown,
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::Ip(ip) => write!(f, "{ip}"),
            ClientKey::Uid(uid) => write!(f, "uid {uid}"),
            ClientKey::Unknown => f.write_str("unidentified peer"),
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<ClientKey, usize>,
}

/// The shared counters. Cheap to clone.
#[derive(Clone)]
pub struct ConnLimiter {
    per_client: usize,
    total: usize,
    counts: Arc<Mutex<Counts>>,
    /// Rejections in progress (each holds a socket for up to [`REJECT_LINGER`]); beyond
    /// this many, extra sockets are closed without an answer.
    rejecting: Arc<Semaphore>,
}

/// How long a rejected socket is kept to deliver the error and read what the client
/// already sent: closing with unread input makes the kernel send a reset, which can
/// destroy our answer before the client reads it.
const REJECT_LINGER: Duration = Duration::from_secs(1);
const MAX_REJECTING: usize = 64;

impl ConnLimiter {
    pub fn new(per_client: usize, total: usize) -> Self {
        ConnLimiter {
            per_client: per_client.max(1),
            total: total.max(1),
            counts: Arc::default(),
            rejecting: Arc::new(Semaphore::new(MAX_REJECTING)),
        }
    }

    /// Takes a slot for `key`, or says (as the error the client will see) why not.
    pub fn acquire(&self, key: ClientKey) -> Result<Permit, Error> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.total {
            return Err(Error::Unavailable(format!(
                "too many connections: the server is at its limit of {} connections, try again later",
                self.total
            )));
        }
        let mine = c.per_client.entry(key.clone()).or_insert(0);
        if *mine >= self.per_client {
            return Err(Error::TooManyRequests(format!(
                "too many connections from {key}: limit is {} per client, close some first",
                self.per_client
            )));
        }
        *mine += 1;
        c.total += 1;
        Ok(Permit {
            key,
            counts: self.counts.clone(),
        })
    }

    /// Answers `io` with `err` as an HTTP response and closes it, in the background and
    /// bounded in time and number (see [`REJECT_LINGER`]).
    pub fn reject<I>(&self, io: I, err: Error, headers: Vec<(&'static str, String)>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Ok(slot) = self.rejecting.clone().try_acquire_owned() else {
            return; // dropping `io` closes it
        };
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(REJECT_LINGER, answer(io, &err, &headers)).await;
        });
    }
}

/// Writes the error response, half-closes, then reads and discards until the client
/// closes too.
async fn answer<I>(mut io: I, err: &Error, headers: &[(&'static str, String)]) -> io::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(&error_bytes(err, headers)).await?;
    io.flush().await?;
    io.shutdown().await?;
    let mut sink = [0u8; 4096];
    while io.read(&mut sink).await? > 0 {}
    Ok(())
}

/// A complete `Connection: close` HTTP/1.1 response carrying `err` as Docker's JSON.
/// Hand-written: the socket never reaches hyper.
fn error_bytes(err: &Error, headers: &[(&'static str, String)]) -> Vec<u8> {
    let status = err.status();
    let body = err.to_json_body();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// One connection's slot; released on drop.
pub struct Permit {
    key: ClientKey,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_client.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&self.key);
            }
        }
    }
}

/// A socket carrying its permit: the slot is freed when the socket is dropped.
pub struct Counted<I> {
    io: I,
    _permit: Permit,
}

impl<I> Counted<I> {
    pub fn new(io: I, permit: Permit) -> Self {
        Counted {
            io,
            _permit: permit,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_and_total_caps_release_on_drop() {
        let l = ConnLimiter::new(2, 3);
        let a = ClientKey::Uid(1);
        let b = ClientKey::Ip("127.0.0.1".parse().unwrap());
        let p1 = l.acquire(a.clone()).unwrap();
        let _p2 = l.acquire(a.clone()).unwrap();
        let e = l.acquire(a.clone()).err().unwrap();
        assert_eq!(e.status(), hyper::StatusCode::TOO_MANY_REQUESTS);
        assert!(e.to_string().starts_with("too many connections"), "{e}");
        let _p3 = l.acquire(b.clone()).unwrap();
        let e = l.acquire(b.clone()).err().unwrap();
        assert_eq!(e.status(), hyper::StatusCode::SERVICE_UNAVAILABLE);
        drop(p1);
        assert!(l.acquire(a).is_ok());
    }

    #[test]
    fn rejection_is_a_complete_http_response() {
        let e = Error::TooManyRequests("too many connections".into());
        let b = String::from_utf8(error_bytes(&e, &[("Api-Version", "1.50".into())])).unwrap();
        assert!(b.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{b}");
        assert!(b.contains("Connection: close\r\nApi-Version: 1.50\r\n\r\n"));
        assert!(b.ends_with("{\"message\":\"too many connections\"}\n"));
    }
}
