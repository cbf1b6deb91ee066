//! Extracting a tar that streams in from the VCH into a directory, keeping every entry
//! inside it: refused, naming the entry, are absolute names, `..`, entries below a symlink
//! of the same archive, relative symlink targets above the destination, and hard links
//! out of it.

use super::{send, Port};
use container_vm::channel::{Frame, Kind};
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;

/// The tar coming in: `Data` frames from the inbox, each acknowledged with a `Credit` so
/// the VCH sends more; an empty frame (or a closed inbox) is the end.
pub(super) struct Inbox<'a> {
    port: &'a Port,
    session: u32,
    rx: mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
    eof: bool,
}

impl<'a> Inbox<'a> {
    pub(super) fn new(port: &'a Port, session: u32, rx: mpsc::Receiver<Vec<u8>>) -> Inbox<'a> {
        Inbox {
            port,
            session,
            rx,
            cur: Vec::new(),
            at: 0,
            eof: false,
        }
    }
}

impl Read for Inbox<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.cur.len() {
            if self.eof {
                return Ok(0);
            }
            match self.rx.recv_timeout(std::time::Duration::from_secs(300)) {
                Ok(d) => {
                    let _ = send(
                        self.port,
                        Frame::new(Kind::Credit, self.session, b"1".to_vec()),
                    );
                    self.eof = d.is_empty();
                    self.cur = d;
                    self.at = 0;
                }
                Err(_) => return Err(io::Error::other("the tar stream stalled")),
            }
        }
        let n = out.len().min(self.cur.len() - self.at);
        out[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Why an entry is refused.
fn refuse(name: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("refusing archive entry {name:?}: {why}"),
    )
}

/// An entry name as a relative path inside the destination: no absolute paths, no `..`.
fn entry_rel(name: &[u8]) -> io::Result<PathBuf> {
    let shown = String::from_utf8_lossy(name).into_owned();
    let p = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name));
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse(&shown, "it climbs out with '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse(&shown, "absolute paths are not allowed"))
            }
        }
    }
    Ok(rel)
}

