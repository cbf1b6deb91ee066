//! What the container sees of its VM's size: `/proc/meminfo` with the VM's memory and
//! `nproc` with its vCPUs, as a guest kernel would report them.
//!
//! On ESXi the guest's own kernel does this. In the simulator's process sandbox the
//! kernel is the host's, so the VM's size is its cgroup: the tether keeps a meminfo file
//! computed from the group's limit and use (refreshed every second) bound over
//! /proc/meminfo, and restricts the container's CPU affinity to as many CPUs as the VM
//! has (`nproc` and `sched_getaffinity` count those).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

/// The VM's memory group: limit and current use, read through descriptors opened while
/// the VM's cgroups were visible.
pub struct MemoryGroup {
    limit: File,
    usage: File,
    stat: Option<File>,
}

fn read_u64(f: &File) -> Option<u64> {
    let mut buf = [0u8; 64];
    let n = f.read_at(&mut buf, 0).ok()?;
    let s = String::from_utf8_lossy(&buf[..n]);
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

fn stat_value(stat: &str, key: &str) -> u64 {
    stat.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

impl MemoryGroup {
    pub fn open() -> Option<MemoryGroup> {
        let dir = crate::cgroups::own_dir("memory")?;
        let (limit, usage) = if dir.join("memory.max").exists() {
            ("memory.max", "memory.current")
        } else {
            ("memory.limit_in_bytes", "memory.usage_in_bytes")
        };
        Some(MemoryGroup {
            limit: File::open(dir.join(limit)).ok()?,
            usage: File::open(dir.join(usage)).ok()?,
            stat: File::open(dir.join("memory.stat")).ok(),
        })
    }

    /// A meminfo text for the VM: total from the limit (the host's, if none is lower),
    /// free from the group's use, cache as the group counts it.
    pub fn meminfo(&self, host_total_kb: u64) -> String {
        let total = read_u64(&self.limit)
            .map(|b| (b / 1024).min(host_total_kb))
            .unwrap_or(host_total_kb);
        let used = read_u64(&self.usage).unwrap_or(0) / 1024;
        let stat = self
            .stat
            .as_ref()
            .and_then(|f| {
                let mut buf = vec![0u8; 8192];
                let n = f.read_at(&mut buf, 0).ok()?;
                Some(String::from_utf8_lossy(&buf[..n]).into_owned())
            })
            .unwrap_or_default();
        // v1 says "cache", v2 "file".
        let cache = (stat_value(&stat, "cache") + stat_value(&stat, "file")) / 1024;
        let shmem = stat_value(&stat, "shmem") / 1024;
        let free = total.saturating_sub(used);
        // Shared memory (tmpfs) is cache the kernel cannot drop.
        let available = free + cache.min(used).saturating_sub(shmem);
        let rows: [(&str, u64); 9] = [
            ("MemTotal", total),
            ("MemFree", free),
            ("MemAvailable", available.min(total)),
            ("Buffers", 0),
            ("Cached", cache.min(used)),
            ("SwapCached", 0),
            ("SwapTotal", 0),
            ("SwapFree", 0),
            ("Shmem", shmem),
        ];
        rows.iter()
            .map(|(k, v)| format!("{:<16}{:>8} kB\n", format!("{k}:"), v))
            .collect()
    }
}

fn host_total_kb() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Binds a VM meminfo over `<root>/proc/meminfo` (before the root is entered) and keeps
/// it current from a thread of its own. The file lives on the container's /dev tmpfs
/// only until it is bound: its name is removed, the mount keeps it.
pub fn install_meminfo(root: &Path, group: MemoryGroup) -> io::Result<()> {
    use nix::mount::{mount, MsFlags};
    let host = host_total_kb();
    let source = root.join("dev/.vm-meminfo");
    fs::write(&source, group.meminfo(host))?;
    let target = root.join("proc/meminfo");
    let bind = mount(
        Some(&source),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .and_then(|()| {
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None::<&str>,
        )
    });
    let file = fs::OpenOptions::new().write(true).open(&source);
    let _ = fs::remove_file(&source);
    bind.map_err(io::Error::from)?;
    let file = file?;
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        let text = group.meminfo(host);
        // Same length or longer in place, then cut: a reader never sees an empty file.
        if file.write_at(text.as_bytes(), 0).is_ok() {
            let _ = file.set_len(text.len() as u64);
        }
    });
    Ok(())
}

/// How many CPUs the VM has, from its CPU quota (none: all of the host's).
pub fn vm_cpus() -> Option<usize> {
    let dir = crate::cgroups::own_dir("cpu")?;
    let (quota, period) = match fs::read_to_string(dir.join("cpu.max")) {
        Ok(v2) => {
            let mut f = v2.split_whitespace();
            (
                f.next()?.parse::<i64>().ok()?,
                f.next()?.parse::<i64>().ok()?,
            )
        }
        Err(_) => (
            fs::read_to_string(dir.join("cpu.cfs_quota_us"))
                .ok()?
                .trim()
                .parse()
                .ok()?,
            fs::read_to_string(dir.join("cpu.cfs_period_us"))
                .ok()?
                .trim()
                .parse()
                .ok()?,
        ),
    };
    (quota > 0 && period > 0).then(|| ((quota + period - 1) / period) as usize)
}

/// A CPU set of `n` of the host's CPUs, starting at a place derived from `seed` so that
/// small VMs spread over the host; `None` when the VM has as many CPUs as the host.
pub fn cpu_set(n: usize, seed: &str) -> Option<nix::libc::cpu_set_t> {
    // Not available_parallelism: it already counts the cgroup's quota, i.e. the VM.
    // SAFETY: sysconf has no preconditions.
    let host = unsafe { nix::libc::sysconf(nix::libc::_SC_NPROCESSORS_ONLN) };
    let host = usize::try_from(host).ok()?;
    if n == 0 || n >= host {
        return None;
    }
    let start = seed
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write within it.
    unsafe {
        let mut set: nix::libc::cpu_set_t = std::mem::zeroed();
        nix::libc::CPU_ZERO(&mut set);
        for i in 0..n {
            nix::libc::CPU_SET((start + i) % host, &mut set);
        }
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_values_by_exact_key() {
        let s = "cache 4096\nrss 8192\ntotal_cache 99\nfile 1024\n";
        assert_eq!(stat_value(s, "cache"), 4096);
        assert_eq!(stat_value(s, "file"), 1024);
        assert_eq!(stat_value(s, "shmem"), 0);
    }

    #[test]
    fn cpu_sets_cover_n_cpus_or_none() {
        // SAFETY: sysconf has no preconditions.
        let host = unsafe { nix::libc::sysconf(nix::libc::_SC_NPROCESSORS_ONLN) } as usize;
        assert!(cpu_set(host, "x").is_none());
        if host > 1 {
            let set = cpu_set(1, "container-a").unwrap();
            // SAFETY: reading a set we own.
            let count = (0..host)
                .filter(|c| unsafe { nix::libc::CPU_ISSET(*c, &set) })
                .count();
            assert_eq!(count, 1);
        }
    }
}
