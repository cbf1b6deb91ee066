//! The container's `/etc/hosts` entries beyond its own name: `--add-host`, `--link` and
//! the FQDN of `--domainname`, checked and written into the spec the way dockerd writes
//! them (`<ip>\t<names...>`).

use super::VchBackend;
use container_vm::spec::Interface;
use docker_api::models::HostConfig;
use docker_api::{Error, Result};
use std::net::IpAddr;

/// `--add-host name:ip` (also `name=ip`, and `host-gateway`, which dockerd maps to its
/// host: here the VCH's leg on the container's first network).
fn extra_host(entry: &str, interfaces: &[Interface], b: &VchBackend) -> Result<String> {
    let (name, ip) = entry
        .split_once('=')
        .or_else(|| entry.split_once(':'))
        .ok_or_else(|| Error::invalid(format!("bad format for add-host: {entry:?}")))?;
    let name = name.trim();
    let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(Error::invalid(format!(
            "invalid hostname in add-host: {entry:?}"
        )));
    }
    let ip = if ip == "host-gateway" {
        let first = interfaces.first().ok_or_else(|| {
            Error::invalid("--add-host host-gateway needs a network (this container has none)")
        })?;
        b.inner
            .networks
            .by_id(&first.network)
            .map(|n| n.pool.gateway.to_string())
            .ok_or_else(|| Error::internal("the container's network is gone"))?
    } else {
        ip.parse::<IpAddr>()
            .map_err(|_| Error::invalid(format!("invalid IP address in add-host: {ip:?}")))?
            .to_string()
    };
    Ok(format!("{ip}\t{name}"))
}

/// `--link name[:alias]`: the linked container's address on a network both share (else
/// its first), under the alias, its name and its short id.
pub(super) fn link(entry: &str, interfaces: &[Interface], b: &VchBackend) -> Result<String> {
    let entry = entry.trim_start_matches('/');
    let (target, alias) = match entry.split_once(':') {
        Some((t, a)) => (t, a.rsplit('/').next().unwrap_or(a)),
        None => (entry, entry),
    };
    let id = b.resolve(target).map_err(|_| {
        Error::invalid(format!(
            "could not get container for {target}: No such container: {target}"
        ))
    })?;
    let c = b.get(&id)?;
    let shared = c
        .spec
        .interfaces
        .iter()
        .find(|i| interfaces.iter().any(|mine| mine.network == i.network))
        .or(c.spec.interfaces.first())
        .ok_or_else(|| {
            Error::invalid(format!(
                "cannot link to {target}: it has no network (--network none)"
            ))
        })?;
    let mut names = vec![alias.to_string()];
    for n in [c.meta.name.clone(), id[..12].to_string()] {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    Ok(format!("{}\t{}", shared.address, names.join(" ")))
}

/// The extra `/etc/hosts` lines of a new container: `--link` (of the host config and
/// of its endpoints), then `--add-host`.
pub(super) fn entries(
    b: &VchBackend,
    host: &HostConfig,
    endpoint_links: &[String],
    interfaces: &[Interface],
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for l in host.links.iter().flatten().chain(endpoint_links) {
        out.push(link(l, interfaces, b)?);
    }
    for h in host.extra_hosts.iter().flatten() {
        out.push(extra_host(h, interfaces, b)?);
    }
    Ok(out)
}
