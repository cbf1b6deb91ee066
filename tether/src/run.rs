//! Runs the container's process as pid 1's child: user and groups from the image's
//! /etc/passwd and /etc/group, environment, working directory, stdout/stderr captured to
//! the log port as json-file lines; reaps every zombie; forwards signals.

use crate::logport::LogWriter;
use container_vm::spec::ContainerSpec;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The main process, for signal forwarding from pid 1's handlers and the control channel.
pub static MAIN_PID: AtomicI32 = AtomicI32::new(0);
/// A signal for the main process that arrived before it existed (the control channel of
/// a parked clone is up before `Start`): delivered right after the spawn.
pub static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// `docker run --init` (see `ContainerSpec::init`): every signal is delivered.
pub static INIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `docker stop`/`kill` delivers `sig` to the main process. Under dockerd the
/// process is its pid namespace's init, and the kernel drops a signal to an init that has
/// no handler for it (SIGKILL and SIGSTOP always arrive). Here the tether is pid 1, so the
/// rule is applied by hand: a `sleep` ignores `docker stop` and is killed (137) after the
/// timeout, a shell with `trap ... TERM` gets its TERM, and `--init` forwards all.
fn reaches(pid: i32, sig: i32) -> bool {
    if INIT.load(Ordering::SeqCst) || sig == nix::libc::SIGKILL || sig == nix::libc::SIGSTOP {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|status| catches(&status, sig))
        // Unreadable: deliver rather than hang a stop for its whole timeout.
        .unwrap_or(true)
}

/// Whether the `SigCgt` mask of a `/proc/PID/status` text has `sig`.
pub fn catches(status: &str, sig: i32) -> bool {
    let Some(mask) = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
    else {
        return true;
    };
    (1..=64).contains(&sig) && mask & (1u64 << (sig - 1)) != 0
}

/// Signals the main process (as its pid 1 would be signalled, see [`reaches`]), or
/// keeps the signal until it exists.
pub fn signal_main(sig: i32) {
    let pid = MAIN_PID.load(Ordering::SeqCst);
    if pid > 0 {
        if reaches(pid, sig) {
            // SAFETY: plain kill(2).
            unsafe { nix::libc::kill(pid, sig) };
        }
        return;
    }
    PENDING_SIGNAL.store(sig, Ordering::SeqCst);
    // The process may have started in between: whoever swaps the signal out delivers it.
    let pid = MAIN_PID.load(Ordering::SeqCst);
    if pid > 0 {
        let s = PENDING_SIGNAL.swap(0, Ordering::SeqCst);
        if s > 0 {
            // SAFETY: plain kill(2).
            unsafe { nix::libc::kill(pid, s) };
        }
    }
}

/// Exit codes of processes pid 1 reaped for someone else (exec sessions): pid 1 reaps
/// every child with waitpid(-1), so an exec learns its exit code from here.
#[derive(Default)]
pub struct Exits {
    pub waiting: std::collections::HashMap<i32, std::sync::mpsc::Sender<i32>>,
    /// Reaped before its waiter registered.
    pub early: std::collections::HashMap<i32, i32>,
}

pub static EXITS: std::sync::LazyLock<Mutex<Exits>> =
    std::sync::LazyLock::new(|| Mutex::new(Exits::default()));

fn report_exit(pid: i32, code: i32) {
    if let Ok(mut e) = EXITS.lock() {
        match e.waiting.remove(&pid) {
            Some(tx) => {
                let _ = tx.send(code);
            }
            None => {
                e.early.insert(pid, code);
            }
        }
    }
}

extern "C" fn forward(sig: i32) {
    let pid = MAIN_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            nix::libc::kill(pid, sig);
        }
    }
}

fn install_forwarding() {
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        // SAFETY: the handler only reads an atomic and calls kill(2).
        let _ = unsafe { signal::sigaction(s, &action) };
    }
}

/// uid, gid and supplementary groups for `user` (`name`, `uid`, `name:group`, `uid:gid`).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

/// `group_add` (`--group-add`: names or ids) joins the supplementary groups; a name the
/// group file lacks is an error, as with dockerd.
pub fn resolve_user(
    user: &str,
    passwd: &str,
    group: &str,
    group_add: &[String],
) -> Result<Identity, String> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && (f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u)));
    let (uid, mut gid, home, name) = match (&entry, u.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse()
                .map_err(|_| format!("bad uid for user {u} in /etc/passwd"))?,
            f[3].parse()
                .map_err(|_| format!("bad gid for user {u} in /etc/passwd"))?,
            f[5].to_string(),
            f[0].to_string(),
        ),
        (None, Ok(n)) => (n, 0, "/".to_string(), String::new()),
        (None, Err(_)) => {
            return Err(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_id(group, g)?,
        };
    }
    let mut groups: Vec<u32> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4 && !name.is_empty() && f[3].split(',').any(|m| m == name))
        .filter_map(|f| f[2].parse().ok())
        .collect();
    groups.push(gid);
    for g in group_add {
        groups.push(match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_id(group, g)?,
        });
    }
    groups.sort_unstable();
    groups.dedup();
    Ok(Identity {
        uid,
        gid,
        groups,
        home,
    })
}

