//! `docker stats`, the guest's half: what the container's processes have used, read from
//! /proc as a guest agent on a real VM would. The VCH adds what vSphere knows (the VM's
//! memory and vCPUs: the limits). See docs/container-vm.md.

use super::top::{clock_ticks, processes};
use super::Reply;
use container_vm::ops::Sample;
use std::fs;

/// Proportional set size of `pid` in bytes (shared pages split between their users), or
/// its resident set when smaps_rollup is unavailable.
fn memory_of(pid: i32) -> u64 {
    if let Ok(s) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        if let Some(kb) = s
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        {
            return kb * 1024;
        }
    }
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page)
        .unwrap_or(0)
}

fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

pub fn take() -> Sample {
    let hz = clock_ticks();
    let procs = processes();
    let mut ticks = 0u64;
    let mut memory = 0u64;
    let mut pids = 0u64;
    for p in &procs {
        // pid 1 is the agent: only what it reaped for the container counts.
        ticks += p.cutime + p.cstime;
        if p.pid != 1 {
            ticks += p.utime + p.stime;
            memory += memory_of(p.pid);
            pids += 1;
        }
    }
    Sample {
        cpu_ns: ticks.saturating_mul(1_000_000_000) / hz,
        memory_bytes: memory,
        pids,
        clock_ns: monotonic_ns(),
        read: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    }
}

pub fn sample() -> Reply {
    match serde_json::to_value(take()) {
        Ok(v) => Reply::Ok(v),
        Err(e) => Reply::error(super::ErrorKind::Internal, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cpu_burnt_here() {
        let a = take();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let b = take();
        assert!(x > 0);
        assert!(b.clock_ns > a.clock_ns);
        // This test process is not pid 1, so its own CPU time counts.
        assert!(b.cpu_ns >= a.cpu_ns + 100_000_000, "{a:?} {b:?}");
        assert!(b.memory_bytes > 0 && b.pids > 0);
    }
}
