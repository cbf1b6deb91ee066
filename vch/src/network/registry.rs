//! The networks of this VCH: the default bridge, `none`, and the user networks, each one
//! a port group with its own address pool; and the endpoints (NICs with addresses) of
//! containers on them.

use super::ipam::{Ipam, Taken};
use super::portgroup::{self, PortGroup};
use super::subnet::{default_pools, Pool, Subnet};
use super::{mac_for, parse_mac, BridgeConfig};
use crate::images::datastore::Datastore;
use crate::target::Target;
use container_vm::spec::{ContainerSpec, Interface};
use docker_api::models::{EndpointSettings, NetworkCreateRequest, NetworkingConfig};
use docker_api::Error;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use vsphere_client::spec::Device;

const INDEX: &str = "index.json";
/// Names dockerd reserves for its predefined networks.
const PREDEFINED: [&str; 4] = ["bridge", "none", "host", "default"];

/// A user network as `networks/index.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub created: String,
    pub subnet: String,
    pub gateway: String,
    #[serde(default)]
    pub ip_range: Option<String>,
    /// `--aux-address name=ip`: addresses containers never get.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, String>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    /// The vSphere port group it is.
    pub portgroup: String,
}

/// One Docker network (the default bridge or a user network).
pub struct Network {
    pub rec: NetworkRecord,
    pub pool: Pool,
    pub pg: PortGroup,
    pub ipam: Ipam,
    /// The default bridge: made with the VCH, never removed.
    pub builtin: bool,
}

impl Network {
    fn new(rec: NetworkRecord, pool: Pool, pg: PortGroup, builtin: bool) -> Network {
        let ipam = Ipam::new(pool);
        for ip in rec.aux_addresses.values().filter_map(|a| a.parse().ok()) {
            let _ = ipam.reserve(ip);
        }
        Network {
            rec,
            pool,
            pg,
            ipam,
            builtin,
        }
    }

    pub fn id(&self) -> &str {
        &self.rec.id
    }

    pub fn name(&self) -> &str {
        &self.rec.name
    }
}

/// Docker's network IDs for the predefined networks: 64 hex digits, stable per VCH.
pub fn builtin_id(vch: &str, what: &str) -> String {
    hex::encode(Sha256::digest(format!("vch-network\0{vch}\0{what}")))
}

/// A container's endpoint on one network, as its create or connect request asks for it.
#[derive(Clone)]
pub struct EndpointRequest {
    pub network: Arc<Network>,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<String>,
    pub aliases: Vec<String>,
    /// `name[:alias]` of containers to put in /etc/hosts.
    pub links: Vec<String>,
}

/// What `--network` resolves to.
pub enum Attachment {
    None,
    Network(Arc<Network>),
}

pub struct Networks {
    bridge: Arc<Network>,
    none_id: String,
    user: RwLock<BTreeMap<String, Arc<Network>>>,
    /// `[ds] <vch>/networks/`; None for a registry that lives in memory only (tests).
    store: Option<Datastore>,
    vch: String,
    /// Serialises creates and removes (name checks, subnet choice, the index).
    change: tokio::sync::Mutex<()>,
}

fn ds_err(e: impl std::fmt::Display) -> String {
    format!("networks index: {e}")
}

impl Networks {
    /// The bridge port group (found or created) and the user networks of the index, each
    /// port group made again if an admin removed it.
    pub async fn open(t: &Target, cfg: BridgeConfig) -> Result<Networks, String> {
        let bridge_pg = portgroup::ensure(t, &cfg.portgroup, None).await?;
        let store = Datastore::new(
            t.client.clone(),
            Some(&t.datacenter_name),
            Some(&t.datastore_name),
            &format!("{}/networks", t.name),
        )
        .await
        .map_err(ds_err)?;
        store.mkdir("").await.map_err(ds_err)?;
        let records: BTreeMap<String, NetworkRecord> =
            match store.get_bytes(INDEX).await.map_err(ds_err)? {
                Some(raw) => {
                    serde_json::from_slice(&raw).map_err(|e| format!("networks/{INDEX}: {e}"))?
                }
                None => BTreeMap::new(),
            };
        let mut user = BTreeMap::new();
        for (id, rec) in records {
            let pool = pool_of(&rec)?;
            let pg = portgroup::ensure(t, &rec.portgroup, Some(&bridge_pg)).await?;
            user.insert(id, Arc::new(Network::new(rec, pool, pg, false)));
        }
        let mut n = Networks::in_memory(&t.name, cfg, bridge_pg);
        n.user = RwLock::new(user);
        n.store = Some(store);
        Ok(n)
    }

