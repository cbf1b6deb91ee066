//! tether: pid 1 of every container VM. It reads the container spec from guestinfo,
//! assembles the root filesystem from the layer and scratch disks, runs the process,
//! streams its output to the log serial port, reports state back through guestinfo,
//! and powers the VM off when the process ends. See docs/container-vm.md.

pub mod backdoor;
pub mod cgroups;
pub mod confine;
pub mod control;
pub mod esx;
pub mod gate;
pub mod health;
pub mod logport;
pub mod net;
pub mod ops;
pub mod outbox;
pub mod platform;
pub mod report;
pub mod rootfs;
pub mod run;
pub mod spec;
pub mod stdio;
pub mod vmfork;
pub mod vmview;

use container_vm::guestinfo as keys;
use container_vm::state::ContainerState;
use logport::LogWriter;
use platform::{Platform, SimPlatform};
use std::sync::{Arc, Mutex};

fn set_state(p: &mut dyn Platform, pairs: &[(&str, String)]) {
    for (k, v) in pairs {
        if let Err(e) = p.guestinfo_set(k, v) {
            eprintln!("tether: cannot report {k}: {e}");
        }
    }
}

/// A template formats the scratch disk its clones inherit (so none of them has to), then
/// says it is ready.
fn prepare_template(p: &mut dyn Platform) {
    let scratch = p.guestinfo_get(keys::TEMPLATE_SCRATCH_KEY).ok().flatten();
    let r = match scratch {
        Some(id) => rootfs::find(p.disks(), id.trim())
            .and_then(rootfs::prepare_scratch)
            .map_err(|e| e.to_string()),
        None => Ok(()),
    };
    match r {
        Ok(()) => set_state(
            p,
            &[(keys::STATE_KEY, ContainerState::TemplateReady.to_string())],
        ),
        Err(e) => set_state(
            p,
            &[(keys::ERROR_KEY, format!("template scratch disk: {e}"))],
        ),
    }
}

/// The agent proper; returns the exit code to power off with. `forked`: this VM is an
/// instant clone (see `vmfork`), not a cold boot.
fn agent(p: &mut dyn Platform, forked: bool) -> i32 {
    let spec = match spec::read(p) {
        Ok(Some(s)) => s,
        Ok(None) => {
            // A template VM: nothing to run until it is cloned. Idle like a booted guest.
            prepare_template(p);
            loop {
                nix::unistd::pause();
            }
        }
        Err(e) => {
            set_state(
                p,
                &[
                    (keys::STATE_KEY, ContainerState::Exited.to_string()),
                    (keys::ERROR_KEY, e.to_string()),
                    (keys::EXIT_CODE_KEY, "125".into()),
                ],
            );
            return 125;
        }
    };
    let log = Arc::new(Mutex::new(LogWriter::new(
        p.log_port().and_then(|f| f.try_clone().ok()),
    )));
    let fail = |p: &mut dyn Platform, log: &Arc<Mutex<LogWriter>>, code: i32, msg: String| {
        if let Ok(mut l) = log.lock() {
            l.write("stderr", format!("{msg}\n").as_bytes());
            l.exit(code, Some(&msg), false);
        }
        set_state(
            p,
            &[
                (keys::STATE_KEY, ContainerState::Exited.to_string()),
                (keys::EXIT_CODE_KEY, code.to_string()),
                (keys::ERROR_KEY, msg),
                (keys::FINISHED_KEY, logport::now()),
            ],
        );
        code
    };
    // The control channel first: a parked clone gets its go-ahead through it.
    let (start_tx, start_rx) = std::sync::mpsc::channel();
    if let Some(port) = p.take_control_port() {
        control::serve(port, spec.id.clone(), spec.env.clone(), Some(start_tx));
    } else {
        drop(start_tx);
    }
    let mut spec = spec;
    if forked && spec.parked {
        set_state(p, &[(keys::STATE_KEY, ContainerState::Created.to_string())]);
        if start_rx.recv().is_err() {
            return fail(
                p,
                &log,
                125,
                "a parked container VM needs its control channel (serial port 1)".into(),
            );
        }
        // The spec may have changed while the clone waited (`docker network connect`
        // before `start`, as Compose does): the one in the VM's configuration now counts.
        match spec::read(p) {
            Ok(Some(now)) if now.id == spec.id => spec = now,
            Ok(_) => {}
            Err(e) => return fail(p, &log, 125, e.to_string()),
        }
    }
    let (jail, oom) = match enter_container(&spec, p.disks()) {
        Ok((jail, oom)) => (Arc::new(jail), oom),
        Err(msg) => {
            gate::open(Err(msg.clone()));
            return fail(p, &log, 125, msg);
        }
    };
    gate::open(Ok(jail.clone()));
    let exit = run::run(&spec, &jail, oom.as_ref(), log.clone(), |pid| {
        set_state(
            &mut *p,
            &[
                (keys::STATE_KEY, ContainerState::Running.to_string()),
                (keys::PID_KEY, pid.to_string()),
                (keys::STARTED_KEY, logport::now()),
            ],
        );
        report::update(|s| s.pid = pid as i32);
        if let Some(check) = spec.health.clone() {
            health::spawn(
                check,
                spec.env.clone(),
                spec.user.clone(),
                spec.workdir.clone(),
            );
        }
    });
    if exit.oom_killed {
        set_state(p, &[(keys::OOM_KILLED_KEY, "true".into())]);
    }
    match &exit.error {
        Some(msg) => fail(p, &log, exit.code, msg.clone()),
        None => {
            if let Ok(mut l) = log.lock() {
                l.exit(exit.code, None, exit.oom_killed);
            }
            set_state(
                p,
                &[
                    (keys::STATE_KEY, ContainerState::Exited.to_string()),
                    (keys::EXIT_CODE_KEY, exit.code.to_string()),
                    (keys::FINISHED_KEY, logport::now()),
                ],
            );
            exit.code
        }
    }
}

