//! The simulator's end of a VM monitor's fork port (tether's `vmfork` is the other end):
//! one SOCK_SEQPACKET message per instant clone, carrying the clone's hardware
//! description and its device descriptors, answered by `ok <pid>` or `err <message>`
//! (both encoded by `container_vm::fork`).

use container_vm::fork::ForkReply;
use std::os::fd::{AsRawFd, OwnedFd};

/// A connected pair of SOCK_SEQPACKET sockets (message boundaries, descriptor passing).
pub fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: socketpair fills `fds` with two new descriptors on success.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// How long a VM monitor may take to answer a fork request (a fork takes milliseconds):
/// past it the parent VM is not answering, and the caller gets an error, not a hang.
pub const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn set_timeouts(port: &OwnedFd, t: std::time::Duration) -> std::io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: setsockopt with a timeval of the size given.
        let r = unsafe {
            libc::setsockopt(
                port.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends one fork request (JSON + the clone's device descriptors) to a VM monitor and
/// returns the clone's pid (see tether's `vmfork` for the other end).
pub fn request(port: &OwnedFd, request: &[u8], fds: &[OwnedFd]) -> std::io::Result<u32> {
    request_within(port, request, fds, ANSWER_TIMEOUT)
}

fn request_within(
    port: &OwnedFd,
    request: &[u8],
    fds: &[OwnedFd],
    timeout: std::time::Duration,
) -> std::io::Result<u32> {
    set_timeouts(port, timeout)?;
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(raw.as_slice()) as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: request.as_ptr() as *mut libc::c_void,
        iov_len: request.len(),
    };
    // SAFETY: msghdr points at live buffers (iov, cbuf) for the duration of sendmsg; the
    // control header is filled within `cbuf` through the CMSG macros.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(raw.as_slice()) as u32) as usize;
        std::ptr::copy_nonoverlapping(raw.as_ptr(), libc::CMSG_DATA(c).cast::<i32>(), raw.len());
        if libc::sendmsg(port.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let mut reply = [0u8; 512];
    // SAFETY: recv into a local buffer.
    let n = unsafe { libc::recv(port.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the parent VM is not answering (no reply within {} s)",
                timeout.as_secs()
            ),
        ));
    }
    if n <= 0 {
        return Err(std::io::Error::other("the parent VM's monitor is gone"));
    }
    let reply = &reply[..n as usize];
    match ForkReply::parse(reply) {
        Some(ForkReply::Ok(pid)) => Ok(pid),
        Some(ForkReply::Err(msg)) => Err(std::io::Error::other(msg)),
        None => Err(std::io::Error::other(format!(
            "bad fork reply {:?}",
            String::from_utf8_lossy(reply)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monitor_that_does_not_answer_is_an_error_not_a_hang() {
        let (sim_end, _monitor_end) = seqpacket_pair().unwrap();
        let t0 = std::time::Instant::now();
        let e = request_within(&sim_end, b"{}", &[], std::time::Duration::from_millis(200))
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("not answering"), "{e}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    }
}
