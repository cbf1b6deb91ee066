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

    /// `sleep` with the death signal VM monitors get, spawned on the calling thread.
    fn spawn_with_pdeathsig() -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        // SAFETY: prctl only.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        cmd.spawn().unwrap()
    }

    /// Alive and not a zombie.
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    }

    fn wait_until(mut f: impl FnMut() -> bool) -> bool {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < end {
            if f() {
                return true;
            }
            // allow-sleep: poll interval of a deadline loop.
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }

    /// The defect this module exists for: a child's death signal fires when the thread
    /// that forked it exits (as tokio's idle blocking threads do), not the process.
    #[test]
    fn a_vm_outlives_the_thread_that_asked_for_it() {
        let direct = std::thread::spawn(spawn_with_pdeathsig).join().unwrap();
        let launched = std::thread::spawn(|| run(spawn_with_pdeathsig).unwrap())
            .join()
            .unwrap();
        // The requesting threads are gone: the directly forked child dies with its thread,
        // the launched one lives on.
        assert!(
            wait_until(|| !running(direct.id())),
            "the kernel ties the death signal to the forking thread"
        );
        // allow-sleep: "nothing happens" is the claim: the launched child is still alive a
        // while after its requesting thread's exit killed the direct one.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            running(launched.id()),
            "a launched VM must outlive the caller"
        );
        for mut c in [direct, launched] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
