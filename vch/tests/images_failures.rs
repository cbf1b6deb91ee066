//! Pulls that must fail cleanly: a clear error, and a store with no trace of the failed
//! image (no half layer, no temporary upload, no index entry), that pulls fine after.
//! Needs docker-registry, skopeo and busybox-static; skips otherwise.

mod images_support;

use images_support::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use vch::images::error::ImageError;
use vch::images::store::ImageStore;
use vch::images::types::ListFilters;

fn small_image(seed: u64, size: usize) -> OciImage {
    let mut t = TarW::new();
    t.dir("data/")
        .file("data/blob", &pseudo_random(size, seed), 0o644);
    OciImage {
        layers: vec![Layer {
            tar: t.finish(),
            comp: Comp::Gzip,
        }],
        config: serde_json::json!({"created": "2024-01-01T00:00:00Z"}),
        platform: ("linux", "amd64"),
    }
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// No image, no layer directory, nothing in tmp/ or the local spool.
fn assert_clean(sim: &Sim, store: &ImageStore, images: usize) {
    assert_eq!(store.list(&ListFilters::default()).unwrap().len(), images);
    let root = sim.local("[datastore1] vch-test/images");
    let layers: usize = store.index().images.values().map(|i| i.layers.len()).sum();
    assert!(
        entries(&root.join("layers")).len() <= layers,
        "stray layer dirs: {:?}",
        entries(&root.join("layers"))
    );
    assert_eq!(
        entries(&root.join("tmp")),
        Vec::<String>::new(),
        "leftover uploads"
    );
    assert_eq!(
        entries(&sim.dir.join("spool")),
        Vec::<String>::new(),
        "leftover spool files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_fails_and_stores_nothing() {
    skip_unless_ready!(false);
    let reg = RegistryProc::start();
    let sim = Sim::start().await;
    let built = push_image(&reg, "corrupt", "v1", &small_image(7, 3 << 20), &[]);
    let blob = reg.blob_file(&built.layer_digests[0]);
    let good = std::fs::read(&blob).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&blob, &bad).unwrap();
    let store = sim.store(&reg).await;
    let r = format!("{}/corrupt:v1", reg.host());
    let err = store.pull(&r, None, None, |_| {}).await.unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&built.layer_digests[0]), "{err}");
    assert_clean(&sim, &store, 0);
    std::fs::write(&blob, &good).unwrap();
    store.pull(&r, None, None, |_| {}).await.unwrap();
    assert_clean(&sim, &store, 1);
    sim.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_layers_are_refused() {
    skip_unless_ready!(false);
    let reg = RegistryProc::start();
    let sim = Sim::start().await;
    let store = sim.store(&reg).await;
    let outside = tempdir("outside");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            TarW::new()
                .raw("../evil", tar::EntryType::Regular, "", b"x")
                .finish(),
            "../evil",
        ),
        (
            "absolute",
            TarW::new()
                .raw("/etc/evil", tar::EntryType::Regular, "", b"x")
                .finish(),
            "/etc/evil",
        ),
        (
            "symlink",
            TarW::new()
                .raw(
                    "escape",
                    tar::EntryType::Symlink,
                    outside.to_str().unwrap(),
                    b"",
                )
                .raw("escape/pwned", tar::EntryType::Regular, "", b"x")
                .finish(),
            "escape/pwned",
        ),
    ];
    for (name, tar_bytes, entry) in cases {
        push_image(
            &reg,
            name,
            "v1",
            &OciImage {
                layers: vec![Layer {
                    tar: tar_bytes,
                    comp: Comp::Gzip,
                }],
                config: serde_json::json!({}),
                platform: ("linux", "amd64"),
            },
            &[],
        );
        let err = store
            .pull(&format!("{}/{name}:v1", reg.host()), None, None, |_| {})
            .await
            .unwrap_err();
        match &err {
            ImageError::HostileLayer { entry: e, .. } => assert_eq!(e, entry, "{err}"),
            other => panic!("{name}: expected a hostile layer error, got {other}"),
        }
        assert!(err.to_string().contains(entry), "{err}");
        assert_clean(&sim, &store, 0);
    }
    assert_eq!(
        entries(&outside),
        Vec::<String>::new(),
        "something was written through the symlink"
    );
    // A device node is fine: recorded in the image, not created on the host.
    push_image(
        &reg,
        "devices",
        "v1",
        &OciImage {
            layers: vec![Layer {
                tar: TarW::new().dir("dev/").chardev("dev/kmsg", 1, 11).finish(),
                comp: Comp::Gzip,
            }],
            config: serde_json::json!({}),
            platform: ("linux", "amd64"),
        },
        &[],
    );
    store
        .pull(&format!("{}/devices:v1", reg.host()), None, None, |_| {})
        .await
        .unwrap();
    assert_clean(&sim, &store, 1);
    let _ = std::fs::remove_dir_all(outside);
    sim.done().await;
}

