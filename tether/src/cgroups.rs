//! The guest's own cgroups, as a VM's init manages those of its kernel: the memory group
//! the whole VM lives in (its OOM-kill counter says whether the container's process was
//! killed for memory) and a child group of the pids controller for `--pids-limit`.
//! Both are opened while the VM's /sys/fs/cgroup is still visible, before the container's
//! root filesystem is entered; the descriptors keep working after.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

const ROOT: &str = "/sys/fs/cgroup";

/// The directory of this process's group for `controller`: on cgroup v1 under the
/// controller's own hierarchy, on v2 in the unified one.
pub(crate) fn own_dir(controller: &str) -> Option<PathBuf> {
    let table = fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in table.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == controller) {
            let dir = PathBuf::from(ROOT).join(controllers).join(path);
            let dir = if dir.exists() {
                dir
            } else {
                PathBuf::from(ROOT).join(controller).join(path)
            };
            return dir.exists().then_some(dir);
        }
        if controllers.is_empty() {
            let unified = fs::read_to_string(format!("{ROOT}/cgroup.controllers")).ok();
            if unified.is_some_and(|c| c.split_whitespace().any(|c| c == controller)) {
                return Some(PathBuf::from(ROOT).join(path));
            }
        }
    }
    None
}

/// The VM's count of OOM kills (`oom_kill` in v1's `memory.oom_control`, v2's
/// `memory.events`).
pub struct OomCounter {
    file: File,
}

impl OomCounter {
    pub fn open() -> Option<OomCounter> {
        let dir = own_dir("memory")?;
        ["memory.events", "memory.oom_control"]
            .iter()
            .find_map(|f| File::open(dir.join(f)).ok())
            .map(|file| OomCounter { file })
    }

    pub fn count(&self) -> u64 {
        let mut buf = [0u8; 512];
        let n = self.file.read_at(&mut buf, 0).unwrap_or(0);
        parse_oom_kills(&String::from_utf8_lossy(&buf[..n]))
    }
}

fn parse_oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Makes the container's pids group (a child of the VM's) with `limit` tasks at most
/// (`None` or a value below 1: unlimited, as Docker's `--pids-limit 0/-1`) and returns its
/// `cgroup.procs`, which each container process writes itself into before exec.
pub fn pids_group(limit: Option<i64>) -> io::Result<Option<File>> {
    let Some(limit) = limit.filter(|l| *l > 0) else {
        return Ok(None);
    };
    let vm = own_dir("pids").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "no pids cgroup controller in this VM: --pids-limit cannot be honoured",
        )
    })?;
    let dir = vm.join("container");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("pids.max"), limit.to_string())?;
    fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_oom_kill_count_of_both_versions() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        let v2 = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kills(v1), 2);
        assert_eq!(parse_oom_kills(v2), 1);
        assert_eq!(parse_oom_kills(""), 0);
    }

    #[test]
    fn no_limit_needs_no_group() {
        assert!(pids_group(None).unwrap().is_none());
        assert!(pids_group(Some(0)).unwrap().is_none());
        assert!(pids_group(Some(-1)).unwrap().is_none());
    }
}
