//! Outbound traffic of containers: the uplink from the bridges' namespace to the VCH's
//! public side is slirp4netns (user-mode NAT, as rootless Docker and Podman use it). It
//! puts a tap device in the bridges' namespace and turns every flow into an ordinary
//! socket of the namespace it runs in, so the public side gets no interface, route,
//! forwarding sysctl or NAT rule: a developer's machine or a CI host is never
//! reconfigured. `--disable-host-loopback` keeps containers off services bound to the
//! host's loopback (the VCH's own API, the simulator's SOAP endpoint).
//!
//! slirp4netns is supervised: restarted with a back-off if it dies, and it exits with the
//! VCH (it watches a pipe whose other end only the VCH holds: `--exit-fd`), whichever
//! thread started it.

use super::netns::Netns;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The tap device slirp4netns makes in the bridges' namespace.
pub const UPLINK: &str = "vch-uplink";
/// slirp4netns's own subnet (its gateway is .2, the tap .100). Taken from the
/// benchmarking range (RFC 2544) so it does not meet a subnet users give their networks.
const SLIRP_CIDR: &str = "198.18.250.0/24";

pub struct Outbound {
    stopping: Arc<AtomicBool>,
    child: Arc<parking_lot::Mutex<Option<Child>>>,
    /// The write ends of the children's exit pipes: dropped, the children exit.
    _exit: Arc<parking_lot::Mutex<Vec<OwnedFd>>>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// Starts one slirp4netns for the namespace at `target` and waits until its tap is
/// configured. `public`: where it runs (None: the VCH's own namespace).
fn spawn(target: &Path, public: Option<&Netns>, exit_w: &mut Vec<OwnedFd>) -> io::Result<Child> {
    let (exit_r, exit_wr) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let target = target.to_path_buf();
    let (er, rw) = (exit_r.as_raw_fd(), ready_w.as_raw_fd());
    let start = move || -> io::Result<Child> {
        let mut cmd = Command::new("slirp4netns");
        cmd.args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            &format!("--cidr={SLIRP_CIDR}"),
            "--netns-type=path",
            "--exit-fd=3",
            "--ready-fd=4",
        ])
        .arg(&target)
        .arg(UPLINK)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(er, 3) < 0 || libc::dup2(rw, 4) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn()
    };
    let mut child = match public {
        Some(ns) => ns.run(start)?,
        None => start()?,
    };
    drop(exit_r);
    drop(ready_w);
    exit_w.push(exit_wr);
    // "1" on the ready pipe once the tap is up; EOF means it failed.
    let mut ready = std::fs::File::from(ready_r);
    let mut buf = [0u8; 1];
    if ready.read(&mut buf)? != 1 {
        let _ = child.kill();
        let out = child.wait_with_output()?;
        return Err(io::Error::other(format!(
            "slirp4netns: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(child)
}

impl Outbound {
    /// Starts the uplink of the namespace at `target`, from `public` (None: the VCH's own
    /// namespace). Fails if slirp4netns is missing or cannot start.
    pub fn start(target: &Path, public: Option<Arc<Netns>>) -> io::Result<Outbound> {
        let mut pipes = Vec::new();
        let first = spawn(target, public.as_deref(), &mut pipes)?;
        let o = Outbound {
            stopping: Arc::new(AtomicBool::new(false)),
            child: Arc::new(parking_lot::Mutex::new(Some(first))),
            _exit: Arc::new(parking_lot::Mutex::new(pipes)),
        };
        o.supervise(target.to_path_buf(), public);
        Ok(o)
    }

    /// The pid of the running slirp4netns (tests).
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().as_ref().map(|c| c.id())
    }

    fn supervise(&self, target: PathBuf, public: Option<Arc<Netns>>) {
        let (stopping, child, pipes) = (
            self.stopping.clone(),
            self.child.clone(),
            self._exit.clone(),
        );
        let _ = std::thread::Builder::new()
            .name("vch-uplink".into())
            .spawn(move || {
                let mut backoff = Duration::from_millis(100);
                loop {
                    // Polled, not waited on: `Drop` takes the child to kill it.
                    let exited = match child.lock().as_mut().map(|c| c.try_wait()) {
                        Some(Ok(Some(status))) => Some(status),
                        Some(_) => None,
                        None => return,
                    };
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some(status) = exited else {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    };
                    tracing::warn!(%status, "slirp4netns (outbound NAT) exited; restarting");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    let mut p = pipes.lock();
                    match spawn(&target, public.as_deref(), &mut p) {
                        Ok(c) => {
                            *child.lock() = Some(c);
                            backoff = Duration::from_millis(100);
                        }
                        Err(e) => tracing::warn!("slirp4netns: {e}"),
                    }
                }
            });
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(mut c) = self.child.lock().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
