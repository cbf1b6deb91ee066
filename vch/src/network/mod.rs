//! Container networks. Every Docker network is a vSphere port group: the default
//! `bridge` network is the VCH's own port group (`--bridge-network`), every user network
//! (`docker network create`) one more that the VCH creates and removes through the
//! vSphere API. A container gets one NIC per network it is on, with an IPv4 address from
//! that network's pool; `none` gives a VM without NIC (loopback only).
//!
//! Addresses live in the container's spec in extraConfig (one `Interface` per NIC, with
//! its network's id), so after a VCH restart the allocations are rebuilt from vSphere
//! (`Networks::rebuild`) before any new container is created: none is handed out twice.
//! The definitions of user networks are `networks/index.json` on the datastore.
//!
//! - `subnet`: subnets, gateways and ranges as users write them.
//! - `ipam`: which addresses of a network are taken.
//! - `portgroup`: port groups found, created and removed in vSphere.
//! - `registry`: the networks of this VCH, endpoints of containers on them.
//! - `render`: what `docker network inspect` and `docker inspect` show.

pub mod ipam;
pub mod portgroup;
pub mod registry;
pub mod render;
pub mod subnet;

pub use registry::{EndpointRequest, Lease, Network, NetworkRecord, Networks};

use std::net::Ipv4Addr;
use subnet::{Pool, Subnet};

/// Docker's default bridge subnet, which clients and users expect.
pub const DEFAULT_SUBNET: &str = "172.17.0.0/16";

/// The bridge network's settings (`--bridge-network`, `--bridge-subnet`,
/// `--bridge-gateway`).
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConfig {
    /// The port group containers are connected to.
    pub portgroup: String,
    pub pool: Pool,
}

impl BridgeConfig {
    /// `subnet` is `a.b.c.d/len`; the gateway defaults to the subnet's first address,
    /// as dockerd's docker0 does.
    pub fn new(portgroup: &str, subnet: &str, gateway: Option<&str>) -> Result<Self, String> {
        if portgroup.trim().is_empty() {
            return Err("the bridge network's port group name is empty".into());
        }
        let s = Subnet::parse("bridge subnet", subnet)?;
        let gateway = gateway
            .map(|g| {
                g.parse::<Ipv4Addr>()
                    .map_err(|_| format!("bridge gateway '{g}' is not an IPv4 address"))
            })
            .transpose()?;
        let pool = Pool::new(s, gateway, None).map_err(|e| format!("bridge {e}"))?;
        Ok(BridgeConfig {
            portgroup: portgroup.trim().to_string(),
            pool,
        })
    }
}

/// The VMware-range MAC of a container address: `00:50:56` then the low 22 bits of the
/// address (the top byte stays in 00-3F, the range vSphere accepts for static MACs).
/// Unique per address within a subnet (prefix ≥ 10), and stable, so the spec can name it
/// before vSphere has seen the VM.
pub fn mac_for(ip: Ipv4Addr) -> String {
    let v = u32::from(ip);
    format!(
        "00:50:56:{:02x}:{:02x}:{:02x}",
        (v >> 16) & 0x3f,
        (v >> 8) & 0xff,
        v & 0xff
    )
}

/// A MAC address as a user gives it (`--mac-address`): six hex octets, unicast.
pub fn parse_mac(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let bytes: Vec<u8> = parts
        .iter()
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    if bytes[0] & 1 != 0 {
        return None; // multicast
    }
    Some(
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Name servers for a container on the default bridge: `--dns`, else the VCH's own
/// non-loopback ones, else Google's public resolvers (what dockerd falls back to).
pub fn dns_servers(requested: Option<&Vec<String>>) -> Vec<String> {
    if let Some(r) = requested.filter(|r| !r.is_empty()) {
        return r.clone();
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let own: Vec<String> = crate::router::dns::host_upstreams(&conf)
        .into_iter()
        .map(|a| a.ip())
        .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
        .map(|ip| ip.to_string())
        .collect();
    if own.is_empty() {
        vec!["8.8.8.8".into(), "8.8.4.4".into()]
    } else {
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_settings_are_validated() {
        let c = BridgeConfig::new("vch", DEFAULT_SUBNET, None).unwrap();
        assert_eq!(c.pool.gateway, Ipv4Addr::new(172, 17, 0, 1));
        assert_eq!(c.pool.subnet.prefix, 16);
        assert!(BridgeConfig::new("vch", "172.17.0.5/16", None)
            .unwrap_err()
            .contains("host bits"));
        assert!(BridgeConfig::new("vch", "10.0.0.0/8", None)
            .unwrap_err()
            .contains("between 10 and 30"));
        assert!(BridgeConfig::new("vch", "10.1.0.0/24", Some("10.2.0.1"))
            .unwrap_err()
            .contains("not a host address"));
        assert!(BridgeConfig::new("vch", "nonsense", None).is_err());
        assert!(BridgeConfig::new(" ", DEFAULT_SUBNET, None).is_err());
        let g = BridgeConfig::new("vch", "10.1.0.0/24", Some("10.1.0.254")).unwrap();
        assert_eq!(g.pool.gateway, Ipv4Addr::new(10, 1, 0, 254));
    }

    #[test]
    fn macs_follow_addresses_in_the_vmware_static_range() {
        assert_eq!(mac_for(Ipv4Addr::new(172, 17, 0, 2)), "00:50:56:11:00:02");
        assert_eq!(mac_for(Ipv4Addr::new(10, 255, 1, 9)), "00:50:56:3f:01:09");
        assert_ne!(
            mac_for(Ipv4Addr::new(172, 17, 1, 2)),
            mac_for(Ipv4Addr::new(172, 17, 0, 2))
        );
    }

    #[test]
    fn user_macs_are_normalised_and_multicast_is_refused() {
        assert_eq!(
            parse_mac("02:42:AC:11:00:02").as_deref(),
            Some("02:42:ac:11:00:02")
        );
        assert_eq!(
            parse_mac("02-42-ac-11-00-03").as_deref(),
            Some("02:42:ac:11:00:03")
        );
        assert!(parse_mac("01:00:5e:00:00:01").is_none());
        assert!(parse_mac("02:42:ac:11:00").is_none());
        assert!(parse_mac("zz:42:ac:11:00:02").is_none());
    }
}
