//! Benchmark (run explicitly, release build, as root):
//!
//!     cargo test --release -p tether --test sandbox_bench -- --ignored --nocapture
//!
//! Power-on to the first instruction of the user's process, and instant clone to the
//! first instruction, measured from just before the vim25 call to the timestamp the
//! tether puts on the process's first output line. Prints one JSON object.

mod common;

use common::{skip, Env};

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
    let template = env.template(128).await;
    let mut clone = Vec::new();
    let mut clone_call = Vec::new();
    for i in 0..runs {
        let name = format!("ic{i}");
        let t0 = now_ns();
        let vm = env.instant_clone(&template, &name, &["echo", "go"]).await;
        clone_call.push((now_ns() - t0) as f64 / 1e6);
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
            "instant_clone_task_ms": {"p50": pct(&mut clone_call, 0.5)},
            "instant_clone_mode": "fork of the template's running tether",
        })
    );
    env.done().await;
}
