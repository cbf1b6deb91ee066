//! The process-sandbox host runtime: a powered-on VM is a process tree on this machine.
//!
//! Power-on attaches the VM's disks as loop devices (read-only for non-persistent modes),
//! creates a cgroup with the VM's memory and CPU allocation, opens the file-backed serial
//! port (the container log) and a guestinfo channel, and starts the boot disk's
//! `/sbin/init` in new mount/pid/uts/ipc/net namespaces with the hardware described in
//! `VCSIM_HW`. When init exits the VM powers off and everything is released. A VM whose
//! boot disk holds no filesystem has "no operating system": it powers on and idles
//! without a process, like a blank VM on ESXi.
//!
//! Instant clone forks the running parent's tether into the child's new namespaces
//! (see tether's `vmfork` and `fork_request` here); a parent without an OS falls back to
//! a cold boot of the child.
//! NICs are veth pairs on per-port-group bridges in the simulator's own network
//! namespace (see `net`).

mod cgroup;
mod fork;
mod guestinfo;
pub mod launcher;
mod loopdev;
pub mod net;
mod netlink;
mod reap;

/// The simulator as a runtime sees it: the guest-event calls, nothing more.
type Sim = dyn GuestEvents;

use crate::runtime::{GuestEvents, HostRuntime, VmRuntimeSpec};
use crate::soap::Fault;
use cgroup::VmCgroup;
use container_vm::fork::ForkRequest;
use container_vm::hardware::{self, Disk as HwDisk, Hardware};
use futures_util::future::BoxFuture;
use loopdev::LoopDevice;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use vsphere_client::value::{DataObject, MoRef, Value};

/// Descriptor numbers the guest finds its devices on.
const GUESTINFO_FD: i32 = 3;
const LOG_FD: i32 = 4;
const CONTROL_FD: i32 = 5;
const FORK_FD: i32 = 6;

/// One disk of a VM, resolved to the file backing it.
struct DiskPlan {
    id: String,
    order: (i64, i64),
    extent: PathBuf,
    readonly: bool,
}

struct RunningVm {
    pid: Option<u32>,
    cgroup: Option<VmCgroup>,
    _loops: Vec<LoopDevice>,
    /// Host ends of the VM's NICs, removed when this goes.
    nics: Option<net::NicsHandle>,
    /// Resolves when the VM's processes are gone and its resources released.
    stopped: Option<tokio::sync::watch::Receiver<bool>>,
    /// The monitor's fork port (booted VMs): instant clones are forked through it.
    fork: Option<Arc<Mutex<OwnedFd>>>,
}

pub struct SandboxRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    /// Distinguishes this simulator's cgroups from those of others on the same host.
    tag: String,
    sim: OnceLock<Weak<Sim>>,
    vms: Mutex<HashMap<String, RunningVm>>,
    /// Mount points and console logs of running VMs.
    run_dir: PathBuf,
    /// The network namespace with the port-group bridges, made on the first NIC.
    net: OnceLock<Arc<net::SimNet>>,
    /// VMs being reset: their old instance ends without the VM powering off.
    resetting: Mutex<std::collections::HashSet<String>>,
}

impl SandboxRuntime {
    /// A runtime whose VMs' working files live under `run_dir`. What a killed
    /// predecessor left there, and its cgroups, are swept first: cleanup after a crash
    /// is part of every start, not the hope that a signal arrived.
    pub fn new(run_dir: impl Into<PathBuf>) -> SandboxRuntime {
        let run_dir = run_dir.into();
        let swept = cgroup::sweep_stale();
        if swept > 0 {
            tracing::info!(
                groups = swept,
                "removed the cgroups of VMs of a simulator that is gone"
            );
        }
        // Nothing runs yet: every entry is a VM of a previous run (its mounts lived in the
        // VM's own mount namespace, gone with it).
        if let Ok(entries) = std::fs::read_dir(&run_dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        SandboxRuntime {
            inner: Arc::new(Inner {
                tag: cgroup::owner_tag(),
                sim: OnceLock::new(),
                vms: Mutex::new(HashMap::new()),
                run_dir,
                net: OnceLock::new(),
                resetting: Mutex::new(std::collections::HashSet::new()),
            }),
        }
    }

    /// Whether this machine can run the sandbox (root, loop devices, namespaces).
    pub fn supported() -> Result<(), String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("the process sandbox needs root (namespaces, loop devices, mounts)".into());
        }
        if !Path::new("/dev/loop-control").exists() {
            return Err("no /dev/loop-control on this machine".into());
        }
        Ok(())
    }
}