/// The id of group `name` in a group file.
fn group_id(group: &str, name: &str) -> Result<u32, String> {
    group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
        .ok_or_else(|| format!("unable to find group {name}: no matching entries in group file"))
}

/// The VM's memory limit applies to everything in it; when the container exceeds it,
/// the kernel must kill the container's process, never the agent that reports its exit.
pub fn protect_from_oom() {
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
}

/// How the process ended, as Docker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    pub code: i32,
    pub error: Option<String>,
    /// The kernel killed the process for exceeding the VM's memory.
    pub oom_killed: bool,
}

impl Exit {
    pub fn failed(code: i32, error: impl Into<String>) -> Exit {
        Exit {
            code,
            error: Some(error.into()),
            oom_killed: false,
        }
    }
}

fn pump(
    mut from: impl Read + Send + 'static,
    stream: &'static str,
    log: Arc<Mutex<LogWriter>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut l) = log.lock() {
                        l.write(stream, &buf[..n]);
                    }
                }
            }
        }
        if let Ok(mut l) = log.lock() {
            l.flush_partial(stream);
        }
    })
}

/// A ready-to-spawn command for `argv` in the container: user and groups, environment
/// (PATH defaulted), working directory (created), stdout/stderr piped, stdin closed.
pub fn prepare(
    argv: &[String],
    env_in: &[String],
    user: &str,
    workdir: &str,
    jail: &Arc<crate::gate::Jail>,
) -> Result<Command, Exit> {
    let Some(program) = argv.first() else {
        return Err(Exit::failed(127, "no command specified"));
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let id =
        resolve_user(user, &passwd, &group, &jail.group_add).map_err(|e| Exit::failed(126, e))?;
    let mut env: Vec<(String, String)> = env_in
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    let has = |env: &Vec<(String, String)>, k: &str| env.iter().any(|(ek, _)| ek == k);
    if !has(&env, "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if !has(&env, "HOSTNAME") {
        let h = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        env.push(("HOSTNAME".into(), h));
    }
    if !has(&env, "HOME") {
        env.push(("HOME".into(), id.home.clone()));
    }
    let workdir = if workdir.is_empty() {
        "/".to_string()
    } else {
        workdir.to_string()
    };
    // Docker creates a missing working directory.
    let _ = std::fs::create_dir_all(&workdir);
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (uid, gid, groups) = (id.uid, id.gid, id.groups.clone());
    let jail = jail.clone();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            jail.confinement.apply_before_setuid()?;
            if let Some(procs) = &jail.cgroup_procs {
                // "0" is the writer itself: into the container's pids group.
                if nix::libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(set) = &jail.cpus {
                nix::libc::sched_setaffinity(0, std::mem::size_of_val(set), set);
            }
            // A cgroup namespace rooted at the process's own group: /proc/self/cgroup
            // shows "/", the VM's groups and their limits are out of sight. Per process,
            // since namespaces are per thread and execs are forked from other threads.
            if nix::libc::unshare(nix::libc::CLONE_NEWCGROUP) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let gids: &[nix::libc::gid_t] = &groups;
            if nix::libc::setgroups(gids.len(), gids.as_ptr()) != 0
                || nix::libc::setgid(gid) != 0
                || nix::libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The agent is shielded from the OOM killer (see `protect_from_oom`); the
            // container's processes are not.
            let fd = nix::libc::open(c"/proc/self/oom_score_adj".as_ptr(), nix::libc::O_WRONLY);
            if fd >= 0 {
                nix::libc::write(fd, b"0".as_ptr().cast(), 1);
                nix::libc::close(fd);
            }
            // Docker's umask for the container, whatever the agent was started with.
            nix::libc::umask(0o022);
            // Pid 1's signal handlers must not leak into the process.
            for s in 1..32 {
                nix::libc::signal(s, nix::libc::SIG_DFL);
            }
            jail.confinement.apply_last()
        });
    }
    Ok(cmd)
}

