//! Container operations the VCH asks of the guest over the control channel: `docker top`
//! and `docker stats` (read from the container's /proc: the tether is pid 1 of the
//! container's pid namespace and its root is the container's root), and `docker cp` /
//! `docker export` (tar streams of the root filesystem, both ways).
//!
//! Protocol (see docs/container-vm.md): the VCH sends `Request` with an [`OpsRequest`];
//! the tether answers one `Reply` ([`Reply`] JSON). A request that streams out (`get`,
//! `export`) follows its successful `Reply` with `Data` frames and one `Done`; a request
//! that streams in (`put`) gets `Data` frames from the VCH (an empty one ends the tar),
//! acknowledges each with `Credit`, and sends its `Reply` once the tar is extracted.

pub mod archive;
mod extract;
pub mod stats;
mod tarball;
pub mod top;

use crate::channel::{Frame, Kind};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::sync::{mpsc, Arc, Mutex};

/// The serial port, shared by every thread that writes frames.
pub type Port = Arc<Mutex<File>>;

/// What the VCH asks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpsRequest {
    /// `ps -ef`-style process table.
    Top,
    /// One stats sample.
    Stats,
    /// lstat of a path (`HEAD /archive`).
    Stat { path: String },
    /// A tar of a path (`GET /archive`).
    Get { path: String },
    /// A tar of the whole root filesystem.
    Export,
    /// Extract the tar that follows into the directory `path` (`PUT /archive`).
    Put {
        path: String,
        #[serde(default)]
        no_overwrite_dir_non_dir: bool,
    },
}

/// Why a request failed, so the VCH can pick the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    Invalid,
    Internal,
}

/// The answer: `ok` with a value, or an error.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ok(serde_json::Value),
    Error { kind: ErrorKind, message: String },
}

impl Reply {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
        Reply::Error {
            kind,
            message: message.into(),
        }
    }
}

/// How many `Data` frames the VCH may have in flight towards a `put` (64 KiB each).
pub const PUT_WINDOW: u32 = 16;
/// The size of the `Data` frames the tether sends.
pub const CHUNK: usize = 64 * 1024;

pub(crate) fn send(port: &Port, f: Frame) -> std::io::Result<()> {
    let mut p = port
        .lock()
        .map_err(|_| std::io::Error::other("control port lock poisoned"))?;
    p.write_all(&f.encode())
}

fn reply(port: &Port, session: u32, r: &Reply) {
    let payload = serde_json::to_vec(r).unwrap_or_default();
    // A lost frame is a lost line; the VCH times the request out.
    let _ = send(port, Frame::new(Kind::Reply, session, payload));
}

/// Streams into the container (`put`) by session: the extractor thread's inbox.
static PUTS: Mutex<Option<HashMap<u32, mpsc::Sender<Vec<u8>>>>> = Mutex::new(None);
/// Outgoing streams the VCH no longer reads.
static CANCELLED: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

pub(crate) fn cancelled(session: u32) -> bool {
    CANCELLED
        .lock()
        .map(|c| c.as_ref().is_some_and(|s| s.contains(&session)))
        .unwrap_or(false)
}

fn forget(session: u32) {
    if let Ok(mut c) = CANCELLED.lock() {
        if let Some(s) = c.as_mut() {
            s.remove(&session);
        }
    }
    if let Ok(mut p) = PUTS.lock() {
        if let Some(m) = p.as_mut() {
            m.remove(&session);
        }
    }
}

/// Handles one frame of the operations block. Runs on the channel's reader thread, so
/// anything slow goes to a thread of its own.
pub fn handle(port: &Port, f: Frame) {
    match f.kind {
        Kind::Request => {
            let req = match serde_json::from_slice::<OpsRequest>(&f.payload) {
                Ok(r) => r,
                Err(e) => {
                    let r = Reply::error(ErrorKind::Invalid, format!("bad request: {e}"));
                    return reply(port, f.session, &r);
                }
            };
            start(port.clone(), f.session, req);
        }
        Kind::Data => {
            let inbox = PUTS
                .lock()
                .ok()
                .and_then(|p| p.as_ref().and_then(|m| m.get(&f.session).cloned()));
            if let Some(tx) = inbox {
                let _ = tx.send(f.payload);
            }
        }
        Kind::Cancel => {
            if let Ok(mut c) = CANCELLED.lock() {
                c.get_or_insert_with(HashSet::new).insert(f.session);
            }
        }
        _ => {}
    }
}

fn start(port: Port, session: u32, req: OpsRequest) {
    // The inbox must exist before this returns: the VCH may send Data right behind.
    let inbox = if let OpsRequest::Put { .. } = &req {
        let (tx, rx) = mpsc::channel();
        if let Ok(mut p) = PUTS.lock() {
            p.get_or_insert_with(HashMap::new).insert(session, tx);
        }
        Some(rx)
    } else {
        None
    };
    std::thread::spawn(move || {
        match req {
            OpsRequest::Top => reply(&port, session, &top::top()),
            OpsRequest::Stats => reply(&port, session, &stats::sample()),
            OpsRequest::Stat { path } => reply(&port, session, &archive::stat_reply(&path)),
            OpsRequest::Get { path } => archive::get(&port, session, &path),
            OpsRequest::Export => archive::export(&port, session),
            OpsRequest::Put {
                path,
                no_overwrite_dir_non_dir,
            } => {
                if let Some(rx) = inbox {
                    let r = archive::put(&port, session, &path, no_overwrite_dir_non_dir, rx);
                    reply(&port, session, &r);
                }
            }
        }
        forget(session);
    });
}
