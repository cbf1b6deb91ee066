//! The mounts a `docker create` asks for: volumes (`-v name:/path[:ro]`, `--mount
//! type=volume,...`, anonymous `-v /path` from Config.Volumes) and tmpfs (`--tmpfs
//! /path[:opts]`, `--mount type=tmpfs,...`). Bind mounts of VCH paths and datastore paths
//! are refused by name: a container VM cannot see the VCH's files, and a datastore file is
//! a disk, not a directory.

use container_vm::spec::TmpfsMount;
use docker_api::models::{ContainerCreateBody, MountTypeEnum};
use serde::{Deserialize, Serialize};

/// A volume mount as the container record keeps it (inspect's `Mounts`, `rm -v`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolumeMountRecord {
    pub name: String,
    pub destination: String,
    pub rw: bool,
    /// Created for this container (`-v /path`): removed with it by `rm -v` / `--rm`.
    pub anonymous: bool,
}

/// A mount before its volume exists: `name` None = a new anonymous volume.
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    pub name: Option<String>,
    pub destination: String,
    pub rw: bool,
}

fn destination(d: &str) -> Result<String, String> {
    let clean = d.trim_end_matches('/');
    if !d.starts_with('/') || clean.is_empty() || d.split('/').any(|c| c == "..") {
        return Err(format!(
            "invalid mount path {d:?}: must be absolute, not /, without .."
        ));
    }
    Ok(clean.to_string())
}

fn bind_refused(src: &str) -> String {
    format!("bind mounts ({src}) are not supported by this VCH: containers are VMs and cannot see the VCH's filesystem; use a named volume (-v NAME:/path)")
}

/// Everything the create body asks to mount, in order; errors name what is refused.
pub fn requested(body: &ContainerCreateBody) -> Result<Vec<Requested>, String> {
    let mut out: Vec<Requested> = Vec::new();
    let host = body.host_config.as_ref();
    for b in host.and_then(|h| h.binds.as_ref()).into_iter().flatten() {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, o] => (*s, *d, *o),
            _ => return Err(format!("invalid volume specification: {b:?}")),
        };
        if src.starts_with('/') || src.starts_with('.') {
            return Err(bind_refused(src));
        }
        if src.starts_with('[') {
            return Err(format!("datastore paths ({src}) cannot be mounted into a container: a datastore file is a disk, not a directory; use a named volume (-v NAME:/path), which the VCH keeps as a disk on its datastore"));
        }
        let mut rw = true;
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => rw = false,
                "rw" | "nocopy" | "z" | "Z" => {}
                other => return Err(format!("volume option {other:?} in {b:?} is not supported")),
            }
        }
        out.push(Requested {
            name: Some(src.to_string()),
            destination: destination(dst)?,
            rw,
        });
    }
    for m in host.and_then(|h| h.mounts.as_ref()).into_iter().flatten() {
        let dst = destination(m.target.as_deref().unwrap_or_default())?;
        let src = m.source.clone().filter(|s| !s.is_empty());
        match m.typ {
            Some(MountTypeEnum::VOLUME) | Some(MountTypeEnum::EMPTY) | None => {
                out.push(Requested {
                    name: src,
                    destination: dst,
                    rw: m.read_only != Some(true),
                })
            }
            Some(MountTypeEnum::BIND) => return Err(bind_refused(src.as_deref().unwrap_or("?"))),
            // See `tmpfs`.
            Some(MountTypeEnum::TMPFS) => {}
            Some(other) => {
                let name = serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                return Err(format!(
                    "--mount type={name} is not supported by this VCH (volume and tmpfs only)"
                ));
            }
        }
    }
    // `-v /path`: an anonymous volume, unless a mount above already covers the path.
    for d in body.volumes.iter().flatten() {
        let dst = destination(d)?;
        if !out.iter().any(|r| r.destination == dst) {
            out.push(Requested {
                name: None,
                destination: dst,
                rw: true,
            });
        }
    }
    for (i, r) in out.iter().enumerate() {
        if out[..i].iter().any(|o| o.destination == r.destination) {
            return Err(format!("Duplicate mount point: {}", r.destination));
        }
    }
    Ok(out)
}

