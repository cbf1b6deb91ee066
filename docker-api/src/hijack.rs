//! Connection hijacking for attach and exec start.
//!
//! dockerd answers these requests by taking over the TCP connection: it writes
//! `HTTP/1.1 101 UPGRADED` (or, for old clients that sent no `Upgrade` header, a bare
//! `HTTP/1.1 200 OK`) and then speaks the raw stream in both directions. hyper can only
//! hand over a connection after a 101 to a request that asked for an upgrade, and writes
//! its own status line. So we drive each connection ourselves (see `server.rs`):
//!
//! 1. the handler *arms* the connection ([`ConnState::arm`]) and returns a placeholder
//!    101 response;
//! 2. [`HijackIo`], the I/O wrapper under hyper, swallows the head hyper writes for it;
//! 3. hyper sees a finished connection; the driver takes the raw I/O and hyper's read
//!    buffer (stdin bytes the client may already have sent) out of it and passes them
//!    to the session task, which writes dockerd's exact head and runs the streams.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::backend::AttachStreams;
use crate::errors::Error;
use crate::stdcopy;

/// Media type of a raw (TTY or legacy) stream.
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
/// Media type of a stdcopy-multiplexed stream (API >= 1.42, upgrade requests only).
pub const MULTIPLEXED_STREAM: &str = "application/vnd.docker.multiplexed-stream";

/// Any connection we can hijack (TCP, unix, TLS).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The taken-over connection and the bytes hyper had already read from it.
pub struct Hijacked {
    pub io: Box<dyn Io>,
    pub read_buf: Bytes,
}

/// Per-connection state shared by the connection driver, the I/O wrapper and handlers.
#[derive(Default)]
pub struct ConnState {
    hijack: Mutex<Option<oneshot::Sender<Hijacked>>>,
    swallow_head: AtomicBool,
}

impl ConnState {
    /// Marks the connection for takeover once the current response head is written.
    /// The head hyper writes is discarded; the receiver gets the raw connection.
    pub fn arm(&self) -> oneshot::Receiver<Hijacked> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut slot) = self.hijack.lock() {
            *slot = Some(tx);
        }
        self.swallow_head.store(true, Ordering::Release);
        rx
    }

    /// The pending takeover, if a handler armed one.
    pub fn take(&self) -> Option<oneshot::Sender<Hijacked>> {
        self.hijack.lock().ok().and_then(|mut s| s.take())
    }
}

/// I/O wrapper under hyper that can discard one response head (see module docs).
pub struct HijackIo<I> {
    inner: I,
    state: std::sync::Arc<ConnState>,
    /// How much of the `\r\n\r\n` head terminator has been seen while swallowing.
    matched: usize,
}

impl<I> HijackIo<I> {
    pub fn new(inner: I, state: std::sync::Arc<ConnState>) -> Self {
        HijackIo {
            inner,
            state,
            matched: 0,
        }
    }

    pub fn into_inner(self) -> I {
        self.inner
    }

    /// Consumes head bytes from `buf`; returns how many belong to the head.
    fn swallow(&mut self, buf: &[u8]) -> usize {
        const END: &[u8; 4] = b"\r\n\r\n";
        for (i, &b) in buf.iter().enumerate() {
            if b == END[self.matched] {
                self.matched += 1;
            } else {
                self.matched = usize::from(b == b'\r');
            }
            if self.matched == END.len() {
                self.matched = 0;
                self.state.swallow_head.store(false, Ordering::Release);
                return i + 1;
            }
        }
        buf.len()
    }

