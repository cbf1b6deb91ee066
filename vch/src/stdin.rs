//! An attached client's stdin on its way to a process in a container VM: the front end
//! writes the client's bytes into a [`StdinForwarder`], which turns them into `Stdin`
//! frames on the container's control channel (serial port 1) for one session (0 = the
//! main process).
//!
//! `docker run -i` attaches before it starts the container, so input can come before the
//! VM's tether has connected: the forwarder holds it (with backpressure to the client)
//! until the channel is up. The tether in turn keeps frames for the main process until
//! the process exists.

use crate::translator::guest::GuestChannel;
use bytes::Bytes;
use container_vm::channel::{Frame, Kind, STDIN_WINDOW};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;

/// How long input that the client already sent waits for a VM that never connects.
const DELIVERY_GRACE: Duration = Duration::from_secs(30);

/// What the client's EOF (half-close) means.
pub enum OnEof {
    /// Close the process's stdin: exec sessions, and containers with `StdinOnce`.
    Close,
    /// Leave the process's stdin open and end the attach session (dockerd's behaviour
    /// for a container without `StdinOnce`).
    EndSession(oneshot::Sender<()>),
}

enum Input {
    Data(Bytes),
    Eof,
}

/// The `AsyncWrite` the front end copies the client's stdin into. `shutdown()` is the
/// client's EOF; dropping it without one (detach, TTY) leaves the process's stdin alone.
pub struct StdinForwarder {
    tx: PollSender<Input>,
    shut: bool,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the container's stdin is gone")
}

impl AsyncWrite for StdinForwarder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.shut {
            return Poll::Ready(Err(gone()));
        }
        ready!(self.tx.poll_reserve(cx)).map_err(|_| gone())?;
        // Frames stay well under the channel's payload limit and within one window.
        let n = buf.len().min(64 * 1024).min(STDIN_WINDOW);
        self.tx
            .send_item(Input::Data(Bytes::copy_from_slice(&buf[..n])))
            .map_err(|_| gone())?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shut {
            return Poll::Ready(Ok(()));
        }
        ready!(self.tx.poll_reserve(cx)).map_err(|_| gone())?;
        self.tx.send_item(Input::Eof).map_err(|_| gone())?;
        self.shut = true;
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

