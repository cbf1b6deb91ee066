//! Networks and endpoints as dockerd shows them (`docker network inspect`, the
//! `NetworkSettings` of `docker inspect`).

use super::registry::{builtin_id, Network, Networks};
use container_vm::spec::{ContainerSpec, Interface};
use serde_json::{json, Map, Value};

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
pub fn network(nets: &Networks, net: Option<&Network>, members: &[Member]) -> Value {
    let mut containers = Map::new();
    for (cid, name, spec) in members {
        let entry = match net {
            Some(n) => interface_on(nets, spec, n).map(|i| {
                json!({
                    "Name": name, "EndpointID": endpoint_id(cid, &n.rec.id),
                    "MacAddress": i.mac, "IPv4Address": format!("{}/{}", i.address, i.prefix),
                    "IPv6Address": "",
                })
            }),
            None => spec.interfaces.is_empty().then(|| {
                json!({"Name": name, "EndpointID": endpoint_id(cid, "none"), "MacAddress": "",
                       "IPv4Address": "", "IPv6Address": ""})
            }),
        };
        if let Some(e) = entry {
            containers.insert(cid.to_string(), e);
        }
    }
    let Some(n) = net else {
        return json!({
            "Name": "none", "Id": nets.none_id(), "Created": "0001-01-01T00:00:00Z",
            "Scope": "local", "Driver": "null", "EnableIPv4": false, "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": []},
            "Internal": false, "Attachable": false, "Ingress": false,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
            "Containers": containers, "Options": {}, "Labels": {},
        });
    };
    let mut ipam =
        json!({"Subnet": n.pool.subnet.to_string(), "Gateway": n.pool.gateway.to_string()});
    if let Some(r) = n.pool.range {
        ipam["IPRange"] = json!(r.to_string());
    }
    if !n.rec.aux_addresses.is_empty() {
        ipam["AuxiliaryAddresses"] = json!(n.rec.aux_addresses);
    }
    json!({
        "Name": n.rec.name, "Id": n.rec.id, "Created": n.rec.created, "Scope": "local",
        "Driver": "bridge", "EnableIPv4": true, "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": if n.builtin { Value::Null } else { json!({}) }, "Config": [ipam]},
        "Internal": n.rec.internal, "Attachable": n.rec.attachable, "Ingress": false,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
        "Containers": containers,
        // Where the bridge is in vSphere, for admins. Not on user networks: Compose
        // recreates a network whose options differ from what it asked for; their port
        // group is `<vch>-<network>` (docs/design.md).
        "Options": if n.builtin { json!({"vch.portgroup": n.pg.name}) } else { json!({}) },
        "Labels": n.rec.labels,
    })
}

/// `NetworkSettings` of `docker inspect`; `ports` is the `Ports` map. The top-level
/// address fields describe the default bridge only, as in dockerd.
pub fn settings(
    nets: &Networks,
    id: &str,
    name: &str,
    spec: &ContainerSpec,
    ports: Value,
) -> Value {
    let mut networks = Map::new();
    let mut top = json!({"EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""});
    for i in &spec.interfaces {
        let Some(n) = nets.by_id(&i.network) else {
            continue;
        };
        let ep = endpoint_id(id, &n.rec.id);
        let gw = n.pool.gateway.to_string();
        let aliases = (!n.builtin).then(|| i.aliases.clone());
        networks.insert(
            n.rec.name.clone(),
            json!({
                "IPAMConfig": null, "Links": null, "Aliases": aliases, "MacAddress": i.mac,
                "DriverOpts": null, "GwPriority": 0, "NetworkID": n.rec.id, "EndpointID": ep,
                "Gateway": gw, "IPAddress": i.address, "IPPrefixLen": i.prefix, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "DNSNames": if n.builtin { Value::Null } else { json!(dns_names(&n, id, name, i)) },
            }),
        );
        if n.builtin {
            top = json!({"EndpointID": ep, "Gateway": gw, "IPAddress": i.address,
                         "IPPrefixLen": i.prefix, "MacAddress": i.mac});
        }
    }
    if spec.interfaces.is_empty() {
        networks.insert(
            "none".into(),
            json!({
                "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                "DriverOpts": null, "GwPriority": 0, "NetworkID": nets.none_id(),
                "EndpointID": endpoint_id(id, "none"), "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "DNSNames": null,
            }),
        );
    }
    json!({
        "Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": ports,
        "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": top["EndpointID"], "Gateway": top["Gateway"], "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "IPAddress": top["IPAddress"], "IPPrefixLen": top["IPPrefixLen"],
        "IPv6Gateway": "", "MacAddress": top["MacAddress"],
        "Networks": networks,
    })
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
