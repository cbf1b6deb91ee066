//! Builds the container's root filesystem: read-only layer disks stacked with overlayfs
//! over the writable scratch disk, the usual kernel filesystems and /dev, the files a
//! container expects in /etc, then pivot_root into it.

use crate::platform::Disk;
use container_vm::spec::ContainerSpec;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Private staging area; a tmpfs so nothing of it reaches a disk.
const STAGE: &str = "/run/tether";

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("disk {0} named in the spec is not attached to this VM")]
    NoSuchDisk(String),
    #[error("disk {0} has no filesystem this tether can mount")]
    UnknownFs(String),
    #[error("{what} {path}: {err}")]
    Sys {
        what: &'static str,
        path: String,
        err: nix::Error,
    },
    #[error("{what} {path}: {err}")]
    Io {
        what: &'static str,
        path: String,
        err: io::Error,
    },
    #[error("formatting the scratch disk failed: {0}")]
    Format(String),
    #[error("volume: {0}")]
    Volume(String),
}

fn sys<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> RootfsError + 'a {
    move |err| RootfsError::Sys {
        what,
        path: path.display().to_string(),
        err,
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RootfsError + 'a {
    move |err| RootfsError::Io {
        what,
        path: path.display().to_string(),
        err,
    }
}

/// Filesystem type by its on-disk magic.
pub fn detect_fs(dev: &Path) -> io::Result<Option<&'static str>> {
    let mut f = fs::File::open(dev)?;
    let mut head = [0u8; 2048];
    let n = f.read(&mut head)?;
    if n >= 4 && &head[0..4] == b"hsqs" {
        return Ok(Some("squashfs"));
    }
    if n >= 1028 && head[1024..1028] == 0xE0F5_E1E2u32.to_le_bytes() {
        return Ok(Some("erofs"));
    }
    if n >= 1082 && head[1080..1082] == 0xEF53u16.to_le_bytes() {
        return Ok(Some("ext4"));
    }
    // Some images are shorter than the probe; look again past a short read.
    if n < 1082 {
        let mut magic = [0u8; 2];
        if f.seek(SeekFrom::Start(1080)).is_ok()
            && f.read_exact(&mut magic).is_ok()
            && magic == [0x53, 0xEF]
        {
            return Ok(Some("ext4"));
        }
    }
    Ok(None)
}

pub fn find<'a>(disks: &'a [Disk], id: &str) -> Result<&'a Disk, RootfsError> {
    disks
        .iter()
        .find(|d| d.id == id)
        .ok_or_else(|| RootfsError::NoSuchDisk(id.to_string()))
}

fn mkdir(p: &Path) -> Result<(), RootfsError> {
    fs::create_dir_all(p).map_err(io_err("mkdir", p))
}

fn mount_disk(d: &Disk, at: &Path, readonly: bool) -> Result<(), RootfsError> {
    let fstype = detect_fs(&d.dev)
        .map_err(io_err("read", &d.dev))?
        .ok_or_else(|| RootfsError::UnknownFs(d.id.clone()))?;
    mkdir(at)?;
    let mut flags = MsFlags::MS_NODEV;
    if readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(Some(&d.dev), at, Some(fstype), flags, None::<&str>).map_err(sys("mount", at))
}

/// Formats a scratch disk as ext4 unless it already holds a filesystem (a clone's scratch
/// is a delta of the template's, formatted once when the template booted).
pub fn prepare_scratch(d: &Disk) -> Result<(), RootfsError> {
    if detect_fs(&d.dev).map_err(io_err("read", &d.dev))?.is_none() {
        format_scratch(d)?;
    }
    Ok(())
}

