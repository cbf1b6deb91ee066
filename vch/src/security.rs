//! What a container's HostConfig asks of its confinement and of the VM's kernel, turned
//! into the tether's [`Security`] spec, or refused with a 400 naming the option.
//!
//! A container is a VM, so its root must not reach what runs the VM: dockerd's default
//! confinement is the floor (the tether applies it), and options are honoured only where
//! the VM boundary still holds. Everything else is refused by name, never ignored.

use container_vm::caps::cap_number;
use container_vm::spec::Security;
use docker_api::models::{HostConfig, HostConfigCgroupnsModeEnum, HostConfigIsolationEnum};
use docker_api::Error;

/// Capabilities a container may add: they act within its own VM (its network, its
/// processes, its files). The others (SYS_ADMIN, SYS_MODULE, SYS_RAWIO, SYS_TIME,
/// SYSLOG, DAC_READ_SEARCH, BPF, PERFMON, ...) reach the kernel that runs the VM in the
/// process sandbox, so they are refused like `--privileged`.
const ADDABLE_CAPS: [&str; 13] = [
    "NET_ADMIN",
    "NET_BROADCAST",
    "SYS_PTRACE",
    "SYS_NICE",
    "SYS_RESOURCE",
    "IPC_LOCK",
    "IPC_OWNER",
    "LEASE",
    "LINUX_IMMUTABLE",
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
];

fn refuse(option: &str, why: &str) -> Error {
    Error::invalid(format!("{option} is not supported by this VCH: {why}"))
}

/// Capability names as Docker accepts them, checked; `ALL` passes through.
fn check_caps(names: &[String], option: &str) -> Result<(), Error> {
    for n in names {
        if !n.eq_ignore_ascii_case("ALL") && cap_number(n).is_none() {
            return Err(Error::invalid(format!(
                "{option}: unknown capability: {n:?}"
            )));
        }
    }
    Ok(())
}

fn check_cap_add(names: &[String]) -> Result<(), Error> {
    check_caps(names, "--cap-add")?;
    for n in names {
        // `cap_number` knows every spelling (CAP_ prefix, any case); ALL has no number.
        let allowed = cap_number(n).is_some_and(|c| {
            container_vm::caps::DEFAULT_CAPS & (1 << c) != 0
                || ADDABLE_CAPS.contains(&container_vm::caps::CAP_NAMES[c as usize])
        });
        if !allowed {
            return Err(refuse(
                &format!("--cap-add {n}"),
                "it would reach the host that runs the container VMs",
            ));
        }
    }
    Ok(())
}

/// `--security-opt` entries: only `no-new-privileges`, which container VMs always have.
fn check_security_opts(opts: &[String]) -> Result<(), Error> {
    for o in opts {
        let (key, value) = o
            .split_once(['=', ':'])
            .map(|(k, v)| (k, Some(v)))
            .unwrap_or((o.as_str(), None));
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => {}
            ("no-new-privileges", Some(_)) => {
                return Err(refuse(
                    &format!("--security-opt {o}"),
                    "container processes always run with no-new-privileges",
                ))
            }
            ("seccomp", _) => {
                return Err(refuse(
                    "--security-opt seccomp",
                    "container VMs run with the default seccomp profile only",
                ))
            }
            _ => return Err(refuse(&format!("--security-opt {key}"), "unknown to it")),
        }
    }
    Ok(())
}

