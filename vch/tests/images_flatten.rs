//! Images with more layers than a VM can attach get one flattened disk; mounted alone it
//! must show exactly what overlayfs shows over the per-layer disks. Needs root (mounts),
//! docker-registry, skopeo and busybox-static.

mod images_support;

use images_support::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use vch::images::store::{ImageStore, StoreConfig};
use vch::images::types::NoContainers;

/// path → (kind, mode, content or link target, inode group) for a whole tree.
fn snapshot(root: &Path) -> BTreeMap<String, (String, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = m.file_type();
            let (kind, data) = if ft.is_dir() {
                stack.push(p.clone());
                ("dir", Vec::new())
            } else if ft.is_symlink() {
                (
                    "link",
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else if ft.is_file() {
                ("file", std::fs::read(&p).unwrap())
            } else {
                ("other", format!("{}", m.rdev()).into_bytes())
            };
            out.insert(rel, (kind.to_string(), m.mode(), data));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_layers_are_flattened() {
    skip_unless_ready!(true);
    let reg = RegistryProc::start();
    let sim = Sim::start().await;
    let layers = vec![
        TarW::new()
            .dir("a/")
            .file("a/one", b"1", 0o644)
            .file("a/two", b"2", 0o600)
            .dir("d/")
            .file("d/x", b"x", 0o644)
            .file("d/y", b"y", 0o644)
            .file("keep", b"v1", 0o644)
            .finish(),
        TarW::new()
            .dir("a/")
            .file("a/.wh.one", b"", 0o644)
            .dir("d/sub/")
            .file("d/sub/lower", b"l", 0o644)
            .finish(),
        TarW::new()
            .dir("d/")
            .file("d/.wh..wh..opq", b"", 0o644)
            .file("d/z", b"z", 0o644)
            .file("d/sub/upper", b"u", 0o644)
            .finish(),
        TarW::new()
            .dir("h/")
            .file("h/b2", b"shared", 0o644)
            .link(tar::EntryType::Link, "h/c", "h/b2")
            .link(tar::EntryType::Symlink, "s", "/keep")
            .finish(),
        TarW::new()
            .file("keep", b"v5", 0o644)
            .file("h/.wh.gone", b"", 0o644)
            .finish(),
    ];
    push_image(
        &reg,
        "tall",
        "v1",
        &OciImage {
            layers: layers
                .into_iter()
                .map(|tar| Layer {
                    tar,
                    comp: Comp::Gzip,
                })
                .collect(),
            config: serde_json::json!({"created": "2024-01-01T00:00:00Z"}),
            platform: ("linux", "amd64"),
        },
        &[],
    );
    let mut cfg = StoreConfig::new("vch-test/images");
    // Not listed as insecure: a loopback registry speaking plain HTTP is insecure by
    // default, as with dockerd.
    assert!(reg.host().starts_with("127."));
    cfg.spool_dir = sim.dir.join("spool");
    cfg.max_layers = 3;
    let store = ImageStore::open(sim.client.clone(), cfg).await.unwrap();
    let r = format!("{}/tall:v1", reg.host());
    store.pull(&r, None, None, |_| {}).await.unwrap();

    let disks = store.layer_disks(&r).unwrap();
    assert_eq!(
        disks.len(),
        1,
        "a 5-layer image with max_layers 3 gets one disk"
    );
    let flat = sim.local(
        &disks[0]
            .to_string()
            .replace("layer.vmdk", "layer-flat.vmdk"),
    );
    // The per-layer disks are still stored (save, and images sharing them).
    let layers = store
        .inspect(&r)
        .await
        .unwrap()
        .root_fs
        .unwrap()
        .layers
        .unwrap();
    assert_eq!(layers.len(), 5);
    let per_layer: Vec<_> = layers
        .iter()
        .map(|d| {
            sim.local(&format!(
                "[datastore1] vch-test/images/layers/{}/layer-flat.vmdk",
                d.trim_start_matches("sha256:")
            ))
        })
        .collect();

    let flat_view = {
        let m = mount_stack(std::slice::from_ref(&flat));
        let b2 = std::fs::metadata(m.root.join("h/b2")).unwrap();
        let c = std::fs::metadata(m.root.join("h/c")).unwrap();
        assert_eq!(b2.ino(), c.ino());
        snapshot(&m.root)
    };
    let overlay_view = {
        let m = mount_stack(&per_layer);
        snapshot(&m.root)
    };
    assert_eq!(
        flat_view, overlay_view,
        "flattened disk differs from the overlay of its layers"
    );
    let names: Vec<&String> = flat_view.keys().collect();
    assert_eq!(
        names,
        [
            "a",
            "a/two",
            "d",
            "d/sub",
            "d/sub/upper",
            "d/z",
            "h",
            "h/b2",
            "h/c",
            "keep",
            "s"
        ]
    );
    assert_eq!(flat_view["keep"].2, b"v5");

    // Removing the image removes the flattened disk too.
    store.remove(&r, false, &NoContainers).await.unwrap();
    assert!(!flat.exists());
    sim.done().await;
}
