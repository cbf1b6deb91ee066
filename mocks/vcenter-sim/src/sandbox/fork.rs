//! The simulator's end of a VM monitor's fork port (tether's `vmfork` is the other end):
//! one SOCK_SEQPACKET message per instant clone, carrying the clone's hardware
//! description and its device descriptors, answered by `ok <pid>` or `err <message>`.

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

/// Sends one fork request (JSON + the clone's device descriptors) to a VM monitor and
/// returns the clone's pid (see tether's `vmfork` for the other end).
pub fn request(port: &OwnedFd, request: &[u8], fds: &[OwnedFd]) -> std::io::Result<u32> {
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
    if n <= 0 {
        return Err(std::io::Error::other("the parent VM's monitor is gone"));
    }
    let reply = String::from_utf8_lossy(&reply[..n as usize]);
    match reply.split_once(' ') {
        Some(("ok", pid)) => pid
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad fork reply {reply:?}"))),
        Some((_, msg)) => Err(std::io::Error::other(msg.to_string())),
        None => Err(std::io::Error::other(format!("bad fork reply {reply:?}"))),
    }
}
