//! What the tether needs from its (virtual) machine: the guestinfo channel, the disks,
//! the log serial port, and power-off. One trait, a transport per hypervisor.
//!
//! - `SimPlatform`: vcenter-sim's process sandbox. The "hardware" is described in the
//!   `VCSIM_HW` environment variable (`container_vm::hardware`); guestinfo is a socket
//!   speaking the same `info-get`/`info-set` RPC text as VMware's backdoor, framed by a
//!   u32 length.
//! - `esx::EsxPlatform`: a real VMware VM; guestinfo is the same RPC text over the
//!   backdoor I/O port (`backdoor`), disks are found by SCSI address, the serial ports
//!   are the kernel's UARTs.

use container_vm::hardware::{self, Hardware};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;

pub use container_vm::hardware::Disk;

pub trait Platform {
    fn guestinfo_get(&mut self, key: &str) -> io::Result<Option<String>>;
    fn guestinfo_set(&mut self, key: &str, value: &str) -> io::Result<()>;
    fn disks(&self) -> &[Disk];
    /// Serial port 2: the container log, when the VM has one.
    fn log_port(&mut self) -> Option<&mut File>;
    /// Serial port 1: the control channel to the VCH, taken once.
    fn take_control_port(&mut self) -> Option<File> {
        None
    }
}

pub struct SimPlatform {
    rpc: UnixStream,
    log: Option<File>,
    control: Option<File>,
    fork: Option<std::os::fd::OwnedFd>,
    cgroup_procs: Vec<String>,
    disks: Vec<Disk>,
}

/// Environment variable through which the simulator describes the VM's hardware.
pub const SIM_HW_ENV: &str = hardware::ENV;

impl SimPlatform {
    /// Reads the hardware description. Takes ownership of the inherited descriptors.
    pub fn from_env() -> io::Result<Option<SimPlatform>> {
        let Ok(raw) = std::env::var(SIM_HW_ENV) else {
            return Ok(None);
        };
        Self::from_json(&raw).map(Some)
    }

    /// Builds the platform from a hardware description (the boot environment, or the
    /// message an instant clone is forked with). Takes ownership of the descriptors it
    /// names.
    pub fn from_json(raw: &str) -> io::Result<SimPlatform> {
        let hw = Hardware::from_json(raw).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{SIM_HW_ENV}: {e}"))
        })?;
        Ok(Self::from_hardware(hw))
    }

    /// Builds the platform from a parsed hardware description. Takes ownership of the
    /// descriptors it names.
    pub fn from_hardware(hw: Hardware) -> SimPlatform {
        // SAFETY: the simulator passes these descriptors to this process and nothing
        // else in it uses them; we take sole ownership here, once.
        let rpc = unsafe { UnixStream::from_raw_fd(hw.guestinfo_fd) };
        let log = hw.log_fd.map(|fd| unsafe { File::from_raw_fd(fd) });
        let control = hw.control_fd.map(|fd| unsafe { File::from_raw_fd(fd) });
        let fork = hw
            .fork_fd
            .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        SimPlatform {
            rpc,
            log,
            control,
            fork,
            cgroup_procs: hw.cgroup_procs,
            disks: hw.disks,
        }
    }

    /// Moves the calling process (the guest's init) into the VM's cgroup.
    pub fn join_cgroup(&self) -> io::Result<()> {
        for f in &self.cgroup_procs {
            std::fs::write(f, "0").map_err(|e| io::Error::new(e.kind(), format!("{f}: {e}")))?;
        }
        Ok(())
    }

    /// The fork port, taken once by the VM monitor (see `vmfork`).
    pub fn take_fork_port(&mut self) -> Option<std::os::fd::OwnedFd> {
        self.fork.take()
    }

    fn rpc(&mut self, request: &str) -> io::Result<String> {
        let len = u32::try_from(request.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "guestinfo request too large")
        })?;
        self.rpc.write_all(&len.to_le_bytes())?;
        self.rpc.write_all(request.as_bytes())?;
        let mut n = [0u8; 4];
        self.rpc.read_exact(&mut n)?;
        let n = u32::from_le_bytes(n) as usize;
        if n > 16 << 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "guestinfo reply too large",
            ));
        }
        let mut buf = vec![0u8; n];
        self.rpc.read_exact(&mut buf)?;
        String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Parses an RPCI reply: `1 <payload>` for success, `0 <message>` for failure.
pub(crate) fn reply(r: String) -> (bool, String) {
    match r.split_once(' ') {
        Some(("1", rest)) => (true, rest.to_string()),
        Some((_, rest)) => (false, rest.to_string()),
        None => (r == "1", String::new()),
    }
}

/// `info-get` over any RPCI transport (the texts are the same on every platform).
pub(crate) fn rpci_get(
    rpc: impl FnOnce(&str) -> io::Result<String>,
    key: &str,
) -> io::Result<Option<String>> {
    let (ok, v) = reply(rpc(&format!("info-get {key}"))?);
    Ok(ok.then_some(v))
}

/// `info-set` over any RPCI transport.
pub(crate) fn rpci_set(
    rpc: impl FnOnce(&str) -> io::Result<String>,
    key: &str,
    value: &str,
) -> io::Result<()> {
    let (ok, msg) = reply(rpc(&format!("info-set {key} {value}"))?);
    if ok {
        Ok(())
    } else {
        Err(io::Error::other(format!("info-set {key}: {msg}")))
    }
}

impl Platform for SimPlatform {
    fn guestinfo_get(&mut self, key: &str) -> io::Result<Option<String>> {
        rpci_get(|r| self.rpc(r), key)
    }

    fn guestinfo_set(&mut self, key: &str, value: &str) -> io::Result<()> {
        rpci_set(|r| self.rpc(r), key, value)
    }

    fn disks(&self) -> &[Disk] {
        &self.disks
    }

    fn log_port(&mut self) -> Option<&mut File> {
        self.log.as_mut()
    }

    fn take_control_port(&mut self) -> Option<File> {
        self.control.take()
    }
}

#[cfg(test)]
mod tests {
    use super::reply;

    #[test]
    fn rpci_replies() {
        assert_eq!(reply("1 abc def".into()), (true, "abc def".into()));
        assert_eq!(
            reply("0 No value found".into()),
            (false, "No value found".into())
        );
        assert_eq!(reply("1".into()), (true, String::new()));
    }
}
