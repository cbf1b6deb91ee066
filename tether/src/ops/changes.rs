//! `docker diff` and `docker commit`: what the container changed of its image, read from
//! the overlay's upper directory (the scratch disk) against the image's layers.
//!
//! The upper directory and the layers are mounted under the tether's staging directory,
//! which the container's root no longer shows once pid 1 has moved into it; their
//! directories are kept open here (`remember`) and read through `/proc/self/fd`.
//!
//! A change is dockerd's: `A` for what the layers lack, `C` for what replaces or modifies
//! something of theirs (a directory only when something below it changed or its own mode
//! or owner did), `D` for an overlay whiteout. What the tether itself writes into every
//! container (`/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`, the kernel file systems'
//! mount points) is left out, as dockerd's init layer leaves it out.

use super::tarball::{append_entry, DataWriter};
use super::{send, Port};
use container_vm::channel::{Frame, Kind};
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Docker's change kinds (`FilesystemChange.Kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Absolute in the container (`/tmp/x`).
    pub path: String,
    pub kind: ChangeKind,
    /// An opaque directory: nothing of the layers' below it shows.
    pub opaque: bool,
}

/// Paths that every container has in its upper directory because the tether made them.
const HIDDEN: [&str; 7] = [
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
    "/dev",
    "/.oldroot",
];

struct Dirs {
    upper: OwnedFd,
    lowers: Vec<OwnedFd>,
}

static DIRS: OnceLock<Dirs> = OnceLock::new();

/// Keeps the overlay's upper directory and layers open (called while they are visible).
pub fn remember(upper: &Path, lowers: &[PathBuf]) {
    let open = |p: &Path| -> Option<OwnedFd> { fs::File::open(p).ok().map(OwnedFd::from) };
    let (Some(upper), Some(lowers)) = (
        open(upper),
        lowers.iter().map(|l| open(l)).collect::<Option<Vec<_>>>(),
    ) else {
        return;
    };
    let _ = DIRS.set(Dirs { upper, lowers });
}

fn via_fd(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The container's changes, parents before children, in path order.
pub fn current() -> io::Result<(PathBuf, Vec<Change>)> {
    let d = DIRS
        .get()
        .ok_or_else(|| io::Error::other("the container's layers are not known"))?;
    let upper = via_fd(&d.upper);
    let lowers: Vec<PathBuf> = d.lowers.iter().map(via_fd).collect();
    let changes = changes_in(&upper, &lowers)?;
    Ok((upper, changes))
}

/// The changes of `upper` over `lowers` (any order: only existence and metadata count).
pub fn changes_in(upper: &Path, lowers: &[PathBuf]) -> io::Result<Vec<Change>> {
    let mut out = Vec::new();
    walk(upper, "", lowers, &mut out)?;
    Ok(out)
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut v = [0u8; 1];
    // SAFETY: lgetxattr writes at most `v.len()` bytes into `v`.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            v.len(),
        )
    };
    n == 1 && v[0] == b'y'
}

fn in_lowers(lowers: &[PathBuf], rel: &str) -> Option<fs::Metadata> {
    let rel = rel.trim_start_matches('/');
    lowers
        .iter()
        .find_map(|l| fs::symlink_metadata(l.join(rel)).ok())
}

/// Walks `dir` (the upper directory at `rel`); returns whether anything below changed.
fn walk(dir: &Path, rel: &str, lowers: &[PathBuf], out: &mut Vec<Change>) -> io::Result<bool> {
    let mut kids: Vec<_> = fs::read_dir(dir)?.filter_map(Result::ok).collect();
    kids.sort_by_key(|e| e.file_name());
    let mut any = false;
    for k in kids {
        let name = k.file_name();
        let child_rel = format!("{rel}/{}", name.to_string_lossy());
        if HIDDEN.contains(&child_rel.as_str()) {
            continue;
        }
        let path = dir.join(&name);
        let m = fs::symlink_metadata(&path)?;
        if is_whiteout(&m) {
            any = true;
            out.push(Change {
                path: child_rel,
                kind: ChangeKind::Deleted,
                opaque: false,
            });
            continue;
        }
        let below = in_lowers(lowers, &child_rel);
        if !m.is_dir() {
            any = true;
            out.push(Change {
                path: child_rel,
                kind: if below.is_some() {
                    ChangeKind::Modified
                } else {
                    ChangeKind::Added
                },
                opaque: false,
            });
            continue;
        }
        let opaque = is_opaque(&path);
        let slot = out.len();
        let inner = walk(&path, &child_rel, lowers, out)?;
        let kind = match &below {
            None => Some(ChangeKind::Added),
            Some(l) if l.is_dir() => {
                let own = l.mode() != m.mode() || l.uid() != m.uid() || l.gid() != m.gid();
                (inner || opaque || own).then_some(ChangeKind::Modified)
            }
            Some(_) => Some(ChangeKind::Modified),
        };
        if let Some(kind) = kind {
            any = true;
            out.insert(
                slot,
                Change {
                    path: child_rel,
                    kind,
                    opaque,
                },
            );
        }
    }
    Ok(any)
}