impl SandboxRuntime {
    /// Whether anything of this VM is still held: a running sandbox or its cgroup.
    /// (Tests use it to prove a failed or finished VM leaks nothing.)
    pub fn holds_resources(&self, vm: &MoRef) -> bool {
        self.inner.vms.lock().contains_key(&vm.value)
            || VmCgroup::exists(&format!("{}-{}", self.inner.tag, vm.value))
    }
}

impl SandboxRuntime {
    /// Links in the simulator's network namespace (bridges, NIC host ends); empty until
    /// a VM with a NIC has run.
    pub fn network_links(&self) -> Vec<String> {
        self.inner.net.get().map(|n| n.links()).unwrap_or_default()
    }

    /// The simulator's network namespace with the port groups' bridges (created on first
    /// use). An embedded VCH takes its leg on its networks there, as a VCH appliance VM
    /// has NICs on their port groups.
    pub fn network(&self) -> Result<Arc<net::SimNet>, String> {
        self.inner.net().map_err(|f| f.msg)
    }
}

impl Inner {
    /// The simulator's network namespace, created on first use.
    fn net(&self) -> Result<Arc<net::SimNet>, Fault> {
        if let Some(n) = self.net.get() {
            return Ok(n.clone());
        }
        let n = net::SimNet::new().map_err(|e| fault_io("network namespace", e))?;
        Ok(self.net.get_or_init(|| n).clone())
    }

    fn sim(&self) -> Option<Arc<Sim>> {
        self.sim.get().and_then(Weak::upgrade)
    }
}

fn fault_io(what: &str, e: std::io::Error) -> Fault {
    Fault::new("GenericVmConfigFault", format!("{what}: {e}"))
        .with("reason", Value::string(format!("{what}: {e}")))
}

/// The extent file a VMDK descriptor names. A delta disk (linked or instant clone) is
/// materialised on first use by copying its parent's content into the delta extent, so
/// the child writes its own copy and the parent stays untouched.
fn vmdk_extent(descriptor: &Path, display: &str) -> Result<PathBuf, Fault> {
    vmdk_extent_depth(descriptor, display, 0)
}

fn vmdk_extent_depth(descriptor: &Path, display: &str, depth: usize) -> Result<PathBuf, Fault> {
    if depth > 32 {
        return Err(Fault::new(
            "InvalidDiskFormat",
            format!("{display}: delta chain too deep"),
        ));
    }
    let text = std::fs::read_to_string(descriptor).map_err(|_| Fault::file_not_found(display))?;
    let extent = text
        .lines()
        .filter(|l| l.starts_with("RW ") || l.starts_with("RDONLY "))
        .find_map(|l| l.split('"').nth(1))
        .filter(|n| !n.contains('/') && !n.contains(".."))
        .ok_or_else(|| {
            Fault::new(
                "InvalidDiskFormat",
                format!("{display}: no extent in the descriptor"),
            )
        })?;
    let path = descriptor.with_file_name(extent);
    if !path.exists() {
        return Err(Fault::file_not_found(&format!("{display} ({extent})")));
    }
    let parent = text
        .lines()
        .find_map(|l| l.strip_prefix("parentFileNameHint=\""))
        .map(|p| p.trim_end_matches('"').to_string());
    if let Some(parent) = parent {
        let parent_extent = vmdk_extent_depth(Path::new(&parent), &parent, depth + 1)?;
        let empty = std::fs::metadata(&path)
            .map(|m| m.len() == 0)
            .unwrap_or(true);
        if empty {
            sparse_copy(&parent_extent, &path)
                .map_err(|e| fault_io(&format!("materialise delta disk {display}"), e))?;
        }
    }
    Ok(path)
}

