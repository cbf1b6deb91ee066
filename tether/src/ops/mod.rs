//! Container operations the VCH asks of the guest over the control channel: `docker top`
//! and `docker stats` (read from the container's /proc: the tether is pid 1 of the
//! container's pid namespace and its root is the container's root), and `docker cp` /
//! `docker export` (tar streams of the root filesystem, both ways).
//!
//! The protocol (requests, replies, chunk sizes) is the contract's: `container_vm::ops`.

pub mod archive;
pub mod changes;
mod extract;
pub mod stats;
mod tarball;
pub mod top;

use container_vm::channel::{Frame, Kind};
use container_vm::ops::{ErrorKind, OpsRequest, Reply};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::{mpsc, Arc, Mutex};

/// The serial port, shared by every thread that writes frames.
pub type Port = Arc<Mutex<File>>;

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
/// Operations in progress, and whether the VCH cancelled them (nobody reads their
/// stream any more). Only sessions in progress are tracked: session numbers are reused
/// (a restarted VCH counts from 1 again), so a late Cancel must not outlive its session.
static ACTIVE: Mutex<Option<HashMap<u32, bool>>> = Mutex::new(None);

pub(crate) fn cancelled(session: u32) -> bool {
    ACTIVE
        .lock()
        .map(|a| {
            a.as_ref()
                .and_then(|m| m.get(&session).copied())
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

fn forget(session: u32) {
    if let Ok(mut a) = ACTIVE.lock() {
        if let Some(m) = a.as_mut() {
            m.remove(&session);
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
            if let Ok(mut a) = ACTIVE.lock() {
                if let Some(c) = a.as_mut().and_then(|m| m.get_mut(&f.session)) {
                    *c = true;
                }
            }
        }
        _ => {}
    }
}

fn start(port: Port, session: u32, req: OpsRequest) {
    if let Ok(mut a) = ACTIVE.lock() {
        a.get_or_insert_with(HashMap::new).insert(session, false);
    }
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
        // Only in the container's world: until it is ready, pid 1 sees the VM's.
        if let Err(e) = crate::gate::wait(crate::gate::WAIT) {
            let r = Reply::error(ErrorKind::Internal, format!("container not ready: {e}"));
            reply(&port, session, &r);
            forget(session);
            return;
        }
        match req {
            OpsRequest::Top => reply(&port, session, &top::top()),
            OpsRequest::Stats => reply(&port, session, &stats::sample()),
            OpsRequest::Stat { path } => reply(&port, session, &archive::stat_reply(&path)),
            OpsRequest::Get { path } => archive::get(&port, session, &path),
            OpsRequest::Export => archive::export(&port, session),
            OpsRequest::Changes => reply(&port, session, &changes::reply()),
            OpsRequest::Layer { pause } => match changes::current() {
                Ok(_) => {
                    reply(&port, session, &Reply::Ok(serde_json::Value::Null));
                    let r = changes::stream_layer(&port, session, pause);
                    changes::done(&port, session, r);
                }
                Err(e) => reply(
                    &port,
                    session,
                    &Reply::error(ErrorKind::Internal, e.to_string()),
                ),
            },
            OpsRequest::Interfaces { interfaces } => {
                let r = match crate::net::configure_live(&interfaces) {
                    Ok(names) => Reply::Ok(serde_json::json!(names)),
                    Err(e) => Reply::error(ErrorKind::Internal, e.to_string()),
                };
                reply(&port, session, &r)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_only_touches_a_session_in_progress() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let port: Port = Arc::new(Mutex::new(File::from(w)));
        // A late Cancel (its session already over) must not poison a reused number.
        handle(&port, Frame::new(Kind::Cancel, 4242, Vec::new()));
        assert!(!cancelled(4242));
        if let Ok(mut a) = ACTIVE.lock() {
            a.get_or_insert_with(HashMap::new).insert(4243, false);
        }
        handle(&port, Frame::new(Kind::Cancel, 4243, Vec::new()));
        assert!(cancelled(4243));
        forget(4243);
        assert!(!cancelled(4243));
        drop(r);
    }
}
