//! `docker cp` and `docker export`, the guest's half: the stat of a path, tars of the
//! container's root filesystem (the tether's own root after pivot_root) out over the
//! control channel (`tarball`), and tars in, extracted into a directory (`extract`).

use super::extract::{extract, Inbox};
use super::tarball::{finish, stream_tar};
use super::{ErrorKind, Port, Reply};
use container_vm::ops::PathStat;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;

/// Go's `os.FileMode` from a Unix mode: Docker clients decode these bits.
pub fn go_file_mode(m: &fs::Metadata) -> u32 {
    let ft = m.file_type();
    let mode = m.permissions().mode();
    let mut out = mode & 0o777;
    if ft.is_dir() {
        out |= 1 << 31;
    }
    if ft.is_symlink() {
        out |= 1 << 27;
    }
    if ft.is_block_device() {
        out |= 1 << 26;
    }
    if ft.is_char_device() {
        out |= (1 << 26) | (1 << 21);
    }
    if ft.is_fifo() {
        out |= 1 << 25;
    }
    if ft.is_socket() {
        out |= 1 << 24;
    }
    if mode & 0o4000 != 0 {
        out |= 1 << 23;
    }
    if mode & 0o2000 != 0 {
        out |= 1 << 22;
    }
    if mode & 0o1000 != 0 {
        out |= 1 << 20;
    }
    out
}

/// The user's path as an absolute, lexically clean path in the container, and whether it
/// ended in `/.` (dockerd then archives the directory's contents, not the directory).
fn clean(path: &str) -> (PathBuf, bool) {
    let contents = path.ends_with("/.") || path == ".";
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    (out, contents)
}

fn not_found(path: &str) -> Reply {
    Reply::error(
        ErrorKind::NotFound,
        format!("Could not find the file {path} in container"),
    )
}

fn stat(path: &str) -> Result<PathStat, Reply> {
    let (p, _) = clean(path);
    let m = fs::symlink_metadata(&p).map_err(|_| not_found(path))?;
    let link_target = if m.file_type().is_symlink() {
        let t = fs::read_link(&p).map_err(|e| Reply::error(ErrorKind::Internal, e.to_string()))?;
        let abs = p.parent().unwrap_or(Path::new("/")).join(t);
        clean(&abs.to_string_lossy())
            .0
            .to_string_lossy()
            .into_owned()
    } else {
        String::new()
    };
    let mtime = chrono::DateTime::from_timestamp(m.mtime(), m.mtime_nsec() as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    Ok(PathStat {
        name: p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into()),
        size: m.len() as i64,
        mode: go_file_mode(&m),
        mtime,
        link_target,
    })
}

pub fn stat_reply(path: &str) -> Reply {
    match stat(path).map(serde_json::to_value) {
        Ok(Ok(v)) => Reply::Ok(v),
        Ok(Err(e)) => Reply::error(ErrorKind::Internal, e.to_string()),
        Err(r) => r,
    }
}
/// `GET /archive`: the stat as the reply, then the tar.
pub fn get(port: &Port, session: u32, path: &str) {
    let st = match stat(path) {
        Ok(s) => s,
        Err(r) => return super::reply(port, session, &r),
    };
    super::reply(
        port,
        session,
        &Reply::Ok(serde_json::to_value(&st).unwrap_or_default()),
    );
    let (p, contents) = clean(path);
    // dockerd names entries after the path's last element ("." for `dir/.`).
    let name = if contents || p == Path::new("/") {
        b".".to_vec()
    } else {
        st.name.clone().into_bytes()
    };
    finish(port, session, stream_tar(port, session, &p, &name));
}

/// `GET /export`: the whole root filesystem, entries relative to it.
pub fn export(port: &Port, session: u32) {
    super::reply(port, session, &Reply::Ok(serde_json::Value::Null));
    finish(
        port,
        session,
        stream_tar(port, session, Path::new("/"), b""),
    );
}
/// `PUT /archive`: extract the incoming tar into the directory `path`.
pub fn put(
    port: &Port,
    session: u32,
    path: &str,
    no_overwrite_dir_non_dir: bool,
    rx: mpsc::Receiver<Vec<u8>>,
) -> Reply {
    let (dest, _) = clean(path);
    match fs::metadata(&dest) {
        Err(_) => return not_found(path),
        Ok(m) if !m.is_dir() => {
            return Reply::error(ErrorKind::Invalid, "extraction point is not a directory")
        }
        Ok(_) => {}
    }
    let inbox = Inbox::new(port, session, rx);
    match extract(inbox, &dest, no_overwrite_dir_non_dir) {
        Ok(()) => Reply::Ok(serde_json::Value::Null),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            Reply::error(ErrorKind::Invalid, e.to_string())
        }
        Err(e) => Reply::error(ErrorKind::Internal, format!("extracting the archive: {e}")),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tarball::append_tree;
    use std::io::Read;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tether-arch-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn tars_with_dockerd_names() {
        let d = tmp("names");
        let long = "n".repeat(150);
        fs::create_dir_all(d.join("src/sub")).unwrap();
        fs::write(d.join("src/sub/f"), b"data").unwrap();
        fs::write(d.join("src").join(&long), b"long").unwrap();
        std::os::unix::fs::symlink("x".repeat(120), d.join("src/l")).unwrap();
        let tar_of = |name: &[u8]| {
            let mut b = tar::Builder::new(Vec::new());
            let dev = fs::symlink_metadata(d.join("src")).unwrap().dev();
            append_tree(&mut b, &d.join("src"), name, dev).unwrap();
            b.into_inner().unwrap()
        };
        let names = |t: Vec<u8>| -> Vec<(String, Vec<u8>, String)> {
            let mut a = tar::Archive::new(&t[..]);
            a.entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let n = String::from_utf8(e.path_bytes().into_owned()).unwrap();
                    let l = e
                        .link_name_bytes()
                        .map(|l| String::from_utf8(l.into_owned()).unwrap())
                        .unwrap_or_default();
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    (n, data, l)
                })
                .collect()
        };
        let got = names(tar_of(b"."));
        let n: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            n,
            vec!["./", "./l", &format!("./{long}"), "./sub/", "./sub/f"]
        );
        assert_eq!(got[1].2, "x".repeat(120));
        assert_eq!(got[2].1, b"long");
        assert_eq!(got[4].1, b"data");
        let got = names(tar_of(b"src"));
        assert_eq!(got[0].0, "src/");
        assert_eq!(got[4].0, "src/sub/f");
        // What we write, we read back through the checked extractor.
        let out = d.join("out");
        fs::create_dir_all(&out).unwrap();
        extract(&tar_of(b"src")[..], &out, false).unwrap();
        assert_eq!(fs::read(out.join("src/sub/f")).unwrap(), b"data");
        assert_eq!(fs::read(out.join("src").join(&long)).unwrap(), b"long");
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn paths_and_modes() {
        assert_eq!(clean("tmp/../etc/./x"), (PathBuf::from("/etc/x"), false));
        assert_eq!(clean("/a/b/."), (PathBuf::from("/a/b"), true));
        let m = fs::symlink_metadata(std::env::temp_dir()).unwrap();
        assert_ne!(go_file_mode(&m) & (1 << 31), 0);
    }
}
