//! `docker cp` and `docker export`, the guest's half: tar streams of the container's root
//! filesystem (the tether's own root after pivot_root) out over the control channel, and
//! tar streams in, extracted into a directory with every entry kept inside it.

use super::{cancelled, send, ErrorKind, Port, Reply, CHUNK};
use crate::channel::{Frame, Kind};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;

/// The stat dockerd puts in `X-Docker-Container-Path-Stat`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

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

/// Sends what is written as `Data` frames of `session`; fails once the VCH cancelled.
struct DataWriter<'a> {
    port: &'a Port,
    session: u32,
    buf: Vec<u8>,
}

impl DataWriter<'_> {
    fn ship(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if cancelled(self.session) {
            return Err(io::Error::other("the reader went away"));
        }
        let chunk = std::mem::take(&mut self.buf);
        send(self.port, Frame::new(Kind::Data, self.session, chunk))
    }
}

impl Write for DataWriter<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = b.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() >= CHUNK {
            self.ship()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.ship()
    }
}

/// Fills a 100-byte name field (NUL-padded; a name of exactly 100 bytes has no NUL).
fn set_field(field: &mut [u8; 100], bytes: &[u8]) {
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
    field[n..].fill(0);
}

/// A GNU long name (`L`) or long link (`K`) record for names that do not fit 100 bytes.
fn long_record<W: Write>(
    b: &mut tar::Builder<W>,
    kind: tar::EntryType,
    data: &[u8],
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    set_field(&mut h.as_old_mut().name, b"././@LongLink");
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(kind);
    h.set_size(data.len() as u64 + 1);
    h.set_cksum();
    b.append(&h, data.chain(&[0u8][..]))
}

/// Appends one file system object under exactly `name`. The tar crate's own helpers
/// normalise names (`./a` becomes `a`), but Docker clients rebase `dir/.` copies on the
/// `./` prefix dockerd writes, so headers are written here byte for byte.
fn append_entry<W: Write>(
    b: &mut tar::Builder<W>,
    src: &Path,
    name: &[u8],
    m: &fs::Metadata,
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(m, tar::HeaderMode::Complete);
    let ft = m.file_type();
    if ft.is_char_device() || ft.is_block_device() {
        h.set_device_major(nix::sys::stat::major(m.rdev()) as u32)?;
        h.set_device_minor(nix::sys::stat::minor(m.rdev()) as u32)?;
    }
    if name.len() > 100 {
        long_record(b, tar::EntryType::GNULongName, name)?;
    }
    set_field(&mut h.as_old_mut().name, name);
    if ft.is_symlink() {
        let target = fs::read_link(src)?;
        let target = target.as_os_str().as_bytes();
        if target.len() > 100 {
            long_record(b, tar::EntryType::GNULongLink, target)?;
        }
        set_field(&mut h.as_old_mut().linkname, target);
    }
    let size = if ft.is_file() { m.len() } else { 0 };
    h.set_size(size);
    h.set_cksum();
    if ft.is_file() {
        b.append(&h, fs::File::open(src)?.take(size))
    } else {
        b.append(&h, io::empty())
    }
}

/// Appends `src` as `name` (directories with a trailing `/`, as dockerd writes them), and
/// below it everything under it, never following symlinks. Directories on another
/// filesystem than `dev` (/proc, /sys, /dev and what is mounted under them) are archived
/// empty, as dockerd archives a container's root without its mounts. An empty `name` (the
/// export of `/`) writes no entry for `src` itself.
fn append_tree<W: Write>(
    b: &mut tar::Builder<W>,
    src: &Path,
    name: &[u8],
    dev: u64,
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let m = fs::symlink_metadata(src)?;
    if m.file_type().is_socket() {
        return Ok(()); // sockets cannot be archived; dockerd skips them too
    }
    if !name.is_empty() {
        let mut entry = name.to_vec();
        if m.is_dir() {
            entry.push(b'/');
        }
        append_entry(b, src, &entry, &m)?;
    }
    if m.is_dir() && m.dev() == dev {
        let mut kids: Vec<_> = fs::read_dir(src)?.filter_map(Result::ok).collect();
        kids.sort_by_key(|e| e.file_name());
        for k in kids {
            let mut child = name.to_vec();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(k.file_name().as_bytes());
            append_tree(b, &src.join(k.file_name()), &child, dev)?;
        }
    }
    Ok(())
}

fn stream_tar(port: &Port, session: u32, src: &Path, name: &[u8]) -> io::Result<()> {
    let dev = fs::symlink_metadata(src)?.dev();
    let w = DataWriter {
        port,
        session,
        buf: Vec::with_capacity(CHUNK),
    };
    let mut b = tar::Builder::new(w);
    append_tree(&mut b, src, name, dev)?;
    let mut w = b.into_inner()?;
    w.flush()
}

fn finish(port: &Port, session: u32, r: io::Result<()>) {
    let payload = match r {
        Ok(()) => Vec::new(),
        Err(e) => format!("{e}").into_bytes(),
    };
    let _ = send(port, Frame::new(Kind::Done, session, payload));
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

/// The tar coming in: `Data` frames from the inbox, each acknowledged with a `Credit` so
/// the VCH sends more; an empty frame (or a closed inbox) is the end.
struct Inbox<'a> {
    port: &'a Port,
    session: u32,
    rx: mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
    eof: bool,
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

fn extract<R: Read>(src: R, dest: &Path, no_overwrite_dir_non_dir: bool) -> io::Result<()> {
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
    let inbox = Inbox {
        port,
        session,
        rx,
        cur: Vec::new(),
        at: 0,
        eof: false,
    };
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
