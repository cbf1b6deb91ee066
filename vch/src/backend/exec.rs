//! `docker exec` in Docker's models; the instances and their life are the translator's
//! (translator/exec.rs).

use super::VchBackend;
use crate::channel::SessionEvent;
use container_vm::channel::ExecRequest;
use docker_api::backend::*;
use docker_api::models::*;
use docker_api::{Error, Result};
use futures_util::StreamExt;

pub(super) async fn exec_create(
    b: &VchBackend,
    container: &str,
    config: ExecConfig,
) -> Result<IdResponse> {
    if config.privileged == Some(true) {
        return Err(Error::invalid("--privileged is not supported by this VCH"));
    }
    let req = ExecRequest {
        cmd: config.cmd.clone().unwrap_or_default(),
        env: config.env.clone().unwrap_or_default(),
        user: config.user.clone().unwrap_or_default(),
        workdir: config.working_dir.clone().unwrap_or_default(),
        tty: config.tty == Some(true),
        attach_stdin: config.attach_stdin == Some(true),
        console_size: crate::stdin::console_size(config.console_size.as_ref()),
    };
    let id = b.tr().exec_create(container, req)?;
    Ok(IdResponse { id })
}

pub(super) async fn exec_start(
    b: &VchBackend,
    id: &str,
    config: ExecStartConfig,
) -> Result<AttachStreams> {
    let state = b.tr().exec_inspect(id)?;
    let console_size = crate::stdin::console_size(config.console_size.as_ref());
    let started = b.tr().exec_start(id, console_size).await?;
    let stdin = state.req.attach_stdin.then(|| {
        let w = crate::stdin::forward(
            b.tr().guest_channel(),
            state.container.clone(),
            started.session,
            crate::stdin::OnEof::Close,
        );
        Box::pin(w) as StdinWriter
    });
    let output = started
        .output
        .filter_map(|ev| async move {
            match ev {
                SessionEvent::Out {
                    stderr: false,
                    data,
                } => Some(Ok(OutputChunk::stdout(data))),
                SessionEvent::Out { stderr: true, data } => Some(Ok(OutputChunk::stderr(data))),
                SessionEvent::Exit { error, .. } => {
                    error.map(|e| Ok(OutputChunk::stderr(format!("{e}\n"))))
                }
            }
        })
        .boxed();
    Ok(AttachStreams {
        // dockerd frames the stream by the start request's Tty.
        tty: config.tty.unwrap_or(state.req.tty),
        stdin,
        output,
        detach_keys: None,
    })
}

pub(super) async fn exec_resize(b: &VchBackend, id: &str, height: u16, width: u16) -> Result<()> {
    Ok(b.tr().exec_resize(id, height, width)?)
}

pub(super) async fn exec_inspect(b: &VchBackend, id: &str) -> Result<ExecInspectResponse> {
    let r = b.tr().exec_inspect(id)?;
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
