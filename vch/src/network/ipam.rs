//! Which addresses of a network are taken. Nothing is persisted here: the addresses live
//! in the container specs (extraConfig of the VMs), and after a VCH restart the table is
//! rebuilt from them (`reserve`) before any new address is handed out, so none is handed
//! out twice.

use super::subnet::Pool;
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

pub struct Ipam {
    pool: Pool,
    used: Mutex<BTreeSet<Ipv4Addr>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Not a host address of the subnet, or the gateway.
    Outside,
    InUse,
}

impl Ipam {
    pub fn new(pool: Pool) -> Ipam {
        Ipam {
            pool,
            used: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The lowest free address of the range.
    pub fn allocate(&self) -> Option<Ipv4Addr> {
        let mut used = self.used.lock();
        let ip = self.pool.candidates().find(|a| !used.contains(a))?;
        used.insert(ip);
        Some(ip)
    }

    /// Takes a given address (`--ip`, or one read back from an existing container).
    pub fn reserve(&self, ip: Ipv4Addr) -> Result<(), Taken> {
        if !self.pool.subnet.is_host(ip) || ip == self.pool.gateway {
            return Err(Taken::Outside);
        }
        if self.used.lock().insert(ip) {
            Ok(())
        } else {
            Err(Taken::InUse)
        }
    }

    pub fn release(&self, ip: Ipv4Addr) {
        self.used.lock().remove(&ip);
    }

    pub fn in_use(&self) -> usize {
        self.used.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::subnet::Subnet;
    use super::*;

    fn ipam(t: &str) -> Ipam {
        Ipam::new(Pool::new(Subnet::parse("--subnet", t).unwrap(), None, None).unwrap())
    }

    #[test]
    fn allocation_skips_gateway_and_reuses_released_addresses() {
        let i = ipam("10.0.0.0/29");
        let a: Vec<_> = (0..5).map(|_| i.allocate().unwrap().to_string()).collect();
        assert_eq!(
            a,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        assert_eq!(i.allocate(), None);
        i.release("10.0.0.4".parse().unwrap());
        assert_eq!(i.allocate().unwrap().to_string(), "10.0.0.4");
    }

    #[test]
    fn reserved_addresses_are_never_handed_out_and_double_reservations_fail() {
        let i = ipam("10.0.0.0/24");
        i.reserve("10.0.0.2".parse().unwrap()).unwrap();
        assert_eq!(i.reserve("10.0.0.2".parse().unwrap()), Err(Taken::InUse));
        assert_eq!(i.reserve("10.0.0.1".parse().unwrap()), Err(Taken::Outside));
        assert_eq!(i.reserve("10.0.1.1".parse().unwrap()), Err(Taken::Outside));
        assert_eq!(i.allocate().unwrap().to_string(), "10.0.0.3");
    }
}