    fn swallowing(&self) -> bool {
        self.state.swallow_head.load(Ordering::Acquire)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for HijackIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for HijackIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.swallowing() && !buf.is_empty() {
            let n = self.swallow(buf);
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.swallowing() {
            return match bufs.iter().find(|b| !b.is_empty()) {
                Some(first) => {
                    let n = self.swallow(first);
                    Poll::Ready(Ok(n))
                }
                None => Poll::Ready(Ok(0)),
            };
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The response head dockerd writes on a hijacked connection. `common` are the headers
/// every response carries (Api-Version, Server...), which dockerd copies in too.
pub fn response_head(upgrade: bool, content_type: &str, common: &[(&str, String)]) -> Bytes {
    let mut head = String::with_capacity(256);
    if upgrade {
        head.push_str("HTTP/1.1 101 UPGRADED\r\nContent-Type: ");
        head.push_str(content_type);
        head.push_str("\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n");
    } else {
        head.push_str("HTTP/1.1 200 OK\r\nContent-Type: ");
        head.push_str(RAW_STREAM);
        head.push_str("\r\n");
    }
    for (k, v) in common {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    Bytes::from(head)
}

/// Parses docker's detach key spec ("ctrl-p,ctrl-q", "a,ctrl-@") into bytes.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, Error> {
    let bad = || Error::invalid(format!("Invalid detach keys ({spec}) provided"));
    let mut out = Vec::new();
    for key in spec.split(',') {
        let lower = key.to_ascii_lowercase();
        if let Some(c) = lower.strip_prefix("ctrl-") {
            let code = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(bad()),
            };
            out.push(code);
        } else if key.len() == 1 {
            out.push(key.as_bytes()[0]);
        } else {
            return Err(bad());
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Minimum time between the response head and the first output bytes (see `run`).
const FIRST_OUTPUT_GAP: std::time::Duration = std::time::Duration::from_millis(5);

/// Default detach sequence: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[16, 17];

/// Finds the detach sequence in stdin, holding back a partial match until it is known
/// not to be one (then it is forwarded, like dockerd's escape proxy).
struct DetachDetector {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachDetector {
    /// Returns the bytes to forward and whether the sequence completed.
    fn feed(&mut self, data: &[u8], out: &mut BytesMut) -> bool {
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return true;
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                    if self.keys.len() == 1 {
                        return true;
                    }
                } else {
                    out.extend_from_slice(&[b]);
                }
            }
        }
        false
    }
}

/// How the client's side of a session ended.
enum StdinEnd {
    /// Half-close (or full close): the session goes on until the output ends.
    Eof,
    /// The detach sequence: the session ends, the process keeps running.
    Detached,
}

/// An attach or exec session over a hijacked connection.
pub struct Session {
    pub head: Bytes,
    pub streams: AttachStreams,
    pub detach_keys: Vec<u8>,
}

impl Session {
    /// Writes the head, then pumps stdin and output until the output ends, the client
    /// detaches, or the server closes streams at shutdown. Always ends with a clean
    /// close of our side (FIN, or TLS close_notify).
    pub async fn run(self, hijacked: Hijacked, closing: CancellationToken) {
        let Hijacked { io, read_buf } = hijacked;
        let (mut rd, mut wr) = tokio::io::split(io);
        let Session {
            head,
            streams,
            detach_keys,
        } = self;
        let AttachStreams {
            tty,
            stdin,
            mut output,
            ..
        } = streams;

        if wr.write_all(&head).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        let head_sent = tokio::time::Instant::now();

        let stdin_pump = async move {
            let Some(mut stdin) = stdin else {
                // Nothing to feed; keep the read side open until the output ends.
                return std::future::pending::<StdinEnd>().await;
            };
            // Like dockerd, only a TTY session watches for the detach keys: piped input is
            // data, and 1 MB of it holds ctrl-p ctrl-q by chance.
            let mut det = tty.then_some(DetachDetector {
                keys: detach_keys,
                matched: 0,
            });
            let mut fwd = BytesMut::new();
            let mut buf = vec![0u8; 32 * 1024];
            // Bytes hyper read past the request head come first.
            let mut extra = read_buf;
            let mut n = 0;
            loop {
                if n > 0 {
                    fwd.clear();
                    let detached = match det.as_mut() {
                        Some(d) => d.feed(&buf[..n], &mut fwd),
                        None => {
                            fwd.extend_from_slice(&buf[..n]);
                            false
                        }
                    };
                    if !fwd.is_empty() && stdin.write_all(&fwd).await.is_err() {
                        return StdinEnd::Eof;
                    }
                    let _ = stdin.flush().await;
                    if detached {
                        return StdinEnd::Detached;
                    }
                }
                if extra.has_remaining() {
                    n = extra.len().min(buf.len());
                    buf[..n].copy_from_slice(&extra[..n]);
                    extra.advance(n);
                    continue;
                }
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) if tty => {
                        // dockerd never closes a TTY's stdin when the client goes: EOF
                        // ends the session (the CLI closes the connection when it
                        // detaches on its own escape keys).
                        return StdinEnd::Detached;
                    }
                    Ok(0) | Err(_) => {
                        // The client half-closed: its stdin is over.
                        let _ = stdin.shutdown().await;
                        return StdinEnd::Eof;
                    }
                    Ok(read) => n = read,
                }
            }
        };

        {
            let output_pump = async {
                let mut frame = BytesMut::new();
                let mut first = true;
                while let Some(item) = output.next().await {
                    let chunk = match item {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::debug!(error = %e, "attach output stream failed");
                            break;
                        }
                    };
                    if std::mem::take(&mut first) {
                        // docker-py parses the head with a buffered reader and then
                        // reads the raw socket: output that arrives in the same read
                        // as the head is lost. dockerd never hits this because a
                        // process takes a while to start; keep a gap like that.
                        tokio::time::sleep_until(head_sent + FIRST_OUTPUT_GAP).await;
                    }
                    let res = if tty {
                        wr.write_all(&chunk.data).await
                    } else {
                        frame.clear();
                        stdcopy::encode_into(&mut frame, chunk.kind, &chunk.data);
                        wr.write_all(&frame).await
                    };
                    if res.is_err() || wr.flush().await.is_err() {
                        return;
                    }
                }
            };
            tokio::pin!(stdin_pump);
            tokio::pin!(output_pump);
            let mut stdin_open = true;
            loop {
                tokio::select! {
                    end = &mut stdin_pump, if stdin_open => match end {
                        StdinEnd::Eof => stdin_open = false,
                        StdinEnd::Detached => break,
                    },
                    _ = &mut output_pump => break,
                    _ = closing.cancelled() => break,
                }
            }
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            DEFAULT_DETACH_KEYS
        );
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-pp").is_err());
        let mut d = DetachDetector {
            keys: DEFAULT_DETACH_KEYS.to_vec(),
            matched: 0,
        };
        let mut out = BytesMut::new();
        assert!(!d.feed(b"ab\x10c", &mut out));
        assert_eq!(&out[..], b"ab\x10c");
        out.clear();
        assert!(!d.feed(b"x\x10", &mut out));
        assert_eq!(&out[..], b"x");
        out.clear();
        assert!(d.feed(b"\x11", &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn swallows_exactly_one_head() {
        let state = std::sync::Arc::new(ConnState::default());
        let _rx = state.arm();
        let mut io = HijackIo::new(Vec::<u8>::new(), state.clone());
        assert_eq!(io.swallow(b"HTTP/1.1 101 Switching\r\nA: b\r"), 29);
        assert!(io.swallowing());
        assert_eq!(io.swallow(b"\n\r\nrest"), 3);
        assert!(!io.swallowing());
    }
}