/// The tmpfs mounts the create body asks for (`--tmpfs`, `--mount type=tmpfs`), checked
/// against the volume mounts for a shared destination.
pub fn tmpfs(body: &ContainerCreateBody, volumes: &[Requested]) -> Result<Vec<TmpfsMount>, String> {
    let mut out: Vec<TmpfsMount> = Vec::new();
    let host = body.host_config.as_ref();
    let mut paths: Vec<_> = host
        .and_then(|h| h.tmpfs.as_ref())
        .into_iter()
        .flatten()
        .collect();
    // A map on the wire: sorted, so the mounts (and errors) do not depend on its order.
    paths.sort();
    for (path, options) in paths {
        out.push(TmpfsMount::parse(&destination(path)?, options)?);
    }
    let mounts = host.and_then(|h| h.mounts.as_ref()).into_iter().flatten();
    for m in mounts.filter(|m| m.typ == Some(MountTypeEnum::TMPFS)) {
        let dst = destination(m.target.as_deref().unwrap_or_default())?;
        if m.source.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(format!(
                "invalid mount config for type \"tmpfs\": source must not be specified ({dst})"
            ));
        }
        let o = m.tmpfs_options.clone().unwrap_or_default();
        let mut opts = Vec::new();
        if m.read_only == Some(true) {
            opts.push("ro".to_string());
        }
        if let Some(size) = o.size_bytes.filter(|s| *s > 0) {
            opts.push(format!("size={size}"));
        }
        if let Some(mode) = o.mode.filter(|m| *m > 0) {
            opts.push(format!("mode={mode:o}"));
        }
        for kv in o.options.unwrap_or_default() {
            opts.push(kv.join("="));
        }
        out.push(TmpfsMount::parse(&dst, &opts.join(","))?);
    }
    for (i, t) in out.iter().enumerate() {
        if out[..i].iter().any(|o| o.path == t.path)
            || volumes.iter().any(|v| v.destination == t.path)
        {
            return Err(format!("Duplicate mount point: {}", t.path));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> ContainerCreateBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn named_anonymous_and_refused() {
        let b = body(serde_json::json!({
            "Volumes": {"/anon": {}, "/data": {}},
            "HostConfig": {"Binds": ["data:/data:ro"],
                           "Mounts": [{"Type": "volume", "Source": "m", "Target": "/m/"}]}
        }));
        let r = requested(&b).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            Requested {
                name: Some("data".into()),
                destination: "/data".into(),
                rw: false
            }
        );
        assert_eq!(
            r[1],
            Requested {
                name: Some("m".into()),
                destination: "/m".into(),
                rw: true
            }
        );
        assert_eq!(
            r[2],
            Requested {
                name: None,
                destination: "/anon".into(),
                rw: true
            }
        );
        let bind = body(serde_json::json!({"HostConfig": {"Binds": ["/etc:/x"]}}));
        assert!(requested(&bind).unwrap_err().contains("bind mounts (/etc)"));
        let dup = body(serde_json::json!({"HostConfig": {"Binds": ["a1:/x", "b1:/x"]}}));
        assert!(requested(&dup)
            .unwrap_err()
            .contains("Duplicate mount point"));
        let rel = body(serde_json::json!({"HostConfig": {"Binds": ["a1:x"]}}));
        assert!(requested(&rel).is_err());
        let ds = body(serde_json::json!({"HostConfig": {"Binds": ["[ds1] vols/a.vmdk:/x"]}}));
        assert!(requested(&ds)
            .unwrap_err()
            .contains("datastore paths ([ds1] vols/a.vmdk)"));
        let npipe = body(
            serde_json::json!({"HostConfig": {"Mounts": [{"Type": "npipe", "Target": "/t"}]}}),
        );
        assert!(requested(&npipe).unwrap_err().contains("type=npipe"));
    }

    #[test]
    fn tmpfs_from_both_flags_with_dockerds_defaults() {
        let b = body(serde_json::json!({
            "HostConfig": {"Tmpfs": {"/run": "exec,size=1m"},
                           "Mounts": [{"Type": "tmpfs", "Target": "/cache", "ReadOnly": true,
                                       "TmpfsOptions": {"SizeBytes": 4096, "Mode": 448}}]}
        }));
        assert!(requested(&b).unwrap().is_empty(), "not volumes");
        let t = tmpfs(&b, &[]).unwrap();
        assert_eq!(
            (t[0].path.as_str(), t[0].noexec, t[0].data.as_str()),
            ("/run", false, "size=1m")
        );
        assert_eq!((t[1].path.as_str(), t[1].readonly), ("/cache", true));
        assert_eq!(t[1].data, "size=4096,mode=700");
        assert!(t[1].noexec && t[1].nosuid && t[1].nodev);
        let clash =
            body(serde_json::json!({"HostConfig": {"Tmpfs": {"/data": ""}, "Binds": ["v:/data"]}}));
        let vols = requested(&clash).unwrap();
        assert!(tmpfs(&clash, &vols)
            .unwrap_err()
            .contains("Duplicate mount point: /data"));
        let bad = body(serde_json::json!({"HostConfig": {"Tmpfs": {"/t": "huge=always"}}}));
        assert!(tmpfs(&bad, &[])
            .unwrap_err()
            .contains("invalid tmpfs option \"huge=always\""));
    }
}