    /// A registry with the default bridge only, kept in memory (unit tests).
    pub fn in_memory(vch: &str, cfg: BridgeConfig, bridge_pg: PortGroup) -> Networks {
        let rec = NetworkRecord {
            id: builtin_id(vch, &cfg.portgroup),
            name: "bridge".into(),
            created: "0001-01-01T00:00:00Z".into(),
            subnet: cfg.pool.subnet.to_string(),
            gateway: cfg.pool.gateway.to_string(),
            ip_range: None,
            aux_addresses: BTreeMap::new(),
            internal: false,
            attachable: false,
            labels: HashMap::new(),
            portgroup: cfg.portgroup.clone(),
        };
        Networks {
            bridge: Arc::new(Network::new(rec, cfg.pool, bridge_pg, true)),
            none_id: builtin_id(vch, "none"),
            user: RwLock::new(BTreeMap::new()),
            store: None,
            vch: vch.to_string(),
            change: tokio::sync::Mutex::new(()),
        }
    }

    pub fn bridge(&self) -> &Arc<Network> {
        &self.bridge
    }

    pub fn none_id(&self) -> &str {
        &self.none_id
    }

    /// The default bridge and the user networks (not `none`).
    pub fn all(&self) -> Vec<Arc<Network>> {
        let mut v = vec![self.bridge.clone()];
        v.extend(self.user.read().values().cloned());
        v
    }

    /// The network of an interface (by its id; empty: the bridge, from before user networks).
    pub fn by_id(&self, id: &str) -> Option<Arc<Network>> {
        if id.is_empty() || id == self.bridge.rec.id {
            return Some(self.bridge.clone());
        }
        self.user.read().get(id).cloned()
    }

    /// dockerd's lookup: full id, then name, then a unique id prefix.
    pub fn lookup(&self, key: &str) -> Option<Attachment> {
        if key.is_empty() {
            return None;
        }
        if key == "none" || key == self.none_id {
            return Some(Attachment::None);
        }
        let all = self.all();
        let found = all
            .iter()
            .find(|n| n.rec.id == key)
            .or_else(|| all.iter().find(|n| n.rec.name == key))
            .cloned()
            .or_else(|| {
                let mut m = all.iter().filter(|n| n.rec.id.starts_with(key));
                match (m.next(), m.next()) {
                    (Some(n), None) => Some(n.clone()),
                    _ => None,
                }
            });
        match found {
            Some(n) => Some(Attachment::Network(n)),
            None if self.none_id.starts_with(key) => Some(Attachment::None),
            None => None,
        }
    }

    /// `lookup` for a network that must exist and be a real one (connect, disconnect, rm).
    pub fn get(&self, key: &str) -> Result<Arc<Network>, Error> {
        match self.lookup(key) {
            Some(Attachment::Network(n)) => Ok(n),
            Some(Attachment::None) => Err(Error::invalid(
                "the none network has no endpoints to connect or disconnect",
            )),
            None => Err(Error::NoSuchNetwork(key.to_string())),
        }
    }

