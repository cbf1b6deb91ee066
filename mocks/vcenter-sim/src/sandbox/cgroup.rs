//! Per-VM cgroups: memory and CPU allocation from the VM's configuration, and the freezer
//! for suspend. Works on cgroup v2 (unified) and v1 (separate hierarchies), whichever the
//! host mounts.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const GROUP: &str = "vcenter-sim";

/// A VM's kernel sizes its process table by its memory (Linux: `threads-max` is RAM /
/// 128 KiB): 8 tasks per MiB, and no fewer than a small guest needs. A fork bomb inside a
/// VM exhausts the VM, never the host.
fn pids_max(memory_mb: i64) -> u64 {
    (memory_mb.max(8) as u64 * 8).max(256)
}

#[derive(Debug)]
pub struct VmCgroup {
    dirs: Vec<PathBuf>,
    freezer: Option<(PathBuf, bool)>, // (file, v2)
}

fn write(p: &Path, v: &str) -> io::Result<()> {
    fs::write(p, v).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
}

impl VmCgroup {
    pub fn create(vm: &str, memory_mb: i64, cpus: i64) -> io::Result<VmCgroup> {
        let bytes = (memory_mb.max(4) as u64) << 20;
        let quota = (cpus.max(1) as u64) * 100_000;
        let unified = Path::new(ROOT).join("cgroup.controllers").exists();
        if unified {
            let parent = Path::new(ROOT).join(GROUP);
            fs::create_dir_all(&parent)?;
            // Controllers must be enabled on the way down; failures leave limits unset.
            let _ = write(
                &Path::new(ROOT).join("cgroup.subtree_control"),
                "+memory +cpu +pids",
            );
            let _ = write(&parent.join("cgroup.subtree_control"), "+memory +cpu +pids");
            let dir = parent.join(vm);
            fs::create_dir_all(&dir)?;
            write(&dir.join("memory.max"), &bytes.to_string())?;
            let _ = write(&dir.join("memory.swap.max"), "0");
            let _ = write(&dir.join("cpu.max"), &format!("{quota} 100000"));
            write(&dir.join("pids.max"), &pids_max(memory_mb).to_string())?;
            return Ok(VmCgroup {
                freezer: Some((dir.join("cgroup.freeze"), true)),
                dirs: vec![dir],
            });
        }
        let mut dirs = Vec::new();
        let mem = Path::new(ROOT).join("memory").join(GROUP).join(vm);
        fs::create_dir_all(&mem)?;
        write(&mem.join("memory.limit_in_bytes"), &bytes.to_string())?;
        let _ = write(&mem.join("memory.memsw.limit_in_bytes"), &bytes.to_string());
        let _ = write(&mem.join("memory.swappiness"), "0");
        dirs.push(mem);
        let cpu = Path::new(ROOT).join("cpu").join(GROUP).join(vm);
        if fs::create_dir_all(&cpu).is_ok() {
            let _ = write(&cpu.join("cpu.cfs_period_us"), "100000");
            let _ = write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string());
            dirs.push(cpu);
        }
        let pids = Path::new(ROOT).join("pids").join(GROUP).join(vm);
        if fs::create_dir_all(&pids).is_ok() {
            write(&pids.join("pids.max"), &pids_max(memory_mb).to_string())?;
            dirs.push(pids);
        }
        let frz = Path::new(ROOT).join("freezer").join(GROUP).join(vm);
        let freezer = if fs::create_dir_all(&frz).is_ok() {
            dirs.push(frz.clone());
            Some((frz.join("freezer.state"), false))
        } else {
            None
        };
        Ok(VmCgroup { dirs, freezer })
    }

    /// Applies a new memory size and vCPU count to the running VM (hot add/remove). The
    /// kernel reclaims, or OOM-kills inside the group, when memory shrinks below use.
    pub fn resize(&self, memory_mb: i64, cpus: i64) -> io::Result<()> {
        let bytes = ((memory_mb.max(4) as u64) << 20).to_string();
        let quota = (cpus.max(1) as u64) * 100_000;
        for d in &self.dirs {
            if d.join("pids.max").exists() {
                write(&d.join("pids.max"), &pids_max(memory_mb).to_string())?;
            }
            if d.join("memory.max").exists() {
                write(&d.join("memory.max"), &bytes)?;
                write(&d.join("cpu.max"), &format!("{quota} 100000"))?;
            } else if d.join("memory.limit_in_bytes").exists() {
                // v1 wants memsw >= mem at every step: raise memsw first when growing.
                let _ = write(&d.join("memory.memsw.limit_in_bytes"), &bytes);
                write(&d.join("memory.limit_in_bytes"), &bytes)?;
                let _ = write(&d.join("memory.memsw.limit_in_bytes"), &bytes);
            } else if d.join("cpu.cfs_quota_us").exists() {
                write(&d.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        Ok(())
    }

    /// Whether a group of this name exists in any hierarchy.
    pub fn exists(vm: &str) -> bool {
        ["", "memory", "cpu", "freezer", "pids"]
            .iter()
            .any(|h| Path::new(ROOT).join(h).join(GROUP).join(vm).exists())
    }

    /// `cgroup.procs` files, prepared for a pre-exec hook that cannot allocate.
    pub fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|d| {
                CString::new(d.join("cgroup.procs").as_os_str().as_encoded_bytes()).ok()
            })
            .collect()
    }

    pub fn freeze(&self, frozen: bool) -> io::Result<()> {
        match &self.freezer {
            Some((f, true)) => write(f, if frozen { "1" } else { "0" }),
            Some((f, false)) => write(f, if frozen { "FROZEN" } else { "THAWED" }),
            None => Err(io::Error::other("no freezer cgroup on this host")),
        }
    }

    /// Kills whatever is still in the group (after the VM's init died).
    pub fn kill_all(&self) {
        if let Some(d) = self.dirs.first() {
            if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // SAFETY: plain kill(2).
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// This simulator's prefix for its groups: `<pid>.<start time>`, so that a group whose
/// owner is gone (killed, crashed) is recognised as stale by the next simulator on the
/// host, even when the pid has been reused since.
pub fn owner_tag() -> String {
    let me = std::process::id();
    format!("{me}.{}", start_time(me).unwrap_or(0))
}

/// The start time of a process (clock ticks since boot), field 22 of `/proc/<pid>/stat`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the simulator that made a group (`<pid>.<start time>-<vm>`) still runs.
fn owner_alive(group: &str) -> bool {
    let owner = group.split('-').next().unwrap_or_default();
    let Some((pid, start)) = owner.split_once('.') else {
        // A name from before owners were recorded: those versions died with their VMs.
        return false;
    };
    match (pid.parse::<u32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => start_time(pid) == Some(start),
        _ => false,
    }
}

/// Removes the groups of simulators that are gone (killed before they could release
/// them), killing anything still inside. Run at start: cleanup after a crash does not
/// depend on a signal having arrived. Returns how many groups were removed.
pub fn sweep_stale() -> usize {
    let mut removed = 0;
    for h in ["", "memory", "cpu", "freezer", "pids"] {
        let parent = Path::new(ROOT).join(h).join(GROUP);
        let Ok(entries) = fs::read_dir(&parent) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !e.path().is_dir() || owner_alive(&name) {
                continue;
            }
            let freezer = [("cgroup.freeze", true), ("freezer.state", false)]
                .into_iter()
                .map(|(f, v2)| (e.path().join(f), v2))
                .find(|(f, _)| f.exists());
            let stale = VmCgroup {
                dirs: vec![e.path()],
                freezer,
            };
            let _ = stale.freeze(false);
            stale.kill_all();
            drop(stale);
            if !e.path().exists() {
                removed += 1;
            }
        }
    }
    removed
}

/// Removes a group and the groups its guest made inside it (the tether's container
/// group for `--pids-limit`), deepest first.
fn remove_group(d: &Path) {
    if let Ok(entries) = fs::read_dir(d) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_group(&e.path());
            }
        }
    }
    // rmdir succeeds once the group is empty; retry briefly while the kernel reaps.
    for _ in 0..50 {
        if fs::remove_dir(d).is_ok() || !d.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

impl Drop for VmCgroup {
    fn drop(&mut self) {
        let _ = self.freeze(false);
        for d in &self.dirs {
            remove_group(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_told_apart_by_pid_and_start_time() {
        let me = owner_tag();
        assert!(owner_alive(&format!("{me}-vm-12")));
        let (pid, start) = me.split_once('.').unwrap();
        // Same pid, another start: the pid was reused, the owner is gone.
        assert!(!owner_alive(&format!(
            "{pid}.{}-vm-12",
            start.parse::<u64>().unwrap() + 1
        )));
        assert!(!owner_alive("4194304.1-vm-1"), "no such pid");
        assert!(!owner_alive("1a2b3c4d-vm-1"), "an old random tag");
    }

    #[test]
    fn process_tables_grow_with_memory() {
        assert_eq!(pids_max(8), 256);
        assert_eq!(pids_max(512), 4096);
    }
}