/// Where a symlink at `rel` pointing to `target` lands, relative to the destination;
/// `None` when it leaves it. Absolute targets resolve in the container's root, which is
/// all the container can see; they are taken as they are.
fn link_stays_inside(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut depth: i64 = rel.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

pub(super) fn extract<R: Read>(
    src: R,
    dest: &Path,
    no_overwrite_dir_non_dir: bool,
) -> io::Result<()> {
    let mut ar = tar::Archive::new(src);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_preserve_ownerships(true);
    ar.set_unpack_xattrs(false);
    // Symlinks this archive created: nothing may be written through them.
    let mut links: Vec<PathBuf> = Vec::new();
    for entry in ar.entries()? {
        let mut e = entry?;
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = entry_rel(&raw)?;
        let ty = e.header().entry_type();
        if rel.as_os_str().is_empty() {
            continue; // the destination itself
        }
        if links.iter().any(|l| rel.starts_with(l) && rel != *l) {
            return Err(refuse(
                &shown,
                "it lies below a symlink of the same archive",
            ));
        }
        let target = dest.join(&rel);
        match ty {
            tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::Directory
            | tar::EntryType::Symlink
            | tar::EntryType::Link
            | tar::EntryType::Char
            | tar::EntryType::Block
            | tar::EntryType::Fifo => {}
            tar::EntryType::XGlobalHeader => continue,
            other => return Err(refuse(&shown, &format!("unsupported entry type {other:?}"))),
        }
        if let Ok(old) = fs::symlink_metadata(&target) {
            let new_is_dir = ty == tar::EntryType::Directory;
            if no_overwrite_dir_non_dir && old.is_dir() != new_is_dir {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    if old.is_dir() {
                        format!(
                            "cannot overwrite directory {:?} with non-directory {shown:?}",
                            target
                        )
                    } else {
                        format!(
                            "cannot overwrite non-directory {:?} with directory {shown:?}",
                            target
                        )
                    },
                ));
            }
            // Replace what is there, never write through it (it may be a symlink).
            if !(old.is_dir() && new_is_dir) {
                if old.is_dir() {
                    fs::remove_dir_all(&target)?;
                } else {
                    fs::remove_file(&target)?;
                }
            }
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        match ty {
            tar::EntryType::Symlink => {
                let to = e
                    .link_name()?
                    .ok_or_else(|| refuse(&shown, "symlink without a target"))?
                    .into_owned();
                if !link_stays_inside(&rel, &to) {
                    return Err(refuse(
                        &shown,
                        &format!(
                            "symlink target {} points out of the destination",
                            to.display()
                        ),
                    ));
                }
                std::os::unix::fs::symlink(&to, &target)?;
                let _ = nix::unistd::fchownat(
                    None,
                    &target,
                    Some(nix::unistd::Uid::from_raw(
                        e.header().uid().unwrap_or(0) as u32
                    )),
                    Some(nix::unistd::Gid::from_raw(
                        e.header().gid().unwrap_or(0) as u32
                    )),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                );
                links.push(rel);
            }
            tar::EntryType::Link => {
                let to = e
                    .link_name_bytes()
                    .ok_or_else(|| refuse(&shown, "hard link without a target"))?
                    .into_owned();
                let to_rel = entry_rel(&to)?;
                if links.iter().any(|l| to_rel.starts_with(l)) {
                    return Err(refuse(
                        &shown,
                        "hard link through a symlink of the same archive",
                    ));
                }
                fs::hard_link(dest.join(to_rel), &target)?;
            }
            _ => {
                e.unpack(&target)
                    .map_err(|err| io::Error::new(err.kind(), format!("{shown}: {err}")))?;
            }
        }
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, ty, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*ty);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            // Raw names: the builder's helpers refuse '..' themselves.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            if !link.is_empty() {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tether-arch-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn extracts_files_dirs_links() {
        let d = tmp("ok");
        let t = tar_of(&[
            ("a/", tar::EntryType::Directory, b"", ""),
            ("a/f", tar::EntryType::Regular, b"hello", ""),
            ("a/l", tar::EntryType::Symlink, b"", "f"),
            ("a/h", tar::EntryType::Link, b"", "a/f"),
            ("abs", tar::EntryType::Symlink, b"", "/etc/passwd"),
        ]);
        extract(&t[..], &d, false).unwrap();
        assert_eq!(fs::read(d.join("a/f")).unwrap(), b"hello");
        assert_eq!(fs::read_link(d.join("a/l")).unwrap(), Path::new("f"));
        assert_eq!(fs::read(d.join("a/h")).unwrap(), b"hello");
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn refuses_escapes() {
        for (what, entries) in [
            (
                "dotdot",
                vec![("../evil", tar::EntryType::Regular, &b"x"[..], "")],
            ),
            (
                "abs",
                vec![("/evil", tar::EntryType::Regular, &b"x"[..], "")],
            ),
            (
                "link-out",
                vec![("l", tar::EntryType::Symlink, &b""[..], "../../etc")],
            ),
            (
                "through-link",
                vec![
                    ("l", tar::EntryType::Symlink, &b""[..], "/"),
                    ("l/evil", tar::EntryType::Regular, &b"x"[..], ""),
                ],
            ),
            (
                "hardlink-out",
                vec![("h", tar::EntryType::Link, &b""[..], "../x")],
            ),
        ] {
            let d = tmp(what);
            let err = extract(&tar_of(&entries)[..], &d, false).unwrap_err();
            assert!(
                err.to_string().contains("refusing archive entry"),
                "{what}: {err}"
            );
            assert!(!d.join("l/evil").exists() && !d.parent().unwrap().join("evil").exists());
            fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn replaces_a_symlink_instead_of_writing_through_it() {
        let d = tmp("replace");
        let outside = d.join("outside");
        fs::write(&outside, b"keep").unwrap();
        let dest = d.join("dest");
        fs::create_dir_all(&dest).unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("f")).unwrap();
        extract(
            &tar_of(&[("f", tar::EntryType::Regular, b"new", "")])[..],
            &dest,
            false,
        )
        .unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"keep");
        assert_eq!(fs::read(dest.join("f")).unwrap(), b"new");
        fs::remove_dir_all(d).unwrap();
    }
}