    /// The endpoints a create request asks for (`HostConfig.NetworkMode` and
    /// `NetworkingConfig`): none for `--network none`, else the mode's network first,
    /// then any further networks of the request. Refuses what cannot be honoured.
    pub fn endpoints_for_create(
        &self,
        mode: Option<&str>,
        cfg: Option<&NetworkingConfig>,
    ) -> Result<Vec<EndpointRequest>, Error> {
        let mode = match mode.unwrap_or("") {
            "" | "default" => "bridge",
            m => m,
        };
        if mode == "host" {
            return Err(Error::not_implemented(
                "--network host (a container is a VM and cannot share the VCH's network stack)",
            ));
        }
        if let Some(c) = mode.strip_prefix("container:") {
            return Err(Error::not_implemented(format!(
                "--network container:{c} (a container is a VM with its own network stack; \
                 put both containers on one network instead)"
            )));
        }
        let first = match self.lookup(mode) {
            Some(Attachment::None) => None,
            Some(Attachment::Network(n)) => Some(n),
            None => return Err(Error::NoSuchNetwork(mode.to_string())),
        };
        // The CLI names the default network `default` when no --network was given.
        let eps: Vec<(&str, &EndpointSettings)> = cfg
            .and_then(|c| c.endpoints_config.as_ref())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (if k == "default" { "bridge" } else { k.as_str() }, v))
                    .collect()
            })
            .unwrap_or_default();
        let Some(first) = first else {
            if let Some((name, _)) = eps.iter().find(|(n, _)| *n != "none") {
                return Err(Error::invalid(format!(
                    "container cannot be connected to network '{name}' and to none"
                )));
            }
            return Ok(vec![]);
        };
        let mut out = vec![];
        let first_ep = eps.iter().find(|(k, _)| {
            matches!(self.lookup(k), Some(Attachment::Network(n)) if n.rec.id == first.rec.id)
        });
        out.push(endpoint(first.clone(), first_ep.map(|(_, e)| *e))?);
        for (key, ep) in &eps {
            match self.lookup(key) {
                Some(Attachment::Network(n)) if n.rec.id == first.rec.id => {}
                Some(Attachment::Network(n)) => {
                    if out.iter().any(|e| e.network.rec.id == n.rec.id) {
                        continue;
                    }
                    out.push(endpoint(n, Some(ep))?)
                }
                Some(Attachment::None) => {
                    return Err(Error::invalid(format!(
                        "container cannot be connected to network '{mode}' and to none"
                    )))
                }
                None => return Err(Error::NoSuchNetwork(key.to_string())),
            }
        }
        Ok(out)
    }

    /// Addresses (and MACs) for a container's endpoints, held until its VM exists.
    /// `existing` are the container's other interfaces (connect): their MACs stay unique.
    pub fn lease<'a>(
        &'a self,
        reqs: &[EndpointRequest],
        existing: &[Interface],
    ) -> Result<Lease<'a>, Error> {
        let mut lease = Lease {
            networks: self,
            interfaces: vec![],
            kept: false,
        };
        for r in reqs {
            let pool = r.network.pool;
            let ip = match r.ip {
                Some(ip) => match r.network.ipam.reserve(ip) {
                    Ok(()) => ip,
                    Err(Taken::InUse) => {
                        return Err(Error::Conflict(format!("Address already in use: {ip}")))
                    }
                    Err(Taken::Outside) => {
                        return Err(Error::invalid(format!(
                            "invalid IP address {ip}: it does not belong to any of this network's subnets ({})",
                            pool.subnet
                        )))
                    }
                },
                None => r.network.ipam.allocate().ok_or_else(|| {
                    Error::internal(format!(
                        "no available IPv4 addresses on network {} ({})",
                        r.network.rec.name, pool.subnet
                    ))
                })?,
            };
            let mac = r.mac.clone().unwrap_or_else(|| mac_for(ip));
            // Push first so a failure below still gives the address back.
            let gateway = (lease.interfaces.is_empty() && existing.is_empty())
                .then(|| pool.gateway.to_string());
            lease.interfaces.push(Interface {
                mac: mac.clone(),
                address: ip.to_string(),
                prefix: pool.subnet.prefix,
                gateway,
                network: r.network.rec.id.clone(),
                aliases: r.aliases.clone(),
            });
            let macs = existing.iter().chain(&lease.interfaces);
            if macs.filter(|i| i.mac == mac).count() > 1 {
                return Err(Error::invalid(format!(
                    "MAC address {mac} is already used by another interface of this container"
                )));
            }
        }
        Ok(lease)
    }

    /// Takes the addresses of existing containers (read back from vSphere).
    pub fn rebuild<'a>(&self, specs: impl IntoIterator<Item = &'a ContainerSpec>) {
        for s in specs {
            for i in &s.interfaces {
                let taken = self
                    .by_id(&i.network)
                    .zip(i.address.parse().ok())
                    .map(|(n, ip)| n.ipam.reserve(ip));
                if !matches!(taken, Some(Ok(()))) {
                    tracing::warn!(container = %s.id, address = %i.address, network = %i.network,
                        "address not in its network's pool (was the subnet changed or the network removed?)");
                }
            }
        }
    }

    /// Gives addresses back (container removed or disconnected, or its create failed).
    pub fn release(&self, interfaces: &[Interface]) {
        for i in interfaces {
            if let (Some(n), Ok(ip)) = (self.by_id(&i.network), i.address.parse()) {
                n.ipam.release(ip);
            }
        }
    }

    /// The NIC of an interface: vmxnet3 on its network's port group with the spec's MAC
    /// (set manually, so the spec can name it before vSphere has seen the VM).
    pub fn nic(&self, key: i64, i: &Interface) -> Option<Device> {
        let n = self.by_id(&i.network)?;
        Some(Device::Nic {
            key,
            vmxnet3: true,
            backing: n.pg.backing.clone(),
            mac: Some(i.mac.clone()),
        })
    }

    /// The port group name of a new user network: the VCH's name and the network's, so
    /// admins see whose it is; long names are cut and made unique with the id.
    fn portgroup_name(&self, name: &str, id: &str) -> String {
        let full = format!("{}-{name}", self.vch);
        if full.len() <= 60 {
            full
        } else {
            let head: String = full.chars().take(47).collect();
            format!("{head}-{}", &id[..12])
        }
    }

    /// `docker network create`.
    pub async fn create(
        &self,
        t: &Target,
        req: &NetworkCreateRequest,
    ) -> Result<Arc<Network>, Error> {
        let _g = self.change.lock().await;
        let name = req.name.trim();
        check_create(req)?;
        if PREDEFINED.contains(&name) {
            return Err(Error::Forbidden(format!(
                "operation is not permitted on predefined {name} network"
            )));
        }
        if self.all().iter().any(|n| n.rec.name == name) {
            return Err(Error::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let taken: Vec<Subnet> = self.all().iter().map(|n| n.pool.subnet).collect();
        let pool = requested_pool(req, &taken)?;
        let id = hex::encode(rand_bytes());
        let rec = NetworkRecord {
            id: id.clone(),
            name: name.to_string(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            subnet: pool.subnet.to_string(),
            gateway: pool.gateway.to_string(),
            ip_range: pool.range.map(|r| r.to_string()),
            aux_addresses: aux_addresses(req, &pool)?,
            internal: req.internal == Some(true),
            attachable: req.attachable == Some(true),
            labels: req.labels.clone().unwrap_or_default(),
            portgroup: self.portgroup_name(name, &id),
        };
        let pg = portgroup::ensure(t, &rec.portgroup, Some(&self.bridge.pg))
            .await
            .map_err(Error::internal)?;
        let net = Arc::new(Network::new(rec, pool, pg, false));
        self.user.write().insert(id.clone(), net.clone());
        if let Err(e) = self.save().await {
            self.user.write().remove(&id);
            let _ = portgroup::remove(t, &net.pg).await;
            return Err(Error::internal(e));
        }
        Ok(net)
    }

    /// `docker network rm` of a network the caller found unused.
    pub async fn remove(&self, t: &Target, net: &Network) -> Result<(), Error> {
        if net.builtin {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                net.rec.name
            )));
        }
        let _g = self.change.lock().await;
        portgroup::remove(t, &net.pg)
            .await
            .map_err(Error::internal)?;
        let removed = self.user.write().remove(&net.rec.id);
        if let Err(e) = self.save().await {
            if let Some(n) = removed {
                self.user.write().insert(n.rec.id.clone(), n);
            }
            return Err(Error::internal(e));
        }
        Ok(())
    }

    async fn save(&self) -> Result<(), String> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let recs: BTreeMap<String, NetworkRecord> = self
            .user
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.rec.clone()))
            .collect();
        let raw = serde_json::to_vec_pretty(&recs).map_err(ds_err)?;
        store.put_bytes(INDEX, raw).await.map_err(ds_err)
    }
}

