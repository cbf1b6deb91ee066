//! The container's readiness, as the control channel sees it.
//!
//! The control channel is served from the moment the agent starts, but until the root
//! filesystem is entered and the confinement prepared, pid 1's world is the VM's (in the
//! simulator's sandbox: the host's root filesystem). An exec or an operation (top, cp)
//! that arrives in that window waits here, bounded, and then runs in the container or
//! fails with the reason; it never runs outside.

use crate::confine::Confinement;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the container's processes are started with once it is ready.
pub struct Jail {
    pub confinement: Confinement,
    /// The container's own `cgroup.procs` (its `--pids-limit`), opened before the root
    /// filesystem was entered: each process moves itself in before exec.
    pub cgroup_procs: Option<std::fs::File>,
    /// The CPUs the container's processes run on: as many as the VM has (`nproc`).
    pub cpus: Option<nix::libc::cpu_set_t>,
    /// `--group-add`: supplementary groups of every process (main, exec, health probe).
    pub group_add: Vec<String>,
}

type State = Option<Result<Arc<Jail>, String>>;

static READY: (Mutex<State>, Condvar) = (Mutex::new(None), Condvar::new());

/// How long an exec or operation waits for a container that is still starting.
pub const WAIT: Duration = Duration::from_secs(30);

/// Opens the gate: the container is ready (or will never be, with the reason).
pub fn open(r: Result<Arc<Jail>, String>) {
    let (lock, cv) = &READY;
    let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
    if s.is_none() {
        *s = Some(r);
    }
    cv.notify_all();
}

/// Waits (at most `timeout`) for the container to be ready.
pub fn wait(timeout: Duration) -> Result<Arc<Jail>, String> {
    let (lock, cv) = &READY;
    let deadline = Instant::now() + timeout;
    let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(r) = s.as_ref() {
            return r.clone();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the container did not become ready within {}s",
                timeout.as_secs()
            ));
        }
        s = cv
            .wait_timeout(s, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the gate is process-wide state.
    #[test]
    fn waiters_time_out_then_see_the_opened_gate() {
        let t0 = Instant::now();
        let e = wait(Duration::from_millis(50)).err().unwrap();
        assert!(e.contains("did not become ready"), "{e}");
        assert!(t0.elapsed() >= Duration::from_millis(50));
        let waiter = std::thread::spawn(|| wait(Duration::from_secs(10)).map(|_| ()));
        open(Err("cannot set up the root filesystem".into()));
        open(Ok(Arc::new(Jail {
            confinement: Confinement::new(&Default::default()).unwrap(),
            cgroup_procs: None,
            cpus: None,
            group_add: Vec::new(),
        })));
        assert_eq!(
            waiter.join().unwrap().unwrap_err(),
            "cannot set up the root filesystem",
            "the first outcome holds"
        );
    }
}
