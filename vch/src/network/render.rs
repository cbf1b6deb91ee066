//! Networks and endpoints as dockerd shows them (`docker network inspect`, the
//! `NetworkSettings` of `docker inspect`).

use super::registry::{builtin_id, Network, Networks};
use container_vm::spec::{ContainerSpec, Interface};
use docker_api::models::{
    ConfigReference, EndpointSettings, Ipam, IpamConfig, Network as NetworkModel, NetworkContainer,
    NetworkSettings, PortMap,
};
use std::collections::HashMap;

/// A member of a network: (container id, name, spec).
pub type Member<'a> = (&'a str, &'a str, &'a ContainerSpec);

fn endpoint_id(container: &str, network: &str) -> String {
    builtin_id(container, &format!("endpoint\0{network}"))
}

/// The interface of `spec` on network `net`.
pub fn interface_on<'a>(
    nets: &Networks,
    spec: &'a ContainerSpec,
    net: &Network,
) -> Option<&'a Interface> {
    spec.interfaces.iter().find(|i| {
        nets.by_id(&i.network)
            .is_some_and(|n| n.rec.id == net.rec.id)
    })
}

/// The names a container answers to on a network: its name, its short id and its
/// aliases (user networks only; the default bridge has no name resolution in dockerd).
pub fn dns_names(net: &Network, id: &str, name: &str, i: &Interface) -> Vec<String> {
    if net.builtin {
        return vec![];
    }
    let mut v = vec![
        name.trim_start_matches('/').to_string(),
        id[..12.min(id.len())].to_string(),
    ];
    for a in &i.aliases {
        if !v.contains(a) {
            v.push(a.clone());
        }
    }
    v
}

/// `docker network inspect` of a network (None: `none`).
pub fn network(nets: &Networks, net: Option<&Network>, members: &[Member]) -> NetworkModel {
    let mut containers = HashMap::new();
    for (cid, name, spec) in members {
        let entry = match net {
            Some(n) => interface_on(nets, spec, n).map(|i| NetworkContainer {
                name: Some(name.to_string()),
                endpoint_id: Some(endpoint_id(cid, &n.rec.id)),
                mac_address: Some(i.mac.clone()),
                ipv4_address: Some(format!("{}/{}", i.address, i.prefix)),
                ipv6_address: Some(String::new()),
            }),
            None => spec.interfaces.is_empty().then(|| NetworkContainer {
                name: Some(name.to_string()),
                endpoint_id: Some(endpoint_id(cid, "none")),
                mac_address: Some(String::new()),
                ipv4_address: Some(String::new()),
                ipv6_address: Some(String::new()),
            }),
        };
        if let Some(e) = entry {
            containers.insert(cid.to_string(), e);
        }
    }
    let common = NetworkModel {
        scope: Some("local".into()),
        enable_ipv6: Some(false),
        ingress: Some(false),
        config_from: Some(ConfigReference {
            network: Some(String::new()),
        }),
        config_only: Some(false),
        containers: Some(containers),
        ..Default::default()
    };
    let Some(n) = net else {
        return NetworkModel {
            name: Some("none".into()),
            id: Some(nets.none_id().to_string()),
            created: Some("0001-01-01T00:00:00Z".into()),
            driver: Some("null".into()),
            enable_ipv4: Some(false),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                options: None,
                config: Some(vec![]),
            }),
            internal: Some(false),
            attachable: Some(false),
            options: Some(HashMap::new()),
            labels: Some(HashMap::new()),
            ..common
        };
    };
    let config = IpamConfig {
        subnet: Some(n.pool.subnet.to_string()),
        gateway: Some(n.pool.gateway.to_string()),
        ip_range: n.pool.range.map(|r| r.to_string()),
        auxiliary_addresses: (!n.rec.aux_addresses.is_empty())
            .then(|| n.rec.aux_addresses.clone().into_iter().collect()),
    };
    NetworkModel {
        name: Some(n.rec.name.clone()),
        id: Some(n.rec.id.clone()),
        created: Some(n.rec.created.clone()),
        driver: Some("bridge".into()),
        enable_ipv4: Some(true),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            options: (!n.builtin).then(HashMap::new),
            config: Some(vec![config]),
        }),
        internal: Some(n.rec.internal),
        attachable: Some(n.rec.attachable),
        // Where the bridge is in vSphere, for admins. Not on user networks: Compose
        // recreates a network whose options differ from what it asked for; their port
        // group is `<vch>-<network>` (docs/design.md).
        options: Some(if n.builtin {
            HashMap::from([("vch.portgroup".to_string(), n.pg.name.clone())])
        } else {
            HashMap::new()
        }),
        labels: Some(n.rec.labels.clone().into_iter().collect()),
        ..common
    }
}

