//! The guestinfo channel of a sandboxed VM: the same `info-get` / `info-set` requests a
//! guest sends through VMware's backdoor RPC, framed by a little-endian u32 length.
//! Guest writes are volatile (gone at power-off), exactly as on ESXi.

use crate::runtime::GuestEvents;
use std::sync::Weak;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vsphere_client::value::MoRef;

/// Largest request accepted from a guest.
const MAX_REQUEST: usize = 1 << 20;

fn answer(sim: &dyn GuestEvents, vm: &MoRef, request: &str) -> String {
    let (cmd, rest) = request.split_once(' ').unwrap_or((request, ""));
    match cmd {
        "info-get" => {
            let key = rest.trim();
            if !key.starts_with("guestinfo.") {
                return "0 Permission denied".into();
            }
            match sim.guest_get_info(vm, key) {
                Some(v) => format!("1 {v}"),
                None => "0 No value found".into(),
            }
        }
        "info-set" => {
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            if !key.starts_with("guestinfo.") {
                return "0 Permission denied".into();
            }
            match sim.guest_set_info(vm, key, value) {
                Ok(()) => "1 ".into(),
                Err(f) => format!("0 {}", f.msg),
            }
        }
        other => format!("0 Unknown command {other}"),
    }
}

/// Serves one VM's channel until the guest closes it.
pub fn serve(stream: std::os::unix::net::UnixStream, vm: MoRef, sim: Weak<dyn GuestEvents>) {
    tokio::spawn(async move {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(mut s) = tokio::net::UnixStream::from_std(stream) else {
            return;
        };
        loop {
            let mut len = [0u8; 4];
            if s.read_exact(&mut len).await.is_err() {
                return;
            }
            let n = u32::from_le_bytes(len) as usize;
            if n > MAX_REQUEST {
                return;
            }
            let mut buf = vec![0u8; n];
            if s.read_exact(&mut buf).await.is_err() {
                return;
            }
            let Some(sim) = sim.upgrade() else { return };
            let reply = answer(&*sim, &vm, &String::from_utf8_lossy(&buf));
            drop(sim);
            let r = (reply.len() as u32).to_le_bytes();
            if s.write_all(&r).await.is_err() || s.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    });
}
