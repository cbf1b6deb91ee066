//! The one thread that gives birth to VM processes.
//!
//! A VM's monitor is started with `PR_SET_PDEATHSIG` so that a killed simulator leaves no
//! VM behind. The kernel ties that signal to the *thread* that forked the child, not to
//! the process: a VM spawned from a tokio blocking thread was SIGKILLed when that thread
//! retired after ten idle seconds. Every VM process is therefore forked here, by a thread
//! that never returns while the process lives; instant clones are born with
//! `CLONE_PARENT` from a monitor, so their parent is this thread too. The death signal
//! then fires exactly when the simulator's process dies, and never before.

use std::sync::mpsc;
use std::sync::OnceLock;

type Job = Box<dyn FnOnce() + Send>;

fn queue() -> &'static mpsc::SyncSender<Job> {
    static QUEUE: OnceLock<mpsc::SyncSender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Job>(64);
        std::thread::Builder::new()
            .name("vcsim-vm-launcher".into())
            .spawn(move || {
                // The sender lives in a static, so `recv` never fails: this loop, and
                // with it the parent of every VM, lasts as long as the process.
                while let Ok(job) = rx.recv() {
                    // A panicking job must not end the thread (its VMs would die with it).
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .expect("cannot start the VM launcher thread");
        tx
    })
}

/// Runs `f` on the launcher thread and returns its result. `f` should only fork (spawn a
/// process) and return: the launcher serves every power-on of the simulator.
pub fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    queue()
        .send(Box::new(move || {
            let _ = tx.send(f());
        }))
        .map_err(|_| std::io::Error::other("the VM launcher thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the VM launcher failed (panicked)"))
}

/// The kernel thread id of the launcher (tests check that VMs are its children).
pub fn thread_id() -> i32 {
    // SAFETY: gettid has no preconditions.
    run(|| unsafe { libc::gettid() }).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_one_long_lived_thread() {
        let a = thread_id();
        let b = std::thread::spawn(thread_id).join().unwrap();
        assert_eq!(a, b, "every job runs on the same thread");
        // SAFETY: gettid has no preconditions.
        assert_ne!(a, unsafe { libc::gettid() });
        let r = run(|| panic!("a failing job"));
        assert!(r.is_err(), "a panic is reported to the caller");
        assert_eq!(thread_id(), a, "and the launcher survives it");
    }
}