/// Pushes blobs and a manifest with the registry API (skopeo refuses some artifacts).
async fn push_raw(
    host: &str,
    name: &str,
    tag: &str,
    blobs: &[Vec<u8>],
    manifest: &[u8],
    media_type: &str,
) {
    vch::images::registry::install_crypto_provider();
    let http = reqwest::Client::new();
    for b in blobs {
        let r = http
            .post(format!("http://{host}/v2/{name}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let url = if loc.starts_with('/') {
            format!("http://{host}{loc}")
        } else {
            loc
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let r = http
            .put(format!("{url}{sep}digest={}", sha(b)))
            .body(b.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "blob push: {}", r.status());
    }
    let r = http
        .put(format!("http://{host}/v2/{name}/manifests/{tag}"))
        .header("Content-Type", media_type)
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "manifest push: {} {}",
        r.status(),
        r.text().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_media_types_are_refused_before_download() {
    skip_unless_ready!(false);
    let reg = RegistryProc::start();
    let sim = Sim::start().await;
    let store = sim.store(&reg).await;
    let config = br#"{"name":"chart"}"#.to_vec();
    let layer = b"not a tar at all".to_vec();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": sha(&layer), "size": layer.len()}],
    });
    push_raw(
        &reg.host(),
        "chart",
        "v1",
        &[config, layer],
        &serde_json::to_vec(&manifest).unwrap(),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .await;
    let err = store
        .pull(&format!("{}/chart:v1", reg.host()), None, None, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::UnsupportedMediaType { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("application/vnd.cncf.helm.config.v1+json"),
        "{err}"
    );
    assert_clean(&sim, &store, 0);
    sim.done().await;
}

/// Forwards to `target`, but closes each connection once it has carried `cut` bytes
/// back to the client: a registry that drops mid-blob.
fn cutting_proxy(target: u16, cut: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut client) = c else { return };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            let mut c2 = client.try_clone().unwrap();
            let mut s2 = server.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
            });
            std::thread::spawn(move || {
                let mut sent = 0usize;
                let mut buf = [0u8; 16384];
                loop {
                    let n = match server.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let n = n.min(cut.saturating_sub(sent));
                    if n == 0 || client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
                let _ = client.shutdown(std::net::Shutdown::Both);
                let _ = server.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_disconnecting_mid_blob_fails_cleanly() {
    skip_unless_ready!(false);
    let reg = RegistryProc::start();
    let sim = Sim::start().await;
    let size = 8 << 20;
    push_image(&reg, "cut", "v1", &small_image(9, size), &[]);
    let proxy = cutting_proxy(reg.port, size / 2);
    let mut cfg = vch::images::store::StoreConfig::new("vch-test/images");
    cfg.insecure_registries = vec![format!("127.0.0.1:{proxy}"), reg.host()];
    cfg.spool_dir = sim.dir.join("spool");
    cfg.download_attempts = 2;
    let store = ImageStore::open(sim.client.clone(), cfg).await.unwrap();
    let mut retried = false;
    let err = store
        .pull(&format!("127.0.0.1:{proxy}/cut:v1"), None, None, |e| {
            if e.status().starts_with("Retrying") {
                retried = true;
            }
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Registry { .. }), "{err}");
    assert!(retried, "no retry reported");
    assert_clean(&sim, &store, 0);
    store
        .pull(&format!("{}/cut:v1", reg.host()), None, None, |_| {})
        .await
        .unwrap();
    assert_clean(&sim, &store, 1);
    sim.done().await;
}

/// A run killed mid-pull (or mid-load) leaves `spool/*.part` files and `load-*`
/// directories that no drop guard removed: the next open of the store sweeps them, and
/// leaves alone what is not its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_spool_files_are_swept_at_open() {
    skip_unless_ready!(false);
    let reg = RegistryProc::start();
    let sim = Sim::start().await;
    let spool = sim.dir.join("spool");
    std::fs::create_dir_all(spool.join("load-1234/blobs")).unwrap();
    std::fs::write(spool.join("load-1234/blobs/x"), b"half a tarball").unwrap();
    std::fs::write(spool.join("0b7c0a5e-dead-beef.part"), vec![0u8; 4096]).unwrap();
    std::fs::write(spool.join("README"), b"not ours to remove").unwrap();
    let store = sim.store(&reg).await;
    assert_eq!(entries(&spool), vec!["README".to_string()]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&spool).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "spool dir mode {mode:o}");
    drop(store);
    sim.done().await;
}
