//! IPv4 subnets of Docker networks as users write them (`--subnet 172.18.0.0/16`,
//! `--gateway`, `--ip-range`), checked the way dockerd checks them.

use std::fmt;
use std::net::Ipv4Addr;

/// `a.b.c.d/len` with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// `what` names the option in errors (`--subnet`, `--ip-range`).
    pub fn parse(what: &str, text: &str) -> Result<Subnet, String> {
        let (addr, len) = text
            .split_once('/')
            .ok_or_else(|| format!("invalid {what} {text}: expected a.b.c.d/len"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("invalid {what} {text}: '{addr}' is not an IPv4 address"))?;
        let prefix: u8 = len
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("invalid {what} {text}: bad prefix length '{len}'"))?;
        let s = Subnet { base: addr, prefix };
        if u32::from(addr) & s.mask() != u32::from(addr) {
            return Err(format!(
                "invalid {what} {text}: host bits are set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(addr) & s.mask())
            ));
        }
        Ok(s)
    }

    pub fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// Number of addresses, network and broadcast included.
    pub fn size(self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    pub fn first(self) -> u32 {
        u32::from(self.base)
    }

    pub fn last(self) -> u32 {
        (self.first() as u64 + self.size() - 1) as u32
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.first()
    }

    pub fn overlaps(self, other: Subnet) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// A host address: neither the network nor the broadcast address.
    pub fn is_host(self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && u32::from(ip) != self.first() && u32::from(ip) != self.last()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// A network's addressing: its subnet, its gateway (the VCH's leg on it) and the range
/// container addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// `--ip-range`: where automatic addresses come from; the whole subnet if unset.
    pub range: Option<Subnet>,
}

impl Pool {
    /// The gateway defaults to the subnet's first host address, as dockerd's does.
    pub fn new(
        subnet: Subnet,
        gateway: Option<Ipv4Addr>,
        range: Option<Subnet>,
    ) -> Result<Pool, String> {
        // A MAC is derived from the low 22 bits of an address (network::mac_for), and a
        // subnet needs room for a gateway and at least one container.
        if !(10..=30).contains(&subnet.prefix) {
            return Err(format!(
                "subnet {subnet}: the prefix length must be between 10 and 30"
            ));
        }
        let gateway = gateway.unwrap_or(Ipv4Addr::from(subnet.first() + 1));
        if !subnet.is_host(gateway) {
            return Err(format!(
                "gateway {gateway} is not a host address of subnet {subnet}"
            ));
        }
        if let Some(r) = range {
            if !(subnet.contains(r.base) && subnet.contains(Ipv4Addr::from(r.last()))) {
                return Err(format!("ip-range {r} is not inside subnet {subnet}"));
            }
        }
        Ok(Pool {
            subnet,
            gateway,
            range,
        })
    }

    /// The addresses automatic allocation may hand out, in order.
    pub fn candidates(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let r = self.range.unwrap_or(self.subnet);
        (r.first()..=r.last())
            .map(Ipv4Addr::from)
            .filter(move |ip| self.subnet.is_host(*ip) && *ip != self.gateway)
    }
}

/// Subnets dockerd's default address pools hand out to new networks, in its order:
/// 172.17–31.0.0/16, then 192.168.0–240.0/20 (172.17 is the default bridge's).
pub fn default_pools() -> impl Iterator<Item = Subnet> {
    let big = (18u8..=31).map(|b| Subnet {
        base: Ipv4Addr::new(172, b, 0, 0),
        prefix: 16,
    });
    let small = (0u8..16).map(|i| Subnet {
        base: Ipv4Addr::new(192, 168, i * 16, 0),
        prefix: 20,
    });
    big.chain(small)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> Subnet {
        Subnet::parse("--subnet", t).unwrap()
    }

    #[test]
    fn subnets_are_checked_like_dockerd_checks_them() {
        assert_eq!(s("10.1.0.0/16").to_string(), "10.1.0.0/16");
        let e = Subnet::parse("--subnet", "10.1.2.3/16").unwrap_err();
        assert!(e.contains("did you mean 10.1.0.0/16"), "{e}");
        assert!(Subnet::parse("--subnet", "10.1.0.0").is_err());
        assert!(Subnet::parse("--subnet", "10.1.0.0/33").is_err());
        assert!(Subnet::parse("--subnet", "x/16").is_err());
        assert!(s("10.0.0.0/8").overlaps(s("10.1.0.0/16")));
        assert!(!s("10.0.0.0/16").overlaps(s("10.1.0.0/16")));
    }

    #[test]
    fn pools_check_gateway_and_range_and_skip_them_when_allocating() {
        let p = Pool::new(s("10.9.0.0/29"), None, None).unwrap();
        assert_eq!(p.gateway, Ipv4Addr::new(10, 9, 0, 1));
        let all: Vec<_> = p.candidates().map(|i| i.to_string()).collect();
        assert_eq!(
            all,
            ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
        );
        assert!(Pool::new(s("10.9.0.0/24"), Some(Ipv4Addr::new(10, 8, 0, 1)), None).is_err());
        assert!(Pool::new(s("10.9.0.0/24"), Some(Ipv4Addr::new(10, 9, 0, 255)), None).is_err());
        let r = Subnet::parse("--ip-range", "10.9.0.128/30").unwrap();
        let p = Pool::new(s("10.9.0.0/24"), None, Some(r)).unwrap();
        let got: Vec<_> = p.candidates().map(|i| i.to_string()).collect();
        assert_eq!(
            got,
            ["10.9.0.128", "10.9.0.129", "10.9.0.130", "10.9.0.131"]
        );
        let outside = Subnet::parse("--ip-range", "10.10.0.0/30").unwrap();
        assert!(Pool::new(s("10.9.0.0/24"), None, Some(outside)).is_err());
        assert!(Pool::new(s("10.0.0.0/8"), None, None).is_err());
    }

    #[test]
    fn default_pools_follow_dockerd() {
        let v: Vec<_> = default_pools().map(|s| s.to_string()).collect();
        assert_eq!(v[0], "172.18.0.0/16");
        assert_eq!(v[13], "172.31.0.0/16");
        assert_eq!(v[14], "192.168.0.0/20");
        assert_eq!(v.last().unwrap(), "192.168.240.0/20");
    }
}
