//! Instant clone in the simulator: the request its process sandbox sends to a running
//! VM's monitor over the VM's fork port (a SOCK_SEQPACKET socket, one message per clone),
//! and the answer. The message is JSON ([`ForkRequest`]) with the clone's device
//! descriptors attached (SCM_RIGHTS, in [`Hardware::device_fds`] order); the answer is
//! `ok <pid>` or `err <message>` ([`ForkReply`]). See docs/container-vm.md.

use crate::hardware::Hardware;
use serde::{Deserialize, Serialize};

/// The largest request a monitor reads (a hardware description is a few hundred bytes
/// per disk).
pub const MAX_REQUEST: usize = 256 * 1024;
/// The most descriptors one request carries.
pub const MAX_FDS: usize = 8;

/// One instant clone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForkRequest {
    /// The clone's hardware description, as a booted VM gets it in `VCSIM_HW`.
    pub hardware: Hardware,
    /// `cgroup.procs` files of the clone's cgroup: the monitor moves the clone there
    /// before answering, so nothing of the clone is ever in the parent's cgroup once the
    /// simulator knows of it (powering the parent off kills its cgroup).
    #[serde(default)]
    pub cgroup_procs: Vec<String>,
}

impl ForkRequest {
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    pub fn decode(msg: &[u8]) -> Result<ForkRequest, serde_json::Error> {
        serde_json::from_slice(msg)
    }
}

/// The monitor's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForkReply {
    /// The clone's pid (in the simulator's pid namespace).
    Ok(u32),
    Err(String),
}

impl ForkReply {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ForkReply::Ok(pid) => format!("ok {pid}"),
            ForkReply::Err(msg) => format!("err {msg}"),
        }
        .into_bytes()
    }

    /// The answer in `msg`; `None` when it is not one.
    pub fn parse(msg: &[u8]) -> Option<ForkReply> {
        let text = String::from_utf8_lossy(msg);
        match text.split_once(' ')? {
            ("ok", pid) => pid.trim().parse().ok().map(ForkReply::Ok),
            (_, msg) => Some(ForkReply::Err(msg.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_have_a_pinned_form() {
        let req = ForkRequest {
            hardware: Hardware {
                guestinfo_fd: 3,
                ..Default::default()
            },
            cgroup_procs: vec!["/sys/fs/cgroup/c/cgroup.procs".into()],
        };
        let wire = req.encode().unwrap();
        assert_eq!(
            String::from_utf8(wire.clone()).unwrap(),
            concat!(
                r#"{"hardware":{"guestinfo_fd":3,"log_fd":null,"control_fd":null,"disks":[],"#,
                r#""fork_fd":null,"nics":[],"cgroup_procs":[]},"#,
                r#""cgroup_procs":["/sys/fs/cgroup/c/cgroup.procs"]}"#
            )
        );
        assert_eq!(ForkRequest::decode(&wire).unwrap(), req);
        // A request without cgroups (older simulators) still parses.
        let r = ForkRequest::decode(br#"{"hardware":{"guestinfo_fd":3,"log_fd":null}}"#).unwrap();
        assert!(r.cgroup_procs.is_empty());
        assert!(ForkRequest::decode(b"{}").is_err());
    }

    #[test]
    fn replies_round_trip() {
        for r in [ForkReply::Ok(4242), ForkReply::Err("clone: EPERM".into())] {
            assert_eq!(ForkReply::parse(&r.encode()), Some(r));
        }
        assert_eq!(ForkReply::Ok(7).encode(), b"ok 7");
        assert_eq!(ForkReply::parse(b"ok x"), None);
        assert_eq!(ForkReply::parse(b"garbage"), None);
    }
}
