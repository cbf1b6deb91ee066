//! An attached client's stdin on its way to a process in a container VM: the front end
//! writes the client's bytes into a [`StdinForwarder`], which turns them into `Stdin`
//! frames on the container's control channel (serial port 1) for one session (0 = the
//! main process).
//!
//! `docker run -i` attaches before it starts the container, so input can come before the
//! VM's tether has connected: the forwarder holds it (with backpressure to the client)
//! until the channel is up. The tether in turn keeps frames for the main process until
//! the process exists.

use crate::channel::Channels;
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tether::channel::{Frame, Kind};
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
        // Frames stay well under the channel's payload limit.
        let n = buf.len().min(64 * 1024);
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

/// Sends `frame` once the container's channel is up; false when it did not come up while
/// the client was still there (or within the grace period after it left).
async fn deliver(
    channels: &Channels,
    container: &str,
    frame: Frame,
    client_gone: impl Fn() -> bool,
) -> bool {
    let mut gone_since: Option<tokio::time::Instant> = None;
    loop {
        if channels.send(container, frame.clone()) {
            return true;
        }
        if client_gone() {
            let since = *gone_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() > DELIVERY_GRACE {
                return false;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A forwarder of stdin to `session` of `container`.
pub fn forward(
    channels: Channels,
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

    #[test]
    fn console_sizes() {
        assert_eq!(console_size(Some(&vec![24, 80])), Some([24, 80]));
        assert_eq!(console_size(Some(&vec![0, 0])), None);
        assert_eq!(console_size(Some(&vec![24])), None);
        assert_eq!(console_size(None), None);
        assert_eq!(console_size(Some(&vec![1 << 20, 5])), Some([u16::MAX, 5]));
    }
}
