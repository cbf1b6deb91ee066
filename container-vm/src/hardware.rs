//! The simulator's description of a VM's hardware, as its process sandbox hands it to the
//! VM's init (the tether): JSON in the [`ENV`] environment variable of a booted VM, or in
//! the fork request of an instant clone (see [`crate::fork`]). A real VM has no such
//! thing: the tether finds its devices through the hardware instead.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Environment variable through which the simulator describes the VM's hardware.
pub const ENV: &str = "VCSIM_HW";

/// A VM's devices. Descriptor numbers are the guest's: the simulator puts each device on
/// the number it names here before the guest starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    /// The guestinfo channel (`info-get`/`info-set` RPC text, u32 LE length-framed).
    pub guestinfo_fd: i32,
    /// Serial port 2, file-backed: the container log.
    pub log_fd: Option<i32>,
    /// Serial port 1, network-backed: the control channel to the VCH.
    #[serde(default)]
    pub control_fd: Option<i32>,
    /// Disks in device order.
    #[serde(default)]
    pub disks: Vec<Disk>,
    /// The VM's fork port (see [`crate::fork`]): present on VMs the simulator booted,
    /// absent on instant clones, which are themselves forks.
    #[serde(default)]
    pub fork_fd: Option<i32>,
    /// NICs in device order; the guest finds each by its MAC.
    #[serde(default)]
    pub nics: Vec<Nic>,
    /// `cgroup.procs` files the guest's init joins right after the monitor forks it: the
    /// monitor stands for the hypervisor's VM process and is not charged to the VM (its
    /// forks for instant clones must not count against the parent's memory).
    #[serde(default)]
    pub cgroup_procs: Vec<String>,
}

/// One disk of the VM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    /// `scsi<bus>:<unit>`, the same name on every platform.
    pub id: String,
    /// Block device node.
    pub dev: PathBuf,
    pub readonly: bool,
}

/// One NIC as the guest sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Nic {
    /// `eth<N>`, N counting the VM's NICs in device order.
    pub name: String,
    pub mac: String,
    /// The standard port group's name, or the distributed port group's key.
    pub portgroup: String,
}

impl Hardware {
    /// The device descriptors in the order they travel with a fork request: guestinfo,
    /// log, control (those present).
    pub fn device_fds(&self) -> Vec<i32> {
        [Some(self.guestinfo_fd), self.log_fd, self.control_fd]
            .into_iter()
            .flatten()
            .collect()
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    pub fn from_json(raw: &str) -> Result<Hardware, serde_json::Error> {
        serde_json::from_str(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Hardware {
        Hardware {
            guestinfo_fd: 3,
            log_fd: Some(4),
            control_fd: None,
            disks: vec![Disk {
                id: "scsi0:1".into(),
                dev: "/dev/loop5".into(),
                readonly: true,
            }],
            fork_fd: Some(6),
            nics: vec![Nic {
                name: "eth0".into(),
                mac: "00:50:56:11:00:02".into(),
                portgroup: "vch".into(),
            }],
            cgroup_procs: vec!["/sys/fs/cgroup/x/cgroup.procs".into()],
        }
    }

    #[test]
    fn the_description_has_a_pinned_json_form_and_round_trips() {
        let json = sample().to_json().unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"guestinfo_fd":3,"log_fd":4,"control_fd":null,"#,
                r#""disks":[{"id":"scsi0:1","dev":"/dev/loop5","readonly":true}],"fork_fd":6,"#,
                r#""nics":[{"name":"eth0","mac":"00:50:56:11:00:02","portgroup":"vch"}],"#,
                r#""cgroup_procs":["/sys/fs/cgroup/x/cgroup.procs"]}"#
            )
        );
        assert_eq!(Hardware::from_json(&json).unwrap(), sample());
    }

    #[test]
    fn a_minimal_description_parses_and_lists_its_descriptors_in_order() {
        let hw = Hardware::from_json(r#"{"guestinfo_fd":3,"log_fd":null}"#).unwrap();
        assert_eq!(hw.device_fds(), vec![3]);
        assert!(hw.disks.is_empty() && hw.fork_fd.is_none());
        let mut hw = sample();
        hw.control_fd = Some(5);
        assert_eq!(hw.device_fds(), vec![3, 4, 5]);
        assert!(
            Hardware::from_json("{}").is_err(),
            "guestinfo_fd is required"
        );
    }
}