fn rand_bytes() -> [u8; 32] {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(a.as_bytes());
    out[16..].copy_from_slice(b.as_bytes());
    out
}

fn pool_of(rec: &NetworkRecord) -> Result<Pool, String> {
    let subnet = Subnet::parse("subnet", &rec.subnet)?;
    let gw = rec
        .gateway
        .parse()
        .map_err(|_| format!("network {}: bad gateway {}", rec.name, rec.gateway))?;
    let range = rec
        .ip_range
        .as_deref()
        .map(|r| Subnet::parse("ip-range", r))
        .transpose()?;
    Pool::new(subnet, Some(gw), range)
}

/// One endpoint of a create or connect request, checked.
pub fn endpoint(
    network: Arc<Network>,
    ep: Option<&EndpointSettings>,
) -> Result<EndpointRequest, Error> {
    let mut req = EndpointRequest {
        network,
        ip: None,
        mac: None,
        aliases: vec![],
        links: vec![],
    };
    let Some(ep) = ep else {
        return Ok(req);
    };
    let builtin = req.network.builtin;
    if let Some(ipam) = &ep.ipam_config {
        if let Some(a) = ipam.ipv4_address.as_deref().filter(|a| !a.is_empty()) {
            if builtin {
                // dockerd's own answer on its default bridge.
                return Err(Error::invalid(
                    "user specified IP address is supported on user defined networks only",
                ));
            }
            req.ip = Some(
                a.parse()
                    .map_err(|_| Error::invalid(format!("invalid IPv4 address: {a}")))?,
            );
        }
        if ipam.ipv6_address.as_deref().is_some_and(|a| !a.is_empty()) {
            return Err(Error::invalid(
                "--ip6 is not supported by this VCH: its networks are IPv4 only",
            ));
        }
        if ipam.link_local_ips.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(Error::invalid(
                "--link-local-ip is not supported by this VCH",
            ));
        }
    }
    if let Some(m) = ep.mac_address.as_deref().filter(|m| !m.is_empty()) {
        req.mac =
            Some(parse_mac(m).ok_or_else(|| Error::invalid(format!("invalid MAC address: {m}")))?);
    }
    let aliases: Vec<String> = ep
        .aliases
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| !a.is_empty())
        .collect();
    if !aliases.is_empty() && builtin {
        return Err(Error::invalid(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    req.aliases = aliases;
    if ep.driver_opts.as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(Error::invalid(
            "endpoint driver options are not supported by this VCH",
        ));
    }
    // Legacy links of the endpoint (`network connect --link`, Compose's `links:`):
    // /etc/hosts entries, written by the backend.
    req.links = ep.links.clone().unwrap_or_default();
    if ep.gw_priority.is_some_and(|p| p != 0) {
        return Err(Error::invalid(
            "--gw-priority is not supported by this VCH: the default route is through the container's first network",
        ));
    }
    Ok(req)
}

/// Options of `docker network create` that this VCH cannot honour, refused by name.
fn check_create(req: &NetworkCreateRequest) -> Result<(), Error> {
    let name = req.name.trim();
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid {
        return Err(Error::invalid(format!(
            "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    match req.driver.as_deref().unwrap_or("") {
        "" | "bridge" => {}
        d => {
            return Err(Error::invalid(format!(
                "network driver {d:?} is not supported by this VCH (only bridge: each network is a vSphere port group)"
            )))
        }
    }
    let refusals = [
        (req.ingress == Some(true), "--ingress"),
        (req.config_only == Some(true), "--config-only"),
        (
            req.config_from
                .as_ref()
                .and_then(|c| c.network.as_deref())
                .is_some_and(|n| !n.is_empty()),
            "--config-from",
        ),
        (req.enable_ipv6 == Some(true), "--ipv6"),
        (req.enable_ipv4 == Some(false), "--ipv4=false"),
        (
            req.scope
                .as_deref()
                .is_some_and(|s| !s.is_empty() && s != "local"),
            "--scope",
        ),
    ];
    if let Some((_, what)) = refusals.iter().find(|(on, _)| *on) {
        return Err(Error::invalid(format!(
            "{what} is not supported by this VCH (local IPv4 bridge networks only)"
        )));
    }
    if let Some((k, _)) = req.options.as_ref().and_then(|o| o.iter().next()) {
        return Err(Error::invalid(format!(
            "network option {k:?} is not supported by this VCH"
        )));
    }
    if let Some(ipam) = &req.ipam {
        match ipam.driver.as_deref().unwrap_or("") {
            "" | "default" => {}
            d => {
                return Err(Error::invalid(format!(
                    "IPAM driver {d:?} is not supported by this VCH (only default)"
                )))
            }
        }
        if let Some((k, _)) = ipam.options.as_ref().and_then(|o| o.iter().next()) {
            return Err(Error::invalid(format!(
                "IPAM option {k:?} is not supported by this VCH"
            )));
        }
        if ipam.config.as_ref().is_some_and(|c| c.len() > 1) {
            return Err(Error::invalid(
                "more than one subnet per network is not supported by this VCH",
            ));
        }
    }
    Ok(())
}

/// The pool a create request asks for, or the first of dockerd's default pools that
/// overlaps no other network of this VCH.
fn requested_pool(req: &NetworkCreateRequest, taken: &[Subnet]) -> Result<Pool, Error> {
    let cfg = req
        .ipam
        .as_ref()
        .and_then(|i| i.config.as_ref())
        .and_then(|c| c.first());
    let text = |v: Option<&String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let subnet = text(cfg.and_then(|c| c.subnet.as_ref()));
    let gateway = text(cfg.and_then(|c| c.gateway.as_ref()));
    let range = text(cfg.and_then(|c| c.ip_range.as_ref()));
    let subnet = match subnet {
        Some(s) => {
            let s = Subnet::parse("subnet", &s).map_err(Error::invalid)?;
            if let Some(o) = taken.iter().find(|t| t.overlaps(s)) {
                return Err(Error::Forbidden(format!(
                    "invalid pool request: Pool overlaps with other one on this address space ({o})"
                )));
            }
            s
        }
        None => {
            if gateway.is_some() || range.is_some() {
                return Err(Error::invalid("--gateway and --ip-range need --subnet"));
            }
            default_pools()
                .find(|p| !taken.iter().any(|t| t.overlaps(*p)))
                .ok_or_else(|| {
                    Error::Forbidden(
                        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
                    )
                })?
        }
    };
    let gateway = gateway
        .map(|g| {
            g.parse::<Ipv4Addr>()
                .map_err(|_| Error::invalid(format!("invalid gateway {g}")))
        })
        .transpose()?;
    let range = range
        .map(|r| Subnet::parse("ip-range", &r).map_err(Error::invalid))
        .transpose()?;
    Pool::new(subnet, gateway, range).map_err(Error::invalid)
}

fn aux_addresses(
    req: &NetworkCreateRequest,
    pool: &Pool,
) -> Result<BTreeMap<String, String>, Error> {
    let aux = req
        .ipam
        .as_ref()
        .and_then(|i| i.config.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.auxiliary_addresses.clone())
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for (k, v) in aux {
        let ip: Ipv4Addr = v
            .parse()
            .map_err(|_| Error::invalid(format!("invalid aux-address {k}={v}")))?;
        if !pool.subnet.contains(ip) {
            return Err(Error::invalid(format!(
                "aux-address {k}={v} is not in subnet {}",
                pool.subnet
            )));
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// Addresses taken for a container's endpoints: given back when dropped, unless the
/// VM was made or reconfigured (`keep`), so no failure path leaks an address.
pub struct Lease<'a> {
    networks: &'a Networks,
    interfaces: Vec<Interface>,
    kept: bool,
}

impl Lease<'_> {
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// The VM's NICs, in interface order, with device keys from `first_key` downwards.
    pub fn nics(&self, first_key: i64) -> Vec<Device> {
        self.interfaces
            .iter()
            .enumerate()
            .filter_map(|(n, i)| self.networks.nic(first_key - n as i64, i))
            .collect()
    }

    /// The VM exists: from now on the addresses are released with the container.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.networks.release(&self.interfaces);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use docker_api::models::{EndpointIpamConfig, Ipam as IpamReq, IpamConfig};
    use vsphere_client::spec::NicBacking;
    use vsphere_client::MoRef;

    fn pg(name: &str) -> PortGroup {
        let network = MoRef::new("Network", format!("network-{name}"));
        PortGroup {
            name: name.into(),
            backing: NicBacking::Network {
                name: name.into(),
                network: network.clone(),
            },
            network,
        }
    }

    fn registry() -> Networks {
        let cfg = BridgeConfig::new("vch", super::super::DEFAULT_SUBNET, None).unwrap();
        Networks::in_memory("vch", cfg, pg("vch"))
    }

    /// A user network added directly (what `create` does after the port group exists).
    fn add(n: &Networks, name: &str, subnet: &str) -> Arc<Network> {
        let mut req = NetworkCreateRequest {
            name: name.into(),
            ..Default::default()
        };
        if !subnet.is_empty() {
            req.ipam = Some(IpamReq {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.into()),
                    ..Default::default()
                }]),
                ..Default::default()
            });
        }
        check_create(&req).unwrap();
        let taken: Vec<Subnet> = n.all().iter().map(|n| n.pool.subnet).collect();
        let pool = requested_pool(&req, &taken).unwrap();
        let id = hex::encode(rand_bytes());
        let rec = NetworkRecord {
            id: id.clone(),
            name: name.into(),
            created: String::new(),
            subnet: pool.subnet.to_string(),
            gateway: pool.gateway.to_string(),
            ip_range: None,
            aux_addresses: BTreeMap::new(),
            internal: false,
            attachable: false,
            labels: HashMap::new(),
            portgroup: n.portgroup_name(name, &id),
        };
        let net = Arc::new(Network::new(rec, pool, pg(name), false));
        n.user.write().insert(id, net.clone());
        net
    }

    fn networking(eps: &[(&str, EndpointSettings)]) -> NetworkingConfig {
        NetworkingConfig {
            endpoints_config: Some(
                eps.iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ),
        }
    }

    #[test]
    fn new_networks_take_dockerds_next_free_pool() {
        let n = registry();
        assert_eq!(add(&n, "a", "").pool.subnet.to_string(), "172.18.0.0/16");
        assert_eq!(add(&n, "b", "").pool.subnet.to_string(), "172.19.0.0/16");
        add(&n, "c", "172.20.5.0/24");
        assert_eq!(add(&n, "d", "").pool.subnet.to_string(), "172.21.0.0/16");
        let taken: Vec<Subnet> = n.all().iter().map(|n| n.pool.subnet).collect();
        let clash = NetworkCreateRequest {
            name: "e".into(),
            ipam: Some(IpamReq {
                config: Some(vec![IpamConfig {
                    subnet: Some("172.18.128.0/24".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = requested_pool(&clash, &taken).unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
    }

    #[test]
    fn lookups_follow_dockerd_id_name_prefix() {
        let n = registry();
        let app = add(&n, "app", "");
        assert!(matches!(n.lookup("app"), Some(Attachment::Network(x)) if x.rec.id == app.rec.id));
        assert!(
            matches!(n.lookup(&app.rec.id[..10]), Some(Attachment::Network(x)) if x.rec.id == app.rec.id)
        );
        assert!(matches!(n.lookup("bridge"), Some(Attachment::Network(x)) if x.builtin));
        assert!(matches!(n.lookup("none"), Some(Attachment::None)));
        assert!(n.lookup("nope").is_none());
        assert!(matches!(n.get("nope"), Err(Error::NoSuchNetwork(_))));
    }

    #[test]
    fn create_endpoints_put_the_mode_network_first_and_refuse_what_cannot_work() {
        let n = registry();
        add(&n, "front", "");
        add(&n, "back", "");
        let ep = |ip: &str, aliases: &[&str]| EndpointSettings {
            ipam_config: (!ip.is_empty()).then(|| EndpointIpamConfig {
                ipv4_address: Some(ip.into()),
                ..Default::default()
            }),
            aliases: Some(aliases.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let cfg = networking(&[
            ("back", ep("", &["db"])),
            ("front", ep("172.18.0.9", &["web"])),
        ]);
        let eps = n.endpoints_for_create(Some("front"), Some(&cfg)).unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].network.rec.name, "front");
        assert_eq!(eps[0].ip, Some(Ipv4Addr::new(172, 18, 0, 9)));
        assert_eq!(eps[0].aliases, ["web"]);
        assert_eq!(eps[1].network.rec.name, "back");
        assert!(
            n.endpoints_for_create(None, None).unwrap()[0]
                .network
                .builtin
        );
        assert!(n
            .endpoints_for_create(Some("none"), None)
            .unwrap()
            .is_empty());
        for (mode, cfg, want) in [
            ("host", None, "--network host"),
            ("container:web", None, "container:web"),
            ("nope", None, "nope"),
            (
                "bridge",
                Some(networking(&[("bridge", ep("172.17.0.9", &[]))])),
                "user defined networks only",
            ),
            (
                "bridge",
                Some(networking(&[("bridge", ep("", &["x"]))])),
                "network-scoped alias",
            ),
            (
                "none",
                Some(networking(&[("front", ep("", &[]))])),
                "and to none",
            ),
            (
                "front",
                Some(networking(&[("front", ep("300.1.1.1", &[]))])),
                "invalid IPv4",
            ),
            (
                "front",
                Some(networking(&[(
                    "front",
                    EndpointSettings {
                        gw_priority: Some(5),
                        ..Default::default()
                    },
                )])),
                "--gw-priority",
            ),
        ] {
            let e = match n.endpoints_for_create(Some(mode), cfg.as_ref()) {
                Err(e) => e,
                Ok(_) => panic!("{mode} was accepted"),
            };
            assert!(e.to_string().contains(want), "{mode}: {e}");
        }
    }

    #[test]
    fn leases_give_addresses_back_unless_kept_and_refuse_taken_ones() {
        let n = registry();
        let app = add(&n, "app", "10.5.0.0/24");
        let reqs = n
            .endpoints_for_create(
                Some("bridge"),
                Some(&networking(&[("app", Default::default())])),
            )
            .unwrap();
        let first = n.lease(&reqs, &[]).unwrap();
        let got: Vec<_> = first
            .interfaces()
            .iter()
            .map(|i| (i.address.clone(), i.gateway.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("172.17.0.2".to_string(), Some("172.17.0.1".to_string())),
                ("10.5.0.2".to_string(), None)
            ]
        );
        assert_eq!(first.interfaces()[1].network, app.rec.id);
        assert!(first.interfaces()[0].network == n.bridge().rec.id);
        let nics = first.nics(-93);
        assert!(
            matches!(&nics[1], Device::Nic { key: -94, backing: NicBacking::Network { name, .. }, .. } if name == "app")
        );
        drop(first);
        let kept = n.lease(&reqs, &[]).unwrap();
        assert_eq!(kept.interfaces()[1].address, "10.5.0.2");
        kept.keep();
        let fixed = EndpointRequest {
            network: app.clone(),
            ip: Some(Ipv4Addr::new(10, 5, 0, 2)),
            mac: None,
            aliases: vec![],
            links: vec![],
        };
        let e = n.lease(&[fixed], &[]).err().unwrap();
        assert!(e.to_string().contains("Address already in use"), "{e}");
        assert_eq!(app.ipam.in_use(), 1);
    }

    #[test]
    fn rebuild_reads_each_interface_into_its_network_and_old_specs_into_the_bridge() {
        let n = registry();
        let app = add(&n, "app", "10.6.0.0/24");
        let spec = ContainerSpec {
            interfaces: vec![
                Interface {
                    address: "172.17.0.2".into(),
                    ..Default::default()
                },
                Interface {
                    address: "10.6.0.2".into(),
                    network: app.rec.id.clone(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        n.rebuild([&spec]);
        assert_eq!(
            n.bridge().ipam.allocate().unwrap().to_string(),
            "172.17.0.3"
        );
        assert_eq!(app.ipam.allocate().unwrap().to_string(), "10.6.0.3");
        n.release(&spec.interfaces);
        assert_eq!(app.ipam.in_use(), 1);
        assert_eq!(n.bridge().ipam.in_use(), 1);
    }

    #[test]
    fn create_options_that_cannot_be_honoured_are_refused_by_name() {
        let base = || NetworkCreateRequest {
            name: "n".into(),
            ..Default::default()
        };
        let cases: Vec<(NetworkCreateRequest, &str)> = vec![
            (
                NetworkCreateRequest {
                    driver: Some("overlay".into()),
                    ..base()
                },
                "overlay",
            ),
            (
                NetworkCreateRequest {
                    enable_ipv6: Some(true),
                    ..base()
                },
                "--ipv6",
            ),
            (
                NetworkCreateRequest {
                    ingress: Some(true),
                    ..base()
                },
                "--ingress",
            ),
            (
                NetworkCreateRequest {
                    options: Some(
                        [(
                            "com.docker.network.bridge.name".to_string(),
                            "x".to_string(),
                        )]
                        .into(),
                    ),
                    ..base()
                },
                "com.docker.network.bridge.name",
            ),
            (
                NetworkCreateRequest {
                    name: "-bad".into(),
                    ..base()
                },
                "invalid network name",
            ),
        ];
        for (req, want) in cases {
            let e = check_create(&req).unwrap_err();
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
        check_create(&NetworkCreateRequest {
            driver: Some("bridge".into()),
            ..base()
        })
        .unwrap();
    }
}
