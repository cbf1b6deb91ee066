//! End to end: fixtures pushed to a real registry (Debian's docker-registry), pulled
//! through the store into layer disks on the simulator's datastore, then mounted with
//! loop + overlayfs as the tether does, and managed (tag, list, inspect, remove, save,
//! load). Needs root and docker-registry, skopeo, busybox-static; skips otherwise.

mod images_support;

use images_support::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use vch::images::progress::ProgressEvent;
use vch::images::types::{ListFilters, NoContainers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_mount_and_manage_images() {
    skip_unless_ready!(true);
    let reg = RegistryProc::start();
    let sim = Sim::start().await;
    let bb = push_image(
        &reg,
        "library/busybox",
        "latest",
        &OciImage {
            layers: vec![Layer {
                tar: busybox_layer(),
                comp: Comp::Gzip,
            }],
            config: busybox_config(),
            platform: ("linux", "amd64"),
        },
        // Docker schema 2 media types for this one; the other stays OCI.
        &["--format", "v2s2"],
    );
    let fancy = push_image(
        &reg,
        "fancy",
        "v1",
        &OciImage {
            layers: fancy_layers(true),
            config: serde_json::json!({"created": "2024-02-02T00:00:00Z", "config": {"Labels": {"fixture": "fancy"}}}),
            platform: ("linux", "amd64"),
        },
        &[],
    );
    let store = sim.store(&reg).await;

    // --- pull busybox, with Docker's progress messages
    let mut events = Vec::new();
    let host = reg.host();
    let out = store
        .pull(&format!("{host}/library/busybox"), None, None, |e| {
            events.push(e)
        })
        .await
        .unwrap();
    assert_eq!(out.id.to_string(), bb.config_digest);
    assert!(out.downloaded);
    let statuses: Vec<String> = events.iter().map(|e| e.status()).collect();
    for s in [
        "Pulling fs layer",
        "Downloading",
        "Verifying Checksum",
        "Download complete",
        "Extracting",
        "Pull complete",
    ] {
        assert!(statuses.iter().any(|x| x == s), "no {s:?} in {statuses:?}");
    }
    assert!(statuses.contains(&format!("Digest: {}", out.digest)));
    assert_eq!(
        statuses.last().unwrap(),
        &format!("Status: Downloaded newer image for {host}/library/busybox:latest")
    );
    // Again: nothing to download.
    let mut again = Vec::new();
    store
        .pull(&format!("{host}/library/busybox:latest"), None, None, |e| {
            again.push(e)
        })
        .await
        .unwrap();
    assert!(again
        .iter()
        .any(|e| matches!(e, ProgressEvent::AlreadyExists { .. })));
    assert!(again
        .last()
        .unwrap()
        .status()
        .starts_with("Status: Image is up to date for"));

    // --- every layer disk is on the datastore, as a flat VMDK
    let disks = store
        .layer_disks(&format!("{host}/library/busybox"))
        .unwrap();
    assert_eq!(disks.len(), 1);
    let desc = std::fs::read_to_string(sim.local(&disks[0].to_string())).unwrap();
    assert!(desc.starts_with("# Disk DescriptorFile"), "{desc}");
    assert!(desc.contains("createType=\"vmfs\""));
    let flat = sim.local(
        &disks[0]
            .to_string()
            .replace("layer.vmdk", "layer-flat.vmdk"),
    );
    let sectors = std::fs::metadata(&flat).unwrap().len() / 512;
    assert!(
        desc.contains(&format!("RW {sectors} VMFS \"layer-flat.vmdk\"")),
        "{desc}"
    );
    {
        let m = mount_stack(std::slice::from_ref(&flat));
        let sh = std::fs::symlink_metadata(m.root.join("bin/sh")).unwrap();
        assert!(sh.file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(m.root.join("bin/sh")).unwrap().to_str(),
            Some("/bin/busybox")
        );
        let bin = std::fs::read(m.root.join("bin/busybox")).unwrap();
        assert_eq!(bin, std::fs::read("/bin/busybox").unwrap());
        assert_eq!(
            std::fs::metadata(m.root.join("bin/busybox"))
                .unwrap()
                .mode()
                & 0o7777,
            0o755
        );
        // The static busybox from the image runs.
        let o = std::process::Command::new(m.root.join("bin/busybox"))
            .arg("true")
            .status()
            .unwrap();
        assert!(o.success());
    }

    // --- the multi-layer image: whiteouts, opaque dir, hard links, symlinks, 100 MB
    let fancy_ref = format!("{host}/fancy:v1");
    let fancy_out = store
        .pull(&fancy_ref, Some("linux/amd64"), None, |_| {})
        .await
        .unwrap();
    let disks = store.layer_disks(&fancy_ref).unwrap();
    assert_eq!(disks.len(), 3);
    let flats: Vec<_> = disks
        .iter()
        .map(|d| sim.local(&d.to_string().replace("layer.vmdk", "layer-flat.vmdk")))
        .collect();
    for (f, diff) in flats.iter().zip(&fancy.diff_ids) {
        assert!(f
            .to_string_lossy()
            .contains(diff.trim_start_matches("sha256:")));
        assert!(f.is_file());
    }
    {
        let m = mount_stack(&flats);
        let r = &m.root;
        assert!(!r.join("a/file1").exists(), "whiteout did not hide a/file1");
        assert_eq!(std::fs::read(r.join("a/file2")).unwrap(), b"two\n");
        assert!(
            !r.join("opq/lower1").exists(),
            "opaque dir shows lower content"
        );
        assert!(!r.join("opq/lower2").exists());
        assert_eq!(std::fs::read(r.join("opq/upper")).unwrap(), b"up\n");
        let one = std::fs::metadata(r.join("hl/one")).unwrap();
        let two = std::fs::metadata(r.join("hl/two")).unwrap();
        assert_eq!(one.ino(), two.ino(), "hard links do not share an inode");
        assert_eq!(one.nlink(), 2);
        assert_eq!(
            std::fs::read_link(r.join("lnk")).unwrap().to_str(),
            Some("/etc/passwd")
        );
        assert_eq!(std::fs::read(r.join("rel")).unwrap(), b"two\n");
        let dev = std::fs::symlink_metadata(r.join("dev/null")).unwrap();
        assert!(dev.file_type().is_char_device());
        assert_eq!(dev.rdev(), (1 << 8) | 3);
        assert_eq!(
            std::fs::metadata(r.join("keep/x")).unwrap().mode() & 0o777,
            0o600
        );
        let big = std::fs::read(r.join("big/blob")).unwrap();
        assert_eq!(big.len(), BIG_LEN);
        assert_eq!(
            sha(&big),
            sha(&pseudo_random(BIG_LEN, 42)),
            "100 MB file checksum"
        );
        let mut names: Vec<_> = std::fs::read_dir(r)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["a", "big", "dev", "etc", "hl", "keep", "lnk", "opq", "rel"]
        );
    }

    // --- tag, list, inspect, history
    store
        .tag(&fancy_ref, "myfancy", Some("stable"))
        .await
        .unwrap();
    let list = store.list(&ListFilters::default()).unwrap();
    assert_eq!(list.len(), 2);
    let f = list.iter().find(|i| i.id == fancy.config_digest).unwrap();
    assert_eq!(
        f.repo_tags,
        vec![format!("{host}/fancy:v1"), "myfancy:stable".to_string()]
    );
    // (skopeo rewrites the manifest on push, so the digest is the registry's.)
    assert_eq!(
        f.repo_digests,
        vec![format!("{host}/fancy@{}", fancy_out.digest)]
    );
    assert_eq!(f.labels.get("fixture").map(String::as_str), Some("fancy"));
    let mut filt = BTreeMap::new();
    filt.insert("reference".to_string(), vec!["myfancy".to_string()]);
    let l = store.list(&ListFilters::from_map(&filt).unwrap()).unwrap();
    assert_eq!(l.len(), 1);
    filt.clear();
    filt.insert("label".to_string(), vec!["fixture=busybox".to_string()]);
    let l = store.list(&ListFilters::from_map(&filt).unwrap()).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].id, bb.config_digest);
    filt.clear();
    filt.insert("before".to_string(), vec!["myfancy:stable".to_string()]);
    let l = store.list(&ListFilters::from_map(&filt).unwrap()).unwrap();
    assert_eq!(
        l.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        vec![bb.config_digest.clone()]
    );
    let ins = store.inspect("myfancy:stable").await.unwrap();
    assert_eq!(ins.id.as_deref(), Some(fancy.config_digest.as_str()));
    assert_eq!(
        ins.root_fs.as_ref().and_then(|r| r.layers.clone()),
        Some(fancy.diff_ids.clone())
    );
    assert_eq!(ins.os.as_deref(), Some("linux"));
    assert_eq!(ins.created.as_deref(), Some("2024-02-02T00:00:00Z"));
    assert!(ins.size.unwrap() > BIG_LEN as i64);
    let json = serde_json::to_value(&ins).unwrap();
    assert!(
        json.get("RootFS").is_some() && json.get("RepoTags").is_some(),
        "{json}"
    );
    let hist = store
        .history(&format!("{host}/library/busybox"))
        .await
        .unwrap();
    assert_eq!(hist[0].id, bb.config_digest);
    assert_eq!(hist[0].created_by, "busybox-static from Debian");
    // Short ID lookups work like dockerd's.
    assert_eq!(
        store
            .resolve(&fancy.config_digest[7..19])
            .unwrap()
            .to_string(),
        fancy.config_digest
    );

    // --- a second store on the same datastore (a restarted VCH) sees everything
    let store2 = sim.store(&reg).await;
    assert_eq!(
        store2.list(&ListFilters::default()).unwrap(),
        store.list(&ListFilters::default()).unwrap()
    );
    assert_eq!(
        store2.layer_disks("myfancy:stable").unwrap(),
        store.layer_disks("myfancy:stable").unwrap()
    );
    drop(store2);

    // --- remove: untag first, then delete (layers go with the last image using them)
    let r = store
        .remove("myfancy:stable", false, &NoContainers)
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].untagged.as_deref(), Some("myfancy:stable"));
    assert!(store.resolve(&fancy_ref).is_ok());
    let r = store
        .remove(&fancy_ref, false, &NoContainers)
        .await
        .unwrap();
    assert!(
        r.iter()
            .any(|d| d.deleted.as_deref() == Some(fancy.config_digest.as_str())),
        "{r:?}"
    );
    assert!(store.resolve(&fancy_ref).is_err());
    for f in &flats {
        assert!(!f.exists(), "layer disk {} left behind", f.display());
    }
    assert_eq!(store.list(&ListFilters::default()).unwrap().len(), 1);

    sim.done().await;
}