/// Spawns a process besides the main one (an exec session, a health probe) and returns
/// it with the receiver of its exit code: pid 1 reaps every child with waitpid(-1), so the
/// code comes from there (see [`EXITS`]).
pub fn spawn_tracked(
    cmd: &mut Command,
) -> std::io::Result<(std::process::Child, std::sync::mpsc::Receiver<i32>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    // Hold the table while spawning so pid 1 cannot report the exit before we wait.
    let mut table = match EXITS.lock() {
        Ok(t) => t,
        Err(p) => p.into_inner(),
    };
    let child = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cmd.spawn()))
        .unwrap_or_else(|_| Err(std::io::Error::other("the process could not be started")))?;
    let pid = child.id() as i32;
    match table.early.remove(&pid) {
        Some(code) => {
            let _ = tx.send(code);
        }
        None => {
            table.waiting.insert(pid, tx);
        }
    }
    Ok((child, rx))
}

/// Finds `program` as execve would: a path as given, a bare name in `env`'s PATH. Looked
/// up before forking: std's spawn reaps a child whose exec failed, and pid 1's
/// waitpid(-1) may reap it first, which makes std panic.
pub fn find_program(program: &str, env: &[String]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let check = |p: &std::path::Path| -> std::io::Result<()> {
        let m = std::fs::metadata(p)?;
        if m.is_file() && m.permissions().mode() & 0o111 != 0 {
            Ok(())
        } else {
            Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
        }
    };
    if program.contains('/') {
        return check(std::path::Path::new(program));
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        if check(&std::path::Path::new(dir).join(program)).is_ok() {
            return Ok(());
        }
    }
    Err(std::io::Error::from(std::io::ErrorKind::NotFound))
}

/// Docker's exit code and message for a process that could not be started.
pub fn spawn_error(program: &str, e: &std::io::Error) -> Exit {
    let (code, msg) = match e.kind() {
        std::io::ErrorKind::NotFound => (
            127,
            format!("exec: \"{program}\": executable file not found in $PATH"),
        ),
        std::io::ErrorKind::PermissionDenied => {
            (126, format!("exec: \"{program}\": permission denied"))
        }
        _ => (126, format!("exec: \"{program}\": {e}")),
    };
    Exit::failed(code, msg)
}

/// Starts the process, waits for it (reaping orphans meanwhile), and returns its exit.
/// Also reports the pid through `on_start` once it runs.
pub fn run(
    spec: &ContainerSpec,
    jail: &Arc<crate::gate::Jail>,
    oom: Option<&crate::cgroups::OomCounter>,
    log: Arc<Mutex<LogWriter>>,
    on_start: impl FnOnce(u32),
) -> Exit {
    if spec.hold {
        return hold(spec, oom, on_start);
    }
    let mut cmd = match prepare(&spec.cmd, &spec.env, &spec.user, &spec.workdir, jail) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let program = spec.cmd.first().cloned().unwrap_or_default();
    let wants = crate::stdio::Wants {
        tty: spec.tty,
        stdin: spec.open_stdin,
        size: spec.console_size,
    };
    let tty_output = match crate::stdio::plumb(0, wants) {
        Ok(p) => p.install(&mut cmd),
        Err(e) => return Exit::failed(125, format!("cannot set up the container's stdio: {e}")),
    };
    let ooms_before = oom.map(|o| o.count()).unwrap_or(0);
    let spawned = cmd.spawn();
    // The command holds the parent's copies of the terminal: they must go, or the
    // terminal's output never ends.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            crate::stdio::unregister(0);
            return spawn_error(&program, &e);
        }
    };
    let pid = child.id() as i32;
    MAIN_PID.store(pid, Ordering::SeqCst);
    INIT.store(spec.init, Ordering::SeqCst);
    let pending = PENDING_SIGNAL.swap(0, Ordering::SeqCst);
    if pending > 0 && reaches(pid, pending) {
        // SAFETY: plain kill(2) of our child.
        unsafe { nix::libc::kill(pid, pending) };
    }
    install_forwarding();
    on_start(pid as u32);
    if let Ok(mut l) = log.lock() {
        l.set_tty(tty_output.is_some());
    }
    let out = match tty_output {
        // A TTY has one output stream, which Docker reports as stdout.
        Some(t) => Some(pump(t, "stdout", log.clone())),
        None => child.stdout.take().map(|s| pump(s, "stdout", log.clone())),
    };
    let err = child.stderr.take().map(|s| pump(s, "stderr", log.clone()));
    let code = wait_main(pid);
    end_container();
    crate::stdio::unregister(0);
    for t in [out, err].into_iter().flatten() {
        let _ = t.join();
    }
    // Killed (9) while the VM's OOM killer struck: the memory limit did it.
    let oom_killed = code == 128 + 9 && oom.is_some_and(|o| o.count() > ooms_before);
    Exit {
        code,
        error: None,
        oom_killed,
    }
}