/// Copies a disk image keeping its holes: a reflink where the filesystem can, otherwise
/// only the data extents (SEEK_DATA/SEEK_HOLE). A mostly empty scratch disk of gigabytes
/// is copied in milliseconds, which is what makes a clone's first boot cheap.
fn sparse_copy(src: &Path, dst: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    const FICLONE: libc::c_ulong = 0x4004_9409;
    let mut from = std::fs::File::open(src)?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)?;
    // SAFETY: FICLONE takes the source descriptor as its argument.
    if unsafe { libc::ioctl(to.as_raw_fd(), FICLONE, from.as_raw_fd()) } == 0 {
        return Ok(());
    }
    let len = from.metadata()?.len();
    to.set_len(len)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos: i64 = 0;
    while (pos as u64) < len {
        // SAFETY: lseek on a valid descriptor.
        let data = unsafe { libc::lseek(from.as_raw_fd(), pos, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: only a hole is left
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(from.as_raw_fd(), data, libc::SEEK_HOLE) };
        let end = if hole < 0 { len as i64 } else { hole };
        from.seek(SeekFrom::Start(data as u64))?;
        to.seek(SeekFrom::Start(data as u64))?;
        let mut left = (end - data) as usize;
        while left > 0 {
            let want = left.min(buf.len());
            let n = from.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            to.write_all(&buf[..n])?;
            left -= n;
        }
        pos = end;
    }
    Ok(())
}

fn resolve_ds(spec: &VmRuntimeSpec, file: &str) -> Result<PathBuf, Fault> {
    let p = crate::methods::parse_ds_path(file)?;
    let dir = spec.datastores.get(&p.datastore).ok_or_else(|| {
        Fault::new(
            "InvalidDatastore",
            format!("Invalid datastore '{}'.", p.datastore),
        )
    })?;
    if p.path.split('/').any(|c| c == "..") {
        return Err(Fault::invalid_argument("fileName"));
    }
    Ok(dir.join(&p.path))
}

fn backing(d: &DataObject) -> Option<&DataObject> {
    d.get("backing").and_then(Value::as_obj)
}

/// Disks in boot order (controller bus, then unit), with the names the guest sees.
fn plan_disks(spec: &VmRuntimeSpec) -> Result<Vec<DiskPlan>, Fault> {
    let controllers: HashMap<i64, (String, i64)> = spec
        .devices
        .iter()
        .filter(|d| d.ty.ends_with("Controller"))
        .filter_map(|d| {
            let kind = if d.ty.contains("SCSI") {
                "scsi"
            } else if d.ty.contains("SATA") || d.ty.contains("AHCI") {
                "sata"
            } else {
                "nvme"
            };
            Some((
                d.i64("key")?,
                (kind.to_string(), d.i64("busNumber").unwrap_or(0)),
            ))
        })
        .collect();
    let mut plans = Vec::new();
    for d in spec.devices.iter().filter(|d| d.ty == "VirtualDisk") {
        let Some(b) = backing(d) else { continue };
        let Some(file) = b.text("fileName").map(str::trim).filter(|f| !f.is_empty()) else {
            continue;
        };
        let ck = d.i64("controllerKey").unwrap_or(0);
        let (kind, bus) = controllers
            .get(&ck)
            .cloned()
            .unwrap_or_else(|| ("ide".into(), if ck == 201 { 1 } else { 0 }));
        let unit = d.i64("unitNumber").unwrap_or(0);
        let mode = b.text("diskMode").unwrap_or("persistent");
        let descriptor = resolve_ds(spec, file)?;
        plans.push(DiskPlan {
            id: format!("{kind}{bus}:{unit}"),
            order: (bus, unit),
            extent: vmdk_extent(&descriptor, file)?,
            readonly: mode.contains("nonpersistent"),
        });
    }
    plans.sort_by_key(|p| p.order);
    Ok(plans)
}

/// The first network-backed serial port (client direction): `host:port` to connect to.
fn network_port(spec: &VmRuntimeSpec) -> Option<String> {
    spec.devices
        .iter()
        .filter(|d| d.ty == "VirtualSerialPort")
        .filter_map(backing)
        .find_map(|b| b.text("serviceURI").map(str::to_string))
        .and_then(|u| {
            u.trim()
                .strip_prefix("tcp://")
                .map(|a| a.trim_end_matches('/').to_string())
        })
}

