//! Registry-side behaviour: platform selection in OCI indexes, distribution inspect, and
//! concurrent pulls sharing layers. Needs docker-registry, skopeo and busybox-static.

mod images_support;

use images_support::*;
use vch::images::error::ImageError;
use vch::images::progress::ProgressEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_platform_selection_and_distribution_inspect() {
    skip_unless_ready!(false);
    let reg = RegistryProc::start();
    let sim = Sim::start().await;
    let dir = tempdir("index");
    let image = |arch: &'static str, seed: u64| OciImage {
        layers: vec![Layer {
            tar: TarW::new()
                .dir("etc/")
                .file("etc/arch", arch.as_bytes(), 0o644)
                .file("etc/noise", &pseudo_random(1000, seed), 0o644)
                .finish(),
            comp: Comp::Gzip,
        }],
        config: serde_json::json!({"created": "2024-01-01T00:00:00Z"}),
        platform: ("linux", arch),
    };
    let (amd, amd_desc) = image("amd64", 1).write(&dir);
    let (arm, arm_desc) = image("arm64", 2).write(&dir);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [arm_desc, amd_desc],
    });
    let ib = serde_json::to_vec(&index).unwrap();
    let id = write_blob(&dir, &ib);
    write_layout_index(
        &dir,
        "multi",
        serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": ib.len()}),
    );
    push(&dir, "multi", &reg.host(), "multi:latest", &["--all"]);
    let store = sim.store(&reg).await;
    let r = format!("{}/multi", reg.host());

    let out = store.pull(&r, None, None, |_| {}).await.unwrap();
    assert_eq!(
        out.id.to_string(),
        amd.config_digest,
        "default platform is linux/amd64"
    );
    assert_eq!(out.digest.to_string(), id, "RepoDigest is the index digest");
    let out = store
        .pull(&r, Some("linux/arm64"), None, |_| {})
        .await
        .unwrap();
    assert_eq!(out.id.to_string(), arm.config_digest);
    let err = store
        .pull(&r, Some("linux/s390x"), None, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::NoMatchingPlatform { .. }),
        "{err}"
    );
    let err = store
        .pull(&format!("{}/nope:latest", reg.host()), None, None, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::ManifestUnknown(_)), "{err}");

    let di = store.distribution_inspect(&r, None).await.unwrap();
    assert_eq!(di.descriptor.digest.as_deref(), Some(id.as_str()));
    let mut archs: Vec<String> = di
        .platforms
        .iter()
        .filter_map(|p| p.architecture.clone())
        .collect();
    archs.sort();
    assert_eq!(archs, ["amd64", "arm64"]);
    let _ = std::fs::remove_dir_all(dir);
    sim.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_download_each_layer_once() {
    skip_unless_ready!(false);
    let reg = RegistryProc::start();
    let sim = Sim::start().await;
    // Two images sharing their base layer.
    let base = Layer {
        tar: busybox_layer(),
        comp: Comp::Gzip,
    };
    let top = |s: u64| Layer {
        tar: TarW::new()
            .dir("app/")
            .file("app/data", &pseudo_random(2 << 20, s), 0o644)
            .finish(),
        comp: Comp::Gzip,
    };
    for (name, seed) in [("one", 1), ("two", 2)] {
        push_image(
            &reg,
            name,
            "v1",
            &OciImage {
                layers: vec![
                    Layer {
                        tar: base.tar.clone(),
                        comp: Comp::Gzip,
                    },
                    top(seed),
                ],
                config: serde_json::json!({"created": "2024-01-01T00:00:00Z", "config": {"Env": [format!("N={name}")]}}),
                platform: ("linux", "amd64"),
            },
            &[],
        );
    }
    let store = sim.store(&reg).await;
    let (a, b, c) = (
        format!("{}/one:v1", reg.host()),
        format!("{}/two:v1", reg.host()),
        format!("{}/one:v1", reg.host()),
    );
    let mut ev = [Vec::new(), Vec::new(), Vec::new()];
    let [e0, e1, e2] = &mut ev;
    let (r0, r1, r2) = tokio::join!(
        store.pull(&a, None, None, |e| e0.push(e)),
        store.pull(&b, None, None, |e| e1.push(e)),
        store.pull(&c, None, None, |e| e2.push(e)),
    );
    r0.unwrap();
    r1.unwrap();
    r2.unwrap();
    // Every distinct layer (base, one's top, two's top) was stored by exactly one pull.
    let completes: usize = ev
        .iter()
        .flatten()
        .filter(|e| matches!(e, ProgressEvent::PullComplete { .. }))
        .count();
    assert_eq!(completes, 3, "{ev:?}");
    assert_eq!(store.index().layers.len(), 3);
    let base_disk = store.layer_disks(&a).unwrap()[0].clone();
    assert_eq!(store.layer_disks(&b).unwrap()[0], base_disk);
    sim.done().await;
}
