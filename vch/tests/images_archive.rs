//! save → load round trips (our own archives, and skopeo's docker-archive and
//! oci-archive), and import. Needs docker-registry, skopeo and busybox-static.

mod images_support;

use images_support::*;
use vch::images::types::{ListFilters, NoContainers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_load_and_import() {
    skip_unless_ready!(false);
    let reg = RegistryProc::start();
    let sim = Sim::start().await;
    let fancy = push_image(
        &reg,
        "fancy",
        "v1",
        &OciImage {
            layers: fancy_layers(false),
            config: serde_json::json!({"created": "2024-02-02T00:00:00Z"}),
            platform: ("linux", "amd64"),
        },
        &[],
    );
    // skopeo 1.9 cannot write zstd layers into a docker-archive: busybox (gzip) for those.
    let bb = push_image(
        &reg,
        "busybox",
        "v1",
        &OciImage {
            layers: vec![Layer {
                tar: busybox_layer(),
                comp: Comp::Gzip,
            }],
            config: busybox_config(),
            platform: ("linux", "amd64"),
        },
        &[],
    );
    let store = sim.store(&reg).await;
    let r = format!("{}/fancy:v1", reg.host());
    store.pull(&r, None, None, |_| {}).await.unwrap();

    // save → a file; skopeo reads it as a docker-archive
    let work = tempdir("archive");
    let saved = work.join("saved.tar");
    let f = tokio::fs::File::create(&saved).await.unwrap();
    store.save(std::slice::from_ref(&r), f).await.unwrap();
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("docker-archive:{}", saved.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo cannot read our archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // remove, then load back: same image ID, same tag, same layer disks
    let disks_before = store.layer_disks(&r).unwrap();
    store.remove(&r, true, &NoContainers).await.unwrap();
    assert!(store.list(&ListFilters::default()).unwrap().is_empty());
    let mut msgs = Vec::new();
    let f = tokio::fs::File::open(&saved).await.unwrap();
    let loaded = store.load(f, |e| msgs.push(e.status())).await.unwrap();
    assert_eq!(loaded, vec![r.clone()]);
    assert_eq!(msgs, vec![format!("Loaded image: {r}")]);
    assert_eq!(store.resolve(&r).unwrap().to_string(), fancy.config_digest);
    assert_eq!(store.layer_disks(&r).unwrap(), disks_before);

    // skopeo's own formats load too: classic docker-archive and OCI archive
    for (kind, tag) in [("docker-archive", "skd:1"), ("oci-archive", "sko:1")] {
        let file = work.join(format!("{kind}.tar"));
        let dest = format!("{kind}:{}:{}/{tag}", file.display(), reg.host());
        let st = std::process::Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{}/busybox:v1", reg.host()))
            .arg(dest)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "skopeo copy to {kind}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let f = tokio::fs::File::open(&file).await.unwrap();
        let loaded = store.load(f, |_| {}).await.unwrap();
        assert_eq!(loaded.len(), 1, "{kind}: {loaded:?}");
        // skopeo may rewrite the config (docker-archive does): compare the layers.
        let ins = store.inspect(&loaded[0]).await.unwrap();
        assert_eq!(ins.root_fs.unwrap().layers.unwrap(), bb.diff_ids, "{kind}");
        assert_eq!(store.layer_disks(&loaded[0]).unwrap().len(), 1);
    }

    // a hostile archive member is refused
    let mut evil = TarW::new();
    evil.raw("../manifest.json", tar::EntryType::Regular, "", b"[]");
    let err = store
        .load(std::io::Cursor::new(evil.finish()), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("../manifest.json"), "{err}");

    // import: a filesystem tarball as a one-layer image
    let tarball = TarW::new()
        .dir("imported/")
        .file("imported/file", &pseudo_random(100_000, 5), 0o644)
        .finish();
    let id = store
        .import(
            std::io::Cursor::new(tarball.clone()),
            Some("imported/bb:v1"),
            Some("from a tarball"),
            {
                let mut c = vch::images::manifest::ContainerConfig::default();
                for change in ["CMD [\"/bin/sh\"]", "ENV A=1"] {
                    vch::build::config::apply_change(&mut c, change).unwrap();
                }
                c
            },
            None,
        )
        .await
        .unwrap();
    let ins = store.inspect("imported/bb:v1").await.unwrap();
    assert_eq!(ins.id, Some(id.to_string()));
    assert_eq!(ins.root_fs.unwrap().layers.unwrap(), vec![sha(&tarball)]);
    assert_eq!(ins.comment.as_deref(), Some("from a tarball"));
    let cfg = ins.config.unwrap();
    assert_eq!(cfg.cmd.unwrap(), vec!["/bin/sh"]);
    assert_eq!(cfg.env.unwrap(), vec!["A=1"]);
    assert_eq!(store.layer_disks("imported/bb:v1").unwrap().len(), 1);

    // prune: importing again under the same tag leaves the first import dangling
    let other = TarW::new().dir("x/").file("x/y", b"y", 0o644).finish();
    let id2 = store
        .import(
            std::io::Cursor::new(other),
            Some("imported/bb:v1"),
            None,
            Default::default(),
            None,
        )
        .await
        .unwrap();
    let mut f = std::collections::BTreeMap::new();
    f.insert("dangling".to_string(), vec!["true".to_string()]);
    let dangling = store.list(&ListFilters::from_map(&f).unwrap()).unwrap();
    assert_eq!(
        dangling.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        vec![id.to_string()]
    );
    let rep = store
        .prune(&Default::default(), &NoContainers)
        .await
        .unwrap();
    assert!(
        rep.images_deleted
            .iter()
            .flatten()
            .any(|d| d.deleted.as_deref() == Some(id.to_string().as_str())),
        "{rep:?}"
    );
    assert!(rep.space_reclaimed.unwrap() > 0);
    assert!(store.resolve(&id.to_string()).is_err());
    assert_eq!(store.resolve("imported/bb:v1").unwrap(), id2);
    let _ = std::fs::remove_dir_all(work);
    sim.done().await;
}
