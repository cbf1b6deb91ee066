//! The few rtnetlink requests the sandbox's virtual network needs: create a bridge, create
//! a veth pair whose far end is born inside a VM's network namespace, delete a link.
//!
//! Hand-encoded on a raw `NETLINK_ROUTE` socket: three fixed-shape messages do not justify
//! an async netlink stack (rtnetlink pulls in its own runtime glue and ~10 crates), and
//! the socket must stay bound to the simulator's own namespace, which a plain descriptor
//! opened there does by construction.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 1 << 15;

/// A request under construction: header, `ifinfomsg`, then attributes.
struct Msg {
    buf: Vec<u8>,
    /// Offsets of the length fields of open nested attributes.
    open: Vec<usize>,
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

impl Msg {
    fn new(ty: u16, flags: u16, if_flags: u32) -> Msg {
        let mut m = Msg {
            buf: Vec::with_capacity(256),
            open: Vec::new(),
        };
        // nlmsghdr: len (patched at the end), type, flags, seq, pid.
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        m.buf.extend_from_slice(&ty.to_ne_bytes());
        m.buf.extend_from_slice(
            &(flags | libc::NLM_F_REQUEST as u16 | libc::NLM_F_ACK as u16).to_ne_bytes(),
        );
        m.buf.extend_from_slice(&1u32.to_ne_bytes());
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        m.ifinfo(if_flags);
        m
    }

    /// `ifinfomsg`: family, pad, type, index, flags, change mask.
    fn ifinfo(&mut self, if_flags: u32) {
        self.buf
            .extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.buf.extend_from_slice(&0i32.to_ne_bytes());
        self.buf.extend_from_slice(&if_flags.to_ne_bytes());
        self.buf.extend_from_slice(&if_flags.to_ne_bytes());
    }

    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Msg {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align(self.buf.len()), 0);
        self
    }

    fn name(&mut self, ty: u16, s: &str) -> &mut Msg {
        let mut z = s.as_bytes().to_vec();
        z.push(0);
        self.attr(ty, &z)
    }

    fn begin(&mut self, ty: u16) -> &mut Msg {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Msg {
        let at = self.open.pop().expect("balanced nesting");
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// A route netlink socket, bound to the network namespace it was opened in.
pub struct Netlink {
    fd: OwnedFd,
}

impl Netlink {
    /// Opens the socket in the calling thread's current network namespace.
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by socket(2) and is not owned elsewhere.
        Ok(Netlink {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Sends one request and waits for its acknowledgement (or error).
    fn request(&self, msg: Vec<u8>) -> io::Result<()> {
        // SAFETY: the buffer is valid for its length; the kernel is the default peer.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: receiving into a stack buffer of the given size.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            let mut off = 0;
            while off + 16 <= n {
                let len =
                    u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
                let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2 bytes"));
                if ty == libc::NLMSG_ERROR as u16 && off + 20 <= n {
                    let err =
                        i32::from_ne_bytes(buf[off + 16..off + 20].try_into().expect("4 bytes"));
                    return if err == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-err))
                    };
                }
                if len < 16 {
                    break;
                }
                off += align(len);
            }
        }
    }

    /// Creates a bridge, up. Spanning tree stays off (the default), so ports forward at once.
    pub fn add_bridge(&self, name: &str) -> io::Result<()> {
        let mut m = Msg::new(
            libc::RTM_NEWLINK,
            (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16,
            libc::IFF_UP as u32,
        );
        m.name(IFLA_IFNAME, name)
            .begin(IFLA_LINKINFO)
            .name(IFLA_INFO_KIND, "bridge")
            .end();
        self.request(m.finish())
    }

    /// Creates a veth pair: `host` here, up and enslaved to the bridge with index
    /// `master`; its peer `guest` (with `mac`) is created directly inside the network
    /// namespace of process `pid`, so it never exists in this namespace.
    pub fn add_veth(
        &self,
        host: &str,
        master: u32,
        guest: &str,
        mac: [u8; 6],
        pid: u32,
    ) -> io::Result<()> {
        let mut m = Msg::new(
            libc::RTM_NEWLINK,
            (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16,
            libc::IFF_UP as u32,
        );
        m.name(IFLA_IFNAME, host)
            .attr(IFLA_MASTER, &master.to_ne_bytes())
            .begin(IFLA_LINKINFO)
            .name(IFLA_INFO_KIND, "veth")
            .begin(IFLA_INFO_DATA)
            .begin(VETH_INFO_PEER);
        // The peer attribute carries its own ifinfomsg before its attributes.
        m.ifinfo(0);
        m.name(IFLA_IFNAME, guest)
            .attr(IFLA_ADDRESS, &mac)
            .attr(IFLA_NET_NS_PID, &pid.to_ne_bytes())
            .end()
            .end()
            .end();
        self.request(m.finish())
    }

    /// The index of a link of this namespace (SIOCGIFINDEX answers for the socket's
    /// namespace, whatever socket family it is asked on).
    pub fn index(&self, name: &str) -> io::Result<u32> {
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        if name.len() >= req.ifr_name.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        // SAFETY: SIOCGIFINDEX reads the name and writes ifru_ifindex of our ifreq.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel filled in the index member.
        Ok(unsafe { req.ifr_ifru.ifru_ifindex } as u32)
    }

    /// Deletes a link by name (a veth takes its peer with it).
    pub fn del_link(&self, name: &str) -> io::Result<()> {
        let mut m = Msg::new(libc::RTM_DELLINK, 0, 0);
        m.name(IFLA_IFNAME, name);
        self.request(m.finish())
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in out.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_are_length_prefixed_and_aligned() {
        let mut m = Msg::new(libc::RTM_NEWLINK, 0, 0);
        m.begin(IFLA_LINKINFO).name(IFLA_INFO_KIND, "veth").end();
        let b = m.finish();
        assert_eq!(
            u32::from_ne_bytes(b[..4].try_into().unwrap()) as usize,
            b.len()
        );
        // header 16 + ifinfomsg 16, then the nest: 4 + ("veth\0" = 4 + 5, padded to 12).
        assert_eq!(b.len(), 32 + 4 + 12);
        assert_eq!(u16::from_ne_bytes(b[32..34].try_into().unwrap()), 16);
        assert_eq!(b.len() % 4, 0);
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(
            parse_mac("00:50:56:0a:bB:ff"),
            Some([0, 0x50, 0x56, 0x0a, 0xbb, 0xff])
        );
        assert_eq!(parse_mac("00:50:56:0a:bb"), None);
        assert_eq!(parse_mac("00:50:56:0a:bb:ff:01"), None);
        assert_eq!(parse_mac("zz:50:56:0a:bb:ff"), None);
    }
}
