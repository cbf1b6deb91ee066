//! `docker attach` and `docker logs`: output from the container's log file on the
//! datastore, input over the control channel.

use super::VchBackend;
use crate::containers::Status;
use crate::logfile::{LogFile, Record};
use container_vm::log::Stream;
use docker_api::backend::*;
use docker_api::options::*;
use docker_api::{Error, Result};
use futures_util::{FutureExt, StreamExt};

pub(super) async fn container_attach(
    b: &VchBackend,
    id: &str,
    opts: AttachOptions,
) -> Result<AttachStreams> {
    let id = b.resolve(id)?;
    let lf = log_file(b, &id).ok_or_else(|| Error::NoSuchContainer(id.clone()))?;
    let spec = b.get(&id)?.spec;
    // Output (TTY output too) comes from the log the tether writes; input goes over
    // the control channel. Without OpenStdin there is nothing to attach stdin to.
    let (stdin, client_eof) = if opts.stdin && spec.open_stdin {
        let (w, end) =
            crate::stdin::attach_main(b.tr().guest_channel(), id.clone(), spec.stdin_once);
        (Some(Box::pin(w) as StdinWriter), end)
    } else {
        (None, std::future::pending().boxed())
    };
    // Attach streams what comes next, as dockerd does (with `logs`, everything from
    // the start): a running container or one that ran before has output in its log
    // already (re-attaching to a TTY must not replay the whole session). `docker run`
    // attaches before the start, and gets everything.
    let c = b.get(&id)?;
    let ran = c.finished.is_some() || matches!(c.status, Status::Running | Status::Paused);
    let from = if ran && !opts.logs {
        lf.size().await
    } else {
        0
    };
    let tr = b.tr().clone();
    let gone_id = id.clone();
    let stop = move || !tr.exists(&gone_id);
    let (want_out, want_err) = (opts.stdout, opts.stderr);
    let reader = b.tr().reader(&id);
    let output = lf
        .follow(from, stop)
        .map(move |r| {
            let _alive = &reader;
            r
        })
        .filter_map(move |r| async move {
            match r {
                Record::Output {
                    stream: Stream::Stdout,
                    data,
                    ..
                } if want_out => Some(Ok(OutputChunk::stdout(bytes::Bytes::from(data)))),
                Record::Output {
                    stream: Stream::Stderr,
                    data,
                    ..
                } if want_err => Some(Ok(OutputChunk::stderr(bytes::Bytes::from(data)))),
                _ => None,
            }
        })
        // The client's EOF ends a session whose stdin stays open (no StdinOnce).
        .take_until(client_eof)
        .boxed();
    Ok(AttachStreams {
        tty: spec.tty,
        stdin,
        output,
        detach_keys: None,
    })
}

pub(super) async fn container_logs(
    b: &VchBackend,
    id: &str,
    opts: LogsOptions,
) -> Result<LogStream> {
    let id = b.resolve(id)?;
    let driver = b.get(&id)?.meta.host_config.log_config.and_then(|l| l.typ);
    if driver.as_deref() == Some("none") {
        // dockerd's answer for a driver that cannot be read back.
        return Err(Error::NotSupported(
            "configured logging driver does not support reading".into(),
        ));
    }
    let lf = log_file(b, &id).ok_or_else(|| Error::NoSuchContainer(id.clone()))?;
    let to_chunk = move |r: Record| -> Option<LogChunk> {
        match r {
            Record::Output { stream, data, time } => {
                let stderr = stream == Stream::Stderr;
                if (stderr && !opts.stderr) || (!stderr && !opts.stdout) {
                    return None;
                }
                let ts = chrono::DateTime::parse_from_rfc3339(&time)
                    .ok()?
                    .with_timezone(&chrono::Utc);
                if opts.since.is_some_and(|s| ts < s) || opts.until.is_some_and(|u| ts > u) {
                    return None;
                }
                Some(LogChunk {
                    kind: if stderr {
                        StreamKind::Stderr
                    } else {
                        StreamKind::Stdout
                    },
                    timestamp: ts,
                    data: data.into(),
                })
            }
            Record::Exit { .. } => None,
        }
    };
    let all: Vec<LogChunk> = lf
        .read_all()
        .await
        .into_iter()
        .filter_map(to_chunk)
        .collect();
    let seen = all.len();
    let shown = match opts.tail {
        Tail::All => all,
        Tail::Lines(n) => all[all.len().saturating_sub(n as usize)..].to_vec(),
    };
    let running = b.get(&id)?.status == Status::Running;
    let past = futures_util::stream::iter(shown.into_iter().map(Ok));
    let stream = if opts.follow && running {
        let tr = b.tr().clone();
        let gone_id = id.clone();
        let stop = move || !tr.exists(&gone_id);
        // The follower reads the file from the start: skip what was already shown.
        let live = lf
            .follow(0, stop)
            .filter_map(move |r| async move { to_chunk(r) })
            .skip(seen)
            .map(Ok);
        past.chain(live).boxed()
    } else {
        past.boxed()
    };
    Ok(LogStream {
        tty: b.get(&id)?.spec.tty,
        chunks: stream,
    })
}

pub(super) fn log_file(b: &VchBackend, id: &str) -> Option<LogFile> {
    let c = b.tr().get(id).ok()?;
    Some(LogFile {
        client: b.inner.t.client.clone(),
        datacenter: b.inner.t.datacenter_name.clone(),
        datastore: b.inner.t.datastore_name.clone(),
        path: format!("{}/container.log", c.vm_name),
    })
}
