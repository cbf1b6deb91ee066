//! Runs the container's health check in the VM on its schedule (see
//! `container_vm::health` for dockerd's rules, which this follows) and reports each
//! result through `report`. A probe runs as an exec would: in the container, as its user,
//! with its environment and working directory; one that outlives its timeout is killed
//! with its process group and recorded as -1.

use crate::{gate, logport, report, run};
use container_vm::health::{
    next_delay, timeout_output, HealthSpec, HealthState, ProbeOutput, ProbeResult,
};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a probe's output may still drain after it exited (a background process that
/// inherited its stdout must not hold the schedule up).
const DRAIN: Duration = Duration::from_secs(1);

/// Starts the checks of a container whose process just started.
pub fn spawn(spec: HealthSpec, env: Vec<String>, user: String, workdir: String) {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut state = HealthState::default();
        report::update(|s| s.health = Some(state.clone()));
        loop {
            std::thread::sleep(next_delay(&spec, started.elapsed(), state.status));
            let begun = Instant::now();
            let start = logport::now();
            let (exit_code, output) = probe(&spec, &env, &user, &workdir);
            let result = ProbeResult {
                start,
                end: logport::now(),
                exit_code,
                output,
            };
            let in_start_period = begun.duration_since(started) < spec.start_period();
            state.record(result, in_start_period, spec.retries);
            report::update(|s| s.health = Some(state.clone()));
        }
    });
}

/// One probe: its exit code (-1 when it could not run or ran out of time) and output.
fn probe(spec: &HealthSpec, env: &[String], user: &str, workdir: &str) -> (i64, String) {
    let jail = match gate::wait(gate::WAIT) {
        Ok(j) => j,
        Err(e) => return (-1, e),
    };
    let mut cmd = match run::prepare(&spec.cmd, env, user, workdir, &jail) {
        Ok(c) => c,
        Err(x) => return (-1, x.error.unwrap_or_default()),
    };
    let program = spec.cmd.first().map(String::as_str).unwrap_or_default();
    if let Err(e) = run::find_program(program, env) {
        return (-1, run::spawn_error(program, &e).error.unwrap_or_default());
    }
    // Its own process group: a timeout kills whatever the probe started too.
    cmd.process_group(0);
    let (mut child, exited) = match run::spawn_tracked(&mut cmd) {
        Ok(c) => c,
        Err(e) => return (-1, run::spawn_error(program, &e).error.unwrap_or_default()),
    };
    let output = Arc::new(Mutex::new(ProbeOutput::default()));
    let (drained, pumps_done) = mpsc::channel::<()>();
    let streams: [Option<Box<dyn Read + Send>>; 2] = [
        child.stdout.take().map(|s| Box::new(s) as _),
        child.stderr.take().map(|s| Box::new(s) as _),
    ];
    let mut pumps = 0;
    for mut stream in streams.into_iter().flatten() {
        pumps += 1;
        let (output, drained) = (output.clone(), drained.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                output
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(&buf[..n]);
            }
            let _ = drained.send(());
        });
    }
    drop(drained);
    let pid = child.id() as i32;
    let code = match exited.recv_timeout(spec.timeout()) {
        Ok(code) => Some(code),
        Err(_) => {
            // SAFETY: plain kill(2) of the probe's process group.
            unsafe { nix::libc::kill(-pid, nix::libc::SIGKILL) };
            let _ = exited.recv();
            None
        }
    };
    let deadline = Instant::now() + DRAIN;
    for _ in 0..pumps {
        let left = deadline.saturating_duration_since(Instant::now());
        if pumps_done.recv_timeout(left).is_err() {
            break;
        }
    }
    let text = output.lock().unwrap_or_else(|e| e.into_inner()).text();
    match code {
        Some(code) => (i64::from(code), text),
        None => (-1, timeout_output(spec.timeout(), &text)),
    }
}
