//! `vch serve` builds the container VMs' boot disk from a separate tether binary: a missing
//! one stops it at once (before any simulator or vSphere object exists), with an error that
//! says where it looked and how to build one.

use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `vch serve` and returns its exit code and stderr; it must not get far enough to
/// start anything.
fn serve(vch: &Path, dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let sock = format!("unix://{}", dir.join("vch.sock").display());
    let out = Command::new(vch)
        .args(["serve", "-H", &sock, "--state-dir"])
        .arg(dir.join("state"))
        .args(extra)
        .env_remove("VCH_TETHER")
        .output()
        .unwrap();
    assert!(
        !dir.join("state/vcenter-sim").exists(),
        "the simulator was started before the tether was found"
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_tether_named_by_flag_is_a_clear_error() {
    let dir = scratch("tether-flag");
    let missing = dir.join("no-such-tether");
    let (code, err) = serve(
        Path::new(env!("CARGO_BIN_EXE_vch")),
        &dir,
        &["--tether", missing.to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("cargo build --release -p tether"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn without_a_tether_beside_vch_the_error_names_where_it_looked() {
    let dir = scratch("tether-default");
    // The vch binary alone in a directory (a hard link: the debug binary is large).
    let vch = dir.join("vch");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_vch"), &vch).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_vch"), &vch).unwrap();
    }
    let (code, err) = serve(&vch, &dir, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&dir.join("tether").display().to_string()),
        "{err}"
    );
    assert!(err.contains("cargo build --release -p tether"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
