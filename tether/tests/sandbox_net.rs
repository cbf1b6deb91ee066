//! A container VM with a NIC, end to end through vim25: the simulator plugs the NIC into
//! the VM as a veth on the port group's bridge, the tether finds it by the MAC vSphere
//! knows, configures address, route and /etc/hosts, and power-off leaves no veth behind.
//! Needs root; skipped with a message otherwise.

mod common;

use common::{skip, Env};
use vsphere_client::spec::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nic_is_configured_from_the_spec_and_released_at_power_off() {
    if skip() {
        return;
    }
    let env = Env::start().await;
    let (_, dc) = env.client.datacenter(None).await.unwrap();
    let network = env.client.network(&dc, "VM Network").await.unwrap();
    let mac = "00:50:56:01:02:03";
    let nic = DeviceChange::add(Device::Nic {
        key: -5,
        vmxnet3: true,
        backing: NicBacking::Network {
            name: "VM Network".into(),
            network,
        },
        mac: Some(mac.into()),
    });
    let spec = serde_json::json!({"interfaces": [
        {"mac": mac, "address": "10.9.0.5", "prefix": 24, "gateway": "10.9.0.1"}
    ]});
    let script = "cat /sys/class/net/eth0/address; ip -o -4 addr show eth0 | awk '{print $4}'; \
                  ip route | grep default; grep netvm /etc/hosts; ls /sys/class/net | tr '\\n' ' '";
    let vm = env
        .container_with("netvm", &["sh", "-c", script], 128, spec, vec![nic], None)
        .await;
    env.client.power_on(&vm).await.unwrap();
    // While it runs (or right after), the bridge is in the simulator's namespace.
    env.wait_off(&vm).await;
    let (out, exit) = env.log("netvm").await;
    assert_eq!(exit["exit_code"], 0, "{out} {exit}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], mac, "{out}");
    assert_eq!(lines[1], "10.9.0.5/24", "{out}");
    assert!(
        lines[2].starts_with("default via 10.9.0.1 dev eth0"),
        "{out}"
    );
    assert_eq!(lines[3], "10.9.0.5\tnetvm", "{out}");
    assert_eq!(lines[4].trim(), "eth0 lo", "{out}");
    let links = env.runtime.network_links();
    assert!(
        links.iter().any(|l| l.starts_with("VM-Networ")),
        "no bridge for the port group: {links:?}"
    );
    // The host ends go right after the power-off is reported (veth deletion is slow).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let links = env.runtime.network_links();
        if !links.iter().any(|l| l.starts_with("vh")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "veth left after power-off: {links:?}"
        );
        // allow-sleep: poll interval of a deadline loop.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // A spec naming a NIC the VM does not have fails clearly instead of hanging.
    let spec = serde_json::json!({"interfaces": [
        {"mac": "00:50:56:0f:0f:0f", "address": "10.9.0.6", "prefix": 24}
    ]});
    let vm = env
        .container_with("nonic", &["true"], 128, spec, vec![], None)
        .await;
    env.client.power_on(&vm).await.unwrap();
    env.wait_off(&vm).await;
    let (out, exit) = env.log("nonic").await;
    assert_eq!(exit["exit_code"], 125, "{out}");
    assert!(
        out.contains("no network interface with MAC 00:50:56:0f:0f:0f"),
        "{out}"
    );
    env.done().await;
}

/// Host ends of NICs in the simulator's namespace, once the count has settled on `want`.
async fn settle_host_ends(env: &Env, want: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let ends: Vec<String> = env
            .runtime
            .network_links()
            .into_iter()
            .filter(|l| l.starts_with("vh"))
            .collect();
        if ends.len() == want || std::time::Instant::now() > deadline {
            return ends;
        }
        // allow-sleep: poll interval of a deadline loop.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_power_off_replace_and_remove_the_veth() {
    if skip() {
        return;
    }
    let env = Env::start().await;
    let (_, dc) = env.client.datacenter(None).await.unwrap();
    let network = env.client.network(&dc, "VM Network").await.unwrap();
    // No MAC given: the simulator assigns one, as vCenter does.
    let nic = DeviceChange::add(Device::Nic {
        key: -5,
        vmxnet3: true,
        backing: NicBacking::Network {
            name: "VM Network".into(),
            network,
        },
        mac: None,
    });
    let vm = env
        .container_with(
            "resetvm",
            &["sleep", "60"],
            128,
            serde_json::json!({}),
            vec![nic],
            None,
        )
        .await;
    env.client.power_on(&vm).await.unwrap();
    let first = settle_host_ends(&env, 1).await;
    assert_eq!(first.len(), 1, "{first:?}");
    env.client.reset(&vm).await.unwrap();
    let second = settle_host_ends(&env, 1).await;
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(first, second, "reset must replace the VM's veth");
    env.client.power_off(&vm).await.unwrap();
    let left = settle_host_ends(&env, 0).await;
    assert!(left.is_empty(), "veth left after power-off: {left:?}");
    env.done().await;
}
