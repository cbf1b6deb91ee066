//! Docker-generic checks of a container spec, run before the backend sees it.
//!
//! Two kinds: values dockerd itself refuses (negative resources, bad names, relative
//! working directories...) get dockerd's 400 wording where it has one; and sizes. The
//! Docker API has no formal size limits, but every byte of a spec ends up in the VM's
//! configuration, so a hostile client must not be able to make the daemon store
//! megabytes per container. The limits follow what Linux itself allows a process:
//!
//! | what | limit | why |
//! |---|---|---|
//! | create body | [`MAX_CREATE_BODY`] = 1 MiB | half of the default `execve` argument space (2 MiB) |
//! | entries of one list or map (Env, Cmd, Entrypoint, Labels, Binds, Mounts, ...) | [`MAX_ENTRIES`] = 4096 | |
//! | one string (an env entry, an argument, a label value, ...) | [`MAX_STRING`] = 128 KiB | `MAX_ARG_STRLEN` |
//! | container name | [`MAX_NAME`] = 255 characters | |
//!
//! Every error names the offending field as it is spelled in the JSON body.

use std::collections::HashMap;

use crate::errors::{Error, Result};
use crate::models::{ContainerCreateBody, HostConfig};

pub const MAX_CREATE_BODY: usize = 1 << 20;
pub const MAX_ENTRIES: usize = 4096;
pub const MAX_STRING: usize = 128 << 10;
pub const MAX_NAME: usize = 255;

/// dockerd's `validContainerNamePattern` (`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`) and its
/// wording; longer than [`MAX_NAME`] is refused too. Returns the name without the slash.
pub fn container_name(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && bare.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(Error::invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    if bare.len() > MAX_NAME {
        return Err(Error::invalid(format!(
            "Invalid container name ({}...): longer than {MAX_NAME} characters",
            &bare[..32]
        )));
    }
    Ok(bare.to_string())
}

/// Checks a create body; the first problem found is the error.
pub fn create_body(body: &ContainerCreateBody) -> Result<()> {
    strings("Env", body.env.as_deref())?;
    strings("Cmd", body.cmd.as_deref())?;
    strings("Entrypoint", body.entrypoint.as_deref())?;
    strings("OnBuild", body.on_build.as_deref())?;
    map("Labels", body.labels.as_ref())?;
    strings("Volumes", body.volumes.as_deref())?;
    strings("ExposedPorts", body.exposed_ports.as_deref())?;
    for (field, v) in [
        ("Hostname", &body.hostname),
        ("Domainname", &body.domainname),
        ("User", &body.user),
        ("Image", &body.image),
        ("WorkingDir", &body.working_dir),
        ("StopSignal", &body.stop_signal),
        ("MacAddress", &body.mac_address),
    ] {
        string(field, v.as_deref())?;
    }
    // dockerd: daemon.verifyContainerSettings.
    if let Some(wd) = body.working_dir.as_deref().filter(|w| !w.is_empty()) {
        if !wd.starts_with('/') {
            return Err(Error::invalid(format!(
                "the working directory '{wd}' is invalid, it needs to be an absolute path"
            )));
        }
    }
    if let Some(h) = &body.host_config {
        host_config(h)?;
    }
    Ok(())
}

fn host_config(h: &HostConfig) -> Result<()> {
    strings("HostConfig.Binds", h.binds.as_deref())?;
    list("HostConfig.Mounts", h.mounts.as_deref())?;
    strings("HostConfig.ExtraHosts", h.extra_hosts.as_deref())?;
    strings("HostConfig.Dns", h.dns.as_deref())?;
    strings("HostConfig.DnsOptions", h.dns_options.as_deref())?;
    strings("HostConfig.DnsSearch", h.dns_search.as_deref())?;
    strings("HostConfig.CapAdd", h.cap_add.as_deref())?;
    strings("HostConfig.CapDrop", h.cap_drop.as_deref())?;
    strings("HostConfig.SecurityOpt", h.security_opt.as_deref())?;
    strings("HostConfig.GroupAdd", h.group_add.as_deref())?;
    strings("HostConfig.Links", h.links.as_deref())?;
    strings("HostConfig.VolumesFrom", h.volumes_from.as_deref())?;
    strings(
        "HostConfig.DeviceCgroupRules",
        h.device_cgroup_rules.as_deref(),
    )?;
    list("HostConfig.Devices", h.devices.as_deref())?;
    list("HostConfig.Ulimits", h.ulimits.as_deref())?;
    map("HostConfig.Tmpfs", h.tmpfs.as_ref())?;
    map("HostConfig.Sysctls", h.sysctls.as_ref())?;
    map("HostConfig.StorageOpt", h.storage_opt.as_ref())?;
    map("HostConfig.Annotations", h.annotations.as_ref())?;
    keys(
        "HostConfig.PortBindings",
        h.port_bindings.as_ref().map(|v| v.keys()),
    )?;

    at_least("HostConfig.NanoCpus", h.nano_cpus, 0)?;
    at_least("HostConfig.CpuShares", h.cpu_shares, 0)?;
    at_least("HostConfig.CpuPeriod", h.cpu_period, 0)?;
    at_least("HostConfig.CpuQuota", h.cpu_quota, -1)?;
    at_least("HostConfig.Memory", h.memory, 0)?;
    at_least("HostConfig.MemoryReservation", h.memory_reservation, 0)?;
    at_least("HostConfig.MemorySwap", h.memory_swap, -1)?;
    at_least("HostConfig.PidsLimit", h.pids_limit, -1)?;
    at_least("HostConfig.ShmSize", h.shm_size, 0)?;
    if let Some(s) = h
        .memory_swappiness
        .filter(|s| *s != -1 && !(0..=100).contains(s))
    {
        return Err(Error::invalid(format!(
            "invalid HostConfig.MemorySwappiness: {s}: valid memory swappiness range is 0-100"
        )));
    }
    if let Some(o) = h.oom_score_adj.filter(|o| !(-1000..=1000).contains(o)) {
        return Err(Error::invalid(format!(
            "invalid HostConfig.OomScoreAdj: {o}: range for oom score adj is [-1000, 1000]"
        )));
    }
    if let Some(w) = h
        .blkio_weight
        .filter(|w| *w != 0 && !(10..=1000).contains(w))
    {
        return Err(Error::invalid(format!(
            "invalid HostConfig.BlkioWeight: {w}: range of blkio weight is from 10 to 1000"
        )));
    }
    if let Some(n) = h
        .restart_policy
        .as_ref()
        .and_then(|p| p.maximum_retry_count)
        .filter(|n| *n < 0)
    {
        return Err(Error::invalid(format!(
            "invalid HostConfig.RestartPolicy.MaximumRetryCount: {n}: invalid restart policy: maximum retry count can't be negative"
        )));
    }
    Ok(())
}

fn at_least(field: &str, v: Option<i64>, min: i64) -> Result<()> {
    match v {
        Some(v) if v < min => Err(Error::invalid(format!(
            "invalid {field}: {v}: {}",
            if min == 0 {
                "must not be negative".to_string()
            } else {
                format!("must be {min} or more")
            }
        ))),
        _ => Ok(()),
    }
}

fn count(field: &str, n: usize) -> Result<()> {
    if n > MAX_ENTRIES {
        return Err(Error::invalid(format!(
            "invalid {field}: {n} entries, the limit is {MAX_ENTRIES}"
        )));
    }
    Ok(())
}

fn string(field: &str, s: Option<&str>) -> Result<()> {
    match s {
        Some(s) if s.len() > MAX_STRING => Err(Error::invalid(format!(
            "invalid {field}: {} bytes, the limit is {MAX_STRING} bytes",
            s.len()
        ))),
        _ => Ok(()),
    }
}

fn list<T>(field: &str, v: Option<&[T]>) -> Result<()> {
    count(field, v.map_or(0, <[T]>::len))
}

fn strings(field: &str, v: Option<&[String]>) -> Result<()> {
    let Some(v) = v else { return Ok(()) };
    count(field, v.len())?;
    for (i, s) in v.iter().enumerate() {
        string(&format!("{field}[{i}]"), Some(s))?;
    }
    Ok(())
}

fn keys<'a>(field: &str, k: Option<impl ExactSizeIterator<Item = &'a String>>) -> Result<()> {
    let Some(k) = k else { return Ok(()) };
    count(field, k.len())?;
    for key in k {
        string(&format!("{field} key"), Some(key))?;
    }
    Ok(())
}

