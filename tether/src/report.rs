//! What the tether tells the VCH unasked: the container process's pid and its health
//! (`container_vm::status::GuestStatus`), sent whole on every change and again after each
//! `Hello`, so a VCH that restarted learns it without asking.

use container_vm::channel::{Frame, Kind};
use container_vm::status::GuestStatus;
use std::sync::Mutex;

static CURRENT: Mutex<Option<GuestStatus>> = Mutex::new(None);

/// Changes the status and sends it.
pub fn update(change: impl FnOnce(&mut GuestStatus)) {
    let now = {
        let mut g = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
        let s = g.get_or_insert_with(GuestStatus::default);
        change(s);
        s.clone()
    };
    send(&now);
}

/// Sends the status again (after a `Hello`); nothing before there is one.
pub fn resend() {
    let now = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(s) = now {
        send(&s);
    }
}

fn send(s: &GuestStatus) {
    crate::outbox::send(Frame::new(Kind::Status, 0, s.encode()));
}
