//! The container spec the VCH writes into guestinfo before the VM starts, and the state
//! keys the tether writes back. See docs/container-vm.md.

use crate::platform::Platform;
use serde::{Deserialize, Serialize};

/// `guestinfo.vch.spec` holds the JSON spec; when it is larger than one value,
/// `guestinfo.vch.spec.chunks = N` and the parts are `guestinfo.vch.spec.0` .. `N-1`.
pub const SPEC_KEY: &str = "guestinfo.vch.spec";
pub const STATE_KEY: &str = "guestinfo.vch.state";
pub const PID_KEY: &str = "guestinfo.vch.pid";
pub const STARTED_KEY: &str = "guestinfo.vch.started_at";
pub const FINISHED_KEY: &str = "guestinfo.vch.finished_at";
pub const EXIT_CODE_KEY: &str = "guestinfo.vch.exit_code";
pub const ERROR_KEY: &str = "guestinfo.vch.error";
/// `true` when the container's process was killed for exceeding the VM's memory.
pub const OOM_KILLED_KEY: &str = "guestinfo.vch.oom_killed";
/// On a template VM (no spec): the disk id of the scratch disk its clones inherit; the
/// template formats it once so that no clone has to.
pub const TEMPLATE_SCRATCH_KEY: &str = "guestinfo.vch.template.scratch";
/// Value of `STATE_KEY` once a template is ready to be cloned.
pub const STATE_TEMPLATE_READY: &str = "template-ready";
/// Value of `STATE_KEY` while a parked clone waits for `Start`.
pub const STATE_CREATED: &str = "created";

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
    pub dns: Vec<String>,
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
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("guestinfo channel: {0}")]
    Io(#[from] std::io::Error),
    #[error("{SPEC_KEY} is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{SPEC_KEY}.chunks is '{0}', not a number")]
    Chunks(String),
    #[error("{0} is missing")]
    Missing(String),
}

/// Reads the spec; `Ok(None)` when there is none (a template VM waiting to be cloned).
pub fn read(p: &mut dyn Platform) -> Result<Option<ContainerSpec>, SpecError> {
    let json = match p.guestinfo_get(&format!("{SPEC_KEY}.chunks"))? {
        Some(n) => {
            let n: usize = n.trim().parse().map_err(|_| SpecError::Chunks(n.clone()))?;
            let mut s = String::new();
            for i in 0..n {
                let key = format!("{SPEC_KEY}.{i}");
                s.push_str(&p.guestinfo_get(&key)?.ok_or(SpecError::Missing(key))?);
            }
            s
        }
        None => match p.guestinfo_get(SPEC_KEY)? {
            Some(s) => s,
            None => return Ok(None),
        },
    };
    Ok(Some(serde_json::from_str(&json)?))
}
