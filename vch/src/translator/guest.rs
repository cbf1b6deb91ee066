//! `GuestChannel`: what the translator asks of a container VM's tether over the control
//! channel (serial port 1). `channel::Channels` is the real one; `fakes.rs` has a guest
//! that connects, runs and exits in memory.

use crate::channel::{Channels, OpsSession, SessionEvent};
use container_vm::channel::{ExecRequest, Frame};
use container_vm::ops::OpsRequest;
use container_vm::status::GuestStatus;
use docker_api::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

#[async_trait]
pub trait GuestChannel: Send + Sync + 'static {
    /// The container's tether has said Hello.
    fn connected(&self, id: &str) -> bool;
    /// Waits up to `timeout` for the tether to connect.
    async fn wait_connected(&self, id: &str, timeout: Duration) -> bool;
    /// Lets a parked clone's tether run the process; false when not connected.
    fn start(&self, id: &str) -> bool;
    /// Signals the main process; false when not connected.
    fn signal(&self, id: &str, sig: i32) -> bool;
    /// Sends a frame (resize, stdin); false when not connected.
    fn send(&self, id: &str, frame: Frame) -> bool;
    /// Starts an exec session: its number, and its output and exit.
    fn exec(&self, id: &str, req: &ExecRequest) -> Option<(u32, UnboundedReceiver<SessionEvent>)>;
    /// The stdin credit of a session.
    fn credits(&self, id: &str, session: u32) -> Arc<tokio::sync::Semaphore>;
    /// Starts a container operation (top, stats, cp, export).
    fn ops(&self, id: &str, req: &OpsRequest) -> Option<OpsSession>;
    /// What the tethers report unasked (pid, health), by container id, from now on.
    fn statuses(&self) -> UnboundedReceiver<(String, GuestStatus)>;
}

#[async_trait]
impl GuestChannel for Channels {
    fn connected(&self, id: &str) -> bool {
        Channels::connected(self, id)
    }
    async fn wait_connected(&self, id: &str, timeout: Duration) -> bool {
        Channels::wait_connected(self, id, timeout).await
    }
    fn start(&self, id: &str) -> bool {
        Channels::start(self, id)
    }
    fn signal(&self, id: &str, sig: i32) -> bool {
        Channels::signal(self, id, sig)
    }
    fn send(&self, id: &str, frame: Frame) -> bool {
        Channels::send(self, id, frame)
    }
    fn exec(&self, id: &str, req: &ExecRequest) -> Option<(u32, UnboundedReceiver<SessionEvent>)> {
        Channels::exec(self, id, req)
    }
    fn credits(&self, id: &str, session: u32) -> Arc<tokio::sync::Semaphore> {
        Channels::credits(self, id, session)
    }
    fn ops(&self, id: &str, req: &OpsRequest) -> Option<OpsSession> {
        Channels::ops(self, id, req)
    }
    fn statuses(&self) -> UnboundedReceiver<(String, GuestStatus)> {
        Channels::statuses(self)
    }
}