fn set<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn text(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn nonzero(v: Option<i64>) -> bool {
    v.unwrap_or(0) != 0
}

/// Checks every confinement and kernel option of `h` and returns what the tether is to
/// apply. The first option that cannot be honoured is the error.
pub fn from_host_config(h: &HostConfig) -> Result<Security, Error> {
    let no_vm_meaning = "a container VM has its own kernel and namespaces";
    if h.privileged == Some(true) {
        return Err(refuse(
            "--privileged",
            "it would give the container the host that runs the container VMs",
        ));
    }
    let refusals: [(bool, &str, &str); 22] = [
        (!text(&h.pid_mode).is_empty(), "--pid", no_vm_meaning),
        (
            !matches!(text(&h.ipc_mode), "" | "private" | "shareable"),
            "--ipc",
            no_vm_meaning,
        ),
        (!text(&h.uts_mode).is_empty(), "--uts", no_vm_meaning),
        (
            !matches!(text(&h.userns_mode), "" | "host"),
            "--userns",
            no_vm_meaning,
        ),
        (
            h.cgroupns_mode == Some(HostConfigCgroupnsModeEnum::HOST),
            "--cgroupns host",
            no_vm_meaning,
        ),
        (
            set(&h.devices),
            "--device",
            "host devices cannot be passed to container VMs",
        ),
        (
            set(&h.device_cgroup_rules),
            "--device-cgroup-rule",
            "host devices cannot be passed to container VMs",
        ),
        (
            set(&h.device_requests),
            "--gpus",
            "host devices cannot be passed to container VMs",
        ),
        (
            h.sysctls.as_ref().is_some_and(|s| !s.is_empty()),
            "--sysctl",
            "kernel settings of container VMs are fixed",
        ),
        (
            h.oom_kill_disable == Some(true),
            "--oom-kill-disable",
            "a container VM's memory limit always holds",
        ),
        (
            nonzero(h.oom_score_adj),
            "--oom-score-adj",
            "not implemented for container VMs",
        ),
        (
            !text(&h.cgroup_parent).is_empty(),
            "--cgroup-parent",
            "container VMs are placed in the VCH resource pool",
        ),
        (
            !text(&h.runtime).is_empty(),
            "--runtime",
            "every container runs as a VM",
        ),
        (
            !matches!(
                h.isolation,
                None | Some(HostConfigIsolationEnum::EMPTY | HostConfigIsolationEnum::DEFAULT)
            ),
            "--isolation",
            "every container is isolated as a VM",
        ),
        (
            set(&h.ulimits),
            "--ulimit",
            "not implemented for container VMs",
        ),
        (
            nonzero(h.shm_size),
            "--shm-size",
            "not implemented for container VMs",
        ),
        (
            h.storage_opt.as_ref().is_some_and(|s| !s.is_empty()),
            "--storage-opt",
            "not implemented for container VMs",
        ),
        (
            h.masked_paths.is_some() || h.readonly_paths.is_some(),
            "--security-opt systempaths",
            "/proc and /sys are always masked as dockerd masks them",
        ),
        (
            nonzero(h.cpu_shares)
                || nonzero(h.cpu_period)
                || nonzero(h.cpu_quota)
                || nonzero(h.cpu_realtime_period)
                || nonzero(h.cpu_realtime_runtime)
                || nonzero(h.cpu_count)
                || nonzero(h.cpu_percent),
            "--cpu-shares/--cpu-period/--cpu-quota",
            "size a container VM with --cpus",
        ),
        (
            !text(&h.cpuset_cpus).is_empty() || !text(&h.cpuset_mems).is_empty(),
            "--cpuset-cpus/--cpuset-mems",
            "vSphere places the container VMs",
        ),
        (
            h.blkio_weight.unwrap_or(0) != 0
                || set(&h.blkio_weight_device)
                || set(&h.blkio_device_read_bps)
                || set(&h.blkio_device_write_bps)
                || set(&h.blkio_device_read_iops)
                || set(&h.blkio_device_write_iops)
                || nonzero(h.io_maximum_iops)
                || nonzero(h.io_maximum_bandwidth),
            "--blkio-weight/--device-*-bps/--device-*-iops",
            "not implemented for container VMs",
        ),
        (
            nonzero(h.memory_reservation) || nonzero(h.kernel_memory_tcp),
            "--memory-reservation/--kernel-memory-tcp",
            "a container VM's memory is a fixed size (-m)",
        ),
    ];
    if let Some((_, option, why)) = refusals.iter().find(|(bad, _, _)| *bad) {
        return Err(refuse(option, why));
    }
    check_memory_swap(h)?;
    let cap_add = h.cap_add.clone().unwrap_or_default();
    let cap_drop = h.cap_drop.clone().unwrap_or_default();
    check_cap_add(&cap_add)?;
    check_caps(&cap_drop, "--cap-drop")?;
    check_security_opts(h.security_opt.as_deref().unwrap_or_default())?;
    Ok(Security {
        cap_add,
        cap_drop,
        seccomp: String::new(),
        readonly_rootfs: h.readonly_rootfs == Some(true),
        pids_limit: h.pids_limit.filter(|l| *l > 0),
    })
}

/// A container VM has no swap: any `--memory-swap` at or above `--memory` holds by itself
/// (memory + swap never exceeds memory); dockerd's own checks apply first.
fn check_memory_swap(h: &HostConfig) -> Result<(), Error> {
    let memory = h.memory.unwrap_or(0);
    match h.memory_swap.unwrap_or(0) {
        0 | -1 => Ok(()),
        _ if memory == 0 => Err(Error::invalid(
            "You should always set the Memory limit when using Memoryswap limit",
        )),
        swap if swap < memory => Err(Error::invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut HostConfig)) -> Result<Security, Error> {
        let mut h = HostConfig::default();
        f(&mut h);
        from_host_config(&h)
    }

    fn refused(r: Result<Security, Error>, option: &str) {
        let e = r.expect_err("refused");
        assert_eq!(e.status().as_u16(), 400);
        assert!(e.to_string().contains(option), "{e} names {option}");
    }

    #[test]
    fn defaults_pass_as_dockerd_defaults() {
        let s = with(|h| {
            h.ipc_mode = Some("private".into());
            h.cgroupns_mode = Some(HostConfigCgroupnsModeEnum::PRIVATE);
            h.devices = Some(vec![]);
            h.memory_swap = Some(-1);
        })
        .unwrap();
        assert_eq!(s, Security::default());
    }

    #[test]
    fn honoured_options_reach_the_spec() {
        let s = with(|h| {
            h.cap_add = Some(vec!["NET_ADMIN".into()]);
            h.cap_drop = Some(vec!["ALL".into()]);
            h.readonly_rootfs = Some(true);
            h.pids_limit = Some(64);
            h.security_opt = Some(vec!["no-new-privileges".into()]);
            h.memory = Some(64 << 20);
            h.memory_swap = Some(64 << 20);
        })
        .unwrap();
        assert_eq!(s.cap_add, ["NET_ADMIN"]);
        assert_eq!(s.cap_drop, ["ALL"]);
        assert!(s.readonly_rootfs);
        assert_eq!(s.pids_limit, Some(64));
        assert_eq!(with(|h| h.pids_limit = Some(-1)).unwrap().pids_limit, None);
    }

    #[test]
    fn what_would_reach_the_host_is_refused_by_name() {
        refused(with(|h| h.privileged = Some(true)), "--privileged");
        refused(
            with(|h| h.cap_add = Some(vec!["SYS_ADMIN".into()])),
            "--cap-add SYS_ADMIN",
        );
        refused(
            with(|h| h.cap_add = Some(vec!["ALL".into()])),
            "--cap-add ALL",
        );
        refused(
            with(|h| h.cap_add = Some(vec!["BOGUS".into()])),
            "--cap-add",
        );
        refused(
            with(|h| h.security_opt = Some(vec!["seccomp=unconfined".into()])),
            "seccomp",
        );
        refused(
            with(|h| h.security_opt = Some(vec!["apparmor=unconfined".into()])),
            "apparmor",
        );
        refused(
            with(|h| h.security_opt = Some(vec!["no-new-privileges=false".into()])),
            "no-new-privileges",
        );
        refused(
            with(|h| {
                h.devices = Some(vec![Default::default()]);
            }),
            "--device",
        );
        refused(with(|h| h.pid_mode = Some("host".into())), "--pid");
        refused(with(|h| h.ipc_mode = Some("host".into())), "--ipc");
        refused(
            with(|h| h.oom_kill_disable = Some(true)),
            "--oom-kill-disable",
        );
        refused(
            with(|h| h.cgroupns_mode = Some(HostConfigCgroupnsModeEnum::HOST)),
            "--cgroupns",
        );
        refused(with(|h| h.cpu_shares = Some(512)), "--cpu-shares");
    }

    #[test]
    fn memory_swap_follows_dockerd() {
        assert!(with(|h| h.memory_swap = Some(1 << 30))
            .unwrap_err()
            .to_string()
            .contains("always set the Memory limit"));
        assert!(with(|h| {
            h.memory = Some(64 << 20);
            h.memory_swap = Some(32 << 20);
        })
        .unwrap_err()
        .to_string()
        .contains("larger than memory limit"));
        assert!(with(|h| {
            h.memory = Some(64 << 20);
            h.memory_swap = Some(128 << 20);
        })
        .is_ok());
    }
}