/// A build step's container (`ContainerSpec::hold`): the main process is a forked copy of
/// the tether that only waits for a signal, so the container stays up, with nothing of
/// the image running, while the builder execs the step's command into it. It is stopped
/// like any main process (SIGKILL after the stop timeout; the builder removes with force).
fn hold(
    spec: &ContainerSpec,
    oom: Option<&crate::cgroups::OomCounter>,
    on_start: impl FnOnce(u32),
) -> Exit {
    // The working directory exists in the step's container as it would for a command.
    if !spec.workdir.is_empty() {
        let _ = std::fs::create_dir_all(&spec.workdir);
    }
    // SAFETY: the child calls only async-signal-safe functions (pause) and never returns.
    let pid = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // Default dispositions: a TERM that reaches it (see `reaches`) ends it.
            for sig in [
                Signal::SIGTERM,
                Signal::SIGINT,
                Signal::SIGHUP,
                Signal::SIGQUIT,
            ] {
                // SAFETY: restoring the default action is async-signal-safe.
                let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
            }
            loop {
                nix::unistd::pause();
            }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child.as_raw(),
        Err(e) => return Exit::failed(125, format!("cannot start the build step: {e}")),
    };
    MAIN_PID.store(pid, Ordering::SeqCst);
    let pending = PENDING_SIGNAL.swap(0, Ordering::SeqCst);
    if pending > 0 && reaches(pid, pending) {
        // SAFETY: plain kill(2) of our child.
        unsafe { nix::libc::kill(pid, pending) };
    }
    install_forwarding();
    on_start(pid as u32);
    let ooms_before = oom.map(|o| o.count()).unwrap_or(0);
    let code = wait_main(pid);
    end_container();
    let oom_killed = code == 128 + 9 && oom.is_some_and(|o| o.count() > ooms_before);
    Exit {
        code,
        error: None,
        oom_killed,
    }
}

/// Waits for the main process, reporting the exits of exec'd processes meanwhile.
fn wait_main(pid: i32) -> i32 {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == pid => break c,
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => break 128 + s as i32,
            Ok(WaitStatus::Exited(p, c)) => report_exit(p.as_raw(), c),
            Ok(WaitStatus::Signaled(p, s, _)) => report_exit(p.as_raw(), 128 + s as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(_) => break 255,
        }
    }
}

/// The container ends with its main process: whatever it left behind is stopped.
fn end_container() {
    MAIN_PID.store(0, Ordering::SeqCst);
    let _ = signal::kill(Pid::from_raw(-1), Signal::SIGKILL);
    while let Ok(s) = waitpid(Pid::from_raw(-1), None) {
        if matches!(s, WaitStatus::StillAlive) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n";

    #[test]
    fn caught_signals_are_read_from_the_sigcgt_mask() {
        // A shell with `trap ... TERM INT`: bits 15 and 2.
        let status = "Name:\tsh\nSigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\n";
        assert!(catches(status, 15) && catches(status, 2));
        assert!(
            !catches(status, 1) && !catches(status, 3),
            "ignored is not caught"
        );
        assert!(!catches("SigCgt:\t0000000000000000\n", 15));
        assert!(catches("no mask here", 15), "unknown: delivered");
    }

    #[test]
    fn resolves_names_ids_and_groups() {
        assert_eq!(resolve_user("", PASSWD, GROUP, &[]).unwrap().uid, 0);
        let app = resolve_user("app", PASSWD, GROUP, &[]).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.home.as_str()),
            (1000, 1000, "/home/app")
        );
        assert_eq!(app.groups, vec![50, 1000]);
        let n = resolve_user("nobody:staff", PASSWD, GROUP, &[]).unwrap();
        assert_eq!((n.uid, n.gid), (65534, 50));
        assert_eq!(
            resolve_user("4242:4343", PASSWD, GROUP, &[]).unwrap().gid,
            4343
        );
        assert!(resolve_user("ghost", PASSWD, GROUP, &[])
            .unwrap_err()
            .contains("unable to find user ghost"));
        assert!(resolve_user("app:ghosts", PASSWD, GROUP, &[]).is_err());
        // --group-add: by name or id, on top of the user's own groups.
        let extra = ["nogroup".to_string(), "777".to_string()];
        let app = resolve_user("app", PASSWD, GROUP, &extra).unwrap();
        assert_eq!(app.groups, vec![50, 777, 1000, 65534]);
        let e = resolve_user("app", PASSWD, GROUP, &["ghosts".to_string()]).unwrap_err();
        assert!(e.contains("unable to find group ghosts"), "{e}");
    }
}
