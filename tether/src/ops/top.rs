//! `docker top`: the container's processes as `ps -ef` prints them, read from /proc. The
//! tether itself (pid 1, the guest agent) is not a container process and is left out.

use super::{ErrorKind, Reply};
use std::fs;

/// dockerd's default columns (`ps -ef`).
pub const TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];

/// The fields of /proc/<pid>/stat that top and stats need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcStat {
    pub pid: i32,
    pub comm: String,
    pub ppid: i32,
    pub tty_nr: i64,
    /// Clock ticks.
    pub utime: u64,
    pub stime: u64,
    pub cutime: u64,
    pub cstime: u64,
    /// Clock ticks after boot.
    pub starttime: u64,
}

/// Parses /proc/<pid>/stat. The command name may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let n = |i: usize| rest.get(i).and_then(|v| v.parse::<i64>().ok());
    Some(ProcStat {
        pid,
        comm,
        ppid: n(1)? as i32,
        tty_nr: n(4)?,
        utime: n(11)? as u64,
        stime: n(12)? as u64,
        cutime: n(13)? as u64,
        cstime: n(14)? as u64,
        starttime: n(19)? as u64,
    })
}

/// Every process in this pid namespace (the container VM), pid 1 included.
pub fn processes() -> Vec<ProcStat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<ProcStat> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

pub fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as u64
}

/// `ps`'s TTY column from `tty_nr`.
fn tty_name(tty_nr: i64) -> String {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        0 => "?".into(),
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => "?".into(),
    }
}

/// `ps`'s TIME column: `[DD-]HH:MM:SS` of CPU time.
fn cpu_time(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// The user name of `uid` in the container's /etc/passwd, or the number.
fn user_name(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
        })
        .next()
        .unwrap_or_else(|| uid.to_string())
}

fn effective_uid(pid: i32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn boot_time() -> Option<i64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn uptime_secs() -> f64 {
    fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// (device, inode) of a process's executable; /proc's exe link opens it even when its
/// path lies outside the container's root.
fn exe_id(pid: i32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((m.dev(), m.ino()))
}

pub fn top() -> Reply {
    let procs = processes();
    if procs.is_empty() {
        return Reply::error(ErrorKind::Internal, "cannot read /proc in the container");
    }
    let hz = clock_ticks();
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let btime = boot_time().unwrap_or(0);
    let uptime = uptime_secs();
    let now = chrono::Utc::now();
    // The tether's own forks that have not exec'd the container's program yet are agent
    // processes too (same executable as pid 1).
    let agent = exe_id(1);
    let rows: Vec<Vec<String>> = procs
        .iter()
        .filter(|p| p.pid != 1 && (agent.is_none() || exe_id(p.pid) != agent))
        .map(|p| {
            let cpu_secs = (p.utime + p.stime) / hz;
            let started_secs = p.starttime as f64 / hz as f64;
            let elapsed = (uptime - started_secs).max(0.0);
            // ps's C: CPU time over lifetime, in percent.
            let c = if elapsed > 0.0 {
                (((p.utime + p.stime) as f64 / hz as f64) * 100.0 / elapsed) as u64
            } else {
                0
            };
            let start =
                chrono::DateTime::from_timestamp(btime + started_secs as i64, 0).unwrap_or(now);
            let stime = if start.date_naive() == now.date_naive() {
                start.format("%H:%M").to_string()
            } else {
                start.format("%b%d").to_string()
            };
            let cmdline = fs::read(format!("/proc/{}/cmdline", p.pid)).unwrap_or_default();
            let cmd = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            let cmd = if cmd.is_empty() {
                format!("[{}]", p.comm)
            } else {
                cmd
            };
            vec![
                effective_uid(p.pid)
                    .map(|u| user_name(&passwd, u))
                    .unwrap_or_else(|| "?".into()),
                p.pid.to_string(),
                p.ppid.to_string(),
                c.to_string(),
                stime,
                tty_name(p.tty_nr),
                cpu_time(cpu_secs),
                cmd,
            ]
        })
        .collect();
    let table = container_vm::ops::ProcessTable {
        titles: TITLES.iter().map(|t| t.to_string()).collect(),
        processes: rows,
    };
    match serde_json::to_value(table) {
        Ok(v) => Reply::Ok(v),
        Err(e) => Reply::Error {
            kind: container_vm::ops::ErrorKind::Internal,
            message: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        let s = "42 (a) b (c)) S 1 42 42 34816 42 4194560 100 0 0 0 7 3 2 1 20 0 1 0 12345 1000 50 18446744073709551615";
        let p = parse_stat(s).unwrap();
        assert_eq!(p.pid, 42);
        assert_eq!(p.comm, "a) b (c)");
        assert_eq!(p.ppid, 1);
        assert_eq!(tty_name(p.tty_nr), "pts/0");
        assert_eq!((p.utime, p.stime, p.cutime, p.cstime), (7, 3, 2, 1));
        assert_eq!(p.starttime, 12345);
    }

    #[test]
    fn columns() {
        assert_eq!(cpu_time(3661), "01:01:01");
        assert_eq!(cpu_time(90061), "1-01:01:01");
        assert_eq!(tty_name(0), "?");
        assert_eq!(
            user_name("root:x:0:0::/root:/bin/sh\nwww:x:33:33::/:/bin/false", 33),
            "www"
        );
        assert_eq!(user_name("", 1000), "1000");
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        assert!(processes().iter().any(|p| p.pid == me));
    }
}
