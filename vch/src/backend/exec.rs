//! `docker exec`: sessions on the container's control channel.

use super::VchBackend;
use crate::containers::Status;
use crate::translator::naming;
use container_vm::channel::{resize_payload, Frame, Kind};
use docker_api::backend::*;
use docker_api::models::*;
use docker_api::{Error, Result};
use futures_util::StreamExt;

/// An exec session's record (for `exec inspect`).
#[derive(Clone)]
pub(super) struct ExecRecord {
    container: String,
    req: container_vm::channel::ExecRequest,
    running: bool,
    exit: Option<i64>,
    /// The control channel session, once started (for resize).
    session: Option<u32>,
}

pub(super) async fn exec_create(
    b: &VchBackend,
    container: &str,
    config: ExecConfig,
) -> Result<IdResponse> {
    let cid = b.resolve(container)?;
    let c = b.get(&cid)?;
    if c.status != Status::Running {
        return Err(Error::Conflict(format!("container {cid} is not running")));
    }
    if config.privileged == Some(true) {
        return Err(Error::invalid("--privileged is not supported by this VCH"));
    }
    let cmd = config
        .cmd
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::invalid("No exec command specified"))?;
    let id = naming::random_id();
    b.inner.execs.lock().insert(
        id.clone(),
        ExecRecord {
            container: cid,
            req: container_vm::channel::ExecRequest {
                cmd,
                env: config.env.clone().unwrap_or_default(),
                user: config.user.clone().unwrap_or_default(),
                workdir: config.working_dir.clone().unwrap_or_default(),
                tty: config.tty == Some(true),
                attach_stdin: config.attach_stdin == Some(true),
                console_size: crate::stdin::console_size(config.console_size.as_ref()),
            },
            running: false,
            exit: None,
            session: None,
        },
    );
    Ok(IdResponse { id })
}

pub(super) async fn exec_start(
    b: &VchBackend,
    id: &str,
    config: ExecStartConfig,
) -> Result<AttachStreams> {
    let mut rec = b
        .inner
        .execs
        .lock()
        .get(id)
        .cloned()
        .ok_or_else(|| Error::NoSuchExec(id.to_string()))?;
    if !b
        .inner
        .channels
        .wait_connected(&rec.container, std::time::Duration::from_secs(5))
        .await
    {
        return Err(Error::Conflict(format!(
            "container {} has no control channel connected (is it running?)",
            rec.container
        )));
    }
    if let Some(size) = crate::stdin::console_size(config.console_size.as_ref()) {
        rec.req.console_size = Some(size);
    }
    let (session, mut rx) = b
        .inner
        .channels
        .exec(&rec.container, &rec.req)
        .ok_or_else(|| Error::Conflict(format!("container {} is not running", rec.container)))?;
    if let Some(r) = b.inner.execs.lock().get_mut(id) {
        r.running = true;
        r.session = Some(session);
    }
    let stdin = rec.req.attach_stdin.then(|| {
        let w = crate::stdin::forward(
            b.inner.channels.clone(),
            rec.container.clone(),
            session,
            crate::stdin::OnEof::Close,
        );
        Box::pin(w) as StdinWriter
    });
    let b = b.clone();
    let exec_id = id.to_string();
    let output = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .filter_map(move |ev| {
            let b = b.clone();
            let exec_id = exec_id.clone();
            async move {
                match ev {
                    crate::channel::SessionEvent::Out {
                        stderr: false,
                        data,
                    } => Some(Ok(OutputChunk::stdout(data))),
                    crate::channel::SessionEvent::Out { stderr: true, data } => {
                        Some(Ok(OutputChunk::stderr(data)))
                    }
                    crate::channel::SessionEvent::Exit { code, error } => {
                        // Recorded before the output ends: the CLI inspects right away.
                        if let Some(r) = b.inner.execs.lock().get_mut(&exec_id) {
                            r.running = false;
                            r.exit = Some(code);
                        }
                        error.map(|e| Ok(OutputChunk::stderr(format!("{e}\n"))))
                    }
                }
            }
        })
        .boxed();
    Ok(AttachStreams {
        // dockerd frames the stream by the start request's Tty.
        tty: config.tty.unwrap_or(rec.req.tty),
        stdin,
        output,
        detach_keys: None,
    })
}

pub(super) async fn exec_resize(b: &VchBackend, id: &str, height: u16, width: u16) -> Result<()> {
    let rec = b
        .inner
        .execs
        .lock()
        .get(id)
        .cloned()
        .ok_or_else(|| Error::NoSuchExec(id.to_string()))?;
    let session = match rec.session {
        Some(s) if rec.running => s,
        _ => return Err(Error::Conflict(format!("exec {id} is not running"))),
    };
    let frame = Frame::new(Kind::Resize, session, resize_payload(height, width));
    if !b.inner.channels.send(&rec.container, frame) {
        return Err(Error::Conflict(format!(
            "container {} is not running",
            rec.container
        )));
    }
    Ok(())
}

pub(super) async fn exec_inspect(b: &VchBackend, id: &str) -> Result<ExecInspectResponse> {
    let r = b
        .inner
        .execs
        .lock()
        .get(id)
        .cloned()
        .ok_or_else(|| Error::NoSuchExec(id.to_string()))?;
    Ok(ExecInspectResponse {
        id: Some(id.to_string()),
        running: Some(r.running),
        exit_code: r.exit,
        container_id: Some(r.container.clone()),
        open_stdin: Some(r.req.attach_stdin),
        open_stdout: Some(true),
        open_stderr: Some(true),
        can_remove: Some(false),
        pid: Some(0),
        detach_keys: Some(String::new()),
        process_config: Some(ProcessConfig {
            tty: Some(r.req.tty),
            entrypoint: Some(r.req.cmd.first().cloned().unwrap_or_default()),
            arguments: Some(r.req.cmd.iter().skip(1).cloned().collect()),
            privileged: Some(false),
            user: Some(r.req.user.clone()),
        }),
    })
}
