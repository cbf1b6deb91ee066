//! Per-VM cgroups: memory and CPU allocation from the VM's configuration, and the freezer
//! for suspend. Works on cgroup v2 (unified) and v1 (separate hierarchies), whichever the
//! host mounts.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const GROUP: &str = "vcenter-sim";

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
                "+memory +cpu",
            );
            let _ = write(&parent.join("cgroup.subtree_control"), "+memory +cpu");
            let dir = parent.join(vm);
            fs::create_dir_all(&dir)?;
            write(&dir.join("memory.max"), &bytes.to_string())?;
            let _ = write(&dir.join("memory.swap.max"), "0");
            let _ = write(&dir.join("cpu.max"), &format!("{quota} 100000"));
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
        ["", "memory", "cpu", "freezer"]
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

impl Drop for VmCgroup {
    fn drop(&mut self) {
        let _ = self.freeze(false);
        for d in &self.dirs {
            // rmdir succeeds once the group is empty; retry briefly while the kernel reaps.
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}