/// `NetworkSettings` of `docker inspect`; `ports` is the `Ports` map. The top-level
/// address fields describe the default bridge only, as in dockerd.
pub fn settings(
    nets: &Networks,
    id: &str,
    name: &str,
    spec: &ContainerSpec,
    ports: PortMap,
) -> NetworkSettings {
    let networks = endpoints(nets, id, name, spec);
    let bridge = spec
        .interfaces
        .iter()
        .filter_map(|i| nets.by_id(&i.network).filter(|n| n.builtin))
        .find_map(|n| networks.get(&n.rec.name));
    let top =
        |f: fn(&EndpointSettings) -> Option<String>| Some(bridge.and_then(f).unwrap_or_default());
    NetworkSettings {
        bridge: Some(String::new()),
        sandbox_id: Some(String::new()),
        sandbox_key: Some(String::new()),
        ports: Some(ports),
        hairpin_mode: Some(false),
        link_local_ipv6_address: Some(String::new()),
        link_local_ipv6_prefix_len: Some(0),
        secondary_ip_addresses: None,
        secondary_ipv6_addresses: None,
        endpoint_id: top(|e| e.endpoint_id.clone()),
        gateway: top(|e| e.gateway.clone()),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        ip_address: top(|e| e.ip_address.clone()),
        ip_prefix_len: Some(bridge.and_then(|e| e.ip_prefix_len).unwrap_or(0)),
        ipv6_gateway: Some(String::new()),
        mac_address: top(|e| e.mac_address.clone()),
        networks: Some(networks),
    }
}

/// A container's endpoints by network name (`NetworkSettings.Networks`, also `ps`'s).
pub fn endpoints(
    nets: &Networks,
    id: &str,
    name: &str,
    spec: &ContainerSpec,
) -> HashMap<String, EndpointSettings> {
    let blank = || EndpointSettings {
        gw_priority: Some(0),
        ipv6_gateway: Some(String::new()),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        ..Default::default()
    };
    let mut networks = HashMap::new();
    for i in &spec.interfaces {
        let Some(n) = nets.by_id(&i.network) else {
            continue;
        };
        networks.insert(
            n.rec.name.clone(),
            EndpointSettings {
                aliases: (!n.builtin).then(|| i.aliases.clone()),
                mac_address: Some(i.mac.clone()),
                network_id: Some(n.rec.id.clone()),
                endpoint_id: Some(endpoint_id(id, &n.rec.id)),
                gateway: Some(n.pool.gateway.to_string()),
                ip_address: Some(i.address.clone()),
                ip_prefix_len: Some(i.prefix as i64),
                dns_names: (!n.builtin).then(|| dns_names(&n, id, name, i)),
                ..blank()
            },
        );
    }
    if spec.interfaces.is_empty() {
        networks.insert(
            "none".into(),
            EndpointSettings {
                mac_address: Some(String::new()),
                network_id: Some(nets.none_id().to_string()),
                endpoint_id: Some(endpoint_id(id, "none")),
                gateway: Some(String::new()),
                ip_address: Some(String::new()),
                ip_prefix_len: Some(0),
                ..blank()
            },
        );
    }
    networks
}

/// Names of the networks a container is on (`ps --filter network=`, `HostConfig`).
pub fn network_names(nets: &Networks, spec: &ContainerSpec) -> Vec<String> {
    if spec.interfaces.is_empty() {
        return vec!["none".into()];
    }
    spec.interfaces
        .iter()
        .filter_map(|i| nets.by_id(&i.network).map(|n| n.rec.name.clone()))
        .collect()
}
