//! The container spec: what the VCH writes into guestinfo before the VM starts and the
//! tether reads to build and run the container. JSON under [`SPEC_KEY`], split over
//! numbered keys when larger than one value (see [`crate::guestinfo::split`]). Every field
//! has a default, so specs written by older VCHs still parse.

use crate::guestinfo::{self, ValueError, SPEC_KEY};
use serde::{Deserialize, Serialize};
use std::io;

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct ContainerSpec {
    pub id: String,
    pub name: String,
    pub hostname: String,
    /// Entrypoint + cmd, already combined by the VCH.
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`; empty = root.
    pub user: String,
    pub workdir: String,
    /// Disk ids of the image layers, lowest layer first.
    pub layers: Vec<String>,
    /// Disk id of the writable scratch disk; without one the upper layer is in memory.
    pub scratch: Option<String>,
    /// Name servers of /etc/resolv.conf.
    pub dns: Vec<String>,
    /// `search` domains and `options` of /etc/resolv.conf (`--dns-search`, `--dns-option`).
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// Extra /etc/hosts lines.
    pub hosts: Vec<String>,
    /// Run the process on a pseudo-terminal (`docker run -t`).
    pub tty: bool,
    /// The process's stdin receives the attached clients' input (`-i`); else /dev/null.
    pub open_stdin: bool,
    /// Close the process's stdin when the first attached client's stdin ends.
    pub stdin_once: bool,
    /// Initial TTY window size `[rows, cols]`.
    pub console_size: Option<[u16; 2]>,
    /// Set by the VCH on `docker create`: an instant clone with this flag parks (state
    /// `created`) until the VCH sends `Start` on the control channel. A cold power-on
    /// (a second `docker start`) always runs at once.
    pub parked: bool,
    /// Volume disks mounted into the container, in order.
    pub mounts: Vec<VolumeMount>,
    /// One entry per NIC the VCH gave the VM; none = only loopback (`--network none`).
    /// Absent in specs written before networking existed, hence the default.
    pub interfaces: Vec<Interface>,
    /// What the user changed of the default confinement (`--cap-add`, `--read-only`, ...);
    /// the defaults are dockerd's.
    pub security: Security,
    /// `--tmpfs` and `--mount type=tmpfs`: memory file systems over paths of the root.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<TmpfsMount>,
    /// `--group-add`: supplementary groups (names from the image's /etc/group, or ids)
    /// of every process of the container.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// `docker run --init`: signals reach the process as an init would forward them. Without
    /// it the process is treated as dockerd's pid 1 is: a signal it has no handler for
    /// (other than SIGKILL and SIGSTOP) is dropped, so `docker stop` of a plain `sleep`
    /// ends in SIGKILL (137) after the timeout, as with dockerd.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// The health check the tether runs (`HEALTHCHECK`, `--health-cmd`); none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthSpec>,
    /// A build step's container (`docker build`): it runs no command of its own. A
    /// placeholder keeps it up while the builder runs the step in it with `exec` and
    /// copies files in; `cmd` is only what `docker ps` shows.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
}

/// The container's confinement, as far as the user may change it. Every field's default
/// is dockerd's default; the VCH refuses (400) what the tether cannot honour.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct Security {
    /// Capabilities added to / dropped from Docker's default set (`NAME`, `CAP_NAME`, `ALL`).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// Seccomp profile: empty or `default` for Docker's default profile.
    pub seccomp: String,
    /// `--read-only`: the root filesystem is mounted read-only.
    pub readonly_rootfs: bool,
    /// `--pids-limit`: most processes (and threads) the container may have at once.
    pub pids_limit: Option<i64>,
}

/// A volume disk (ext4, formatted on first use if blank) mounted at `path`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct VolumeMount {
    /// Disk id (`scsi0:<unit>`).
    pub disk: String,
    /// Absolute path inside the container.
    pub path: String,
    pub readonly: bool,
}

/// A tmpfs mounted at `path` (in the VM's memory, so within the container's `-m`).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct TmpfsMount {
    /// Absolute path inside the container.
    pub path: String,
    pub readonly: bool,
    pub noexec: bool,
    pub nosuid: bool,
    pub nodev: bool,
    /// The file system's own options (`size=`, `mode=`, `uid=`, `gid=`, `nr_inodes=`).
    pub data: String,
}

impl TmpfsMount {
    /// A tmpfs as dockerd makes one: `noexec,nosuid,nodev` unless the options (`--tmpfs
    /// PATH:OPTIONS`, comma-separated) say otherwise, later options winning. An option
    /// the VCH cannot honour is an error naming it.
    pub fn parse(path: &str, options: &str) -> Result<TmpfsMount, String> {
        let mut m = TmpfsMount {
            path: path.to_string(),
            noexec: true,
            nosuid: true,
            nodev: true,
            ..Default::default()
        };
        let mut data: Vec<(String, String)> = Vec::new();
        for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            match opt {
                "ro" | "rw" => m.readonly = opt == "ro",
                "exec" | "noexec" => m.noexec = opt == "noexec",
                "suid" | "nosuid" => m.nosuid = opt == "nosuid",
                "dev" | "nodev" => m.nodev = opt == "nodev",
                // A container VM's mounts propagate nowhere: private is all there is.
                "private" | "rprivate" => {}
                _ => {
                    let Some((key, value)) = opt.split_once('=') else {
                        return Err(format!("invalid tmpfs option {opt:?}"));
                    };
                    let valid = match key {
                        "size" => {
                            let digits =
                                value.trim_end_matches(['k', 'm', 'g', 'K', 'M', 'G', '%']);
                            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                        }
                        "mode" => {
                            !value.is_empty() && value.bytes().all(|b| (b'0'..=b'7').contains(&b))
                        }
                        "uid" | "gid" | "nr_inodes" | "nr_blocks" => {
                            !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
                        }
                        _ => return Err(format!("invalid tmpfs option {opt:?}")),
                    };
                    if !valid {
                        return Err(format!("invalid tmpfs option {opt:?}"));
                    }
                    data.retain(|(k, _)| k != key);
                    data.push((key.to_string(), value.to_string()));
                }
            }
        }
        m.data = data
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        Ok(m)
    }
}

