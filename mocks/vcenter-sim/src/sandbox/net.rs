//! Virtual Ethernet cards of powered-on VMs: each NIC is a veth pair. The host end is a
//! port of a Linux bridge named after the NIC's port group; the guest end is created
//! inside the VM's network namespace as `eth0`, `eth1`, ... (device order) with the
//! NIC's MAC address.
//!
//! The bridges live in a network namespace of the simulator's own (one per runtime,
//! created on first use), so the host's interfaces, routes and addresses are never
//! touched, and VMs on the same port group reach each other over it like VMs on one
//! vSwitch port group. The namespace goes away with the runtime, taking its bridges along.

use super::netlink::{parse_mac, Netlink};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use vsphere_client::value::{DataObject, Value};

/// One NIC as the guest sees it: its entry in the hardware description
/// (`container_vm::hardware`).
pub type NicPlan = container_vm::hardware::Nic;

/// The VM's NICs in device order. A NIC without a usable MAC is a configuration the
/// simulator itself should never have accepted (it assigns one), so it is refused.
pub fn plan_nics(devices: &[DataObject]) -> Result<Vec<NicPlan>, String> {
    let mut out = Vec::new();
    for d in devices.iter().filter(|d| crate::props::is_nic(&d.ty)) {
        let b = d.get("backing").and_then(Value::as_obj);
        let portgroup = b
            .and_then(|b| {
                b.text("deviceName").map(str::to_string).or_else(|| {
                    b.get("port")
                        .and_then(Value::as_obj)
                        .and_then(|p| p.text("portgroupKey"))
                        .map(str::to_string)
                })
            })
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("NIC {} has no network backing", out.len()))?;
        let mac = d.text("macAddress").unwrap_or("").trim().to_lowercase();
        if parse_mac(&mac).is_none() {
            return Err(format!(
                "NIC {} has no valid MAC address ('{mac}')",
                out.len()
            ));
        }
        out.push(NicPlan {
            name: format!("eth{}", out.len()),
            mac,
            portgroup,
        });
    }
    Ok(out)
}

/// A Linux interface name for a port group: at most 15 bytes, no spaces or slashes.
/// Names that had to be shortened or changed get a hash suffix so two port groups never
/// share a bridge.
pub fn bridge_name(portgroup: &str) -> String {
    let clean: String = portgroup
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean == portgroup && !clean.is_empty() && clean.len() <= 15 && clean != "." && clean != ".."
    {
        return clean;
    }
    // FNV-1a: stable across runs and platforms.
    let h = portgroup.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let head: String = clean.chars().take(9).collect();
    format!("{head}-{:05x}", h & 0xf_ffff)
}

/// The simulator's network namespace and the bridges in it.
pub struct SimNet {
    /// Opened inside the namespace, so every request acts there. One request at a time:
    /// acknowledgements are matched to requests by order.
    nl: Mutex<Netlink>,
    /// The thread that created the namespace stays parked in it: `/proc/self/task/<tid>/net`
    /// then shows the namespace (for diagnostics and tests). Dropping the sender ends it.
    holder_tid: i32,
    _stop: std::sync::mpsc::Sender<()>,
    /// Port group -> (bridge name, ifindex).
    bridges: Mutex<HashMap<String, (String, u32)>>,
    next_port: AtomicU32,
}