/// Formats a blank scratch disk (first use) as ext4.
fn format_scratch(d: &Disk) -> Result<(), RootfsError> {
    let out = std::process::Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-L",
            "scratch",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1",
            // No reserved GDT blocks for online growth (a scratch disk is never grown):
            // the formatted disk holds ~200 KiB instead of ~4 MiB, which every clone
            // copies into its delta disk.
            "-O",
            "^resize_inode",
        ])
        .arg(&d.dev)
        .output()
        .map_err(|e| RootfsError::Format(format!("cannot run mkfs.ext4: {e}")))?;
    if !out.status.success() {
        return Err(RootfsError::Format(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(())
}

/// Mounts everything and returns the new root (not yet pivoted into).
pub fn assemble(spec: &ContainerSpec, disks: &[Disk]) -> Result<PathBuf, RootfsError> {
    let stage = Path::new(STAGE);
    mkdir(stage)?;
    mount(
        Some("tmpfs"),
        stage,
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=0700"),
    )
    .map_err(sys("mount", stage))?;
    let mut lowers = Vec::new();
    for (i, id) in spec.layers.iter().enumerate() {
        let at = stage.join(format!("layer{i}"));
        mount_disk(find(disks, id)?, &at, true)?;
        lowers.push(at);
    }
    let upper_base = match &spec.scratch {
        Some(id) => {
            let d = find(disks, id)?;
            prepare_scratch(d)?;
            let at = stage.join("scratch");
            mount_disk(d, &at, false)?;
            at
        }
        None => stage.join("mem"),
    };
    let upper = upper_base.join("upper");
    let work = upper_base.join("work");
    mkdir(&upper)?;
    mkdir(&work)?;
    let root = stage.join("root");
    mkdir(&root)?;
    if lowers.is_empty() {
        // No image: an empty read-only lower so overlayfs still has a stack.
        let empty = stage.join("empty");
        mkdir(&empty)?;
        lowers.push(empty);
    }
    // overlayfs lists the topmost lower first.
    let lowerdir = lowers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let opts = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    // nodev: a node the container makes with mknod (CAP_MKNOD is in Docker's default
    // set) can never be opened, so no disk of another VM is reachable through one.
    mount(
        Some("overlay"),
        &root,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(sys("mount overlay", &root))?;
    // For `docker diff` and `docker commit`, once this staging area is out of sight.
    crate::ops::changes::remember(&upper, &lowers);
    kernel_filesystems(&root)?;
    mask_kernel_paths(&root)?;
    etc_files(&root, spec)?;
    for m in &spec.mounts {
        mount_volume(&root, m, disks)?;
    }
    for m in &spec.tmpfs {
        mount_tmpfs(&root, m)?;
    }
    Ok(root)
}

/// Files of /proc and /sys that Docker hides from containers (kernel memory, keyrings,
/// timers, firmware), and the kernel log: /dev/null is bound over the files, an empty
/// read-only tmpfs over the directories.
const MASKED: [&str; 13] = [
    "proc/asound",
    "proc/acpi",
    "proc/kcore",
    "proc/keys",
    "proc/kmsg",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
    "proc/sysrq-trigger",
];

/// Parts of /proc that stay readable but never writable: sysctls (`core_pattern` would
/// run a program as host root), IRQ and bus settings.
const READ_ONLY: [&str; 4] = ["proc/bus", "proc/fs", "proc/irq", "proc/sys"];

fn mask_kernel_paths(root: &Path) -> Result<(), RootfsError> {
    for rel in MASKED {
        let at = root.join(rel);
        let Ok(md) = fs::symlink_metadata(&at) else {
            continue; // not on this kernel
        };
        if md.is_dir() {
            mount(
                Some("tmpfs"),
                &at,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0"),
            )
            .map_err(sys("mask", &at))?;
        } else {
            mount(
                Some("/dev/null"),
                &at,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys("mask", &at))?;
        }
    }
    for rel in READ_ONLY {
        let at = root.join(rel);
        if at.exists() {
            mount(
                Some(&at),
                &at,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys("bind", &at))?;
            remount_readonly(&at)?;
        }
    }
    Ok(())
}

/// Makes the mount at `at` read-only (a bind remount: only that mount, not those below).
pub fn remount_readonly(at: &Path) -> Result<(), RootfsError> {
    mount(
        None::<&str>,
        at,
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(sys("remount read-only", at))
}

/// Mounts a volume disk at its path inside the (not yet entered) root.
fn mount_volume(
    root: &Path,
    m: &container_vm::spec::VolumeMount,
    disks: &[Disk],
) -> Result<(), RootfsError> {
    let at = mount_point(root, &m.path)?;
    let d = find(disks, &m.disk)?;
    prepare_scratch(d)?;
    mount_disk(d, &at, m.readonly)
}

/// Mounts a tmpfs (`--tmpfs`) at its path inside the (not yet entered) root.
fn mount_tmpfs(root: &Path, m: &container_vm::spec::TmpfsMount) -> Result<(), RootfsError> {
    let at = mount_point(root, &m.path)?;
    let mut flags = MsFlags::empty();
    for (on, flag) in [
        (m.readonly, MsFlags::MS_RDONLY),
        (m.noexec, MsFlags::MS_NOEXEC),
        (m.nosuid, MsFlags::MS_NOSUID),
        (m.nodev, MsFlags::MS_NODEV),
    ] {
        if on {
            flags |= flag;
        }
    }
    mount(
        Some("tmpfs"),
        &at,
        Some("tmpfs"),
        flags,
        Some(m.data.as_str()).filter(|d| !d.is_empty()),
    )
    .map_err(sys("mount tmpfs", &at))
}

/// The directory a mount goes on, `path` inside the (not yet entered) root, created if
/// missing. A symlink anywhere on it is refused, since it would be resolved against the
/// VM's root, not the container's.
fn mount_point(root: &Path, path: &str) -> Result<PathBuf, RootfsError> {
    let rel = Path::new(path);
    if !rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(RootfsError::Volume(format!(
            "mount path {path:?} must be absolute, without .."
        )));
    }
    let mut at = root.to_path_buf();
    for c in rel.components().skip(1) {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(md) if md.file_type().is_symlink() => {
                return Err(RootfsError::Volume(format!(
                    "mount path {path:?} goes through a symlink ({})",
                    at.strip_prefix(root).unwrap_or(&at).display()
                )))
            }
            Ok(md) if !md.is_dir() => {
                return Err(RootfsError::Volume(format!(
                    "mount path {path:?} is not a directory"
                )))
            }
            Ok(_) => {}
            Err(_) => mkdir(&at)?,
        }
    }
    Ok(at)
}

fn kernel_filesystems(root: &Path) -> Result<(), RootfsError> {
    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let proc_ = root.join("proc");
    mkdir(&proc_)?;
    mount(
        Some("proc"),
        &proc_,
        Some("proc"),
        nosuid_noexec_nodev,
        None::<&str>,
    )
    .map_err(sys("mount", &proc_))?;
    let sys_ = root.join("sys");
    mkdir(&sys_)?;
    mount(
        Some("sysfs"),
        &sys_,
        Some("sysfs"),
        nosuid_noexec_nodev | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(sys("mount", &sys_))?;
    let dev = root.join("dev");
    mkdir(&dev)?;
    // nodev like every other mount the container can write to: the nodes below are
    // bind mounts of their own, the only devices the container can open.
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(sys("mount", &dev))?;
    // Device nodes: bind the host's (the sandbox may not mknod), as a VM's devtmpfs has them.
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(node);
        fs::File::create(&target).map_err(io_err("create", &target))?;
        let src = Path::new("/dev").join(node);
        mount(
            Some(&src),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind", &target))?;
    }
    let pts = dev.join("pts");
    mkdir(&pts)?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(sys("mount", &pts))?;
    let _ = std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"));
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        nosuid_noexec_nodev,
        Some("mode=1777,size=65536k"),
    )
    .map_err(sys("mount", &shm))?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, dev.join(link));
    }
    Ok(())
}

