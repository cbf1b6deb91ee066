//! Linux capabilities by name, and Docker's default set: the VCH checks `--cap-add` and
//! `--cap-drop` against them (and refuses what the guest cannot honour), the tether turns
//! the spec's lists into the mask it applies (`spec::Security`).

/// Capability names, by number (`CAP_` omitted), up to CAP_CHECKPOINT_RESTORE.
pub const CAP_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// dockerd's default capability set (`CapEff: 00000000a80425fb` for a root process):
/// CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
/// SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
pub const DEFAULT_CAPS: u64 = 0xa804_25fb;

/// The number of a capability given as `NAME` or `CAP_NAME` (any case).
pub fn cap_number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAP_NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// The capability mask of a container: the default set with `add` and without `drop`
/// (Docker applies drops after adds; `ALL` in either means every capability).
pub fn cap_mask(add: &[String], drop: &[String]) -> Result<u64, String> {
    let all = (1u64 << CAP_NAMES.len()) - 1;
    let resolve = |names: &[String]| -> Result<u64, String> {
        names.iter().try_fold(0u64, |m, n| {
            if n.eq_ignore_ascii_case("ALL") {
                return Ok(all);
            }
            cap_number(n)
                .map(|c| m | (1 << c))
                .ok_or_else(|| format!("unknown capability: {n:?}"))
        })
    };
    Ok((DEFAULT_CAPS | resolve(add)?) & !resolve(drop)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_any_way_and_numbered_as_the_kernel_does() {
        assert_eq!(cap_number("CHOWN"), Some(0));
        assert_eq!(cap_number("cap_net_admin"), Some(12));
        assert_eq!(cap_number("Sys_Admin"), Some(21));
        assert_eq!(cap_number("CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(cap_number("NOPE"), None);
        for (i, n) in CAP_NAMES.iter().enumerate() {
            assert_eq!(cap_number(n), Some(i as u32));
        }
    }

    #[test]
    fn the_default_set_is_dockerds() {
        let names: Vec<&str> = (0..CAP_NAMES.len())
            .filter(|c| DEFAULT_CAPS & (1 << c) != 0)
            .map(|c| CAP_NAMES[c])
            .collect();
        assert_eq!(
            names,
            [
                "CHOWN",
                "DAC_OVERRIDE",
                "FOWNER",
                "FSETID",
                "KILL",
                "SETGID",
                "SETUID",
                "SETPCAP",
                "NET_BIND_SERVICE",
                "NET_RAW",
                "SYS_CHROOT",
                "MKNOD",
                "AUDIT_WRITE",
                "SETFCAP"
            ]
        );
    }

    #[test]
    fn masks_add_then_drop() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(cap_mask(&[], &[]).unwrap(), DEFAULT_CAPS);
        let m = cap_mask(&s(&["NET_ADMIN"]), &s(&["cap_mknod"])).unwrap();
        assert_eq!(m, (DEFAULT_CAPS | 1 << 12) & !(1 << 27));
        assert_eq!(cap_mask(&s(&["ALL"]), &s(&["all"])).unwrap(), 0);
        assert_eq!(cap_mask(&s(&["ALL"]), &[]).unwrap(), (1 << 41) - 1);
        assert!(cap_mask(&s(&["BOGUS"]), &[]).unwrap_err().contains("BOGUS"));
    }
}
