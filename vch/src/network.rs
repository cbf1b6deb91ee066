//! Container networks: the bridge network is a port group of the VCH's own, every
//! container on it gets a NIC there and an IPv4 address from the bridge subnet; `none`
//! gives a VM without NIC (loopback only). Other Docker network modes are refused by
//! name.
//!
//! Addresses are handed out at create and released at remove. The address lives in the
//! container's spec in extraConfig, so after a VCH restart the allocations are rebuilt
//! from vSphere (`rebuild`) before any new container is created: none is handed out twice.

use crate::target::Target;
use container_vm::spec::{ContainerSpec, Interface};
use docker_api::Error;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use vsphere_client::spec::{Device, NicBacking};
use vsphere_client::MoRef;

/// Docker's default bridge subnet, which clients and users expect.
pub const DEFAULT_SUBNET: &str = "172.17.0.0/16";

/// The bridge network's settings (`--bridge-network`, `--bridge-subnet`).
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConfig {
    /// The port group containers are connected to.
    pub portgroup: String,
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

impl BridgeConfig {
    /// `subnet` is `a.b.c.d/len`; the gateway defaults to the subnet's first address,
    /// as dockerd's docker0 does.
    pub fn new(portgroup: &str, subnet: &str, gateway: Option<&str>) -> Result<Self, String> {
        if portgroup.trim().is_empty() {
            return Err("the bridge network's port group name is empty".into());
        }
        let (addr, len) = subnet
            .split_once('/')
            .ok_or_else(|| format!("bridge subnet '{subnet}': expected a.b.c.d/len"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("bridge subnet '{subnet}': '{addr}' is not an IPv4 address"))?;
        let prefix: u8 = len
            .parse()
            .map_err(|_| format!("bridge subnet '{subnet}': bad prefix length '{len}'"))?;
        // A MAC is derived from the low 22 bits of the address (see `mac_for`), and a
        // subnet needs room for a gateway and at least one container.
        if !(10..=30).contains(&prefix) {
            return Err(format!(
                "bridge subnet '{subnet}': the prefix length must be between 10 and 30"
            ));
        }
        let mask = u32::MAX << (32 - prefix);
        let base = u32::from(addr) & mask;
        if base != u32::from(addr) {
            return Err(format!(
                "bridge subnet '{subnet}': host bits are set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(base)
            ));
        }
        let gateway = match gateway {
            Some(g) => {
                let g: Ipv4Addr = g
                    .parse()
                    .map_err(|_| format!("bridge gateway '{g}' is not an IPv4 address"))?;
                let host = u32::from(g) & !mask;
                if u32::from(g) & mask != base || host == 0 || host == !mask {
                    return Err(format!(
                        "bridge gateway {g} is not a host address of {subnet}"
                    ));
                }
                g
            }
            None => Ipv4Addr::from(base + 1),
        };
        Ok(BridgeConfig {
            portgroup: portgroup.trim().to_string(),
            subnet: addr,
            prefix,
            gateway,
        })
    }

    pub fn subnet_text(&self) -> String {
        format!("{}/{}", self.subnet, self.prefix)
    }
}

/// The VMware-range MAC of a container address: `00:50:56` then the low 22 bits of the
/// address (the top byte stays in 00-3F, the range vSphere accepts for static MACs).
/// Unique per address within the subnet, and stable, so the spec can name it before
/// vSphere has seen the VM.
pub fn mac_for(ip: Ipv4Addr) -> String {
    let v = u32::from(ip);
    format!(
        "00:50:56:{:02x}:{:02x}:{:02x}",
        (v >> 16) & 0x3f,
        (v >> 8) & 0xff,
        v & 0xff
    )
}

/// The network a container asked for (`HostConfig.NetworkMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bridge,
    None,
}

impl Mode {
    /// Unsupported modes are refused naming the feature, never silently bridged.
    pub fn parse(mode: Option<&str>) -> Result<Mode, Error> {
        match mode.unwrap_or("") {
            "" | "default" | "bridge" => Ok(Mode::Bridge),
            "none" => Ok(Mode::None),
            "host" => Err(Error::not_implemented(
                "--network host (a container is a VM and cannot share the VCH's network stack)",
            )),
            m if m.starts_with("container:") => Err(Error::not_implemented(format!(
                "--network {m} (sharing another container's network stack)"
            ))),
            m => Err(Error::not_implemented(format!(
                "user-defined network '{m}' (only the networks bridge and none exist on this VCH)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Bridge => "bridge",
            Mode::None => "none",
        }
    }

    /// The mode of an existing container: by what its spec holds.
    pub fn of(spec: &ContainerSpec) -> Mode {
        if spec.interfaces.is_empty() {
            Mode::None
        } else {
            Mode::Bridge
        }
    }
}

/// Per-network endpoint settings of a create request (`--ip`, `--mac-address`, more
/// networks): refused where this VCH cannot honour them.
pub fn check_endpoints(
    mode: Mode,
    cfg: Option<&docker_api::models::NetworkingConfig>,
) -> Result<(), Error> {
    let Some(eps) = cfg.and_then(|c| c.endpoints_config.as_ref()) else {
        return Ok(());
    };
    for (name, ep) in eps {
        if name != mode.name() && !(mode == Mode::Bridge && name == "default") {
            return Err(Error::not_implemented(format!(
                "connecting to network '{name}' (a container joins exactly one of bridge or none here)"
            )));
        }
        if ep
            .ipam_config
            .as_ref()
            .is_some_and(|i| i.ipv4_address.as_deref().is_some_and(|a| !a.is_empty()))
        {
            // dockerd's own answer on its default bridge.
            return Err(Error::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        if ep.mac_address.as_deref().is_some_and(|m| !m.is_empty()) {
            return Err(Error::not_implemented(
                "--mac-address (the VCH derives each container's MAC from its address)",
            ));
        }
    }
    Ok(())
}

/// Which addresses of the subnet are taken.
struct Ipam {
    base: u32,
    size: u32,
    gateway: u32,
    used: Mutex<BTreeSet<u32>>,
}

impl Ipam {
    fn new(cfg: &BridgeConfig) -> Ipam {
        Ipam {
            base: u32::from(cfg.subnet),
            size: 1u32 << (32 - cfg.prefix),
            gateway: u32::from(cfg.gateway),
            used: Mutex::new(BTreeSet::new()),
        }
    }

    /// The lowest free host address (not the network, broadcast or gateway address).
    fn allocate(&self) -> Option<Ipv4Addr> {
        let mut used = self.used.lock();
        let ip = (self.base + 1..self.base + self.size - 1)
            .find(|a| *a != self.gateway && !used.contains(a))?;
        used.insert(ip);
        Some(Ipv4Addr::from(ip))
    }

    /// Marks an address as taken; false if it is outside the subnet.
    fn reserve(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        if v < self.base || v >= self.base + self.size {
            return false;
        }
        self.used.lock().insert(v);
        true
    }

    fn release(&self, ip: Ipv4Addr) {
        self.used.lock().remove(&u32::from(ip));
    }
}

/// The bridge network of this VCH: its port group in vSphere and its addresses.
pub struct Bridge {
    pub cfg: BridgeConfig,
    /// The port group's `Network` object.
    pub network: MoRef,
    /// How a NIC connects to it: by network (standard port group) or by switch and
    /// port-group key (distributed port group).
    backing: NicBacking,
    /// Docker's network IDs (64 hex digits), stable per VCH and port group.
    pub bridge_id: String,
    pub none_id: String,
    ipam: Ipam,
}

fn network_id(vch: &str, what: &str) -> String {
    hex::encode(Sha256::digest(format!("vch-network\0{vch}\0{what}")))
}

impl Bridge {
    /// Finds the port group, or creates it on every host of the VCH's compute resource
    /// (a standard port group on vSwitch0, as `HostNetworkSystem.AddPortGroup` makes it).
    pub async fn open(t: &Target, cfg: BridgeConfig) -> Result<Bridge, String> {
        let c = &t.client;
        let network = match c.network(&t.datacenter, &cfg.portgroup).await {
            Ok(n) => n,
            Err(vsphere_client::Error::NotFound { .. }) => {
                let cr = c
                    .property(&t.pool, "owner")
                    .await
                    .map_err(|e| e.to_string())?
                    .and_then(|v| v.as_moref().cloned())
                    .ok_or("the VCH's resource pool has no owner")?;
                let hosts: Vec<MoRef> = match c.property(&cr, "host").await {
                    Ok(Some(vsphere_client::Value::Array { items, .. })) => {
                        items.iter().filter_map(|v| v.as_moref().cloned()).collect()
                    }
                    Ok(_) => vec![],
                    Err(e) => return Err(e.to_string()),
                };
                if hosts.is_empty() {
                    return Err(format!("{} has no hosts to add port group to", cr.value));
                }
                for h in &hosts {
                    let ns = c
                        .property(h, "configManager")
                        .await
                        .map_err(|e| e.to_string())?
                        .and_then(|v| {
                            v.as_obj()
                                .and_then(|o| o.get("networkSystem"))
                                .and_then(|n| n.as_moref().cloned())
                        })
                        .ok_or_else(|| format!("host {} has no network system", h.value))?;
                    match c.add_port_group(&ns, &cfg.portgroup, 0, "vSwitch0").await {
                        Ok(()) => {}
                        // Another VCH (or an earlier, interrupted start) made it already.
                        Err(e) if e.fault_type() == Some("AlreadyExists") => {}
                        Err(e) => {
                            return Err(format!(
                                "add port group {} on host {}: {e}",
                                cfg.portgroup, h.value
                            ))
                        }
                    }
                }
                tracing::info!(portgroup = %cfg.portgroup, hosts = hosts.len(), "created the bridge port group");
                c.network(&t.datacenter, &cfg.portgroup)
                    .await
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(format!("bridge network {}: {e}", cfg.portgroup)),
        };
        let backing = if network.ty == "DistributedVirtualPortgroup" {
            let text =
                |v: Option<vsphere_client::Value>| v.and_then(|v| v.as_text().map(str::to_string));
            let key = text(
                c.property(&network, "key")
                    .await
                    .map_err(|e| e.to_string())?,
            )
            .ok_or("distributed port group without a key")?;
            let dvs = c
                .property(&network, "config")
                .await
                .map_err(|e| e.to_string())?
                .and_then(|v| {
                    v.as_obj()
                        .and_then(|o| o.get("distributedVirtualSwitch"))
                        .and_then(|d| d.as_moref().cloned())
                })
                .ok_or("distributed port group without a switch")?;
            let switch_uuid = text(c.property(&dvs, "uuid").await.map_err(|e| e.to_string())?)
                .ok_or("distributed switch without a uuid")?;
            NicBacking::Distributed {
                switch_uuid,
                portgroup_key: key,
            }
        } else {
            NicBacking::Network {
                name: cfg.portgroup.clone(),
                network: network.clone(),
            }
        };
        Ok(Bridge {
            backing,
            bridge_id: network_id(&t.name, &cfg.portgroup),
            none_id: network_id(&t.name, "none"),
            ipam: Ipam::new(&cfg),
            cfg,
            network,
        })
    }

    /// Takes the addresses of existing containers (read back from vSphere).
    pub fn rebuild<'a>(&self, specs: impl IntoIterator<Item = &'a ContainerSpec>) {
        for s in specs {
            for i in &s.interfaces {
                match i.address.parse() {
                    Ok(ip) if self.ipam.reserve(ip) => {}
                    _ => tracing::warn!(container = %s.id, address = %i.address,
                        "address outside the bridge subnet (was the subnet changed?)"),
                }
            }
        }
    }

    /// The interfaces a new container gets (one on the bridge with a fresh address, or
    /// none), held until the container's VM exists: see `Lease`.
    pub fn lease(&self, mode: Mode) -> Result<Lease<'_>, Error> {
        Ok(Lease {
            bridge: self,
            interfaces: self.attach(mode)?,
            kept: false,
        })
    }

    fn attach(&self, mode: Mode) -> Result<Vec<Interface>, Error> {
        match mode {
            Mode::None => Ok(vec![]),
            Mode::Bridge => {
                let ip = self.ipam.allocate().ok_or_else(|| {
                    Error::internal(format!(
                        "no free address left in the bridge subnet {}",
                        self.cfg.subnet_text()
                    ))
                })?;
                Ok(vec![Interface {
                    mac: mac_for(ip),
                    address: ip.to_string(),
                    prefix: self.cfg.prefix,
                    gateway: Some(self.cfg.gateway.to_string()),
                }])
            }
        }
    }

    /// Gives the spec's addresses back (container removed, or its create failed).
    pub fn release(&self, interfaces: &[Interface]) {
        for i in interfaces {
            if let Ok(ip) = i.address.parse() {
                self.ipam.release(ip);
            }
        }
    }

    /// The container VM's NIC for an interface of its spec: vmxnet3 on the bridge port
    /// group (standard or distributed) with the interface's MAC (set manually, so the spec can name it up front).
    pub fn nic(&self, key: i64, i: &Interface) -> Device {
        Device::Nic {
            key,
            vmxnet3: true,
            backing: self.backing.clone(),
            mac: Some(i.mac.clone()),
        }
    }

    /// `NetworkSettings` of `docker inspect`, as dockerd reports them.
    pub fn settings(&self, spec: &ContainerSpec) -> serde_json::Value {
        let endpoint = network_id(&spec.id, "endpoint");
        let (name, net_id, i) = match spec.interfaces.first() {
            Some(i) => ("bridge", &self.bridge_id, Some(i)),
            None => ("none", &self.none_id, None),
        };
        let ip = i.map(|i| i.address.clone()).unwrap_or_default();
        let prefix = i.map(|i| i.prefix).unwrap_or(0);
        let gw = i.and_then(|i| i.gateway.clone()).unwrap_or_default();
        let mac = i.map(|i| i.mac.clone()).unwrap_or_default();
        serde_json::json!({
            "Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {},
            "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
            "EndpointID": endpoint, "Gateway": gw, "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": ip, "IPPrefixLen": prefix, "IPv6Gateway": "", "MacAddress": mac,
            "Networks": { name: {
                "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": mac,
                "DriverOpts": null, "NetworkID": net_id, "EndpointID": endpoint,
                "Gateway": gw, "IPAddress": ip, "IPPrefixLen": prefix, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null,
            }},
        })
    }

    /// `docker network inspect` of `bridge` or `none`; `members` are (id, name, spec)
    /// of the containers on it.
    pub fn describe(
        &self,
        mode: Mode,
        members: &[(String, String, &ContainerSpec)],
    ) -> serde_json::Value {
        let (id, driver, ipam_config) = match mode {
            Mode::Bridge => (
                &self.bridge_id,
                "bridge",
                serde_json::json!([{"Subnet": self.cfg.subnet_text(), "Gateway": self.cfg.gateway.to_string()}]),
            ),
            Mode::None => (&self.none_id, "null", serde_json::json!([])),
        };
        let mut containers = serde_json::Map::new();
        for (cid, name, spec) in members.iter().filter(|(_, _, s)| Mode::of(s) == mode) {
            let i = spec.interfaces.first();
            containers.insert(
                cid.clone(),
                serde_json::json!({
                    "Name": name, "EndpointID": network_id(cid, "endpoint"),
                    "MacAddress": i.map(|i| i.mac.clone()).unwrap_or_default(),
                    "IPv4Address": i.map(|i| format!("{}/{}", i.address, i.prefix)).unwrap_or_default(),
                    "IPv6Address": "",
                }),
            );
        }
        let options = match mode {
            // Where the bridge is in vSphere, for admins.
            Mode::Bridge => serde_json::json!({"vch.portgroup": self.cfg.portgroup}),
            Mode::None => serde_json::json!({}),
        };
        serde_json::json!({
            "Name": mode.name(), "Id": id, "Created": "0001-01-01T00:00:00Z", "Scope": "local",
            "Driver": driver, "EnableIPv4": mode == Mode::Bridge, "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": ipam_config},
            "Internal": false, "Attachable": false, "Ingress": false,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
            "Containers": containers, "Options": options, "Labels": {},
        })
    }

    /// Resolves `bridge`, `none` or an ID (prefix) to a network.
    pub fn lookup(&self, name_or_id: &str) -> Option<Mode> {
        let n = name_or_id;
        if n == "bridge" || (!n.is_empty() && self.bridge_id.starts_with(n)) {
            Some(Mode::Bridge)
        } else if n == "none" || (!n.is_empty() && self.none_id.starts_with(n)) {
            Some(Mode::None)
        } else {
            None
        }
    }
}

/// Addresses taken for a container being created: given back when dropped, unless the
/// VM was made (`keep`), so no failure path of a create leaks an address.
pub struct Lease<'a> {
    bridge: &'a Bridge,
    interfaces: Vec<Interface>,
    kept: bool,
}

impl Lease<'_> {
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// The VM's NIC, if the container has a network.
    pub fn nic(&self) -> Option<Device> {
        self.interfaces.first().map(|i| self.bridge.nic(-93, i))
    }

    /// The VM exists: from now on the address is released with the container.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.bridge.release(&self.interfaces);
        }
    }
}

