//! Instant clone as a fork: the simulator's VMFork.
//!
//! The simulator starts a VM's `/sbin/init` (this binary) as the VM *monitor*: a process
//! in the VM's mount/net/uts/ipc namespaces that forks the guest's pid 1 and then waits
//! for it. The monitor also serves the VM's fork port (a SOCK_SEQPACKET socket): each
//! message asks for one instant clone and carries the clone's hardware description
//! (JSON) and its device descriptors (SCM_RIGHTS; the message is `container_vm::fork`).
//! The monitor forks a copy of itself — an already loaded, already linked tether — into
//! fresh namespaces and answers with the clone's pid; the clone reads its own guestinfo and goes on as that VM's pid 1. A clone
//! costs a fork and a few `unshare`s instead of a boot.
//!
//! Two details make clones independent of their parent, as instant clones are on vSphere:
//! - The clone's pid namespace is created under the *simulator's* pid namespace, not the
//!   parent VM's (the monitor switches its `pid_for_children` back with `setns` first):
//!   otherwise powering off the parent would kill every clone with its namespace.
//! - The clone is the simulator's child (`CLONE_PARENT`), so the simulator reaps it and
//!   the parent's monitor may exit at any time.

use crate::platform::SimPlatform;
use container_vm::fork::{ForkReply, ForkRequest, MAX_FDS, MAX_REQUEST};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessageOwned, MsgFlags};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Runs the VM monitor: waits for the guest's init to exit (returning its exit code)
/// while serving fork requests.
pub fn monitor(init: nix::unistd::Pid, port: Option<OwnedFd>) -> i32 {
    // The simulator's pid namespace (this process's active one), for the clones.
    let host_pidns = File::open("/proc/self/ns/pid").ok();
    // SAFETY: plain syscall; the returned descriptor is owned below.
    let pidfd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, init.as_raw(), 0) };
    let (Some(port), Some(host_pidns), true) = (port, host_pidns, pidfd >= 0) else {
        // No fork service possible: just be the monitor.
        return wait_init(init);
    };
    // SAFETY: pidfd_open returned a fresh descriptor.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    let mut port = Some(port);
    loop {
        let mut fds = vec![nix::libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: nix::libc::POLLIN,
            revents: 0,
        }];
        if let Some(p) = &port {
            fds.push(nix::libc::pollfd {
                fd: p.as_raw_fd(),
                events: nix::libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let n = unsafe { nix::libc::poll(fds.as_mut_ptr(), fds.len() as nix::libc::nfds_t, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return wait_init(init);
        }
        if fds[0].revents != 0 {
            return wait_init(init);
        }
        if fds.len() > 1 && fds[1].revents != 0 {
            let p = port.as_ref().expect("polled");
            if !serve_one(p, &host_pidns) {
                // The simulator closed the port: no more clones of this VM.
                port = None;
            }
        }
    }
}

fn wait_init(init: nix::unistd::Pid) -> i32 {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(init, None) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return 255,
        }
    }
}

