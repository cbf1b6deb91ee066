//! The guest's network: loopback up, and each NIC of the spec found by its MAC, given its
//! IPv4 address, brought up, and the default route set through its gateway.
//!
//! Classic `SIOC*` ioctls rather than netlink: five fixed requests, no parsing, and nothing
//! the static tether binary has to carry beyond libc.

use container_vm::spec::Interface;
use nix::libc;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long a NIC may take to show up: the hypervisor plugs NICs in while the guest
/// boots (the simulator right after it starts init).
const NIC_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("no network interface with MAC {0} appeared")]
    NoNic(String),
    #[error("bad address '{0}' in the spec")]
    Address(String),
    #[error("{what} on {dev}: {err}")]
    Sys {
        what: &'static str,
        dev: String,
        err: io::Error,
    },
}

struct Ctl(OwnedFd);

impl Ctl {
    fn open() -> io::Result<Ctl> {
        // SAFETY: plain socket(2); owned right away.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor, owned by nobody else.
        Ok(Ctl(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn req(name: &str) -> libc::ifreq {
        // SAFETY: ifreq is plain data; all zero is valid.
        let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, c) in r.ifr_name.iter_mut().take(15).zip(name.bytes()) {
            *d = c as libc::c_char;
        }
        r
    }

    fn ioctl<T>(
        &self,
        what: &'static str,
        dev: &str,
        op: libc::Ioctl,
        arg: &mut T,
    ) -> Result<(), NetError> {
        // SAFETY: `arg` is the structure `op` expects (ifreq or rtentry), valid for writes.
        if unsafe { libc::ioctl(self.0.as_raw_fd(), op, arg as *mut T) } < 0 {
            return Err(NetError::Sys {
                what,
                dev: dev.to_string(),
                err: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn mac(&self, dev: &str) -> Option<String> {
        let mut r = Self::req(dev);
        self.ioctl("SIOCGIFHWADDR", dev, libc::SIOCGIFHWADDR, &mut r)
            .ok()?;
        // SAFETY: the kernel filled in the hardware address member.
        let data = unsafe { r.ifr_ifru.ifru_hwaddr.sa_data };
        Some(
            data[..6]
                .iter()
                .map(|b| format!("{:02x}", *b as u8))
                .collect::<Vec<_>>()
                .join(":"),
        )
    }

    fn up(&self, dev: &str) -> Result<(), NetError> {
        let mut r = Self::req(dev);
        self.ioctl("SIOCGIFFLAGS", dev, libc::SIOCGIFFLAGS, &mut r)?;
        // SAFETY: flags member, just read by the kernel.
        unsafe { r.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        self.ioctl("SIOCSIFFLAGS", dev, libc::SIOCSIFFLAGS, &mut r)
    }

    fn set_addr(
        &self,
        dev: &str,
        op: libc::Ioctl,
        what: &'static str,
        a: Ipv4Addr,
    ) -> Result<(), NetError> {
        let mut r = Self::req(dev);
        r.ifr_ifru.ifru_addr = sockaddr(a);
        self.ioctl(what, dev, op, &mut r)
    }

    fn default_route(&self, dev: &str, gw: Ipv4Addr) -> Result<(), NetError> {
        // SAFETY: rtentry is plain data; all zero is valid (destination and mask 0.0.0.0).
        let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
        rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_gateway = sockaddr(gw);
        rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        self.ioctl("SIOCADDRT", dev, libc::SIOCADDRT, &mut rt)
    }
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the kernel reads it by family.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// The network interfaces of this namespace, from /proc/self/net/dev (per namespace,
/// whatever /proc is mounted).
fn links() -> Vec<String> {
    std::fs::read_to_string("/proc/self/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect()
}

fn netmask(prefix: u8) -> Ipv4Addr {
    match prefix {
        0 => Ipv4Addr::UNSPECIFIED,
        p => Ipv4Addr::from(u32::MAX << (32 - p.min(32) as u32)),
    }
}

fn find_by_mac(ctl: &Ctl, mac: &str) -> Result<String, NetError> {
    let want = mac.trim().to_lowercase();
    let deadline = Instant::now() + NIC_WAIT;
    loop {
        if let Some(dev) = links()
            .into_iter()
            .find(|l| ctl.mac(l).as_deref() == Some(want.as_str()))
        {
            return Ok(dev);
        }
        if Instant::now() > deadline {
            return Err(NetError::NoNic(want));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Brings up loopback and every interface of the spec; returns the device names used.
pub fn configure(interfaces: &[Interface]) -> Result<Vec<String>, NetError> {
    configure_with(interfaces, false)
}

/// `configure` for a VM that runs (network connect): interfaces configured before are
/// set again, and a default route that exists already stays.
pub fn configure_live(interfaces: &[Interface]) -> Result<Vec<String>, NetError> {
    configure_with(interfaces, true)
}

fn configure_with(interfaces: &[Interface], live: bool) -> Result<Vec<String>, NetError> {
    let ctl = Ctl::open().map_err(|err| NetError::Sys {
        what: "socket",
        dev: "-".into(),
        err,
    })?;
    ctl.up("lo")?;
    let mut names = Vec::new();
    for i in interfaces {
        let addr: Ipv4Addr = i
            .address
            .parse()
            .map_err(|_| NetError::Address(i.address.clone()))?;
        if i.prefix > 32 {
            return Err(NetError::Address(format!("{}/{}", i.address, i.prefix)));
        }
        let dev = find_by_mac(&ctl, &i.mac)?;
        ctl.set_addr(&dev, libc::SIOCSIFADDR, "SIOCSIFADDR", addr)?;
        ctl.set_addr(
            &dev,
            libc::SIOCSIFNETMASK,
            "SIOCSIFNETMASK",
            netmask(i.prefix),
        )?;
        ctl.up(&dev)?;
        if let Some(gw) = i.gateway.as_deref().filter(|g| !g.is_empty()) {
            let gw: Ipv4Addr = gw.parse().map_err(|_| NetError::Address(gw.to_string()))?;
            match ctl.default_route(&dev, gw) {
                Err(NetError::Sys { err, .. })
                    if live && err.raw_os_error() == Some(libc::EEXIST) => {}
                other => other?,
            }
        }
        names.push(dev);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_become_netmasks() {
        assert_eq!(netmask(16), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn specs_without_interfaces_still_parse() {
        let s: container_vm::spec::ContainerSpec =
            serde_json::from_str(r#"{"id":"x","cmd":["true"]}"#).unwrap();
        assert!(s.interfaces.is_empty());
        let s: container_vm::spec::ContainerSpec = serde_json::from_str(
            r#"{"id":"x","interfaces":[{"mac":"00:50:56:00:00:01","address":"172.17.0.2","prefix":16,"gateway":"172.17.0.1"}]}"#,
        )
        .unwrap();
        assert_eq!(s.interfaces[0].prefix, 16);
        assert_eq!(s.interfaces[0].gateway.as_deref(), Some("172.17.0.1"));
    }
}
