//! vSphere's hot-plug rules for a reconfigure: the `memoryHotAddEnabled`,
//! `cpuHotAddEnabled` and `cpuHotRemoveEnabled` switches only change while the VM is off;
//! while it runs, memory may only grow and only with hot add on (there is no memory
//! hot-remove), and vCPUs may be added or removed only with the matching switch on.
//! vCenter refuses anything else with InvalidPowerState ("cannot be performed in the
//! current state (Powered on)"). A suspended VM's hardware does not change at all.

use crate::model::{PowerState, VmData};
use crate::soap::Fault;
use vsphere_client::xml::Element;

fn refused(state: &str) -> Fault {
    Fault::invalid_power_state(state, Some("poweredOff"))
}

fn flag(spec: &Element, name: &str) -> Option<bool> {
    spec.child_text(name)
        .map(|t| t.trim() == "true" || t.trim() == "1")
}

/// Checks and applies the hot-plug switches; checks memory and vCPU changes against them.
/// Runs before the sizes themselves are applied.
pub fn apply(v: &mut VmData, spec: &Element) -> Result<(), Fault> {
    let running = v.power_state == PowerState::PoweredOn;
    if v.power_state == PowerState::Suspended {
        let sizes = spec.child_i64("memoryMB").is_some_and(|m| m != v.memory_mb)
            || spec.child_i64("numCPUs").is_some_and(|n| n != v.num_cpu);
        let switches = [
            "memoryHotAddEnabled",
            "cpuHotAddEnabled",
            "cpuHotRemoveEnabled",
        ]
        .iter()
        .any(|n| spec.child(n).is_some());
        if sizes || switches {
            return Err(refused("suspended"));
        }
    }
    let switches = [
        (flag(spec, "memoryHotAddEnabled"), v.hot_plug.memory_add),
        (flag(spec, "cpuHotAddEnabled"), v.hot_plug.cpu_add),
        (flag(spec, "cpuHotRemoveEnabled"), v.hot_plug.cpu_remove),
    ];
    if running
        && switches
            .iter()
            .any(|(new, old)| new.is_some_and(|n| n != *old))
    {
        return Err(refused("poweredOn"));
    }
    if running {
        if let Some(m) = spec.child_i64("memoryMB").filter(|m| *m != v.memory_mb) {
            if m < v.memory_mb || !v.hot_plug.memory_add {
                return Err(refused("poweredOn"));
            }
        }
        if let Some(n) = spec.child_i64("numCPUs").filter(|n| *n != v.num_cpu) {
            if (n > v.num_cpu && !v.hot_plug.cpu_add) || (n < v.num_cpu && !v.hot_plug.cpu_remove) {
                return Err(refused("poweredOn"));
            }
        }
    }
    if let Some(b) = switches[0].0 {
        v.hot_plug.memory_add = b;
    }
    if let Some(b) = switches[1].0 {
        v.hot_plug.cpu_add = b;
    }
    if let Some(b) = switches[2].0 {
        v.hot_plug.cpu_remove = b;
    }
    Ok(())
}
