//! Serves the control channel (serial port 1): says who it is, runs exec sessions with
//! their own output and exit code, and delivers signals to the main process.

use crate::run;
use crate::stdio;
use container_vm::channel::{
    ack_payload, decode, exit_payload, out_payload, parse_resize, parse_signal, ExecRequest, Frame,
    Kind,
};
use std::fs::File;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

type Port = Arc<Mutex<File>>;

fn send(port: &Port, f: Frame) {
    if let Ok(mut p) = port.lock() {
        // A lost frame is a lost line on a serial port; the container goes on.
        let _ = p.write_all(&f.encode());
    }
}

fn exit_frame(session: u32, code: i32, error: Option<String>) -> Frame {
    Frame::new(Kind::Exit, session, exit_payload(code, error.as_deref()))
}

/// Runs one exec session: output as `Out` frames, then `Exit`. The session's stdio is
/// built before this returns, so `Stdin` and `Resize` frames right behind the `Exec` find it.
fn exec(port: Port, session: u32, req: ExecRequest, base_env: Vec<String>) {
    let wants = stdio::Wants {
        tty: req.tty,
        stdin: req.attach_stdin,
        size: req.console_size,
    };
    let plumbing = match stdio::plumb(session, wants) {
        Ok(p) => p,
        Err(e) => {
            let msg = format!("cannot set up the exec's stdio: {e}");
            send(&port, exit_frame(session, 126, Some(msg)));
            return;
        }
    };
    std::thread::spawn(move || {
        let (code, error) = exec_session(&port, session, req, base_env, plumbing);
        stdio::unregister(session);
        send(&port, exit_frame(session, code, error));
    });
}

/// The body of an exec session; returns its exit code and error text.
fn exec_session(
    port: &Port,
    session: u32,
    req: ExecRequest,
    base_env: Vec<String>,
    plumbing: stdio::Plumbing,
) -> (i32, Option<String>) {
    let mut env = base_env;
    for kv in req.env {
        let key = kv.split('=').next().unwrap_or_default().to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    // Never before the container is ready: until then pid 1's world is the VM's.
    let jail = match crate::gate::wait(crate::gate::WAIT) {
        Ok(j) => j,
        Err(e) => return (126, Some(format!("cannot exec in the container: {e}"))),
    };
    let mut cmd = match run::prepare(&req.cmd, &env, &req.user, &req.workdir, &jail) {
        Ok(c) => c,
        Err(e) => return (e.code, e.error),
    };
    let tty_output = plumbing.install(&mut cmd);
    // dockerd answers 126 for every exec that cannot start (missing or not executable),
    // where a container's own command gets 127 for a missing one.
    let cannot_start = |program: &str, e: &std::io::Error| {
        let x = run::spawn_error(program, e);
        (126, x.error)
    };
    if let Some(program) = req.cmd.first() {
        if let Err(e) = run::find_program(program, &env) {
            return cannot_start(program, &e);
        }
    }
    let spawned = run::spawn_tracked(&mut cmd);
    // The parent's copies of a terminal must go, or its output never ends.
    drop(cmd);
    let (mut child, rx) = match spawned {
        Ok(c) => c,
        Err(e) => return cannot_start(req.cmd.first().map(String::as_str).unwrap_or(""), &e),
    };
    let pumps: Vec<_> = [
        // A TTY has one output stream, which Docker reports as stdout.
        (
            tty_output.map(|s| Box::new(s) as Box<dyn Read + Send>),
            false,
        ),
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            false,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            true,
        ),
    ]
    .into_iter()
    .filter_map(|(s, stderr)| s.map(|s| (s, stderr)))
    .map(|(mut s, stderr)| {
        let port = port.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(k) = s.read(&mut buf) {
                if k == 0 {
                    break;
                }
                send(
                    &port,
                    Frame::new(Kind::Out, session, out_payload(stderr, &buf[..k])),
                );
            }
        })
    })
    .collect();
    let code = rx.recv().unwrap_or(255);
    for p in pumps {
        let _ = p.join();
    }
    (code, None)
}

/// Reads the channel until it closes. `env` is the container's environment, which exec
/// sessions inherit. `started` is told when the VCH sends `Start` (a parked clone waits
/// on it); later `Start`s are no-ops.
pub fn serve(
    port: File,
    id: String,
    env: Vec<String>,
    started: Option<std::sync::mpsc::Sender<()>>,
) {
    std::thread::spawn(move || {
        let Ok(mut reader) = port.try_clone() else {
            return;
        };
        let port: Port = Arc::new(Mutex::new(port));
        crate::outbox::set(port.clone());
        let acks = port.clone();
        stdio::set_ack_sink(move |session, n| {
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            send(&acks, Frame::new(Kind::StdinAck, session, ack_payload(n)));
        });
        send(&port, Frame::new(Kind::Hello, 0, id.clone().into_bytes()));
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            for f in decode(&mut buf) {
                match f.kind {
                    Kind::Who => {
                        send(&port, Frame::new(Kind::Hello, 0, id.clone().into_bytes()));
                        crate::report::resend();
                    }
                    Kind::Start => {
                        if let Some(tx) = &started {
                            let _ = tx.send(());
                        }
                    }
                    Kind::Exec => match serde_json::from_slice::<ExecRequest>(&f.payload) {
                        Ok(req) => exec(port.clone(), f.session, req, env.clone()),
                        Err(e) => send(
                            &port,
                            exit_frame(f.session, 126, Some(format!("bad exec request: {e}"))),
                        ),
                    },
                    Kind::Stdin => stdio::input(f.session, f.payload),
                    Kind::StdinClose => stdio::close(f.session),
                    Kind::Resize => {
                        if let Some((rows, cols)) = parse_resize(&f.payload) {
                            stdio::resize(f.session, rows, cols);
                        }
                    }
                    Kind::Signal => {
                        let sig = parse_signal(&f.payload).unwrap_or(15);
                        if f.session == 0 {
                            run::signal_main(sig);
                        }
                    }
                    // Container operations (top, stats, cp, export): see crate::ops.
                    Kind::Request | Kind::Data | Kind::Cancel => crate::ops::handle(&port, f),
                    _ => {}
                }
            }
        }
    });
}
