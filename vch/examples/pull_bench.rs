//! Pull benchmark: a 100 MB image from a loopback registry, end to end (download,
//! verify, convert to EROFS, upload the layer disks to the simulator's datastore),
//! against `skopeo copy` of the same image to a local directory in the same run.
//!
//!     cargo run --release -p vch --example pull_bench [-- RUNS [fast]]
//!
//! The 100 MB layer is incompressible and gzipped at level 6, as docker and buildkit do,
//! which stores it in stored blocks; `fast` gzips it at level 1 instead, which zlib-rs
//! Huffman-codes: then inflating costs as much as for a compressible layer.
//!
//! Prints one JSON object. Needs docker-registry, skopeo and busybox-static.

#[path = "../tests/images_support/mod.rs"]
mod images_support;

use images_support::*;
use std::time::Instant;
use vch::images::store::{ImageStore, StoreConfig};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Some(why) = skip_reason(false) {
        eprintln!("pull_bench: cannot run: {why}");
        std::process::exit(2);
    }
    if std::env::var_os("VCH_BENCH_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("vch=debug")
            .with_writer(std::io::stderr)
            .init();
    }
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let reg = RegistryProc::start();
    let sim = Sim::start().await;
    let fast = std::env::args().nth(2).as_deref() == Some("fast");
    let mut big = TarW::new();
    big.dir("data/")
        .file("data/big", &pseudo_random(BIG_LEN, 7), 0o644);
    let image = OciImage {
        layers: vec![
            Layer {
                tar: busybox_layer(),
                comp: Comp::Gzip,
            },
            Layer {
                tar: big.finish(),
                comp: if fast { Comp::GzipFast } else { Comp::Gzip },
            },
        ],
        config: busybox_config(),
        platform: ("linux", "amd64"),
    };
    let built = push_image(&reg, "big", "latest", &image, &[]);
    let blob_bytes: u64 = built
        .layer_digests
        .iter()
        .map(|d| {
            std::fs::metadata(reg.blob_file(d))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    let tar_bytes: u64 = image.layers.iter().map(|l| l.tar.len() as u64).sum();
    let reference = format!("{}/big:latest", reg.host());

    // Reference: skopeo copy to a local directory.
    let mut skopeo = Vec::new();
    for i in 0..runs {
        let dir = sim.dir.join(format!("skopeo-{i}"));
        let t = Instant::now();
        let st = std::process::Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("dir:{}", dir.display()))
            .status()
            .unwrap();
        assert!(st.success());
        skopeo.push(t.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(dir);
    }

    // The store: a fresh store directory each run, so every layer is really pulled.
    let mut vch = Vec::new();
    let mut disk_bytes = 0;
    for i in 0..runs {
        let mut cfg = StoreConfig::new(format!("bench-{i}/images"));
        cfg.insecure_registries = vec![reg.host()];
        cfg.spool_dir = sim.dir.join("spool");
        let store = ImageStore::open(sim.client.clone(), cfg).await.unwrap();
        let t = Instant::now();
        store.pull(&reference, None, None, |_| {}).await.unwrap();
        vch.push(t.elapsed().as_secs_f64());
        disk_bytes = store.index().layers.values().map(|l| l.disk_size).sum();
    }
    let (v, s) = (median(vch.clone()), median(skopeo.clone()));
    let mb = blob_bytes as f64 / 1e6;
    let out = serde_json::json!({
        "benchmark": "pull_bench",
        "image": "big:latest (busybox + 100 MB file, gzip layers)",
        "big_layer_gzip_level": if fast { 1 } else { 6 },
        "runs": runs,
        "blob_bytes": blob_bytes,
        "tar_bytes": tar_bytes,
        "disk_bytes": disk_bytes,
        "vch_pull_s": v,
        "vch_mb_per_s": mb / v,
        "vch_runs_s": vch,
        "skopeo_copy_s": s,
        "skopeo_mb_per_s": mb / s,
        "skopeo_runs_s": skopeo,
        "vch_vs_skopeo": s / v,
        "target_mb_per_s": 200,
    });
    println!("{out}");
    sim.done().await;
}
