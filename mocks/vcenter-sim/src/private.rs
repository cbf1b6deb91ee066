//! Files only the simulator's user may read: its data directory, TLS key, password.
//!
//! The data directory holds the inventory, the datastores (VM disks and container logs)
//! and the credentials, so it is created 0700 (and tightened if it already exists):
//! that alone keeps other users out of everything below it. Secrets are also written
//! 0600 themselves, so copying one out of the directory does not widen it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and parents) and makes it 0700.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Writes `data` to `path` with mode 0600, atomically (temp file + rename), so a reader
/// never sees a half-written secret and the file is never readable by others, not even
/// for a moment.
pub fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}

/// The secret stored in `path`, generated (256 random bits, hex) on first use. A file
/// left with a wider mode by an older version is tightened to 0600.
pub fn load_or_create_secret(path: &Path) -> io::Result<String> {
    match fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
            return Ok(s.trim().to_string());
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // uuid v4 draws from the OS random generator (getrandom): 2 x 122 random bits.
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(path, secret.as_bytes())?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_private_random_and_stable() {
        let base = std::env::temp_dir().join(format!("sim-priv-{}", uuid::Uuid::new_v4()));
        let (a, b) = (base.join("a"), base.join("b"));
        private_dir(&a).unwrap();
        private_dir(&b).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&a), 0o700);
        let sa = load_or_create_secret(&a.join("pw")).unwrap();
        let sb = load_or_create_secret(&b.join("pw")).unwrap();
        assert_ne!(sa, sb);
        assert_eq!(sa.len(), 64);
        assert_eq!(mode(&a.join("pw")), 0o600);
        assert_eq!(load_or_create_secret(&a.join("pw")).unwrap(), sa);
        // An old world-readable file is tightened.
        fs::set_permissions(a.join("pw"), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load_or_create_secret(&a.join("pw")).unwrap(), sa);
        assert_eq!(mode(&a.join("pw")), 0o600);
        fs::remove_dir_all(base).unwrap();
    }
}
