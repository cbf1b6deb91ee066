//! The VCH side of container operations on the control channel (top, stats, cp,
//! export): one session per request, its answer and streams routed back to the caller.
//! See tether::ops for the protocol.

use super::{Channels, Inner};
use tether::channel::{Frame, Kind};
use tether::ops::OpsRequest;
use tokio::sync::mpsc;

/// What an operation session receives from the tether.
#[derive(Debug)]
pub enum OpsEvent {
    /// The JSON `tether::ops::Reply`.
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
