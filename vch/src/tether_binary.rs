//! Which tether binary the container VMs' boot disk is built from when no prebuilt boot
//! image is given: the one named by `vch serve --tether PATH` (config key `tether`, env
//! `VCH_TETHER`), else the `tether` executable next to the running `vch`, which is where
//! cargo puts it when both are built (`cargo build -p vch -p tether`). The VCH does not
//! contain the guest agent: it only copies this file onto the boot disk.

use std::path::{Path, PathBuf};

/// Environment variable naming the tether binary (the `--tether` flag wins).
pub const ENV: &str = "VCH_TETHER";
/// The file name looked for next to `vch`.
pub const NAME: &str = "tether";
/// How to get one, for error messages.
pub const BUILD_HINT: &str = "cargo build --release -p tether";

/// The tether to build the boot disk from: `explicit` when given, else the default next
/// to this executable. The error says where it looked and how to build one.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the tether next to vch: {e}"))?;
    locate_from(explicit, &exe)
}

/// Where the default tether may be for the executable `exe`: beside it, and for a cargo
/// test binary (`target/<profile>/deps/…`) also beside the profile's binaries.
pub fn default_candidates(exe: &Path) -> Vec<PathBuf> {
    let Some(dir) = exe.parent() else {
        return Vec::new();
    };
    let mut out = vec![dir.join(NAME)];
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(profile) = dir.parent() {
            out.push(profile.join(NAME));
        }
    }
    out
}

/// [`locate`] for a given executable path (testable).
pub fn locate_from(explicit: Option<&Path>, exe: &Path) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "no tether binary at {} (--tether, `tether` in --config or {ENV}); \
                 build it with `{BUILD_HINT}`",
                p.display()
            ))
        };
    }
    let candidates = default_candidates(exe);
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "no tether binary next to vch (looked for {}): build it with `{BUILD_HINT}` \
         (it lands beside target/release/vch), or name one with --tether PATH",
        looked.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vch-tether-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_default_is_the_tether_beside_vch() {
        let d = scratch("beside");
        let exe = d.join("vch");
        let err = locate_from(None, &exe).unwrap_err();
        assert!(
            err.contains(&d.join("tether").display().to_string()),
            "{err}"
        );
        assert!(err.contains(BUILD_HINT), "{err}");
        std::fs::write(d.join("tether"), b"elf").unwrap();
        assert_eq!(locate_from(None, &exe).unwrap(), d.join("tether"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_cargo_test_binary_finds_the_profiles_tether() {
        let d = scratch("deps");
        std::fs::create_dir_all(d.join("deps")).unwrap();
        let exe = d.join("deps/vch-0123abcd");
        assert_eq!(
            default_candidates(&exe),
            vec![d.join("deps/tether"), d.join("tether")]
        );
        std::fs::write(d.join("tether"), b"elf").unwrap();
        assert_eq!(locate_from(None, &exe).unwrap(), d.join("tether"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn an_explicit_path_must_exist_and_wins() {
        let d = scratch("explicit");
        std::fs::write(d.join("tether"), b"elf").unwrap();
        let mine = d.join("my-tether");
        let err = locate_from(Some(&mine), &d.join("vch")).unwrap_err();
        assert!(err.contains(&mine.display().to_string()), "{err}");
        assert!(err.contains(BUILD_HINT), "{err}");
        std::fs::write(&mine, b"elf").unwrap();
        assert_eq!(locate_from(Some(&mine), &d.join("vch")).unwrap(), mine);
        // A directory is not a binary.
        assert!(locate_from(Some(&d), &d.join("vch")).is_err());
        std::fs::remove_dir_all(d).unwrap();
    }
}
