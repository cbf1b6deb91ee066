//! Confinement of the container's processes (the main process and every exec), at least
//! as strict as dockerd's defaults: a container is meant to be a VM, so its root must not
//! reach whatever runs the VM (in the simulator's sandbox, the host itself).
//!
//! Everything is prepared before the fork ([`Confinement::new`]: capability masks, the
//! compiled seccomp program) and applied between fork and exec ([`Confinement::apply`])
//! with raw syscalls only, in this order: bounding and ambient sets, descriptors; then,
//! after the identity change, the permitted/effective sets of a root process,
//! `no_new_privs` and the seccomp filters last (they still allow `execve`).

use container_vm::caps::cap_mask;
use container_vm::spec::Security;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Syscalls Docker's default profile refuses a container that lacks CAP_SYS_ADMIN and
/// friends (and a few it refuses to everyone): kernel modules, mounts and namespaces,
/// keyrings, BPF and perf, the kernel log, clocks, swap, reboot, handle-based opens (the
/// "shocker" escape), userfaultfd and io_uring. They fail with EPERM, as under Docker.
fn denied_syscalls() -> Vec<i64> {
    use libc::*;
    vec![
        SYS_acct,
        SYS_add_key,
        SYS_bpf,
        SYS_clock_adjtime,
        SYS_clock_settime,
        SYS_delete_module,
        SYS_finit_module,
        SYS_get_mempolicy,
        SYS_init_module,
        SYS_ioperm,
        SYS_iopl,
        SYS_kcmp,
        SYS_kexec_file_load,
        SYS_kexec_load,
        SYS_keyctl,
        SYS_lookup_dcookie,
        SYS_mbind,
        SYS_mount,
        SYS_mount_setattr,
        SYS_move_mount,
        SYS_open_tree,
        SYS_fsopen,
        SYS_fsconfig,
        SYS_fsmount,
        SYS_fspick,
        SYS_move_pages,
        SYS_name_to_handle_at,
        SYS_open_by_handle_at,
        SYS_nfsservctl,
        SYS_perf_event_open,
        SYS_pivot_root,
        SYS_quotactl,
        SYS_reboot,
        SYS_request_key,
        SYS_set_mempolicy,
        SYS_setns,
        SYS_settimeofday,
        SYS_swapon,
        SYS_swapoff,
        SYS_sysfs,
        SYS__sysctl,
        SYS_syslog,
        SYS_umount2,
        SYS_unshare,
        SYS_uselib,
        SYS_userfaultfd,
        SYS_ustat,
        SYS_vhangup,
        SYS_fanotify_init,
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
    ]
}

/// Namespace flags `clone` may not carry (Docker allows clone only without them).
const NAMESPACE_FLAGS: [i32; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// The default profile: the deny list above (EPERM), plus `clone` with a namespace flag.
fn eperm_filter() -> Result<BpfProgram, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied_syscalls().into_iter().map(|s| (s, vec![])).collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&f| {
            let flag = f as u64;
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .map_err(|e| e.to_string())?])
            .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    compile(rules, libc::EPERM)
}

/// `clone3` passes its flags in memory a filter cannot read: it fails with ENOSYS so that
/// libc falls back to `clone`, whose flags are checked (what Docker does too).
fn enosys_filter() -> Result<BpfProgram, String> {
    compile(
        [(libc::SYS_clone3, vec![])].into_iter().collect(),
        libc::ENOSYS,
    )
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, String> {
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        TargetArch::x86_64,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| format!("seccomp filter: {e}"))
}

/// What is applied to each of the container's processes between fork and exec.
pub struct Confinement {
    /// Capabilities the process may hold (bounding, permitted, effective).
    caps: u64,
    filters: Vec<BpfProgram>,
}

impl Confinement {
    /// Prepares the confinement `security` asks for; an impossible request is an error,
    /// never a weaker confinement.
    pub fn new(security: &Security) -> Result<Confinement, String> {
        let caps = cap_mask(&security.cap_add, &security.cap_drop)?;
        let filters = match security.seccomp.as_str() {
            "" | "default" => vec![eperm_filter()?, enosys_filter()?],
            other => return Err(format!("seccomp profile {other:?} is not supported")),
        };
        Ok(Confinement { caps, filters })
    }

    /// Applies the confinement to the calling process, which is about to `exec` as
    /// `uid`. Async-signal-safe: runs between fork and exec.
    ///
    /// # Safety
    /// Only raw syscalls on data prepared beforehand; call in a `pre_exec` hook before the
    /// identity change, which then clears the permitted set of a non-root user as the
    /// kernel does for any setuid away from root.
    pub unsafe fn apply_before_setuid(&self) -> std::io::Result<()> {
        let err = std::io::Error::last_os_error;
        for cap in 0..64u64 {
            if self.caps & (1 << cap) != 0 {
                continue;
            }
            // EINVAL past the kernel's last capability: the rest do not exist.
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                    break;
                }
                return Err(err());
            }
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
        {
            return Err(err());
        }
        // Only stdin/out/err cross into the container: the VM's devices (guestinfo,
        // serial ports) stay with the agent whatever descriptor flags they carry.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        Ok(())
    }

    /// `no_new_privs` and the seccomp filters: the last step before exec.
    ///
    /// # Safety
    /// As [`Confinement::apply_before_setuid`]; after the identity change.
    pub unsafe fn apply_last(&self) -> std::io::Result<()> {
        // A process that stayed root keeps the mask; one that became another user lost
        // its permitted set in setuid (no keepcaps), as under Docker.
        if libc::getuid() == 0 {
            self.set_root_caps()?;
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        for f in &self.filters {
            seccompiler::apply_filter(f).map_err(|_| std::io::Error::last_os_error())?;
        }
        Ok(())
    }
}

impl Confinement {
    unsafe fn set_root_caps(&self) -> std::io::Result<()> {
        // Permitted and effective from the mask, inheritable empty (as Docker 20.10+).
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const V3: u32 = 0x2008_0522;
        let header = Header {
            version: V3,
            pid: 0,
        };
        let lo = self.caps as u32;
        let hi = (self.caps >> 32) as u32;
        let data = [
            Data {
                effective: lo,
                permitted: lo,
                inheritable: 0,
            },
            Data {
                effective: hi,
                permitted: hi,
                inheritable: 0,
            },
        ];
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_and_unknown_profiles_are_refused() {
        let c = Confinement::new(&Security::default()).unwrap();
        assert_eq!(c.filters.len(), 2);
        assert!(c.filters.iter().all(|f| !f.is_empty()));
        let custom = Security {
            seccomp: "/tmp/profile.json".into(),
            ..Default::default()
        };
        assert!(Confinement::new(&custom).is_err());
    }
}
