//! Waiting for a VM's process without a thread per VM: a pidfd is readable once the
//! process has exited, so thousands of running VMs cost one reactor registration each
//! (a blocking `wait` per VM would exhaust tokio's blocking pool at a few hundred).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Resolves when `pid` (a child of this process) has exited, and reaps it.
pub async fn exited(pid: i32) -> std::io::Result<()> {
    // SAFETY: plain syscall; the returned descriptor is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd is valid and stays open, unreplaced, while the AsyncFd owns it.
    let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
    let _ready = afd.readable().await?;
    // SAFETY: waitid on our own pidfd into a zeroed siginfo.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PIDFD,
            afd.get_ref().as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED,
        );
    }
    Ok(())
}