/// How the tether configures one NIC. The NIC is found by its MAC, not its name: the
/// name a guest gives a device is not part of the VM's configuration, the MAC is.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct Interface {
    /// `00:50:56:xx:xx:xx`, as vSphere assigned it.
    pub mac: String,
    /// IPv4 address and prefix length.
    pub address: String,
    pub prefix: u8,
    /// Default route through this gateway, when set.
    pub gateway: Option<String>,
    /// The Docker network (its id) this NIC is on; empty in specs written before user
    /// networks existed, which were all on the bridge network. Read by the VCH only.
    pub network: String,
    /// Extra DNS names of the container on that network (`--network-alias`, Compose
    /// service names). Read by the VCH only.
    pub aliases: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("{SPEC_KEY} is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The guestinfo keys and values that carry `spec` (one key, or chunks).
pub fn encode(spec: &ContainerSpec) -> Result<Vec<(String, String)>, serde_json::Error> {
    Ok(guestinfo::split(SPEC_KEY, &serde_json::to_string(spec)?))
}

/// Reads the spec through `get` (a guestinfo lookup); `Ok(None)` when there is none (a
/// template VM waiting to be cloned).
pub fn decode(
    get: impl FnMut(&str) -> io::Result<Option<String>>,
) -> Result<Option<ContainerSpec>, SpecError> {
    match guestinfo::join(SPEC_KEY, get)? {
        Some(json) => Ok(Some(serde_json::from_str(&json)?)),
        None => Ok(None),
    }
}

/// Whether `key` is one of the keys [`encode`] may write (to pick them out of a VM's
/// `extraConfig` for [`decode`]).
pub fn is_spec_key(key: &str) -> bool {
    key.strip_prefix(SPEC_KEY)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn decode_pairs(pairs: &[(String, String)]) -> Option<ContainerSpec> {
        let m: HashMap<_, _> = pairs.iter().cloned().collect();
        decode(|k| Ok(m.get(k).cloned())).unwrap()
    }

    #[test]
    fn specs_written_before_networks_and_dns_options_still_decode() {
        let old = r#"{"id":"c0","interfaces":[{"mac":"00:50:56:11:00:02","address":"172.17.0.2","prefix":16,"gateway":"172.17.0.1"}]}"#;
        let s: ContainerSpec = serde_json::from_str(old).unwrap();
        assert_eq!(s.interfaces[0].network, "");
        assert!(s.interfaces[0].aliases.is_empty() && s.dns_search.is_empty());
    }

    #[test]
    fn a_known_spec_encodes_to_a_known_key_and_value() {
        let spec = ContainerSpec {
            id: "c1".into(),
            cmd: vec!["echo".into(), "hi".into()],
            tty: true,
            console_size: Some([24, 80]),
            interfaces: vec![Interface {
                mac: "00:50:56:11:00:02".into(),
                address: "172.17.0.2".into(),
                prefix: 16,
                gateway: Some("172.17.0.1".into()),
                network: "net1".into(),
                aliases: vec!["web".into()],
            }],
            ..Default::default()
        };
        let pairs = encode(&spec).unwrap();
        assert_eq!(
            pairs,
            vec![(
                "guestinfo.vch.spec".to_string(),
                concat!(
                    r#"{"id":"c1","name":"","hostname":"","cmd":["echo","hi"],"env":[],"user":"","#,
                    r#""workdir":"","layers":[],"scratch":null,"dns":[],"dns_search":[],"#,
                    r#""dns_options":[],"hosts":[],"tty":true,"#,
                    r#""open_stdin":false,"stdin_once":false,"console_size":[24,80],"parked":false,"#,
                    r#""mounts":[],"interfaces":[{"mac":"00:50:56:11:00:02","address":"172.17.0.2","#,
                    r#""prefix":16,"gateway":"172.17.0.1","network":"net1","aliases":["web"]}],"#,
                    r#""security":{"cap_add":[],"cap_drop":[],"#,
                    r#""seccomp":"","readonly_rootfs":false,"pids_limit":null}}"#
                )
                .to_string()
            )]
        );
        assert_eq!(decode_pairs(&pairs), Some(spec));
    }

    #[test]
    fn a_large_spec_round_trips_through_chunks() {
        let spec = ContainerSpec {
            id: "big".into(),
            env: vec![format!("BIG={}", "x".repeat(3 * guestinfo::MAX_VALUE))],
            mounts: vec![VolumeMount {
                disk: "scsi0:5".into(),
                path: "/data".into(),
                readonly: true,
            }],
            ..Default::default()
        };
        let pairs = encode(&spec).unwrap();
        assert_eq!(pairs[0], ("guestinfo.vch.spec.chunks".into(), "4".into()));
        assert!(pairs.iter().all(|(k, _)| is_spec_key(k)));
        assert_eq!(decode_pairs(&pairs), Some(spec));
    }

    #[test]
    fn older_specs_parse_with_defaults_and_bad_ones_say_why() {
        let pairs = vec![(
            SPEC_KEY.to_string(),
            r#"{"id":"old","cmd":["ls"]}"#.to_string(),
        )];
        let s = decode_pairs(&pairs).unwrap();
        assert_eq!(s.cmd, vec!["ls".to_string()]);
        assert!(s.interfaces.is_empty() && !s.parked && s.security == Security::default());
        assert_eq!(decode_pairs(&[]), None);
        let e = decode(|_| Ok(Some("{".to_string()))).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("guestinfo.vch.spec.chunks is '{'"),
            "{e}"
        );
        let e = decode(|k| Ok((k == SPEC_KEY).then(|| "{".to_string()))).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("guestinfo.vch.spec is not valid JSON"),
            "{e}"
        );
    }

    #[test]
    fn spec_keys_are_the_key_and_its_chunks_only() {
        assert!(is_spec_key("guestinfo.vch.spec"));
        assert!(is_spec_key("guestinfo.vch.spec.chunks"));
        assert!(is_spec_key("guestinfo.vch.spec.12"));
        assert!(!is_spec_key("guestinfo.vch.specs"));
        assert!(!is_spec_key("guestinfo.vch.state"));
    }

    #[test]
    fn tmpfs_options_are_dockerds_with_later_ones_winning() {
        let m = TmpfsMount::parse("/run", "").unwrap();
        assert!(m.noexec && m.nosuid && m.nodev && !m.readonly && m.data.is_empty());
        let m = TmpfsMount::parse("/run", "rw,exec,size=64m,mode=1777,size=65536k").unwrap();
        assert!(!m.noexec && m.nosuid);
        assert_eq!(m.data, "mode=1777,size=65536k");
        assert!(TmpfsMount::parse("/t", "ro").unwrap().readonly);
        for bad in ["shared", "size=lots", "mode=999", "huge=always", "uid=-1"] {
            let e = TmpfsMount::parse("/t", bad).unwrap_err();
            assert!(e.contains("invalid tmpfs option"), "{bad}: {e}");
        }
    }
}
