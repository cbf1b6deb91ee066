//! The standalone tether picks its platform: without `VCSIM_HW` it tries the VMware
//! backdoor, and on a machine that is not a VMware VM it exits 125 saying so, without
//! executing the backdoor's `in` (which would kill it with SIGSEGV).

mod common;

#[test]
fn outside_the_simulator_and_vmware_the_tether_says_why_and_exits_125() {
    let id = tether::backdoor::Identity::read();
    if id.is_vmware() {
        // There the tether would open the real backdoor and idle as a template.
        return common::cannot_run(&format!("this machine is a VMware VM ({id})"));
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .env_clear()
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("VCSIM_HW unset"), "{err}");
    assert!(err.contains("not a VMware VM"), "{err}");
}