/// Connects a network-backed serial port: the guest sees one continuous byte stream; the
/// TCP side is (re)connected whenever it drops, as a VM's serial port reconnects to a
/// virtual serial port concentrator. Ends when the guest side closes (VM off).
fn relay_serial(host_end: std::os::unix::net::UnixStream, addr: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::spawn(async move {
        if host_end.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(guest) = tokio::net::UnixStream::from_std(host_end) else {
            return;
        };
        let (mut g_rd, mut g_wr) = guest.into_split();
        let mut gbuf = vec![0u8; 64 * 1024];
        let mut tbuf = vec![0u8; 64 * 1024];
        loop {
            let tcp = match tokio::net::TcpStream::connect(&addr).await {
                Ok(t) => t,
                Err(_) => {
                    // Nobody listening yet: what the guest writes meanwhile is lost, as on a
                    // disconnected serial line; keep draining so it never blocks.
                    tokio::select! {
                        r = g_rd.read(&mut gbuf) => if matches!(r, Ok(0) | Err(_)) { return },
                        _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                    }
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (mut t_rd, mut t_wr) = tcp.into_split();
            loop {
                tokio::select! {
                    r = g_rd.read(&mut gbuf) => match r {
                        Ok(0) | Err(_) => return,
                        Ok(n) => if t_wr.write_all(&gbuf[..n]).await.is_err() { break },
                    },
                    r = t_rd.read(&mut tbuf) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(n) => if g_wr.write_all(&tbuf[..n]).await.is_err() { return },
                    },
                }
            }
        }
    });
}

/// The first file-backed serial port: the container log.
fn log_port(spec: &VmRuntimeSpec) -> Result<Option<std::fs::File>, Fault> {
    let file = spec
        .devices
        .iter()
        .filter(|d| d.ty == "VirtualSerialPort")
        .filter_map(backing)
        .find(|b| b.get("fileName").is_some() && b.get("serviceURI").is_none())
        .and_then(|b| b.text("fileName").map(str::to_string));
    let Some(file) = file else { return Ok(None) };
    let local = resolve_ds(spec, &file)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&local)
        .map(Some)
        .map_err(|e| fault_io(&format!("serial port file {file}"), e))
}

fn has_filesystem(extent: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2048];
    let Ok(mut f) = std::fs::File::open(extent) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    (n >= 4 && &head[..4] == b"hsqs")
        || (n >= 1028 && head[1024..1028] == 0xE0F5_E1E2u32.to_le_bytes())
        || (n >= 1082 && head[1080..1082] == [0x53, 0xEF])
}

fn cstr(p: &Path) -> Result<CString, Fault> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| Fault::invalid_argument("path"))
}

/// A VM whose init runs: what is released when it ends.
struct Launched {
    pid: u32,
    cgroup: VmCgroup,
    loops: Vec<LoopDevice>,
    nics: Option<net::NicsHandle>,
    /// The monitor's fork port (booted VMs only).
    fork: Option<OwnedFd>,
    /// Where the boot disk is mounted (booted VMs only).
    mount_point: Option<PathBuf>,
}

/// Connects a VM's NICs into the network namespace of its init (`pid`).
fn connect_nics(
    sim_net: Option<Arc<net::SimNet>>,
    pid: u32,
    nics: &[net::NicPlan],
) -> Result<Option<net::NicsHandle>, Fault> {
    sim_net
        .map(|n| n.attach(pid, nics))
        .transpose()
        .map_err(|e| fault_io("connect NICs", e))
}

/// Disk plans, their loop devices, and the guest's view of them.
type AttachedDisks = (Vec<DiskPlan>, Vec<LoopDevice>, Vec<HwDisk>);

/// A VM's devices, ready to hand to its guest: the host ends stay with the runtime, the
/// guest ends are passed as descriptors described by `hw`.
struct Devices {
    loops: Vec<LoopDevice>,
    cgroup: VmCgroup,
    hw: Hardware,
    /// In the order of the descriptor numbers in `hw`: guestinfo, log, control.
    guest_fds: Vec<OwnedFd>,
    guestinfo_host: std::os::unix::net::UnixStream,
    /// NICs to connect once the VM's init exists (they go into its network namespace).
    nics: Vec<net::NicPlan>,
    sim_net: Option<Arc<net::SimNet>>,
}