/// A tar of the changes as an image layer: files as they are now, deletions as `.wh.`
/// whiteouts, opaque directories with `.wh..wh..opq`.
pub fn layer_tar<W: Write>(w: W, upper: &Path, changes: &[Change]) -> io::Result<W> {
    let mut b = tar::Builder::new(w);
    for c in changes {
        let rel = c.path.trim_start_matches('/');
        match c.kind {
            ChangeKind::Deleted => {
                let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
                let wh = if parent.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{parent}/.wh.{name}")
                };
                marker(&mut b, &wh)?;
            }
            _ => {
                let src = upper.join(rel);
                let m = fs::symlink_metadata(&src)?;
                if m.file_type().is_socket() {
                    continue;
                }
                let mut name = rel.as_bytes().to_vec();
                if m.is_dir() {
                    name.push(b'/');
                }
                append_entry(&mut b, &src, &name, &m)?;
                if c.opaque {
                    marker(&mut b, &format!("{rel}/.wh..wh..opq"))?;
                }
            }
        }
    }
    b.into_inner()
}

fn marker<W: Write>(b: &mut tar::Builder<W>, name: &str) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o600);
    h.set_size(0);
    h.set_mtime(0);
    h.set_path(name)?;
    h.set_cksum();
    b.append(&h, io::empty())
}

/// `docker commit`'s layer as `Data` frames of `session`. With `pause`, the container's
/// processes are stopped (SIGSTOP) while it is read, and continued after: a VM has no
/// freezer cgroup of the container's own to use as dockerd does.
pub fn stream_layer(port: &Port, session: u32, pause: bool) -> io::Result<()> {
    let (upper, changes) = current()?;
    let paused = if pause { stop_processes() } else { Vec::new() };
    let w = DataWriter::new(port, session);
    let r = layer_tar(w, &upper, &changes).and_then(|mut w| w.flush());
    for pid in paused {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }
    r
}

/// Stops every process of the container but the tether; returns them.
fn stop_processes() -> Vec<i32> {
    let me = std::process::id() as i32;
    let pids: Vec<i32> = fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|p| *p != me && *p != 1)
                .collect()
        })
        .unwrap_or_default();
    for p in &pids {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(*p, libc::SIGSTOP) };
    }
    pids
}

/// The answer to `Changes`: `[{"Path", "Kind"}]` as Docker's API has them.
pub fn reply() -> container_vm::ops::Reply {
    use container_vm::ops::{ErrorKind, Reply};
    match current() {
        Ok((_, changes)) => Reply::Ok(serde_json::Value::Array(
            changes
                .iter()
                .map(|c| serde_json::json!({"Path": c.path, "Kind": c.kind as u8}))
                .collect(),
        )),
        Err(e) => Reply::error(ErrorKind::Internal, e.to_string()),
    }
}

/// Ends a layer stream (`Done`, with the error if any).
pub fn done(port: &Port, session: u32, r: io::Result<()>) {
    let payload = match r {
        Ok(()) => Vec::new(),
        Err(e) => e.to_string().into_bytes(),
    };
    let _ = send(port, Frame::new(Kind::Done, session, payload));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_names(tar: &[u8]) -> Vec<String> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tether-changes-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn changes_are_dockerds_a_c_and_parents_first() {
        let lower = tmp("lower");
        let upper = tmp("upper");
        for d in ["etc", "tmp", "usr/bin"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        fs::write(lower.join("etc/passwd"), "root").unwrap();
        fs::write(lower.join("usr/bin/tool"), "x").unwrap();
        // The container: a new file in /tmp, a modified /etc/passwd, a new directory,
        // the tether's /etc/hosts (hidden), and /usr copied up without a change below.
        for d in ["etc", "tmp", "usr", "new/deep"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        fs::write(upper.join("tmp/x"), "1").unwrap();
        fs::write(upper.join("etc/passwd"), "root2").unwrap();
        fs::write(upper.join("etc/hosts"), "127.0.0.1 localhost").unwrap();
        fs::write(upper.join("new/deep/f"), "2").unwrap();
        let got: Vec<(String, ChangeKind)> = changes_in(&upper, std::slice::from_ref(&lower))
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.kind))
            .collect();
        use ChangeKind::*;
        let want = [
            ("/etc", Modified),
            ("/etc/passwd", Modified),
            ("/new", Added),
            ("/new/deep", Added),
            ("/new/deep/f", Added),
            ("/tmp", Modified),
            ("/tmp/x", Added),
        ];
        let want: Vec<(String, ChangeKind)> =
            want.iter().map(|(p, k)| (p.to_string(), *k)).collect();
        assert_eq!(got, want);

        let tar = layer_tar(Vec::new(), &upper, &changes_in(&upper, &[lower]).unwrap()).unwrap();
        let names = entry_names(&tar);
        assert_eq!(
            names,
            [
                "etc/",
                "etc/passwd",
                "new/",
                "new/deep/",
                "new/deep/f",
                "tmp/",
                "tmp/x"
            ]
        );
    }

    #[test]
    fn deletions_become_whiteouts_in_the_layer() {
        let upper = tmp("wh");
        let changes = vec![
            Change {
                path: "/etc".into(),
                kind: ChangeKind::Modified,
                opaque: true,
            },
            Change {
                path: "/etc/motd".into(),
                kind: ChangeKind::Deleted,
                opaque: false,
            },
            Change {
                path: "/gone".into(),
                kind: ChangeKind::Deleted,
                opaque: false,
            },
        ];
        fs::create_dir_all(upper.join("etc")).unwrap();
        let tar = layer_tar(Vec::new(), &upper, &changes).unwrap();
        let names = entry_names(&tar);
        assert_eq!(
            names,
            ["etc/", "etc/.wh..wh..opq", "etc/.wh.motd", ".wh.gone"]
        );
    }
}
