//! The VCH end of every container VM's serial port 1: a TCP listener the VMs connect to
//! (network-backed serial port, client direction). On each connection the VCH asks
//! `Who`, learns the container id from `Hello`, and from then on sends exec and signal
//! requests and routes each session's output and exit back to its caller. A VM that
//! reconnects (VCH restart) simply says Hello again.

use container_vm::channel::{
    decode, parse_ack, parse_exit, parse_out, signal_payload, Frame, Kind, STDIN_WINDOW,
};
use container_vm::status::GuestStatus;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

mod ops;
pub use ops::{OpsEvent, OpsSession};

/// What a session receives.
#[derive(Debug)]
pub enum SessionEvent {
    Out { stderr: bool, data: bytes::Bytes },
    Exit { code: i64, error: Option<String> },
}

struct Conn {
    tx: mpsc::UnboundedSender<Frame>,
}

#[derive(Default)]
struct Inner {
    /// Woken on every Hello, for `wait_connected`.
    hello: Arc<tokio::sync::Notify>,
    conns: HashMap<String, Conn>,
    sessions: HashMap<u32, mpsc::UnboundedSender<SessionEvent>>,
    next_session: u32,
    /// Stdin credit per (container, session): bytes that may be sent before the tether
    /// acknowledges them (`StdinAck`). Closed when the container's connection ends, since
    /// acknowledgements of what was in flight will never come.
    credits: HashMap<(String, u32), Arc<tokio::sync::Semaphore>>,
    /// Container operations in progress (top, stats, cp, export), by session.
    ops: ops::OpsSenders,
    /// Where tethers' `Status` reports go (the translator), by container id.
    statuses: Option<mpsc::UnboundedSender<(String, GuestStatus)>>,
}

#[derive(Clone)]
pub struct Channels {
    inner: Arc<Mutex<Inner>>,
    /// `tcp://host:port` for the VMs' serial port backing.
    pub uri: String,
}