impl SimNet {
    /// Creates the namespace (from a thread that unshares its network namespace; the
    /// rest of the process stays where it is).
    pub fn new() -> io::Result<Arc<SimNet>> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("vcsim-netns".into())
            .spawn(move || {
                let made = (|| {
                    // SAFETY: unshare affects only this thread's namespace membership.
                    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let nl = Netlink::open()?;
                    // SAFETY: gettid has no preconditions.
                    let tid = unsafe { libc::gettid() };
                    Ok((nl, tid))
                })();
                let failed = made.is_err();
                let _ = ready_tx.send(made);
                if !failed {
                    let _ = stop_rx.recv();
                }
            })?;
        let (nl, holder_tid) = ready_rx
            .recv()
            .map_err(|_| io::Error::other("network namespace thread died"))??;
        Ok(Arc::new(SimNet {
            nl: Mutex::new(nl),
            holder_tid,
            _stop: stop_tx,
            bridges: Mutex::new(HashMap::new()),
            next_port: AtomicU32::new(0),
        }))
    }

    /// Names of the links in the simulator's namespace (bridges and host ends).
    pub fn links(&self) -> Vec<String> {
        let path = format!("/proc/self/task/{}/net/dev", self.holder_tid);
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(|n| n.trim().to_string())
            .collect()
    }

    /// `/proc/<pid>/task/<tid>/ns/net` of the thread parked in the namespace: open it and
    /// `setns` to act there.
    pub fn netns_path(&self) -> std::path::PathBuf {
        format!(
            "/proc/{}/task/{}/ns/net",
            std::process::id(),
            self.holder_tid
        )
        .into()
    }

    /// The Linux bridge of a port group (created on first use), by name.
    pub fn ensure_bridge(&self, portgroup: &str) -> io::Result<String> {
        self.bridge(portgroup).map(|(name, _)| name)
    }

    /// The bridge of a port group, created on first use.
    fn bridge(&self, portgroup: &str) -> io::Result<(String, u32)> {
        let mut bridges = self.bridges.lock();
        if let Some(b) = bridges.get(portgroup) {
            return Ok(b.clone());
        }
        let name = bridge_name(portgroup);
        let nl = self.nl.lock();
        match nl.add_bridge(&name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("bridge {name}: {e}"))),
        }
        let idx = nl.index(&name)?;
        bridges.insert(portgroup.to_string(), (name.clone(), idx));
        Ok((name, idx))
    }

    /// Wires the NICs of the VM whose init is `pid` (already in its own network
    /// namespace). Called by every path that starts a VM's processes, right after the
    /// spawn; the guest waits for its NICs to appear. On error nothing is left behind.
    pub fn attach(self: &Arc<Self>, pid: u32, nics: &[NicPlan]) -> io::Result<NicsHandle> {
        let mut handle = NicsHandle {
            net: self.clone(),
            host_ends: Vec::new(),
            nics: Vec::new(),
        };
        self.plug(&mut handle, pid, nics)?;
        Ok(handle)
    }

    /// Adds NICs to a running VM (hot add): host end on the port group's bridge, guest
    /// end in the VM's namespace.
    fn plug(
        self: &Arc<Self>,
        handle: &mut NicsHandle,
        pid: u32,
        nics: &[NicPlan],
    ) -> io::Result<()> {
        for nic in nics {
            let (_, master) = self.bridge(&nic.portgroup)?;
            let mac = parse_mac(&nic.mac).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("MAC '{}'", nic.mac))
            })?;
            let host = format!("vh{}", self.next_port.fetch_add(1, Ordering::Relaxed));
            self.nl
                .lock()
                .add_veth(&host, master, &nic.name, mac, pid)
                .map_err(|e| io::Error::new(e.kind(), format!("{} ({host}): {e}", nic.name)))?;
            handle.host_ends.push(host);
            handle.nics.push(nic.clone());
        }
        Ok(())
    }

    /// Makes a running VM's NICs `wanted` (a reconfigure added or removed some): new
    /// MACs are plugged in under the next free `ethN`, gone ones unplugged.
    pub fn replug(
        self: &Arc<Self>,
        handle: &mut NicsHandle,
        pid: u32,
        wanted: &[NicPlan],
    ) -> io::Result<()> {
        let mut i = 0;
        while i < handle.nics.len() {
            if wanted.iter().any(|w| w.mac == handle.nics[i].mac) {
                i += 1;
                continue;
            }
            let host = handle.host_ends.remove(i);
            handle.nics.remove(i);
            let _ = self.nl.lock().del_link(&host);
        }
        let mut added = Vec::new();
        for w in wanted
            .iter()
            .filter(|w| !handle.nics.iter().any(|n| n.mac == w.mac))
        {
            let used: Vec<&str> = handle
                .nics
                .iter()
                .chain(&added)
                .map(|n: &NicPlan| n.name.as_str())
                .collect();
            let name = (0..)
                .map(|n| format!("eth{n}"))
                .find(|n| !used.contains(&n.as_str()))
                .expect("a free name");
            added.push(NicPlan { name, ..w.clone() });
        }
        self.plug(handle, pid, &added)
    }
}

/// The host ends of one running VM's NICs; dropping it removes them (and with them the
/// guest ends), so power-off, reset and destroy leave no veth behind even before the
/// kernel gets round to dismantling the VM's namespace.
pub struct NicsHandle {
    net: Arc<SimNet>,
    host_ends: Vec<String>,
    /// The NIC of each host end (same order).
    nics: Vec<NicPlan>,
}

impl NicsHandle {
    pub fn host_ends(&self) -> &[String] {
        &self.host_ends
    }
}

impl Drop for NicsHandle {
    fn drop(&mut self) {
        for h in &self.host_ends {
            // ENODEV: the namespace teardown got there first.
            let _ = self.net.nl.lock().del_link(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_linux_and_stay_distinct() {
        assert_eq!(bridge_name("vch"), "vch");
        assert_eq!(bridge_name("dvportgroup-12"), "dvportgroup-12");
        let a = bridge_name("VM Network");
        assert!(a.starts_with("VM-Networ") && a.len() <= 15, "{a}");
        assert_ne!(a, bridge_name("VM-Network"));
        let long = bridge_name("a-very-long-port-group-name");
        assert!(long.len() <= 15, "{long}");
        assert_ne!(long, bridge_name("a-very-long-port-group-name2"));
        assert!(!bridge_name("a/b").contains('/'));
    }

    #[test]
    fn nics_in_device_order_with_their_port_groups() {
        let nic = |ty: &str, backing: DataObject, mac: &str| {
            DataObject::new(ty)
                .with("backing", Value::Obj(backing))
                .with("macAddress", Value::string(mac))
        };
        let devices = vec![
            DataObject::new("VirtualDisk"),
            nic(
                "VirtualVmxnet3",
                DataObject::new("VirtualEthernetCardNetworkBackingInfo")
                    .with("deviceName", Value::string("bridge-pg")),
                "00:50:56:00:00:01",
            ),
            nic(
                "VirtualE1000",
                DataObject::new("VirtualEthernetCardDistributedVirtualPortBackingInfo").with(
                    "port",
                    Value::Obj(
                        DataObject::new("DistributedVirtualSwitchPortConnection")
                            .with("portgroupKey", Value::string("dvportgroup-9")),
                    ),
                ),
                "00:50:56:00:00:02",
            ),
        ];
        let p = plan_nics(&devices).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].portgroup.as_str()),
            ("eth0", "bridge-pg")
        );
        assert_eq!(
            (p[1].name.as_str(), p[1].portgroup.as_str()),
            ("eth1", "dvportgroup-9")
        );
        let bad = vec![nic(
            "VirtualVmxnet3",
            DataObject::new("VirtualEthernetCardNetworkBackingInfo")
                .with("deviceName", Value::string("x")),
            "",
        )];
        assert!(plan_nics(&bad).unwrap_err().contains("MAC"));
    }
}
