//! The volume mounts a `docker create` asks for: `-v name:/path[:ro]`, `--mount
//! type=volume,...` and anonymous `-v /path` (Config.Volumes). Bind mounts of VCH paths
//! and tmpfs mounts are refused by name: a container VM cannot see the VCH's files.

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
            Some(other) => {
                let name = serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                return Err(format!(
                    "--mount type={name} is not supported by this VCH (volumes only)"
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
        let tmpfs = body(
            serde_json::json!({"HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "/t"}]}}),
        );
        assert!(requested(&tmpfs).unwrap_err().contains("type=tmpfs"));
    }
}
