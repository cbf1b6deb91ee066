//! The template image as real VMs get it: the boot disk built by `appliance-image` from
//! the statically linked tether boots in the simulator and runs containers, cold-booted
//! and instantly cloned from a template. Needs root
//! and the static build (scripts/test makes it):
//!
//!     RUSTFLAGS="-C target-feature=+crt-static" \
//!         cargo build --release -p tether --target x86_64-unknown-linux-gnu
//!
//! found in this target directory, or at `$VCH_STATIC_TETHER`; skipped with a message
//! without it.

mod common;

use common::{cannot_run, skip, Env};
use std::path::PathBuf;

/// Set to a static tether binary to test that one.
const STATIC_TETHER_ENV: &str = "VCH_STATIC_TETHER";

fn static_tether() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(STATIC_TETHER_ENV) {
        return Some(PathBuf::from(p));
    }
    // <target>/debug/deps/<this test> → <target>/x86_64-unknown-linux-gnu/release/tether
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?;
    let p = target.join("x86_64-unknown-linux-gnu/release/tether");
    p.exists().then_some(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_tether_boot_disk_runs_a_container() {
    if skip() {
        return;
    }
    let Some(tether) = static_tether() else {
        return cannot_run(&format!(
            "no static tether built (see this file's header, or set {STATIC_TETHER_ENV})"
        ));
    };
    // The image builder's own check: no PT_INTERP, so no loader is needed in the VM.
    appliance_image::check_static(&tether).unwrap_or_else(|e| panic!("{e}"));
    let env = Env::start_with(&tether).await;
    let (out, code) = env.run("static-hi", &["echo", "hi"], 128).await;
    assert_eq!(out, "hi\n");
    assert_eq!(code, 0);
    // A failing command: the exit path (log record, state) works the same.
    let (_, code) = env.run("static-3", &["sh", "-c", "exit 3"], 128).await;
    assert_eq!(code, 3);
    // The VCH's path: a template VM idles, and an instant clone (its monitor forks pid 1
    // into new namespaces) runs the container.
    let template = env.template(64).await;
    let vm = env
        .instant_clone(&template, "static-ic", &["echo", "cloned"])
        .await;
    env.wait_off(&vm).await;
    let (out, exit) = env.log("static-ic").await;
    assert_eq!(out, "cloned\n", "{exit}");
    assert_eq!(exit["exit_code"], 0);
    env.done().await;
}