impl Inner {
    /// Attaches disks, creates the cgroup and the serial/guestinfo channels of a VM.
    fn devices(
        &self,
        spec: &VmRuntimeSpec,
        loops: Vec<LoopDevice>,
        disks: Vec<HwDisk>,
    ) -> Result<Devices, Fault> {
        let log = log_port(spec)?;
        let nics = net::plan_nics(&spec.devices).map_err(|e| {
            Fault::new("GenericVmConfigFault", e.clone()).with("reason", Value::string(e))
        })?;
        let sim_net = if nics.is_empty() {
            None
        } else {
            Some(self.net()?)
        };
        let cgroup = VmCgroup::create(
            &format!("{}-{}", self.tag, spec.vm.value),
            spec.memory_mb,
            spec.num_cpu,
        )
        .map_err(|e| fault_io("cgroup", e))?;
        let (host_end, guest_end) =
            std::os::unix::net::UnixStream::pair().map_err(|e| fault_io("guestinfo channel", e))?;
        let control = match network_port(spec) {
            Some(addr) => {
                let (h, g) = std::os::unix::net::UnixStream::pair()
                    .map_err(|e| fault_io("serial port", e))?;
                relay_serial(h, addr);
                Some(OwnedFd::from(g))
            }
            None => None,
        };
        let mut guest_fds = vec![OwnedFd::from(guest_end)];
        let hw = Hardware {
            guestinfo_fd: GUESTINFO_FD,
            log_fd: log.as_ref().map(|_| LOG_FD),
            control_fd: control.as_ref().map(|_| CONTROL_FD),
            disks,
            fork_fd: None,
            nics: nics.clone(),
            cgroup_procs: Vec::new(),
        };
        guest_fds.extend(log.map(OwnedFd::from));
        guest_fds.extend(control);
        Ok(Devices {
            loops,
            cgroup,
            hw,
            guest_fds,
            guestinfo_host: host_end,
            nics,
            sim_net,
        })
    }

    /// Attaches the VM's disks; `skip_boot`: not the lowest (boot) disk, for an instant
    /// clone, which runs the tether its parent already loaded from it.
    fn attach_disks(spec: &VmRuntimeSpec, skip_boot: bool) -> Result<AttachedDisks, Fault> {
        let plans = plan_disks(spec)?;
        let mut loops = Vec::new();
        let mut hw_disks = Vec::new();
        for p in plans.iter().skip(usize::from(skip_boot)) {
            let dev = loopdev::attach(&p.extent, p.readonly)
                .map_err(|e| fault_io(&format!("attach disk {}", p.id), e))?;
            hw_disks.push(HwDisk {
                id: p.id.clone(),
                dev: dev.path.clone(),
                readonly: p.readonly,
            });
            loops.push(dev);
        }
        Ok((plans, loops, hw_disks))
    }

