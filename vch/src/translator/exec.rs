//! `docker exec`: the exec instances of running containers and their life (created →
//! running → exited), over the guest's control channel. The backend only turns requests
//! and answers into Docker's models.

use super::error::{Error, Result};
use super::guest::GuestChannel;
use super::{naming, Translator};
use crate::channel::SessionEvent;
use crate::containers::Status;
use container_vm::channel::{resize_payload, ExecRequest, Frame, Kind};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long `exec start` waits for a container's tether to (re)connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An exec instance as `exec inspect` shows it.
#[derive(Clone, Debug)]
pub struct ExecState {
    pub container: String,
    pub req: ExecRequest,
    pub running: bool,
    pub exit: Option<i64>,
    /// The control channel session, once started (for resize).
    session: Option<u32>,
}

/// The exec instances of this VCH (dockerd keeps them in memory too).
#[derive(Default)]
pub struct Execs {
    table: Mutex<HashMap<String, ExecState>>,
}

/// A started exec: its session (for stdin) and its output, which ends with the exit
/// (recorded before the stream ends: the CLI inspects the exit code right away).
pub struct Started {
    pub session: u32,
    pub output: BoxStream<'static, SessionEvent>,
}

impl Translator {
    /// `exec create`: a new instance on a running container.
    pub fn exec_create(&self, container: &str, req: ExecRequest) -> Result<String> {
        let cid = self.resolve(container)?;
        if self.get(&cid)?.status != Status::Running {
            return Err(Error::NotRunning(cid));
        }
        if req.cmd.is_empty() {
            return Err(Error::Invalid("No exec command specified".into()));
        }
        let id = naming::random_id();
        let state = ExecState {
            container: cid,
            req,
            running: false,
            exit: None,
            session: None,
        };
        self.inner.execs.table.lock().insert(id.clone(), state);
        Ok(id)
    }

    pub fn exec_inspect(&self, id: &str) -> Result<ExecState> {
        self.inner
            .execs
            .table
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoSuchExec(id.into()))
    }

    /// `exec start`: runs the instance in the guest; `console_size` replaces the one
    /// given at create.
    pub async fn exec_start(&self, id: &str, console_size: Option<[u16; 2]>) -> Result<Started> {
        let mut state = self.exec_inspect(id)?;
        // dockerd's refusals, word for word.
        if state.exit.is_some() {
            return Err(Error::Conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        if state.running {
            return Err(Error::Conflict(format!(
                "Error: Exec command {id} is already running"
            )));
        }
        let guest = self.guest();
        if !guest
            .wait_connected(&state.container, CONNECT_TIMEOUT)
            .await
        {
            return Err(Error::Conflict(format!(
                "container {} has no control channel connected (is it running?)",
                state.container
            )));
        }
        if console_size.is_some() {
            state.req.console_size = console_size;
        }
        let (session, mut rx) = guest
            .exec(&state.container, &state.req)
            .ok_or_else(|| Error::NotRunning(state.container.clone()))?;
        if let Some(r) = self.inner.execs.table.lock().get_mut(id) {
            r.running = true;
            r.session = Some(session);
        }
        let t = self.clone();
        let exec_id = id.to_string();
        let output = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .inspect(move |ev| {
                if let SessionEvent::Exit { code, .. } = ev {
                    if let Some(r) = t.inner.execs.table.lock().get_mut(&exec_id) {
                        r.running = false;
                        r.exit = Some(*code);
                    }
                }
            })
            .boxed();
        Ok(Started { session, output })
    }

    /// `exec resize` of a running instance.
    pub fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let state = self.exec_inspect(id)?;
        let session = match state.session {
            Some(s) if state.running => s,
            _ => return Err(Error::Conflict(format!("exec {id} is not running"))),
        };
        let frame = Frame::new(Kind::Resize, session, resize_payload(height, width));
        if !self.guest().send(&state.container, frame) {
            return Err(Error::NotRunning(state.container));
        }
        Ok(())
    }

    /// The guest channel, shared with stdin forwarders.
    pub fn guest_channel(&self) -> Arc<dyn GuestChannel> {
        self.guest().clone()
    }
}
