//! The tether on a real ESXi VM: guestinfo over the VMware backdoor (`backdoor`), disks
//! found by their SCSI address, serial ports as the kernel's 8250 UARTs, power-off by
//! `reboot(2)`.
//!
//! What the simulator hands over and ESXi does not:
//! - no descriptors: the log and control channels are the serial ports (`/dev/ttyS0` is
//!   serial port 1, the control channel; `/dev/ttyS1` serial port 2, the log), put in raw
//!   mode so no byte of a frame is translated;
//! - no disk list: `scsi<bus>:<unit>` is read from sysfs (below);
//! - no fork port: an instant clone of an ESXi template resumes inside the template's
//!   `pause()` and would have to notice it was cloned (poll the spec, or the vmfork
//!   event) and rescan its hot-added layer disks. Not built: on ESXi, clones of the
//!   template do not run yet; cold-booted container VMs do.
//!
//! Kernel and initrd: the boot disk holds only the tether; booting it on ESXi also needs
//! a kernel (and the firmware to load it), which the template image does not carry yet.

use crate::backdoor::{IoPort, Rpci};
use crate::platform::{rpci_get, rpci_set, Disk, Platform};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Linux drivers of the SCSI controllers a vSphere VM can have (ParaVirtual, LSI Logic
/// parallel and SAS, BusLogic). Other hosts (the SATA/IDE CD-ROM) are not `scsi<n>`.
const VSPHERE_SCSI_DRIVERS: &[&str] = &["vmw_pvscsi", "mptspi", "mptsas", "BusLogic"];

/// The disks of a vSphere VM, from sysfs under `sys` (`/sys`), with their nodes under
/// `dev` (`/dev`). SCSI host numbers of vSphere controllers, in ascending order, are the
/// controllers' bus numbers (the kernel probes them in PCI slot order, which vSphere
/// assigns by bus number); the target is the unit number. LUNs other than 0 do not occur
/// on vSphere virtual disks and are skipped.
pub fn scan_disks(sys: &Path, dev: &Path) -> Vec<Disk> {
    let mut hosts: Vec<u32> = read_dir_names(&sys.join("class/scsi_host"))
        .into_iter()
        .filter_map(|n| n.strip_prefix("host")?.parse().ok())
        .filter(|h| {
            std::fs::read_to_string(sys.join(format!("class/scsi_host/host{h}/proc_name")))
                .map(|d| VSPHERE_SCSI_DRIVERS.contains(&d.trim()))
                .unwrap_or(false)
        })
        .collect();
    hosts.sort_unstable();
    let mut disks = Vec::new();
    for name in read_dir_names(&sys.join("block")) {
        let block = sys.join("block").join(&name);
        // `device` links to the SCSI device directory, named `host:channel:target:lun`.
        let Ok(link) = std::fs::read_link(block.join("device")) else {
            continue;
        };
        let Some(addr) = link.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some([host, _channel, target, lun]) = parse_scsi_address(addr) else {
            continue;
        };
        let Some(bus) = hosts.iter().position(|h| *h == host) else {
            continue;
        };
        if lun != 0 {
            continue;
        }
        let readonly = std::fs::read_to_string(block.join("ro"))
            .map(|s| s.trim() == "1")
            .unwrap_or(false);
        disks.push(Disk {
            id: format!("scsi{bus}:{target}"),
            dev: dev.join(&name),
            readonly,
        });
    }
    disks.sort_by(|a, b| a.id.cmp(&b.id));
    disks
}

/// `"2:0:1:0"` → `[2, 0, 1, 0]`.
fn parse_scsi_address(s: &str) -> Option<[u32; 4]> {
    let mut it = s.split(':').map(|p| p.parse::<u32>().ok());
    let a = [it.next()??, it.next()??, it.next()??, it.next()??];
    it.next().is_none().then_some(a)
}

fn read_dir_names(p: &Path) -> Vec<String> {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Asks every vSphere SCSI controller to scan for disks (synchronous when written from
/// user space), so disks still being probed at boot are there before the spec names them.
fn rescan_scsi(sys: &Path) {
    for h in read_dir_names(&sys.join("class/scsi_host")) {
        let dir = sys.join("class/scsi_host").join(&h);
        let driver = std::fs::read_to_string(dir.join("proc_name")).unwrap_or_default();
        if VSPHERE_SCSI_DRIVERS.contains(&driver.trim()) {
            if let Err(e) = std::fs::write(dir.join("scan"), "- - -") {
                eprintln!("tether: rescanning {h}: {e}");
            }
        }
    }
}

/// As pid 1 of a freshly booted kernel nothing is mounted but the root: sysfs for the
/// disks, devtmpfs for their nodes and the UARTs, proc for the agent.
fn mount_kernel_filesystems() {
    use nix::mount::{mount, MsFlags};
    for (fstype, at, present) in [
        ("proc", "/proc", "/proc/self"),
        ("sysfs", "/sys", "/sys/block"),
        ("devtmpfs", "/dev", "/dev/null"),
    ] {
        if Path::new(present).exists() {
            continue;
        }
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
        if let Err(e) = mount(Some(fstype), at, Some(fstype), flags, None::<&str>) {
            eprintln!("tether: mount {fstype} on {at}: {e}");
        }
    }
}

/// A serial port in raw mode, or None when the VM has none there (the UART of an absent
/// port fails to open).
fn open_serial(path: &Path) -> Option<File> {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        // Never become the tether's controlling terminal: a hangup must not kill pid 1.
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .ok()?;
    match tcgetattr(&f) {
        Ok(mut t) => {
            cfmakeraw(&mut t);
            if let Err(e) = tcsetattr(&f, SetArg::TCSANOW, &t) {
                eprintln!("tether: raw mode on {}: {e}", path.display());
            }
        }
        Err(e) => {
            eprintln!("tether: {} is not a serial port: {e}", path.display());
            return None;
        }
    }
    Some(f)
}

pub struct EsxPlatform {
    rpc: Rpci<IoPort>,
    disks: Vec<Disk>,
    log: Option<File>,
    control: Option<File>,
}

/// Serial port 1 (control channel) and 2 (log): COM1 and COM2.
pub const CONTROL_TTY: &str = "/dev/ttyS0";
pub const LOG_TTY: &str = "/dev/ttyS1";

impl EsxPlatform {
    /// The platform of this VMware VM, or why this is not one (without touching the
    /// backdoor on any other machine).
    pub fn open() -> io::Result<EsxPlatform> {
        // First: the DMI half of the detection reads sysfs.
        mount_kernel_filesystems();
        let port = IoPort::open()?;
        let rpc = Rpci::open(port)?;
        let sys = PathBuf::from("/sys");
        rescan_scsi(&sys);
        Ok(EsxPlatform {
            rpc,
            disks: scan_disks(&sys, Path::new("/dev")),
            log: open_serial(Path::new(LOG_TTY)),
            control: open_serial(Path::new(CONTROL_TTY)),
        })
    }
}

impl Platform for EsxPlatform {
    fn guestinfo_get(&mut self, key: &str) -> io::Result<Option<String>> {
        rpci_get(|r| self.rpc.rpc(r), key)
    }

    fn guestinfo_set(&mut self, key: &str, value: &str) -> io::Result<()> {
        rpci_set(|r| self.rpc.rpc(r), key, value)
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

/// The tether's entry point when the simulator did not start it: a VMware VM, or a clear
/// error. Powers the VM off when the container ends.
pub(crate) fn boot() -> ! {
    let mut p = match EsxPlatform::open() {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "tether: no supported platform: not started by vcenter-sim ({} unset), and {e}",
                crate::platform::SIM_HW_ENV
            );
            std::process::exit(125);
        }
    };
    let code = crate::agent(&mut p, false);
    // pid 1 exiting panics the kernel: power off instead, once the log is on disk.
    if nix::unistd::getpid().as_raw() == 1 {
        nix::unistd::sync();
        let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    }
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tether-esx-sys-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn host(sys: &Path, n: u32, driver: &str) {
        let h = sys.join(format!("class/scsi_host/host{n}"));
        std::fs::create_dir_all(&h).unwrap();
        std::fs::write(h.join("proc_name"), format!("{driver}\n")).unwrap();
    }

    /// `/sys/block/<name>`, with `device` linking to `…/<addr>` as the kernel lays it out.
    fn block(sys: &Path, name: &str, addr: &str, ro: bool) {
        let dev = sys.join(format!("devices/pci0000:00/host/target/{addr}"));
        std::fs::create_dir_all(&dev).unwrap();
        let b = sys.join("block").join(name);
        std::fs::create_dir_all(&b).unwrap();
        symlink(&dev, b.join("device")).unwrap();
        std::fs::write(b.join("ro"), if ro { "1\n" } else { "0\n" }).unwrap();
    }

    #[test]
    fn disks_are_named_by_controller_order_and_target() {
        let sys = tree();
        // host0: the SATA CD-ROM; host2 and host3: two ParaVirtual controllers.
        host(&sys, 0, "ata_piix");
        host(&sys, 3, "vmw_pvscsi");
        host(&sys, 2, "vmw_pvscsi");
        block(&sys, "sda", "2:0:0:0", false);
        block(&sys, "sdb", "2:0:2:0", true);
        block(&sys, "sdc", "3:0:1:0", false);
        block(&sys, "sr0", "0:0:0:0", true);
        block(&sys, "sdd", "2:0:3:1", false);
        std::fs::create_dir_all(sys.join("block/loop0")).unwrap();
        let disks = scan_disks(&sys, Path::new("/dev"));
        let got: Vec<(&str, &Path, bool)> = disks
            .iter()
            .map(|d| (d.id.as_str(), d.dev.as_path(), d.readonly))
            .collect();
        assert_eq!(
            got,
            vec![
                ("scsi0:0", Path::new("/dev/sda"), false),
                ("scsi0:2", Path::new("/dev/sdb"), true),
                ("scsi1:1", Path::new("/dev/sdc"), false),
            ]
        );
        std::fs::remove_dir_all(&sys).unwrap();
    }

    #[test]
    fn scsi_addresses() {
        assert_eq!(parse_scsi_address("2:0:15:0"), Some([2, 0, 15, 0]));
        assert_eq!(parse_scsi_address("2:0:15"), None);
        assert_eq!(parse_scsi_address("2:0:15:0:1"), None);
        assert_eq!(parse_scsi_address("target2:0:1"), None);
    }

    #[test]
    fn no_serial_port_where_there_is_no_tty() {
        assert!(open_serial(Path::new("/dev/null")).is_none());
        assert!(open_serial(Path::new("/nonexistent/ttyS9")).is_none());
    }

    /// On this machine (not a VMware VM) the platform says so instead of faulting.
    #[test]
    fn not_a_vmware_vm_here() {
        if crate::backdoor::Identity::read().is_vmware() {
            return crate::backdoor::tests::cannot_run("this machine is a VMware VM");
        }
        let err = EsxPlatform::open().err().expect("not a VMware VM");
        assert!(err.to_string().contains("not a VMware VM"), "{err}");
    }
}