    fn boot(self: &Arc<Self>, spec: VmRuntimeSpec) -> Result<(), Fault> {
        let sim = self
            .sim()
            .ok_or_else(|| Fault::invalid_state("runtime is not bound to a simulator"))?;
        let vm_id = spec.vm.value.clone();
        if self.vms.lock().contains_key(&vm_id) {
            return Err(Fault::invalid_power_state("poweredOn", Some("poweredOn")));
        }
        let (plans, loops, hw_disks) = Self::attach_disks(&spec, false)?;
        let bootable = plans
            .first()
            .map(|p| has_filesystem(&p.extent))
            .unwrap_or(false);
        if !bootable {
            // No operating system: the VM is on, nothing runs.
            self.vms.lock().insert(
                vm_id,
                RunningVm {
                    pid: None,
                    cgroup: None,
                    _loops: loops,
                    nics: None,
                    stopped: None,
                    fork: None,
                },
            );
            return Ok(());
        }
        let mut dev = self.devices(&spec, loops, hw_disks)?;
        // The fork port: instant clones of this VM are forked by its monitor.
        let (fork_host, fork_guest) =
            fork::seqpacket_pair().map_err(|e| fault_io("fork port", e))?;
        dev.hw.fork_fd = Some(FORK_FD);
        dev.hw.cgroup_procs = dev
            .cgroup
            .procs_files()
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let vm_dir = self.run_dir.join(&vm_id);
        let mount_point = vm_dir.join("boot");
        std::fs::create_dir_all(&mount_point).map_err(|e| fault_io("run dir", e))?;
        let console = std::fs::File::create(vm_dir.join("console.log"))
            .map_err(|e| fault_io("console log", e))?;
        let hw_json = dev
            .hw
            .to_json()
            .map_err(|e| fault_io("hardware description", e.into()))?;
        // Everything the pre-exec hook touches is prepared here: it must not allocate.
        let boot_dev = cstr(&dev.loops[0].path)?;
        let boot_fs = CString::new(fs_type(&plans[0].extent)).expect("static names");
        let mp = cstr(&mount_point)?;
        let init = mount_point.join("sbin/init");
        let targets: Vec<i32> = dev.hw.device_fds().into_iter().chain([FORK_FD]).collect();
        let sources: Vec<i32> = dev
            .guest_fds
            .iter()
            .map(|f| f.as_raw_fd())
            .chain([fork_guest.as_raw_fd()])
            .collect();
        let mut cmd = std::process::Command::new(&init);
        cmd.env_clear()
            .env(hardware::ENV, hw_json)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(std::process::Stdio::null())
            .stdout(
                console
                    .try_clone()
                    .map_err(|e| fault_io("console log", e))?,
            )
            .stderr(console);
        // SAFETY: the hook only makes raw syscalls on data prepared above.
        unsafe {
            cmd.pre_exec(move || {
                // The VM dies with the simulator (its init follows via its own pdeathsig),
                // so a killed simulator leaves no VM, mount or loop device behind. The
                // signal follows the forking thread: that is the launcher, which lives as
                // long as the process (see `launcher`).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                let flags = libc::CLONE_NEWNS
                    | libc::CLONE_NEWUTS
                    | libc::CLONE_NEWIPC
                    | libc::CLONE_NEWNET
                    | libc::CLONE_NEWPID;
                if libc::unshare(flags) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Nothing mounted in the VM propagates back to the host.
                if libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::mount(
                    boot_dev.as_ptr(),
                    mp.as_ptr(),
                    boot_fs.as_ptr(),
                    libc::MS_RDONLY | libc::MS_NODEV,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // Sources are never below 3 and are all distinct from the targets'
                // final meaning once moved: move each one up first, then into place.
                let mut high = [0i32; 8];
                for (i, s) in sources.iter().enumerate() {
                    high[i] = libc::fcntl(*s, libc::F_DUPFD, 100);
                    if high[i] < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (i, t) in targets.iter().enumerate() {
                    if libc::dup2(high[i], *t) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        // Forked by the launcher thread: the monitor's death signal follows the process,
        // not the lifetime of whichever thread handled this power-on.
        let child = launcher::run(move || cmd.spawn())
            .and_then(|r| r)
            .map_err(|e| fault_io("boot", e))?;
        let pid = child.id();
        // Reaped by pid below (std's Child does not reap on drop).
        drop(child);
        drop(fork_guest);
        self.running(&sim, &spec.vm, dev, pid, Some(fork_host), Some(mount_point))
    }

    /// Instant clone: forks the running parent's tether into the child's namespaces.
    /// A parent without a forkable monitor (no OS) falls back to a cold boot.
    fn fork_clone(self: &Arc<Self>, parent: &MoRef, spec: VmRuntimeSpec) -> Result<(), Fault> {
        let port = self
            .vms
            .lock()
            .get(&parent.value)
            .and_then(|e| e.fork.clone());
        let Some(port) = port else {
            return self.boot(spec);
        };
        let sim = self
            .sim()
            .ok_or_else(|| Fault::invalid_state("runtime is not bound to a simulator"))?;
        if self.vms.lock().contains_key(&spec.vm.value) {
            return Err(Fault::invalid_power_state("poweredOn", Some("poweredOn")));
        }
        let (_, loops, hw_disks) = Self::attach_disks(&spec, true)?;
        let dev = self.devices(&spec, loops, hw_disks)?;
        let request = ForkRequest {
            hardware: dev.hw.clone(),
            cgroup_procs: dev
                .cgroup
                .procs_files()
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect(),
        }
        .encode()
        .map_err(|e| fault_io("fork request", e.into()))?;
        let pid = {
            let port = port.lock();
            fork::request(&port, &request, &dev.guest_fds)
                .map_err(|e| fault_io("instant clone (fork of the parent's tether)", e))?
        };
        self.running(&sim, &spec.vm, dev, pid, None, None)
    }

    /// The second half of both launch paths, once the VM's init (`pid`) exists: connect
    /// its NICs, serve its guestinfo, and track it until it ends. A VM whose NICs cannot
    /// be connected is killed and released.
    fn running(
        self: &Arc<Self>,
        sim: &Arc<Sim>,
        vm: &MoRef,
        dev: Devices,
        pid: u32,
        fork: Option<OwnedFd>,
        mount_point: Option<PathBuf>,
    ) -> Result<(), Fault> {
        let Devices {
            loops,
            cgroup,
            guest_fds,
            guestinfo_host,
            nics,
            sim_net,
            ..
        } = dev;
        drop(guest_fds);
        let nics = match connect_nics(sim_net, pid, &nics) {
            Ok(h) => h,
            Err(f) => {
                cgroup.kill_all();
                // SAFETY: plain kill(2) of the VM's init (or monitor) we just started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                if let Some(mp) = &mount_point {
                    let _ = std::fs::remove_dir(mp);
                }
                return Err(f);
            }
        };
        guestinfo::serve(guestinfo_host, vm.clone(), Arc::downgrade(sim));
        self.track(
            vm,
            Launched {
                pid,
                cgroup,
                loops,
                nics,
                fork,
                mount_point,
            },
        );
        Ok(())
    }

    /// Records a running VM and releases it when its process is gone.
    fn track(self: &Arc<Self>, vm: &MoRef, l: Launched) {
        let Launched {
            pid,
            cgroup,
            loops,
            nics,
            fork,
            mount_point,
        } = l;
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.vms.lock().insert(
            vm.value.clone(),
            RunningVm {
                pid: Some(pid),
                cgroup: Some(cgroup),
                _loops: loops,
                nics,
                stopped: Some(rx),
                fork: fork.map(|f| Arc::new(Mutex::new(f))),
            },
        );
        let inner = self.clone();
        let vm = vm.clone();
        tokio::spawn(async move {
            if let Err(e) = reap::exited(pid as i32).await {
                tracing::warn!(vm = %vm.value, "cannot wait for the VM's process: {e}");
            }
            // Init is gone: so is the pid namespace. Release everything, then report.
            let entry = inner.vms.lock().remove(&vm.value);
            let mut nics = None;
            if let Some(mut e) = entry {
                if let Some(cg) = e.cgroup.take() {
                    cg.kill_all();
                    drop(cg);
                }
                nics = e.nics.take();
            }
            if let Some(mp) = mount_point {
                let _ = std::fs::remove_dir(&mp);
            }
            let reset = inner.resetting.lock().remove(&vm.value);
            if let Some(sim) = inner.sim().filter(|_| !reset) {
                sim.guest_powered_off(&vm);
            }
            let _ = tx.send(true);
            // Deleting a veth waits for RCU grace periods (~20 ms): done after the power-off
            // is reported so it does not lengthen every container's exit. The names are never
            // reused, so a quick power-on again cannot collide with them.
            drop(nics);
        });
    }

    async fn stop(&self, vm: &MoRef) {
        let (pid, rx) = {
            let mut vms = self.vms.lock();
            match vms.get_mut(&vm.value) {
                Some(e) if e.pid.is_some() => (e.pid, e.stopped.clone()),
                // No OS: nothing runs; releasing the disks is the whole power-off.
                Some(_) => {
                    vms.remove(&vm.value);
                    return;
                }
                None => return,
            }
        };
        if let Some(pid) = pid {
            if let Some(e) = self.vms.lock().get(&vm.value) {
                if let Some(cg) = &e.cgroup {
                    let _ = cg.freeze(false);
                }
            }
            // SAFETY: plain kill(2) of the VM's monitor; its init dies with it (pdeathsig).
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        if let Some(mut rx) = rx {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

fn fs_type(extent: &Path) -> &'static str {
    use std::io::Read;
    let mut head = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open(extent) {
        if f.read_exact(&mut head).is_ok() && &head == b"hsqs" {
            return "squashfs";
        }
    }
    let mut buf = [0u8; 1028];
    if let Ok(mut f) = std::fs::File::open(extent) {
        if f.read_exact(&mut buf).is_ok() && buf[1024..1028] == 0xE0F5_E1E2u32.to_le_bytes() {
            return "erofs";
        }
    }
    "ext4"
}

impl HostRuntime for SandboxRuntime {
    fn power_on(&self, spec: VmRuntimeSpec) -> BoxFuture<'static, Result<(), Fault>> {
        // A suspended VM resumes: thaw its cgroup (a VM without an OS has nothing to thaw).
        if let Some(e) = self.inner.vms.lock().get(&spec.vm.value) {
            let r = match &e.cgroup {
                Some(cg) => cg.freeze(false).map_err(|e| fault_io("resume", e)),
                None => Ok(()),
            };
            return Box::pin(async move { r });
        }
        let r = self.inner.boot(spec);
        Box::pin(async move { r })
    }

    fn power_off(&self, vm: MoRef) -> BoxFuture<'static, Result<(), Fault>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            inner.stop(&vm).await;
            Ok(())
        })
    }

    fn suspend(&self, vm: MoRef) -> BoxFuture<'static, Result<(), Fault>> {
        let r = match self.inner.vms.lock().get(&vm.value) {
            Some(RunningVm {
                cgroup: Some(cg), ..
            }) => cg.freeze(true).map_err(|e| fault_io("suspend", e)),
            _ => Ok(()),
        };
        Box::pin(async move { r })
    }

    fn reset(&self, spec: VmRuntimeSpec) -> BoxFuture<'static, Result<(), Fault>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            // A reset is a power cycle inside one power-on: vSphere keeps the VM on.
            inner.resetting.lock().insert(spec.vm.value.clone());
            inner.stop(&spec.vm).await;
            inner.resetting.lock().remove(&spec.vm.value);
            inner.boot(spec)
        })
    }