/// Handles one request; false when the port is closed.
fn serve_one(port: &OwnedFd, host_pidns: &File) -> bool {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let (len, fds) = match recvmsg::<()>(
        port.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    ) {
        Ok(m) => {
            let mut fds = Vec::new();
            if let Ok(cmsgs) = m.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(r) = c {
                        // SAFETY: descriptors just received are ours alone.
                        fds.extend(r.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
            }
            (m.bytes, fds)
        }
        Err(nix::errno::Errno::EINTR) => return true,
        Err(_) => return false,
    };
    if len == 0 {
        return false;
    }
    let reply = match ForkRequest::decode(&buf[..len]) {
        Ok(req) => match fork_clone(host_pidns, req, fds) {
            Ok(pid) => ForkReply::Ok(pid as u32),
            Err(e) => ForkReply::Err(e.to_string()),
        },
        Err(e) => ForkReply::Err(format!("bad fork request: {e}")),
    }
    .encode();
    let iov = [io::IoSlice::new(&reply)];
    sendmsg::<()>(port.as_raw_fd(), &iov, &[], MsgFlags::empty(), None).is_ok()
}

fn fork_clone(host_pidns: &File, req: ForkRequest, fds: Vec<OwnedFd>) -> io::Result<i32> {
    use nix::sched::{setns, unshare, CloneFlags};
    // pid_for_children := the simulator's namespace, then a fresh one under it.
    setns(host_pidns.as_fd(), CloneFlags::CLONE_NEWPID).map_err(io::Error::from)?;
    unshare(CloneFlags::CLONE_NEWPID).map_err(io::Error::from)?;
    // The clone is born in its own mount/uts/ipc/net namespaces, before the simulator
    // hears its pid: the simulator then moves the VM's NICs into that network namespace,
    // which must already be the clone's.
    let flags = (nix::libc::CLONE_PARENT
        | nix::libc::CLONE_NEWNS
        | nix::libc::CLONE_NEWUTS
        | nix::libc::CLONE_NEWIPC
        | nix::libc::CLONE_NEWNET
        | nix::libc::SIGCHLD) as nix::libc::c_ulong;
    // SAFETY: a fork-like clone (no new stack, no shared memory) of a single-threaded
    // process; the child only runs `clone_child`, which never returns.
    let pid =
        unsafe { nix::libc::syscall(nix::libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match pid {
        0 => clone_child(req, fds),
        p if p < 0 => Err(io::Error::last_os_error()),
        p => {
            for f in &req.cgroup_procs {
                if let Err(e) = std::fs::write(f, p.to_string()) {
                    // SAFETY: plain kill(2) of the clone we just made; the simulator reaps it.
                    unsafe { nix::libc::kill(p as i32, nix::libc::SIGKILL) };
                    return Err(io::Error::new(e.kind(), format!("join cgroup {f}: {e}")));
                }
            }
            Ok(p as i32)
        }
    }
}

/// The clone, pid 1 of its new pid namespace and born in its own other namespaces: puts
/// its devices in place, then runs the agent as a freshly cloned VM.
fn clone_child(req: ForkRequest, fds: Vec<OwnedFd>) -> ! {
    let die = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("tether: instant clone: {what}: {e}");
        std::process::exit(125)
    };
    // Our parent is the simulator (CLONE_PARENT: the thread that forked our parent's
    // monitor, the simulator's launcher thread, which lives as long as the simulator):
    // die with it, as every VM does.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    // Put the received descriptors where the hardware description says they are: first
    // out of the way (they may collide with the targets), then into place; everything
    // else inherited from the parent's monitor is closed.
    let targets: Vec<RawFd> = req.hardware.device_fds();
    if targets.len() != fds.len() {
        die(
            "hardware",
            &format!("{} descriptors for {} devices", fds.len(), targets.len()),
        );
    }
    let mut high = Vec::new();
    for f in &fds {
        // SAFETY: duplicating a descriptor we own.
        let h = unsafe { nix::libc::fcntl(f.as_raw_fd(), nix::libc::F_DUPFD, 100) };
        if h < 0 {
            die("dup", &io::Error::last_os_error());
        }
        high.push(h);
    }
    drop(fds);
    for (h, t) in high.iter().zip(&targets) {
        // SAFETY: both are descriptor numbers; dup2 clears CLOEXEC on the target.
        if unsafe { nix::libc::dup2(*h, *t) } < 0 {
            die("dup2", &io::Error::last_os_error());
        }
    }
    let last = targets.iter().copied().max().unwrap_or(2);
    // SAFETY: closes descriptors this process owns and no longer uses.
    unsafe {
        for fd in 3..last {
            if !targets.contains(&fd) {
                nix::libc::close(fd);
            }
        }
        nix::libc::syscall(
            nix::libc::SYS_close_range,
            (last + 1) as u32,
            u32::MAX,
            0u32,
        );
    }
    let mut platform = SimPlatform::from_hardware(req.hardware);
    std::process::exit(crate::agent(&mut platform, true))
}