fn etc_files(root: &Path, spec: &ContainerSpec) -> Result<(), RootfsError> {
    let etc = root.join("etc");
    mkdir(&etc)?;
    let hostname = if spec.hostname.is_empty() {
        spec.id.chars().take(12).collect::<String>()
    } else {
        spec.hostname.clone()
    };
    let write = |name: &str, content: String| {
        let p = etc.join(name);
        // A symlink planted by the image must not redirect these writes.
        if p.is_symlink() {
            let _ = fs::remove_file(&p);
        }
        fs::write(&p, content).map_err(io_err("write", &p))
    };
    write("hostname", format!("{hostname}\n"))?;
    // The container's own name resolves to its address on its first network, as with
    // dockerd; without a network (`--network none`) to a loopback address.
    let own = spec
        .interfaces
        .first()
        .map(|i| i.address.as_str())
        .filter(|a| !a.is_empty())
        .unwrap_or("127.0.1.1");
    let mut hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own}\t{hostname}\n"
    );
    for h in &spec.hosts {
        hosts.push_str(h);
        hosts.push('\n');
    }
    write("hosts", hosts)?;
    let mut resolv = String::new();
    for d in &spec.dns {
        resolv.push_str(&format!("nameserver {d}\n"));
    }
    if !spec.dns_search.is_empty() {
        resolv.push_str(&format!("search {}\n", spec.dns_search.join(" ")));
    }
    if !spec.dns_options.is_empty() {
        resolv.push_str(&format!("options {}\n", spec.dns_options.join(" ")));
    }
    write("resolv.conf", resolv)?;
    Ok(())
}

/// Makes `root` the root of this mount namespace and drops the old one.
pub fn pivot(root: &Path) -> Result<(), RootfsError> {
    let old = root.join(".oldroot");
    mkdir(&old)?;
    nix::unistd::pivot_root(root, &old).map_err(sys("pivot_root", root))?;
    nix::unistd::chdir("/").map_err(sys("chdir", Path::new("/")))?;
    umount2("/.oldroot", MntFlags::MNT_DETACH).map_err(sys("umount", Path::new("/.oldroot")))?;
    let _ = fs::remove_dir("/.oldroot");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_filesystems_by_magic() {
        let dir = std::env::temp_dir().join(format!("tether-fs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let sq = dir.join("sq");
        fs::write(&sq, [b"hsqs".as_slice(), &[0u8; 4096]].concat()).unwrap();
        assert_eq!(detect_fs(&sq).unwrap(), Some("squashfs"));
        let mut ext = vec![0u8; 4096];
        ext[1080] = 0x53;
        ext[1081] = 0xEF;
        let e = dir.join("ext");
        fs::write(&e, &ext).unwrap();
        assert_eq!(detect_fs(&e).unwrap(), Some("ext4"));
        let blank = dir.join("blank");
        fs::write(&blank, vec![0u8; 4096]).unwrap();
        assert_eq!(detect_fs(&blank).unwrap(), None);
        fs::remove_dir_all(dir).unwrap();
    }
}