/// Name servers for a container: `--dns`, else the VCH's own non-loopback ones, else
/// Google's public resolvers (what dockerd falls back to).
pub fn dns_servers(requested: Option<&Vec<String>>) -> Vec<String> {
    if let Some(r) = requested.filter(|r| !r.is_empty()) {
        return r.clone();
    }
    let own: Vec<String> = std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .filter(|s| {
            s.parse::<Ipv4Addr>()
                .map(|a| !a.is_loopback())
                .unwrap_or(false)
        })
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

    fn cfg() -> BridgeConfig {
        BridgeConfig::new("vch", DEFAULT_SUBNET, None).unwrap()
    }

    #[test]
    fn subnet_and_gateway_validation() {
        let c = cfg();
        assert_eq!(c.gateway, Ipv4Addr::new(172, 17, 0, 1));
        assert_eq!(c.prefix, 16);
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
        let g = BridgeConfig::new("vch", "10.1.0.0/24", Some("10.1.0.254")).unwrap();
        assert_eq!(g.gateway, Ipv4Addr::new(10, 1, 0, 254));
    }

    #[test]
    fn allocation_skips_gateway_and_reuses_released_addresses() {
        let c = BridgeConfig::new("vch", "10.1.0.0/29", Some("10.1.0.1")).unwrap();
        let ipam = Ipam::new(&c);
        let got: Vec<Ipv4Addr> = std::iter::from_fn(|| ipam.allocate()).collect();
        // .0 network, .1 gateway, .7 broadcast: five left.
        assert_eq!(
            got,
            (2..=6)
                .map(|h| Ipv4Addr::new(10, 1, 0, h))
                .collect::<Vec<_>>()
        );
        ipam.release(Ipv4Addr::new(10, 1, 0, 4));
        assert_eq!(ipam.allocate(), Some(Ipv4Addr::new(10, 1, 0, 4)));
        assert_eq!(ipam.allocate(), None);
    }

    #[test]
    fn rebuilt_addresses_are_not_handed_out_again() {
        let ipam = Ipam::new(&cfg());
        assert!(ipam.reserve(Ipv4Addr::new(172, 17, 0, 2)));
        assert!(ipam.reserve(Ipv4Addr::new(172, 17, 0, 3)));
        assert!(!ipam.reserve(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(ipam.allocate(), Some(Ipv4Addr::new(172, 17, 0, 4)));
    }

    #[test]
    fn dropped_leases_give_their_address_back_kept_ones_do_not() {
        let b = Bridge {
            cfg: cfg(),
            network: MoRef::new("Network", "network-1"),
            backing: NicBacking::Network {
                name: "vch".into(),
                network: MoRef::new("Network", "network-1"),
            },
            bridge_id: network_id("vch", "vch"),
            none_id: network_id("vch", "none"),
            ipam: Ipam::new(&cfg()),
        };
        let first = b.lease(Mode::Bridge).unwrap();
        assert_eq!(first.interfaces()[0].address, "172.17.0.2");
        assert_eq!(first.interfaces()[0].mac, "00:50:56:11:00:02");
        assert!(
            matches!(first.nic(), Some(Device::Nic { mac: Some(m), .. }) if m == "00:50:56:11:00:02")
        );
        drop(first); // the create failed
        let kept = b.lease(Mode::Bridge).unwrap();
        assert_eq!(kept.interfaces()[0].address, "172.17.0.2");
        kept.keep();
        assert_eq!(
            b.lease(Mode::Bridge).unwrap().interfaces()[0].address,
            "172.17.0.3"
        );
        let none = b.lease(Mode::None).unwrap();
        assert!(none.interfaces().is_empty() && none.nic().is_none());
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
    fn unsupported_modes_are_refused_by_name() {
        assert_eq!(Mode::parse(None).unwrap(), Mode::Bridge);
        assert_eq!(Mode::parse(Some("default")).unwrap(), Mode::Bridge);
        assert_eq!(Mode::parse(Some("none")).unwrap(), Mode::None);
        for (m, want) in [
            ("host", "--network host"),
            ("container:web", "container:web"),
            ("mynet", "'mynet'"),
        ] {
            let e = Mode::parse(Some(m)).unwrap_err();
            assert!(matches!(e, Error::NotImplemented(_)), "{m}");
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
