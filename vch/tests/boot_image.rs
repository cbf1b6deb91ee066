//! `vch serve --boot-image`: the embedded target uploads the prebuilt flat image as the
//! container VMs' boot disk, byte for byte, and refuses what is not one. Needs mkfs.ext4
//! (e2fsprogs); skipped without it (a failure under CI=true).

use std::path::PathBuf;
use vch::target::{Target, TargetConfig, TargetError};

/// The one way a test here declines to run: under `CI=true` it fails with `why` (a green
/// CI that tested nothing would hide it); elsewhere it prints "SKIPPED <test>: <why>" and
/// the caller returns.
fn cannot_run(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let ci = std::env::var("CI").as_deref() == Ok("true");
    assert!(!ci, "{test} cannot run under CI=true: {why}");
    eprintln!("SKIPPED {test}: {why}");
}

fn config(dir: &std::path::Path, image: PathBuf) -> TargetConfig {
    TargetConfig {
        name: "vch-bi".into(),
        state_dir: dir.join("state"),
        boot_image: Some(image),
        ..TargetConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prebuilt_boot_image_is_uploaded_as_the_boot_disk() {
    if std::process::Command::new("mkfs.ext4")
        .arg("-V")
        .output()
        .is_err()
    {
        return cannot_run("mkfs.ext4 (e2fsprogs) is not installed");
    }
    let dir = std::env::temp_dir().join(format!("vch-boot-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let stage = dir.join("stage/sbin");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::write(stage.join("init"), b"not run here").unwrap();
    let (descriptor, extent) =
        appliance_image::build_ext4_disk(&dir.join("stage"), &dir.join("img"), "tpl", 0).unwrap();
    let image = std::fs::read(&extent).unwrap();

    let t = Target::open(&config(&dir, extent.clone())).await.unwrap();
    let name = t
        .boot_disk
        .strip_prefix(&format!("[{}] vch-bi/boot/", t.datastore_name))
        .and_then(|n| n.strip_suffix(".vmdk"))
        .unwrap_or_else(|| panic!("boot disk at {}", t.boot_disk))
        .to_string();
    assert!(
        name.starts_with(&format!("vch-boot-img-{}-", image.len())),
        "{name}"
    );
    let flat = t
        .client
        .download_bytes(
            &t.datacenter_name,
            &t.datastore_name,
            &format!("vch-bi/boot/{name}-flat.vmdk"),
            None,
        )
        .await
        .unwrap();
    assert!(flat == image, "the uploaded extent differs from the image");
    let desc = t
        .client
        .download_bytes(
            &t.datacenter_name,
            &t.datastore_name,
            &format!("vch-bi/boot/{name}.vmdk"),
            None,
        )
        .await
        .unwrap();
    let desc = String::from_utf8(desc).unwrap();
    assert!(
        desc.contains(&format!(
            "RW {} VMFS \"{name}-flat.vmdk\"",
            image.len() / 512
        )),
        "{desc}"
    );
    if let Some(sim) = t.embedded {
        sim.shutdown().await;
    }

    // The descriptor given instead of the flat extent: refused, with the reason.
    match Target::open(&config(&dir, descriptor)).await {
        Err(TargetError::BootDisk(e)) => assert!(e.contains("descriptor"), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a descriptor was accepted as a boot image"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
