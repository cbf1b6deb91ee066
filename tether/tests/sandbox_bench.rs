//! Benchmark (run explicitly, release build, as root):
//!
//!     cargo test --release -p tether --test sandbox_bench -- --ignored --nocapture
//!
//! Power-on to the first instruction of the user's process, and instant clone to the
//! first instruction, measured from just before the vim25 call to the timestamp the
//! tether puts on the process's first output line. Prints one JSON object.

mod common;

use common::{skip, Env};
use vsphere_client::spec::*;
use vsphere_client::Value;

fn log_time(line_time: &str) -> i128 {
    chrono::DateTime::parse_from_rfc3339(line_time)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap() as i128
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn first_line_ns(env: &Env, name: &str) -> i128 {
    let raw = env
        .client
        .download_bytes("DC0", "datastore1", &format!("{name}/container.log"), None)
        .await
        .unwrap();
    let first = String::from_utf8_lossy(&raw)
        .lines()
        .next()
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    log_time(v["time"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored"]
async fn sandbox_start_latency() {
    if skip() {
        return;
    }
    let runs = 20;
    let env = Env::start().await;
    let mut power_on = Vec::new();
    for i in 0..runs {
        let name = format!("b{i}");
        let vm = env.container(&name, &["echo", "go"], 128).await;
        let t0 = now_ns();
        env.client.power_on(&vm).await.unwrap();
        env.wait_off(&vm).await;
        power_on.push((first_line_ns(&env, &name).await - t0) as f64 / 1e6);
    }
    // Instant clones of a running template (a VM whose tether idles without a spec).
    let template = env.container("template", &["true"], 128).await;
    env.client
        .reconfigure_vm(
            &template,
            &VmConfigSpec {
                extra_config: vec![("guestinfo.vch.spec".into(), String::new())],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    env.client.power_on(&template).await.unwrap();
    let serial_key = match env
        .client
        .property(&template, "config.hardware.device")
        .await
        .unwrap()
        .unwrap()
    {
        Value::Array { items, .. } => items
            .iter()
            .filter_map(Value::as_obj)
            .find(|d| d.ty == "VirtualSerialPort")
            .and_then(|d| d.i64("key"))
            .unwrap(),
        _ => panic!("devices"),
    };
    let mut clone = Vec::new();
    for i in 0..runs {
        let name = format!("ic{i}");
        let spec = serde_json::json!({"id": format!("{name}-0123456789"), "cmd": ["echo", "go"], "layers": ["scsi0:1"], "scratch": "scsi0:2"});
        let t0 = now_ns();
        let vm = env
            .client
            .instant_clone(
                &template,
                &InstantCloneSpec {
                    name: name.clone(),
                    location: Placement {
                        folder: Some(env.folder.clone()),
                        pool: Some(env.pool.clone()),
                        devices: vec![DeviceChange {
                            op: DeviceOp::Edit,
                            file_op: None,
                            device: Device::Serial {
                                key: serial_key,
                                backing: SerialBacking::File {
                                    path: format!("[datastore1] {name}/container.log"),
                                },
                            },
                        }],
                        ..Default::default()
                    },
                    config: vec![("guestinfo.vch.spec".into(), spec.to_string())],
                    bios_uuid: None,
                },
            )
            .await
            .unwrap();
        env.wait_off(&vm).await;
        clone.push((first_line_ns(&env, &name).await - t0) as f64 / 1e6);
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "sandbox_start_latency",
            "runs": runs,
            "power_on_to_first_instruction_ms": {"p50": pct(&mut power_on, 0.5), "p90": pct(&mut power_on, 0.9)},
            "instant_clone_to_first_instruction_ms": {"p50": pct(&mut clone, 0.5), "p90": pct(&mut clone, 0.9)},
            "instant_clone_mode": "cold boot of the child (fork-based clone not built yet)",
        })
    );
    env.done().await;
}
