//! The VCH side of container operations on the control channel (top, stats, cp,
//! export): one session per request, its answer and streams routed back to the caller.
//! See `container_vm::ops` for the protocol.

use super::{Channels, Inner};
use container_vm::channel::{Frame, Kind};
use container_vm::ops::OpsRequest;
use tokio::sync::mpsc;

/// What an operation session receives from the tether.
#[derive(Debug)]
pub enum OpsEvent {
    /// The JSON `container_vm::ops::Reply`.
    Reply(Vec<u8>),
    /// A piece of the outgoing tar.
    Data(bytes::Bytes),
    /// The outgoing tar ended: `None` complete, else the error.
    Done(Option<String>),
    /// The tether consumed one `Data` frame we sent.
    Credit,
}

/// Frames in flight from the tether to one reader: the reader loop of the connection
/// waits when it is full, so a slow HTTP client slows the tether down instead of piling
/// the archive up in memory.
const QUEUE: usize = 32;

/// Sessions in progress: where their frames go, and the connection they run on (when it
/// closes, the VM is gone or reconnecting, and the session ends).
pub(super) type OpsSenders =
    std::collections::HashMap<u32, (mpsc::Sender<OpsEvent>, mpsc::UnboundedSender<Frame>)>;

/// A request in progress. Dropping it tells the tether to stop streaming.
pub struct OpsSession {
    inner: std::sync::Arc<parking_lot::Mutex<Inner>>,
    conn: mpsc::UnboundedSender<Frame>,
    session: u32,
    rx: mpsc::Receiver<OpsEvent>,
}

impl OpsSession {
    pub async fn next(&mut self) -> Option<OpsEvent> {
        self.rx.recv().await
    }

    /// Sends a piece of an incoming tar (empty: the end); false when the VM is gone.
    pub fn send_data(&self, data: Vec<u8>) -> bool {
        self.conn
            .send(Frame::new(Kind::Data, self.session, data))
            .is_ok()
    }
}

impl Drop for OpsSession {
    fn drop(&mut self) {
        self.inner.lock().ops.remove(&self.session);
        let _ = self
            .conn
            .send(Frame::new(Kind::Cancel, self.session, Vec::new()));
    }
}

impl Channels {
    /// Starts an operation in the container's tether; `None` when its channel is not
    /// connected.
    pub fn ops(&self, id: &str, req: &OpsRequest) -> Option<OpsSession> {
        let payload = serde_json::to_vec(req).ok()?;
        let mut g = self.inner.lock();
        let conn = g.conns.get(id)?.tx.clone();
        let session = g.next_session;
        g.next_session = g.next_session.wrapping_add(1).max(1);
        let (tx, rx) = mpsc::channel(QUEUE);
        g.ops.insert(session, (tx, conn.clone()));
        drop(g);
        conn.send(Frame::new(Kind::Request, session, payload))
            .ok()?;
        Some(OpsSession {
            inner: self.inner.clone(),
            conn,
            session,
            rx,
        })
    }

    /// Routes one operations frame from a tether to its session.
    pub(super) async fn route_ops(&self, f: Frame, conn: &mpsc::UnboundedSender<Frame>) {
        let ev = match f.kind {
            Kind::Reply => OpsEvent::Reply(f.payload),
            Kind::Data => OpsEvent::Data(bytes::Bytes::from(f.payload)),
            Kind::Done => OpsEvent::Done(
                Some(String::from_utf8_lossy(&f.payload).into_owned()).filter(|e| !e.is_empty()),
            ),
            Kind::Credit => OpsEvent::Credit,
            _ => return,
        };
        let to = self
            .inner
            .lock()
            .ops
            .get(&f.session)
            .map(|(s, _)| s.clone());
        match to {
            // Waits while the reader is behind (back-pressure, see QUEUE).
            Some(s) => {
                let _ = s.send(ev).await;
            }
            None if f.kind == Kind::Data => {
                // Nobody reads this stream any more (the client went away).
                let _ = conn.send(Frame::new(Kind::Cancel, f.session, Vec::new()));
            }
            None => {}
        }
    }

    /// The connection `conn` closed: its sessions end (their readers see the end).
    pub(super) fn end_ops_of(&self, conn: &mpsc::UnboundedSender<Frame>) {
        self.inner
            .lock()
            .ops
            .retain(|_, (_, c)| !c.same_channel(conn));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use container_vm::channel::decode;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads frames from a fake tether's socket until one of `kind` arrives.
    async fn expect(sock: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, kind: Kind) -> Frame {
        loop {
            let mut frames = decode(buf);
            if let Some(i) = frames.iter().position(|f| f.kind == kind) {
                return frames.swap_remove(i);
            }
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "channel closed before {kind:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test]
    async fn sessions_get_their_frames_and_end_with_the_connection() {
        let ch = Channels::listen("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = ch.uri.trim_start_matches("tcp://").to_string();
        let mut vm = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        expect(&mut vm, &mut buf, Kind::Who).await;
        vm.write_all(&Frame::new(Kind::Hello, 0, b"c1".to_vec()).encode())
            .await
            .unwrap();
        assert!(
            ch.wait_connected("c1", std::time::Duration::from_secs(5))
                .await
        );
        let mut s = ch.ops("c1", &OpsRequest::Export).unwrap();
        let req = expect(&mut vm, &mut buf, Kind::Request).await;
        assert_eq!(
            serde_json::from_slice::<OpsRequest>(&req.payload).unwrap(),
            OpsRequest::Export
        );
        for f in [
            Frame::new(Kind::Reply, req.session, b"{\"ok\":null}".to_vec()),
            Frame::new(Kind::Data, req.session, b"tar".to_vec()),
            Frame::new(Kind::Data, req.session + 1000, b"stray".to_vec()),
        ] {
            vm.write_all(&f.encode()).await.unwrap();
        }
        assert!(matches!(s.next().await, Some(OpsEvent::Reply(_))));
        assert!(matches!(s.next().await, Some(OpsEvent::Data(d)) if &d[..] == b"tar"));
        // Data nobody reads is cancelled at the tether.
        let c = expect(&mut vm, &mut buf, Kind::Cancel).await;
        assert_eq!(c.session, req.session + 1000);
        // The VM goes away mid-stream: the session ends instead of waiting forever.
        drop(vm);
        let end = tokio::time::timeout(std::time::Duration::from_secs(5), s.next()).await;
        assert!(matches!(end, Ok(None)));
        assert!(ch.ops("c1", &OpsRequest::Top).is_none());
    }
}
