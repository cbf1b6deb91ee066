//! The sandbox's NIC wiring against the real kernel: a process in its own network
//! namespace (as a VM's init is) gets `eth0` with the NIC's MAC, the port group's bridge
//! and the host end live in the simulator's namespace, not the host's, and dropping the
//! handle (power-off) leaves no veth behind.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use vcenter_sim::sandbox::net::{bridge_name, NicPlan, SimNet};

/// The one way a test here declines to run: under `CI=true` it fails with `why` (a green
/// CI that tested nothing would hide it); elsewhere it prints "SKIPPED <test>: <why>" and
/// the caller returns.
fn cannot_run(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let ci = std::env::var("CI").as_deref() == Ok("true");
    assert!(!ci, "{test} cannot run under CI=true: {why}");
    eprintln!("SKIPPED {test}: {why}");
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        cannot_run("network namespaces and veth need root");
    }
    root
}

/// Links of a namespace, from /proc/<pid>/net/dev.
fn links_of(pid: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect()
}

/// The MAC of `ifname` inside the network namespace of `pid`, read from a thread that
/// joins that namespace (the test process itself stays put).
fn mac_in(pid: u32, ifname: &'static str) -> String {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
        // SAFETY: setns on a namespace descriptor, for this thread only.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        // SAFETY: a plain datagram socket for the interface ioctl.
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        assert!(s >= 0);
        // SAFETY: zeroed ifreq is valid; SIOCGIFHWADDR fills ifru_hwaddr.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, c) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
            *d = c as libc::c_char;
        }
        let r = unsafe { libc::ioctl(s, libc::SIOCGIFHWADDR, &mut req) };
        unsafe { libc::close(s) };
        assert_eq!(r, 0, "{ifname} is missing in the guest namespace");
        let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
        data[..6]
            .iter()
            .map(|b| format!("{:02x}", *b as u8))
            .collect::<Vec<_>>()
            .join(":")
    })
    .join()
    .unwrap()
}

#[test]
fn nic_becomes_eth0_in_the_guest_and_a_bridge_port_in_the_simulator_namespace() {
    if !root() {
        return;
    }
    let host_links_before = links_of("self");
    let net = SimNet::new().unwrap();
    // A stand-in for a VM's init: a process in a fresh network namespace.
    let mut guest = std::process::Command::new("sleep");
    guest.arg("30");
    // SAFETY: unshare is async-signal-safe.
    unsafe {
        guest.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut guest = guest.spawn().unwrap();
    let pid = guest.id();
    let nics = vec![
        NicPlan {
            name: "eth0".into(),
            mac: "00:50:56:3a:bc:01".into(),
            portgroup: "VM Network".into(),
        },
        NicPlan {
            name: "eth1".into(),
            mac: "00:50:56:3a:bc:02".into(),
            portgroup: "vch-bridge".into(),
        },
    ];
    let handle = net.attach(pid, &nics).unwrap();

    assert_eq!(mac_in(pid, "eth0"), "00:50:56:3a:bc:01");
    assert_eq!(mac_in(pid, "eth1"), "00:50:56:3a:bc:02");
    let sim = net.links();
    assert!(sim.contains(&bridge_name("VM Network")), "{sim:?}");
    assert!(sim.contains(&"vch-bridge".to_string()), "{sim:?}");
    for h in handle.host_ends() {
        assert!(sim.contains(h), "host end {h} not in {sim:?}");
    }
    // Nothing of it in the host's namespace.
    assert_eq!(links_of("self"), host_links_before);

    // Power-off: the handle goes, and with it both ends of every pair.
    let host_ends = handle.host_ends().to_vec();
    drop(handle);
    let sim = net.links();
    for h in &host_ends {
        assert!(!sim.contains(h), "{h} left behind: {sim:?}");
    }
    let guest_links = links_of(&pid.to_string());
    assert!(
        !guest_links.iter().any(|l| l.starts_with("eth")),
        "{guest_links:?}"
    );
    // The bridges stay for the next VM, in the simulator's namespace only.
    assert!(sim.contains(&"vch-bridge".to_string()));

    // A second VM reuses the bridge.
    let again = net.attach(pid, &nics[1..]).unwrap();
    assert_eq!(mac_in(pid, "eth1"), "00:50:56:3a:bc:02");
    drop(again);

    let _ = guest.kill();
    let _ = guest.wait();
    assert_eq!(links_of("self"), host_links_before);
}
