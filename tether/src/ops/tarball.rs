//! Tars of the container's files, written as `Data` frames of a session: headers are
//! written byte for byte to keep dockerd's entry names.

use super::{cancelled, send, Port};
use container_vm::channel::{Frame, Kind};
use container_vm::ops::CHUNK;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Sends what is written as `Data` frames of `session`; fails once the VCH cancelled.
pub(super) struct DataWriter<'a> {
    port: &'a Port,
    session: u32,
    buf: Vec<u8>,
}

impl<'a> DataWriter<'a> {
    pub(super) fn new(port: &'a Port, session: u32) -> DataWriter<'a> {
        DataWriter {
            port,
            session,
            buf: Vec::with_capacity(CHUNK),
        }
    }

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
pub(super) fn append_entry<W: Write>(
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
pub(super) fn append_tree<W: Write>(
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

pub(super) fn stream_tar(port: &Port, session: u32, src: &Path, name: &[u8]) -> io::Result<()> {
    let dev = fs::symlink_metadata(src)?.dev();
    let mut b = tar::Builder::new(DataWriter::new(port, session));
    append_tree(&mut b, src, name, dev)?;
    let mut w = b.into_inner()?;
    w.flush()
}

pub(super) fn finish(port: &Port, session: u32, r: io::Result<()>) {
    let payload = match r {
        Ok(()) => Vec::new(),
        Err(e) => format!("{e}").into_bytes(),
    };
    let _ = send(port, Frame::new(Kind::Done, session, payload));
}
