//! The control channel's write end for frames nobody asked for (`report`'s status
//! frames): set once `control::serve` owns the port, below both so neither imports the
//! other.

use container_vm::channel::Frame;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

static PORT: OnceLock<Arc<Mutex<File>>> = OnceLock::new();

/// Keeps the served port (the first one; the channel is served once).
pub fn set(port: Arc<Mutex<File>>) {
    let _ = PORT.set(port);
}

/// Sends a frame on the control channel; dropped when there is none (yet), as a line
/// written to a disconnected serial port is.
pub fn send(f: Frame) {
    if let Some(port) = PORT.get() {
        if let Ok(mut p) = port.lock() {
            let _ = p.write_all(&f.encode());
        }
    }
}