impl Channels {
    /// Listens on `addr` (port 0: any free port).
    pub async fn listen(addr: std::net::SocketAddr) -> std::io::Result<Channels> {
        let l = tokio::net::TcpListener::bind(addr).await?;
        let uri = format!("tcp://{}", l.local_addr()?);
        let c = Channels {
            inner: Arc::new(Mutex::new(Inner {
                next_session: 1,
                ..Default::default()
            })),
            uri,
        };
        let me = c.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let _ = sock.set_nodelay(true);
                me.clone().serve(sock);
            }
        });
        Ok(c)
    }

    fn serve(self, sock: tokio::net::TcpStream) {
        tokio::spawn(async move {
            let (mut rd, mut wr) = sock.into_split();
            let (tx, mut rx) = mpsc::unbounded_channel::<Frame>();
            let _ = tx.send(Frame::new(Kind::Who, 0, Vec::new()));
            tokio::spawn(async move {
                while let Some(f) = rx.recv().await {
                    if wr.write_all(&f.encode()).await.is_err() {
                        return;
                    }
                }
            });
            let mut me_id: Option<String> = None;
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                for f in decode(&mut buf) {
                    match f.kind {
                        Kind::Hello => {
                            let id = String::from_utf8_lossy(&f.payload).to_string();
                            let hello = {
                                let mut g = self.inner.lock();
                                g.conns.insert(id.clone(), Conn { tx: tx.clone() });
                                g.hello.clone()
                            };
                            hello.notify_waiters();
                            me_id = Some(id);
                        }
                        Kind::Out => {
                            let (stderr, data) = parse_out(&f.payload);
                            let data = bytes::Bytes::copy_from_slice(data);
                            if let Some(s) = self.inner.lock().sessions.get(&f.session) {
                                let _ = s.send(SessionEvent::Out { stderr, data });
                            }
                        }
                        Kind::StdinAck => {
                            let n = parse_ack(&f.payload) as usize;
                            if let Some(id) = &me_id {
                                let g = self.inner.lock();
                                if let Some(s) = g.credits.get(&(id.clone(), f.session)) {
                                    // Never more than the window (a stale ack must not widen it).
                                    let room = STDIN_WINDOW.saturating_sub(s.available_permits());
                                    s.add_permits(n.min(room));
                                }
                            }
                        }
                        Kind::Exit => {
                            let (code, error) = parse_exit(&f.payload);
                            let ev = SessionEvent::Exit { code, error };
                            let mut g = self.inner.lock();
                            if let Some(id) = &me_id {
                                // The session's stdin is gone: stop whoever still feeds it.
                                if let Some(c) = g.credits.remove(&(id.clone(), f.session)) {
                                    c.close();
                                }
                            }
                            if let Some(s) = g.sessions.remove(&f.session) {
                                let _ = s.send(ev);
                            }
                        }
                        Kind::Status => {
                            let (Some(id), Some(status)) =
                                (&me_id, GuestStatus::decode(&f.payload))
                            else {
                                continue;
                            };
                            if let Some(sink) = &self.inner.lock().statuses {
                                let _ = sink.send((id.clone(), status));
                            }
                        }
                        // Container operations (top, stats, cp, export): see channel::ops.
                        Kind::Reply | Kind::Data | Kind::Done | Kind::Credit => {
                            self.route_ops(f, &tx).await
                        }
                        _ => {}
                    }
                }
            }
            self.end_ops_of(&tx);
            if let Some(id) = me_id {
                let mut g = self.inner.lock();
                if g.conns
                    .get(&id)
                    .map(|c| c.tx.same_channel(&tx))
                    .unwrap_or(false)
                {
                    g.conns.remove(&id);
                    g.credits.retain(|(cid, _), s| {
                        if *cid == id {
                            s.close();
                        }
                        *cid != id
                    });
                }
            }
        });
    }

    /// The tethers' status reports (pid, health) from now on; one subscriber, the last
    /// one to ask.
    pub fn statuses(&self) -> mpsc::UnboundedReceiver<(String, GuestStatus)> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.lock().statuses = Some(tx);
        rx
    }

    pub fn connected(&self, id: &str) -> bool {
        self.inner.lock().conns.contains_key(id)
    }

    /// Waits up to `timeout` for the container's tether to say Hello.
    pub async fn wait_connected(&self, id: &str, timeout: std::time::Duration) -> bool {
        let hello = self.inner.lock().hello.clone();
        let end = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so a Hello in between is not missed.
            let next = hello.notified();
            if self.connected(id) {
                return true;
            }
            if tokio::time::timeout_at(end, next).await.is_err() {
                return self.connected(id);
            }
        }
    }

    /// Lets a parked container's tether run its process; false when not connected.
    pub fn start(&self, id: &str) -> bool {
        let g = self.inner.lock();
        match g.conns.get(id) {
            Some(c) => c.tx.send(Frame::new(Kind::Start, 0, Vec::new())).is_ok(),
            None => false,
        }
    }

    /// Starts an exec session; its output and exit arrive on the returned receiver, and
    /// its number addresses stdin and resize frames.
    pub fn exec(
        &self,
        id: &str,
        req: &container_vm::channel::ExecRequest,
    ) -> Option<(u32, mpsc::UnboundedReceiver<SessionEvent>)> {
        let mut g = self.inner.lock();
        let tx = g.conns.get(id)?.tx.clone();
        let session = g.next_session;
        g.next_session = g.next_session.wrapping_add(1).max(1);
        let (stx, srx) = mpsc::unbounded_channel();
        g.sessions.insert(session, stx);
        drop(g);
        let payload = serde_json::to_vec(req).ok()?;
        tx.send(Frame::new(Kind::Exec, session, payload)).ok()?;
        Some((session, srx))
    }

    /// The stdin credit of `session` of container `id` (see `Inner::credits`).
    pub fn credits(&self, id: &str, session: u32) -> Arc<tokio::sync::Semaphore> {
        self.inner
            .lock()
            .credits
            .entry((id.to_string(), session))
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(STDIN_WINDOW)))
            .clone()
    }

    /// Sends `frame` to the container's tether; false when it is not connected.
    pub fn send(&self, id: &str, frame: Frame) -> bool {
        let g = self.inner.lock();
        match g.conns.get(id) {
            Some(c) => c.tx.send(frame).is_ok(),
            None => false,
        }
    }

    /// Sends a signal to the container's main process; false when not connected.
    pub fn signal(&self, id: &str, sig: i32) -> bool {
        let g = self.inner.lock();
        match g.conns.get(id) {
            Some(c) => {
                c.tx.send(Frame::new(Kind::Signal, 0, signal_payload(sig)))
                    .is_ok()
            }
            None => false,
        }
    }
}