    fn instant_clone(
        &self,
        parent: MoRef,
        child: VmRuntimeSpec,
    ) -> BoxFuture<'static, Result<(), Fault>> {
        let r = self.inner.fork_clone(&parent, child);
        Box::pin(async move { r })
    }

    fn resize(
        &self,
        vm: MoRef,
        memory_mb: i64,
        cpus: i64,
    ) -> BoxFuture<'static, Result<(), Fault>> {
        let r = match self.inner.vms.lock().get(&vm.value) {
            Some(RunningVm {
                cgroup: Some(cg), ..
            }) => cg
                .resize(memory_mb, cpus)
                .map_err(|e| fault_io("hot add", e)),
            _ => Ok(()),
        };
        Box::pin(async move { r })
    }

    fn set_nics(
        &self,
        vm: MoRef,
        devices: Vec<vsphere_client::value::DataObject>,
    ) -> BoxFuture<'static, Result<(), Fault>> {
        let r = (|| {
            let wanted =
                net::plan_nics(&devices).map_err(|e| Fault::new("GenericVmConfigFault", e))?;
            let mut vms = self.inner.vms.lock();
            let Some(run) = vms.get_mut(&vm.value) else {
                return Ok(()); // not running here: the NICs come with the next power-on
            };
            let Some(pid) = run.pid else { return Ok(()) };
            if run.nics.is_none() && !wanted.is_empty() {
                let net = self.inner.net()?;
                run.nics = Some(
                    net.attach(pid, &[])
                        .map_err(|e| fault_io("hot add NIC", e))?,
                );
            }
            if let Some(h) = run.nics.as_mut() {
                let net = self.inner.net()?;
                net.replug(h, pid, &wanted)
                    .map_err(|e| fault_io("hot add NIC", e))?;
            }
            Ok(())
        })();
        Box::pin(async move { r })
    }

    fn vms_survive_restart(&self) -> bool {
        false
    }

    fn bind(&self, sim: Weak<Sim>) {
        let _ = self.inner.sim.set(sim);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_copy_keeps_data_and_holes() {
        use std::io::{Seek, SeekFrom, Write};
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("sbx-sparse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("src");
        let mut f = std::fs::File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(b"data in the middle").unwrap();
        f.seek(SeekFrom::Start((64 << 20) - 4)).unwrap();
        f.write_all(b"tail").unwrap();
        drop(f);
        let dst = dir.join("dst");
        sparse_copy(&src, &dst).unwrap();
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
        assert!(
            std::fs::metadata(&dst).unwrap().blocks() * 512 < 8 << 20,
            "holes were filled"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn descriptor_extents_and_missing_files() {
        let dir = std::env::temp_dir().join(format!("sbx-vmdk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.join("a.vmdk");
        std::fs::write(
            &d,
            "# Disk DescriptorFile\ncreateType=\"vmfs\"\nRW 8 VMFS \"a-flat.vmdk\"\n",
        )
        .unwrap();
        assert_eq!(
            vmdk_extent(&d, "[ds] a.vmdk").unwrap_err().ty,
            "FileNotFound"
        );
        std::fs::write(dir.join("a-flat.vmdk"), [0u8; 4096]).unwrap();
        assert_eq!(
            vmdk_extent(&d, "[ds] a.vmdk").unwrap(),
            dir.join("a-flat.vmdk")
        );
        assert_eq!(
            vmdk_extent(&dir.join("none.vmdk"), "[ds] none.vmdk")
                .unwrap_err()
                .ty,
            "FileNotFound"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
