//! The `appliance-image` command: refuses a dynamically linked tether unless told, and
//! builds a boot disk `vch serve --boot-image` accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("appliance-image-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_appliance-image"))
        .args(args)
        .output()
        .unwrap()
}

/// The one way a test here declines to run: under `CI=true` it fails with `why` (a green
/// CI that tested nothing would hide it); elsewhere it prints "SKIPPED <test>: <why>" and
/// the caller returns.
fn cannot_run(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let ci = std::env::var("CI").as_deref() == Ok("true");
    assert!(!ci, "{test} cannot run under CI=true: {why}");
    eprintln!("SKIPPED {test}: {why}");
}

fn have_mkfs() -> bool {
    let ok = Command::new("mkfs.ext4").arg("-V").output().is_ok();
    if !ok {
        cannot_run("mkfs.ext4 (e2fsprogs) is not installed");
    }
    ok
}

#[test]
fn a_dynamic_tether_is_refused_unless_allowed() {
    if !have_mkfs() {
        return;
    }
    // This very command is dynamically linked, as every default Rust build is.
    let dynamic = Path::new(env!("CARGO_BIN_EXE_appliance-image"));
    let out = out_dir("dyn");
    let o = run(&[
        "--tether".as_ref(),
        dynamic.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("dynamically linked"), "{err}");
    assert!(err.contains("ld-linux"), "{err}");
    assert!(err.contains("crt-static"), "{err}");
    assert!(!out.join("vch-boot-flat.vmdk").exists());

    let o = run(&[
        "--tether".as_ref(),
        dynamic.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--allow-dynamic".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    appliance_image::check_boot_image(&out.join("vch-boot-flat.vmdk")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_static_binary_makes_a_boot_image() {
    if !have_mkfs() {
        return;
    }
    // busybox-static stands in for a static tether here (tether/tests/static_tether.rs
    // boots the real one).
    let bb = Path::new("/bin/busybox");
    if appliance_image::check_static(bb).is_err() {
        return cannot_run("/bin/busybox is missing or not the static build (busybox-static)");
    }
    let out = out_dir("static");
    let o = run(&[
        "--tether".as_ref(),
        bb.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--name".as_ref(),
        "tpl".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed = String::from_utf8_lossy(&o.stdout);
    let descriptor = out.join("tpl.vmdk");
    let extent = out.join("tpl-flat.vmdk");
    assert_eq!(
        printed,
        format!("{}\n{}\n", descriptor.display(), extent.display())
    );
    let len = appliance_image::check_boot_image(&extent).unwrap();
    assert!(std::fs::read_to_string(&descriptor)
        .unwrap()
        .contains(&format!("RW {} VMFS \"tpl-flat.vmdk\"", len / 512)));
    // What --boot-image must not accept: the descriptor, or the binary itself.
    let e = appliance_image::check_boot_image(&descriptor).unwrap_err();
    assert!(e.to_string().contains("descriptor"), "{e}");
    let e = appliance_image::check_boot_image(bb).unwrap_err();
    assert!(e.to_string().contains("no ext4 filesystem"), "{e}");
    std::fs::remove_dir_all(&out).unwrap();
}
