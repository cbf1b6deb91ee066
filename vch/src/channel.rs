//! The VCH end of every container VM's serial port 1: a TCP listener the VMs connect to
//! (network-backed serial port, client direction). On each connection the VCH asks
//! `Who`, learns the container id from `Hello`, and from then on sends exec and signal
//! requests and routes each session's output and exit back to its caller. A VM that
//! reconnects (VCH restart) simply says Hello again.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tether::channel::{decode, Frame, Kind};
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
    conns: HashMap<String, Conn>,
    sessions: HashMap<u32, mpsc::UnboundedSender<SessionEvent>>,
    next_session: u32,
    /// Container operations in progress (top, stats, cp, export), by session.
    ops: ops::OpsSenders,
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
                            self.inner
                                .lock()
                                .conns
                                .insert(id.clone(), Conn { tx: tx.clone() });
                            me_id = Some(id);
                        }
                        Kind::Out => {
                            let stderr = f.payload.first() == Some(&2);
                            let data = bytes::Bytes::copy_from_slice(
                                f.payload.get(1..).unwrap_or_default(),
                            );
                            if let Some(s) = self.inner.lock().sessions.get(&f.session) {
                                let _ = s.send(SessionEvent::Out { stderr, data });
                            }
                        }
                        Kind::Exit => {
                            let text = String::from_utf8_lossy(&f.payload).to_string();
                            let (code, error) = text.split_once('\n').unwrap_or((&text, ""));
                            let ev = SessionEvent::Exit {
                                code: code.trim().parse().unwrap_or(-1),
                                error: Some(error.trim().to_string()).filter(|e| !e.is_empty()),
                            };
                            if let Some(s) = self.inner.lock().sessions.remove(&f.session) {
                                let _ = s.send(ev);
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
                }
            }
        });
    }

    pub fn connected(&self, id: &str) -> bool {
        self.inner.lock().conns.contains_key(id)
    }

    /// Waits up to `timeout` for the container's tether to say Hello.
    pub async fn wait_connected(&self, id: &str, timeout: std::time::Duration) -> bool {
        let end = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < end {
            if self.connected(id) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        self.connected(id)
    }

    /// Starts an exec session; its output and exit arrive on the returned receiver.
    pub fn exec(
        &self,
        id: &str,
        req: &tether::channel::ExecRequest,
    ) -> Option<mpsc::UnboundedReceiver<SessionEvent>> {
        let mut g = self.inner.lock();
        let tx = g.conns.get(id)?.tx.clone();
        let session = g.next_session;
        g.next_session = g.next_session.wrapping_add(1).max(1);
        let (stx, srx) = mpsc::unbounded_channel();
        g.sessions.insert(session, stx);
        drop(g);
        let payload = serde_json::to_vec(req).ok()?;
        tx.send(Frame::new(Kind::Exec, session, payload)).ok()?;
        Some(srx)
    }

    /// Sends a signal to the container's main process; false when not connected.
    pub fn signal(&self, id: &str, sig: i32) -> bool {
        let g = self.inner.lock();
        match g.conns.get(id) {
            Some(c) => {
                c.tx.send(Frame::new(Kind::Signal, 0, sig.to_string().into_bytes()))
                    .is_ok()
            }
            None => false,
        }
    }
}