fn map(field: &str, m: Option<&HashMap<String, String>>) -> Result<()> {
    let Some(m) = m else { return Ok(()) };
    keys(field, Some(m.keys()))?;
    for (k, v) in m {
        let short: String = k.chars().take(64).collect();
        string(&format!("{field}[{short}]"), Some(v))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(container_name("/web-1").unwrap(), "web-1");
        assert_eq!(container_name("a.b_c").unwrap(), "a.b_c");
        assert!(container_name("a").is_err());
        assert!(container_name("-x").is_err());
        assert_eq!(
            container_name("bad name").unwrap_err().to_string(),
            "Invalid container name (bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        );
        assert!(container_name(&"a".repeat(255)).is_ok());
        let e = container_name(&"a".repeat(256)).unwrap_err().to_string();
        assert!(e.contains("longer than 255"), "{e}");
    }

    fn body(v: serde_json::Value) -> ContainerCreateBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                serde_json::json!({"HostConfig": {"NanoCpus": -1}}),
                "HostConfig.NanoCpus",
            ),
            (
                serde_json::json!({"HostConfig": {"MemorySwap": -2}}),
                "HostConfig.MemorySwap",
            ),
            (
                serde_json::json!({"Env": ["A=".to_string() + &"x".repeat(MAX_STRING)]}),
                "Env[0]",
            ),
            (
                serde_json::json!({"Labels": {"k": "x".repeat(MAX_STRING + 1)}}),
                "Labels[k]",
            ),
            (
                serde_json::json!({"WorkingDir": "rel"}),
                "working directory 'rel'",
            ),
        ];
        for (b, field) in cases {
            let e = create_body(&body(b)).unwrap_err();
            assert_eq!(e.status(), hyper::StatusCode::BAD_REQUEST);
            assert!(e.to_string().contains(field), "{e} lacks {field}");
        }
        let ok = serde_json::json!({
            "Env": ["A=1"], "Cmd": ["sh"], "WorkingDir": "/x",
            "HostConfig": {"NanoCpus": 0, "MemorySwap": -1, "PidsLimit": -1, "MemorySwappiness": -1,
                           "CpuQuota": -1}
        });
        create_body(&body(ok)).unwrap();
    }
}