/// Sends `frame` once the container's channel is up and, for input, the session has
/// credit for it (the tether acknowledges what it has written, so a process that does not
/// read holds the client back). False when the channel did not come up while the client
/// was still there (or within the grace period after it left), or went away meanwhile.
async fn deliver(
    channels: &Arc<dyn GuestChannel>,
    container: &str,
    frame: Frame,
    client_gone: impl Fn() -> bool,
) -> bool {
    let mut gone_since: Option<tokio::time::Instant> = None;
    while !channels.connected(container) {
        if client_gone() {
            let since = *gone_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() > DELIVERY_GRACE {
                return false;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if frame.kind == Kind::Stdin {
        let credits = channels.credits(container, frame.session);
        // Closed when the connection or the session ends: nothing will acknowledge.
        let Ok(permit) = credits.acquire_many(frame.payload.len() as u32).await else {
            return false;
        };
        permit.forget();
    }
    channels.send(container, frame)
}

/// A forwarder of stdin to `session` of `container`.
pub fn forward(
    channels: Arc<dyn GuestChannel>,
    container: String,
    session: u32,
    on_eof: OnEof,
) -> StdinForwarder {
    // A few frames in flight; the client waits beyond that (a 1 GB pipe must not end up
    // in the VCH's memory while the VM boots).
    let (tx, mut rx) = mpsc::channel::<Input>(8);
    tokio::spawn(async move {
        let mut on_eof = Some(on_eof);
        while let Some(item) = rx.recv().await {
            let frame = match item {
                Input::Data(d) => Frame::new(Kind::Stdin, session, d.to_vec()),
                Input::Eof => match on_eof.take() {
                    Some(OnEof::Close) => Frame::new(Kind::StdinClose, session, Vec::new()),
                    Some(OnEof::EndSession(tx)) => {
                        let _ = tx.send(());
                        return;
                    }
                    None => return,
                },
            };
            if !deliver(&channels, &container, frame, || rx.is_closed()).await {
                return;
            }
        }
    });
    StdinForwarder {
        tx: PollSender::new(tx),
        shut: false,
    }
}

/// Stdin of an attach session to the main process, and what ends the session because the
/// client's stdin ended: with `StdinOnce` nothing (the process's stdin closes and the output
/// ends with the process), else the client's EOF itself (the process's stdin stays open for
/// the next client).
pub fn attach_main(
    channels: Arc<dyn GuestChannel>,
    container: String,
    stdin_once: bool,
) -> (StdinForwarder, BoxFuture<'static, ()>) {
    if stdin_once {
        let w = forward(channels, container, 0, OnEof::Close);
        return (w, std::future::pending().boxed());
    }
    let (tx, rx) = oneshot::channel();
    let w = forward(channels, container, 0, OnEof::EndSession(tx));
    let end = async move {
        // A forwarder dropped without EOF (detach, client gone) ends nothing by itself.
        if rx.await.is_err() {
            std::future::pending::<()>().await
        }
    };
    (w, end.boxed())
}

/// Docker's `ConsoleSize` (`[height, width]`) as the tether's `[rows, cols]`; `None` when
/// absent or zero.
pub fn console_size(v: Option<&Vec<usize>>) -> Option<[u16; 2]> {
    match v.map(Vec::as_slice) {
        Some([h, w]) if *h > 0 && *w > 0 => Some([
            (*h).min(u16::MAX as usize) as u16,
            (*w).min(u16::MAX as usize) as u16,
        ]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Channels;
    use container_vm::channel::decode;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Plays a tether: connects to the channel listener, says Hello as `id`, and returns
    /// the frames it receives until the VCH has been quiet for a while.
    async fn tether_reads(uri: &str, id: &str) -> Vec<Frame> {
        let mut s = tokio::net::TcpStream::connect(uri.trim_start_matches("tcp://"))
            .await
            .unwrap();
        s.write_all(&Frame::new(Kind::Hello, 0, id.as_bytes().to_vec()).encode())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), s.read(&mut chunk)).await
        {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            frames.extend(decode(&mut buf).into_iter().filter(|f| f.kind != Kind::Who));
        }
        frames
    }

    /// Stdin bytes that arrive on `s` until it has been quiet for a while.
    async fn stdin_bytes(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> usize {
        let mut total = 0;
        let mut chunk = vec![0u8; 64 * 1024];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), s.read(&mut chunk)).await
        {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            for f in decode(buf) {
                if f.kind == Kind::Stdin {
                    total += f.payload.len();
                }
            }
        }
        total
    }

    fn guest(ch: &crate::channel::Channels) -> Arc<dyn GuestChannel> {
        Arc::new(ch.clone())
    }

    #[tokio::test]
    async fn unacknowledged_input_stops_at_the_window() {
        let ch = Channels::listen("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut w = forward(guest(&ch), "c3".into(), 0, OnEof::Close);
        let writer = tokio::spawn(async move {
            w.write_all(&vec![b'a'; 4 << 20]).await.unwrap();
        });
        let mut s = tokio::net::TcpStream::connect(ch.uri.trim_start_matches("tcp://"))
            .await
            .unwrap();
        s.write_all(&Frame::new(Kind::Hello, 0, b"c3".to_vec()).encode())
            .await
            .unwrap();
        let mut buf = Vec::new();
        // A process that does not read: the VCH stops at the window, the client waits.
        assert_eq!(stdin_bytes(&mut s, &mut buf).await, STDIN_WINDOW);
        assert!(!writer.is_finished());
        // The tether wrote two frames' worth into the process: that much more may come.
        let ack = Frame::new(Kind::StdinAck, 0, (128u32 << 10).to_be_bytes().to_vec());
        s.write_all(&ack.encode()).await.unwrap();
        assert_eq!(stdin_bytes(&mut s, &mut buf).await, 128 << 10);
        assert!(!writer.is_finished());
        writer.abort();
    }

    #[tokio::test]
    async fn input_before_the_vm_connects_is_delivered_then_eof() {
        let ch = Channels::listen("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut w = forward(guest(&ch), "c1".into(), 0, OnEof::Close);
        // The client types and closes before the VM is up (`docker run -i`).
        w.write_all(b"early ").await.unwrap();
        w.write_all(b"input").await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        let frames = tether_reads(&ch.uri, "c1").await;
        let kinds: Vec<Kind> = frames.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, vec![Kind::Stdin, Kind::Stdin, Kind::StdinClose]);
        assert_eq!(&frames[0].payload[..], b"early ");
        assert_eq!(&frames[1].payload[..], b"input");
        assert!(frames.iter().all(|f| f.session == 0));
    }

    #[tokio::test]
    async fn detach_sends_no_eof_and_eof_without_stdin_once_ends_the_session() {
        let ch = Channels::listen("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        // Dropped without shutdown: the client detached; the process's stdin stays open.
        let mut w = forward(guest(&ch), "c2".into(), 4, OnEof::Close);
        w.write_all(b"x").await.unwrap();
        drop(w);
        // Without StdinOnce the client's EOF ends the session, not the process's stdin.
        let (mut w, end) = attach_main(guest(&ch), "c2".into(), false);
        w.write_all(b"y").await.unwrap();
        w.shutdown().await.unwrap();
        let frames = tether_reads(&ch.uri, "c2").await;
        let got: Vec<(Kind, u32, Vec<u8>)> = frames
            .into_iter()
            .map(|f| (f.kind, f.session, f.payload))
            .collect();
        assert!(got.contains(&(Kind::Stdin, 4, b"x".to_vec())), "{got:?}");
        assert!(got.contains(&(Kind::Stdin, 0, b"y".to_vec())), "{got:?}");
        assert!(got.iter().all(|g| g.0 != Kind::StdinClose), "{got:?}");
        tokio::time::timeout(Duration::from_secs(5), end)
            .await
            .expect("the client's EOF ends the attach session");
    }

    #[test]
    fn console_sizes() {
        assert_eq!(console_size(Some(&vec![24, 80])), Some([24, 80]));
        assert_eq!(console_size(Some(&vec![0, 0])), None);
        assert_eq!(console_size(Some(&vec![24])), None);
        assert_eq!(console_size(None), None);
        assert_eq!(console_size(Some(&vec![1 << 20, 5])), Some([u16::MAX, 5]));
    }
}