/// Builds the container's world and moves pid 1 into it: root filesystem, cgroups
/// (opened while the VM's are visible), network, hostname. Returns how its processes are confined and
/// the VM's OOM counter; an error is the reason the container cannot start.
fn enter_container(
    spec: &container_vm::spec::ContainerSpec,
    disks: &[platform::Disk],
) -> Result<(gate::Jail, Option<cgroups::OomCounter>), String> {
    let confinement = confine::Confinement::new(&spec.security)
        .map_err(|e| format!("cannot confine the container: {e}"))?;
    let root = rootfs::assemble(spec, disks)
        .map_err(|e| format!("cannot set up the root filesystem: {e}"))?;
    let oom = cgroups::OomCounter::open();
    // The VM's size as the container sees it (a guest kernel's job; see `vmview`).
    if let Some(group) = vmview::MemoryGroup::open() {
        if let Err(e) = vmview::install_meminfo(&root, group) {
            eprintln!("tether: /proc/meminfo keeps the host's view: {e}");
        }
    }
    let cpus = vmview::vm_cpus().and_then(|n| vmview::cpu_set(n, &spec.id));
    let cgroup_procs = cgroups::pids_group(spec.security.pids_limit)
        .map_err(|e| format!("cannot apply the pids limit: {e}"))?;
    rootfs::pivot(&root).map_err(|e| format!("cannot enter the root filesystem: {e}"))?;
    if spec.security.readonly_rootfs {
        // `--read-only`: the root alone; /dev, /proc, /dev/shm and volumes stay writable.
        rootfs::remount_readonly(std::path::Path::new("/"))
            .map_err(|e| format!("cannot make the root filesystem read-only: {e}"))?;
    }
    net::configure(&spec.interfaces).map_err(|e| format!("cannot configure the network: {e}"))?;
    let hostname = if spec.hostname.is_empty() {
        spec.id.chars().take(12).collect()
    } else {
        spec.hostname.clone()
    };
    let _ = nix::unistd::sethostname(&hostname);
    run::protect_from_oom();
    Ok((
        gate::Jail {
            confinement,
            cgroup_procs,
            cpus,
            group_add: spec.group_add.clone(),
        },
        oom,
    ))
}

/// The tether's entry point (the `tether` binary's `main`): never returns.
pub fn init_main() -> ! {
    // A VM the simulator starts inherits the simulator's umask (077 inside `vch serve`);
    // container processes get runc's and dockerd's 022, as on a real VM's init.
    // SAFETY: umask only changes the process's file creation mask.
    unsafe {
        nix::libc::umask(0o022);
    }
    // One malloc arena: the agent's few threads allocate little, and an arena per thread
    // (glibc's default) costs every container VM a few hundred KiB of dirtied memory.
    // SAFETY: mallopt before any thread exists.
    #[cfg(target_env = "gnu")]
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
    let mut platform = match SimPlatform::from_env() {
        Ok(Some(p)) => p,
        // Not the simulator: a VMware VM, or a clear error (never returns).
        Ok(None) => esx::boot(),
        Err(e) => {
            eprintln!("tether: {e}");
            std::process::exit(125);
        }
    };
    // The simulator starts us in fresh namespaces; the pid namespace only takes effect
    // for children, so fork once: the child is pid 1, this process stands in for the VM
    // monitor, serves instant clones (see `vmfork`) and exits with pid 1.
    if nix::unistd::getpid().as_raw() != 1 {
        let fork_port = platform.take_fork_port();
        // SAFETY: single-threaded at this point.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                // If the monitor dies (power off), so does the whole VM.
                let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
                drop(fork_port);
                if let Err(e) = platform.join_cgroup() {
                    eprintln!("tether: cannot join the VM's cgroup: {e}");
                    std::process::exit(125);
                }
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                // The monitor keeps no device of the VM: clones must not inherit them.
                drop(platform);
                std::process::exit(vmfork::monitor(child, fork_port));
            }
            Err(e) => {
                eprintln!("tether: fork: {e}");
                std::process::exit(125);
            }
        }
    }
    let code = agent(&mut platform, false);
    std::process::exit(code);
}
