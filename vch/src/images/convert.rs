//! Layer conversion: one layer tar (gzip, zstd or plain) becomes one EROFS image, in a
//! single streaming pass, with Docker's whiteouts translated for overlayfs:
//! `.wh.NAME` → a 0/0 character device `NAME`, `.wh..wh..opq` → the directory's
//! `trusted.overlay.opaque=y` xattr. Hard links, symlinks, modes, owners, mtimes, xattrs
//! and device nodes are recorded in the image — never created on the host.
//!
//! The tree of the layer is kept in memory while its file contents stream into the
//! image's data area; an entry that would write through a symlink, hard-link to
//! something outside the layer, or hang below a non-directory is refused.

use super::digest::{Digest, HashingReader};
use super::erofs::{self, Builder, FileData, Kind, Node, NodeId, ROOT};
use super::tar_safety::{clean_path, entry_err, Entry, EntryKind, Limits, TarError, TarReader};
use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::rc::Rc;

/// How a layer blob is compressed, from its first bytes (media types lie often enough
/// that dockerd sniffs too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// What a converted layer is.
#[derive(Clone, Debug)]
pub struct LayerOutput {
    /// sha256 of the uncompressed tar: the layer's identity in the image config.
    pub diff_id: Digest,
    pub tar_size: u64,
    /// Bytes of the compressed blob that were read.
    pub blob_size: u64,
    pub image_size: u64,
    pub entries: u64,
    pub compression: Compression,
    /// See [`super::tar_safety::TarSplit`].
    pub tar_split: Vec<u8>,
}

#[derive(Debug)]
pub enum ConvertError {
    /// The layer's content is refused; names the entry.
    Hostile { entry: String, reason: String },
    /// The blob stream itself failed (network, digest verification by the source...).
    Source(io::Error),
    /// The bytes are not a (compressed) tar.
    Malformed(String),
    /// Writing the image failed.
    Output(io::Error),
}

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConvertError::Hostile { entry, reason } => write!(f, "entry {entry:?}: {reason}"),
            ConvertError::Source(e) => write!(f, "reading the layer: {e}"),
            ConvertError::Malformed(m) => write!(f, "not a valid layer tarball: {m}"),
            ConvertError::Output(e) => write!(f, "writing the layer image: {e}"),
        }
    }
}

/// Which side of the pipeline failed, so an `io::Error` can be attributed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Source,
    Output,
    Limit,
}

struct Tagged<T> {
    inner: T,
    fault: Rc<Cell<Fault>>,
    tag: Fault,
}

impl<T: Read> Read for Tagged<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .inspect_err(|_| self.fault.set(self.tag))
    }
}
impl<T: Write> Write for Tagged<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner
            .write(buf)
            .inspect_err(|_| self.fault.set(self.tag))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.fault.set(self.tag))
    }
}
impl<T: io::Seek> io::Seek for Tagged<T> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner
            .seek(pos)
            .inspect_err(|_| self.fault.set(self.tag))
    }
}

/// Stops a decompression bomb: the uncompressed stream may not exceed the limit.
struct Bounded<R> {
    inner: R,
    left: u64,
    fault: Rc<Cell<Fault>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.fault.set(Fault::Limit);
            return Err(io::Error::other("uncompressed layer size limit exceeded"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Converts one layer blob read from `src` into an EROFS image written to `image`.
/// Reads `src` to its end (so a verifying source sees every byte).
pub fn convert_layer<R: Read>(
    src: R,
    image: File,
    limits: &Limits,
) -> Result<(LayerOutput, File), ConvertError> {
    let fault = Rc::new(Cell::new(Fault::None));
    let mut raw = BufReader::with_capacity(
        256 << 10,
        Tagged {
            inner: CountingReader { inner: src, n: 0 },
            fault: fault.clone(),
            tag: Fault::Source,
        },
    );
    let head = raw.fill_buf().map_err(ConvertError::Source)?;
    let compression = detect(head);
    let out = Tagged {
        inner: BufWriter::with_capacity(1 << 20, image),
        fault: fault.clone(),
        tag: Fault::Output,
    };
    let result = {
        let decoded: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(&mut raw),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(&mut raw)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(&mut raw)
                    .map_err(|e| ConvertError::Malformed(e.to_string()))?,
            ),
        };
        let bounded = Bounded {
            inner: decoded,
            left: limits.max_layer_bytes,
            fault: fault.clone(),
        };
        let hashed = HashingReader::new(bounded);
        build(
            BufReader::with_capacity(64 << 10, hashed),
            out,
            limits,
            &fault,
        )
    };
    // Unless the source itself failed, read it to its end: the blob's digest is checked
    // when its last byte has been read, and a bad digest explains a decoding error
    // better. (After a transport error, reading on would only see a short blob.)
    if let Err(ConvertError::Source(e)) = result {
        return Err(ConvertError::Source(e));
    }
    let drained = io::copy(&mut raw, &mut io::sink());
    let blob_size = raw.get_ref().inner.n;
    if let Err(e) = drained {
        return Err(ConvertError::Source(e));
    }
    let (mut output, file) = result?;
    output.compression = compression;
    output.blob_size = blob_size;
    Ok((output, file))
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}
impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

type Out = Tagged<BufWriter<File>>;

fn classify(e: TarError, fault: &Cell<Fault>, current: &[u8], limits: &Limits) -> ConvertError {
    match e {
        TarError::Entry { entry, reason } => ConvertError::Hostile { entry, reason },
        TarError::Io(io) => match fault.get() {
            Fault::Source => ConvertError::Source(io),
            Fault::Output => ConvertError::Output(io),
            Fault::Limit => ConvertError::Hostile {
                entry: String::from_utf8_lossy(current).into_owned(),
                reason: format!(
                    "layer exceeds {} bytes uncompressed (decompression bomb?)",
                    limits.max_layer_bytes
                ),
            },
            Fault::None => ConvertError::Malformed(io.to_string()),
        },
    }
}

fn build<R: Read>(
    input: BufReader<HashingReader<Bounded<R>>>,
    out: Out,
    limits: &Limits,
    fault: &Cell<Fault>,
) -> Result<(LayerOutput, File), ConvertError> {
    let mut builder = Builder::new(out, limits.inline_budget).map_err(ConvertError::Output)?;
    let mut tar = TarReader::new(input, limits);
    let mut buf = vec![0u8; 256 << 10];
    let mut current: Vec<u8> = Vec::new();
    let mut entries = 0u64;
    let mut newest = 0u64;
    loop {
        let e = match tar.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(err) => return Err(classify(err, fault, &current, limits)),
        };
        current = e.raw_path.clone();
        entries += 1;
        newest = newest.max(e.mtime);
        apply(&mut builder, &mut tar, &e, limits, &mut buf, None)
            .map_err(|err| classify(err, fault, &current, limits))?;
    }
    // Bytes after the end-of-archive blocks (record padding) are part of the diff id;
    // keep them for the tar-split, within reason.
    let (mut rest, mut split) = tar.into_inner();
    let mut trailer = Vec::new();
    (&mut rest)
        .take(16 << 20)
        .read_to_end(&mut trailer)
        .map_err(|e| classify(TarError::Io(e), fault, &current, limits))?;
    if trailer.len() >= 16 << 20 {
        return Err(ConvertError::Malformed(
            "more than 16 MiB of data after the end of the archive".into(),
        ));
    }
    split.raw(&trailer);
    let (diff_id, tar_size, _) = rest.into_inner().finish();
    builder.set_build_time(newest);
    let mut uuid = [0u8; 16];
    if let Ok(b) = hex::decode(&diff_id.hex()[..32]) {
        uuid.copy_from_slice(&b);
    }
    let (summary, out) = builder
        .finish(uuid)
        .map_err(|e| classify(TarError::Io(e), fault, b"", limits))?;
    let file = out
        .inner
        .into_inner()
        .map_err(|e| ConvertError::Output(e.into_error()))?;
    Ok((
        LayerOutput {
            diff_id,
            tar_size,
            blob_size: 0,
            image_size: summary.bytes,
            entries,
            compression: Compression::None,
            tar_split: split.into_bytes(),
        },
        file,
    ))
}

/// Walks to the parent directory of `comps`, creating missing directories (as dockerd
/// does, 0755 root), refusing symlinks and non-directories on the way.
fn parent_dir(
    b: &mut Builder<Out>,
    comps: &[Vec<u8>],
    e: &Entry,
    mut flat: Option<&mut Flatten>,
) -> Result<NodeId, TarError> {
    let mut cur = ROOT;
    if let Some(f) = flat.as_deref_mut() {
        f.mark(ROOT);
    }
    for (i, c) in comps[..comps.len().saturating_sub(1)].iter().enumerate() {
        let existing = match &b.nodes[cur].kind {
            Kind::Dir { children } => children.get(c).copied(),
            _ => None,
        };
        cur = match existing {
            Some(id) => match &b.nodes[id].kind {
                Kind::Dir { .. } => {
                    // A directory this layer writes into is this layer's too (an opaque
                    // marker above it keeps it, minus what lower layers put in it).
                    if let Some(f) = flat.as_deref_mut() {
                        f.mark(id);
                    }
                    id
                }
                Kind::Symlink(_) => {
                    return Err(entry_err(
                        &e.raw_path,
                        format!(
                            "would write through the symlink {:?}",
                            String::from_utf8_lossy(&comps[..=i].join(&b'/'))
                        ),
                    ))
                }
                _ => {
                    return Err(entry_err(
                        &e.raw_path,
                        format!(
                            "parent {:?} is not a directory",
                            String::from_utf8_lossy(&comps[..=i].join(&b'/'))
                        ),
                    ))
                }
            },
            None => {
                let mut d = Node::dir(0o755);
                d.mtime = e.mtime;
                let id = b.add(d);
                if let Some(f) = flat.as_deref_mut() {
                    f.mark(id);
                }
                if let Kind::Dir { children } = &mut b.nodes[cur].kind {
                    children.insert(c.clone(), id);
                }
                id
            }
        };
    }
    Ok(cur)
}

/// Looks up an existing path of this layer without creating anything.
fn lookup(b: &Builder<Out>, comps: &[Vec<u8>]) -> Option<NodeId> {
    let mut cur = ROOT;
    for c in comps {
        cur = match &b.nodes[cur].kind {
            Kind::Dir { children } => *children.get(c)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn set_child(b: &mut Builder<Out>, parent: NodeId, name: Vec<u8>, id: NodeId) {
    if let Kind::Dir { children } = &mut b.nodes[parent].kind {
        children.insert(name, id);
    }
}

const OPAQUE: &[u8] = b"trusted.overlay.opaque";

/// Keeps the xattrs EROFS can store, minus `trusted.overlay.*`: that namespace steers
/// overlayfs, and only our own whiteout translation may write it.
fn filter_xattrs(e: &Entry) -> Result<erofs::Xattrs, TarError> {
    let mut out: erofs::Xattrs = Vec::new();
    for (k, v) in &e.xattrs {
        if k.starts_with(b"trusted.overlay.") {
            tracing::debug!(entry = %String::from_utf8_lossy(&e.raw_path), "dropping overlay xattr from layer");
            continue;
        }
        if erofs::xattr_index(k).is_none() || v.len() > u16::MAX as usize {
            tracing::debug!(xattr = %String::from_utf8_lossy(k), "dropping unsupported xattr");
            continue;
        }
        out.retain(|(n, _)| n != k);
        out.push((k.clone(), v.clone()));
    }
    if erofs::xattr_ibody_size(&out) > erofs::MAX_XATTR_IBODY {
        return Err(entry_err(&e.raw_path, "extended attributes too large"));
    }
    Ok(out)
}

fn apply<R: Read>(
    b: &mut Builder<Out>,
    tar: &mut TarReader<'_, R>,
    e: &Entry,
    limits: &Limits,
    buf: &mut [u8],
    mut flat: Option<&mut Flatten>,
) -> Result<(), TarError> {
    let comps = clean_path(&e.raw_path, limits.max_path).map_err(|r| entry_err(&e.raw_path, r))?;
    let meta = |kind: Kind, xattrs: erofs::Xattrs| Node {
        kind,
        perm: e.mode & 0o7777,
        uid: e.uid,
        gid: e.gid,
        mtime: e.mtime,
        mtime_nsec: e.mtime_nsec,
        xattrs,
    };
    let Some(name) = comps.last().cloned() else {
        // The layer root ("./"): only its metadata.
        if e.kind != EntryKind::Dir {
            return Err(entry_err(&e.raw_path, "the layer root must be a directory"));
        }
        let x = filter_xattrs(e)?;
        let root = &mut b.nodes[ROOT];
        root.perm = e.mode & 0o7777;
        root.uid = e.uid;
        root.gid = e.gid;
        root.mtime = e.mtime;
        root.mtime_nsec = e.mtime_nsec;
        let opaque = root.xattrs.iter().find(|(k, _)| k == OPAQUE).cloned();
        root.xattrs = x;
        root.xattrs.extend(opaque);
        return Ok(());
    };
    let parent = parent_dir(b, &comps, e, flat.as_deref_mut())?;

    // Whiteouts.
    if let Some(target) = name.strip_prefix(b".wh.") {
        if target == b".wh..opq" {
            if let Some(f) = flat.as_deref_mut() {
                // Flattening: drop what lower layers put below this directory.
                f.purge_lower(b, parent);
                return Ok(());
            }
            let dir = &mut b.nodes[parent];
            if !dir.xattrs.iter().any(|(k, _)| k == OPAQUE) {
                dir.xattrs.push((OPAQUE.to_vec(), b"y".to_vec()));
            }
            return Ok(());
        }
        if target.starts_with(b".wh.") {
            // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): meaningless here.
            return Ok(());
        }
        if target.is_empty() {
            return Err(entry_err(&e.raw_path, "whiteout without a name"));
        }
        if flat.is_some() {
            // Flattening: the whiteout deletes the lower file instead of masking it.
            if let Kind::Dir { children } = &mut b.nodes[parent].kind {
                children.remove(target);
            }
            return Ok(());
        }
        let mut n = meta(Kind::CharDev { major: 0, minor: 0 }, Vec::new());
        n.perm = 0;
        let id = b.add(n);
        set_child(b, parent, target.to_vec(), id);
        return Ok(());
    }

    let existing = match &b.nodes[parent].kind {
        Kind::Dir { children } => children.get(&name).copied(),
        _ => None,
    };
    let xattrs = filter_xattrs(e)?;
    let node = match e.kind {
        EntryKind::Dir => {
            if let Some(id) = existing.filter(|id| b.nodes[*id].is_dir()) {
                // A directory listed twice keeps its children (and an opaque marker).
                if let Some(f) = flat.as_deref_mut() {
                    f.mark(id);
                }
                let d = &mut b.nodes[id];
                let opaque = d.xattrs.iter().find(|(k, _)| k == OPAQUE).cloned();
                d.perm = e.mode & 0o7777;
                d.uid = e.uid;
                d.gid = e.gid;
                d.mtime = e.mtime;
                d.mtime_nsec = e.mtime_nsec;
                d.xattrs = xattrs;
                d.xattrs.extend(opaque);
                return Ok(());
            }
            meta(
                Kind::Dir {
                    children: Default::default(),
                },
                xattrs,
            )
        }
        EntryKind::File => {
            let xlen = erofs::xattr_ibody_size(&xattrs);
            let data: FileData = b.write_file(&mut tar.content(), e.size, xlen, buf)?;
            let full = e.size / erofs::BLOCK * erofs::BLOCK;
            let stored_content = if data.tail.is_some() { full } else { e.size };
            tar.split
                .data(data.blkaddr as u64 * erofs::BLOCK, stored_content);
            if let Some(t) = &data.tail {
                tar.split.raw(t);
            }
            meta(Kind::File(data), xattrs)
        }
        EntryKind::HardLink => {
            let target = clean_path(&e.link, limits.max_path)
                .map_err(|r| entry_err(&e.raw_path, format!("hard link target: {r}")))?;
            let id = lookup(b, &target).ok_or_else(|| {
                entry_err(
                    &e.raw_path,
                    format!(
                        "hard link to {:?}, which is not in this layer",
                        String::from_utf8_lossy(&e.link)
                    ),
                )
            })?;
            if b.nodes[id].is_dir() {
                return Err(entry_err(&e.raw_path, "hard link to a directory"));
            }
            set_child(b, parent, name, id);
            return Ok(());
        }
        EntryKind::Symlink => {
            if e.link.is_empty() || e.link.len() >= 4096 || e.link.contains(&0) {
                return Err(entry_err(&e.raw_path, "invalid symlink target"));
            }
            meta(Kind::Symlink(e.link.clone()), xattrs)
        }
        EntryKind::CharDev => meta(
            Kind::CharDev {
                major: e.dev_major,
                minor: e.dev_minor,
            },
            xattrs,
        ),
        EntryKind::BlockDev => meta(
            Kind::BlockDev {
                major: e.dev_major,
                minor: e.dev_minor,
            },
            xattrs,
        ),
        EntryKind::Fifo => meta(Kind::Fifo, xattrs),
    };
    let id = b.add(node);
    if let Some(f) = flat {
        f.mark(id);
    }
    set_child(b, parent, name, id);
    Ok(())
}

/// State of a flattening conversion (several layers into one image): which layer last
/// wrote each node, so an opaque marker can drop exactly what lower layers contributed.
pub(crate) struct Flatten {
    layer: u32,
    written_by: Vec<u32>,
}

impl Flatten {
    fn mark(&mut self, id: NodeId) {
        if self.written_by.len() <= id {
            self.written_by.resize(id + 1, 0);
        }
        self.written_by[id] = self.layer;
    }

    fn by_lower(&self, id: NodeId) -> bool {
        self.written_by.get(id).copied().unwrap_or(0) < self.layer
    }

    fn purge_lower(&mut self, b: &mut Builder<Out>, dir: NodeId) {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            let mut keep_dirs = Vec::new();
            if let Kind::Dir { children } = &mut b.nodes[d].kind {
                children.retain(|_, c| !self.by_lower(*c));
                keep_dirs.extend(children.values().copied());
            }
            stack.extend(keep_dirs.into_iter().filter(|c| b.nodes[*c].is_dir()));
        }
    }
}

/// Applies the layer tars in `layers` (lowest first, uncompressed) to one tree and writes
/// one EROFS image: whiteouts and opaque markers delete lower content instead of being
/// recorded. For images with more layers than a VM can attach disks. Content a later
/// layer deletes or replaces still takes space in the image.
pub fn flatten_layers(
    layers: Vec<Box<dyn Read + Send>>,
    image: File,
    limits: &Limits,
) -> Result<(u64, File), ConvertError> {
    let fault = Rc::new(Cell::new(Fault::None));
    let out = Tagged {
        inner: BufWriter::with_capacity(1 << 20, image),
        fault: fault.clone(),
        tag: Fault::Output,
    };
    let mut builder = Builder::new(out, limits.inline_budget).map_err(ConvertError::Output)?;
    let mut flat = Flatten {
        layer: 0,
        written_by: Vec::new(),
    };
    let mut buf = vec![0u8; 256 << 10];
    let mut newest = 0u64;
    for (i, layer) in layers.into_iter().enumerate() {
        flat.layer = i as u32 + 1;
        let input = BufReader::with_capacity(
            256 << 10,
            Tagged {
                inner: layer,
                fault: fault.clone(),
                tag: Fault::Source,
            },
        );
        let mut tar = TarReader::new(input, limits);
        let mut current: Vec<u8> = Vec::new();
        loop {
            let e = match tar.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(err) => return Err(classify(err, &fault, &current, limits)),
            };
            current = e.raw_path.clone();
            newest = newest.max(e.mtime);
            apply(
                &mut builder,
                &mut tar,
                &e,
                limits,
                &mut buf,
                Some(&mut flat),
            )
            .map_err(|err| classify(err, &fault, &current, limits))?;
        }
    }
    builder.set_build_time(newest);
    let (summary, out) = builder
        .finish([0x66; 16])
        .map_err(|e| classify(TarError::Io(e), &fault, b"", limits))?;
    let file = out
        .inner
        .into_inner()
        .map_err(|e| ConvertError::Output(e.into_error()))?;
    Ok((summary.bytes, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        h
    }

    /// A tar with every kind of entry the converter handles.
    pub(crate) fn sample_tar() -> Vec<u8> {
        let mut t = tar::Builder::new(Vec::new());
        let dir = |t: &mut tar::Builder<Vec<u8>>, p: &str| {
            t.append(&header(p, tar::EntryType::Directory, 0, 0o755), &[][..])
                .unwrap()
        };
        let file = |t: &mut tar::Builder<Vec<u8>>, p: &str, data: &[u8], mode: u32| {
            t.append(
                &header(p, tar::EntryType::Regular, data.len() as u64, mode),
                data,
            )
            .unwrap()
        };
        dir(&mut t, "./");
        dir(&mut t, "etc/");
        file(
            &mut t,
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\n",
            0o644,
        );
        file(&mut t, "etc/big", &vec![7u8; 3 * 4096 + 100], 0o600);
        file(&mut t, "etc/exact", &vec![9u8; 8192], 0o644);
        file(&mut t, "etc/empty", b"", 0o4755);
        let mut h = header("etc/link", tar::EntryType::Link, 0, 0o644);
        h.set_link_name("etc/passwd").unwrap();
        h.set_cksum();
        t.append(&h, &[][..]).unwrap();
        let mut h = header("etc/sym", tar::EntryType::Symlink, 0, 0o777);
        h.set_link_name("/etc/passwd").unwrap();
        h.set_cksum();
        t.append(&h, &[][..]).unwrap();
        let mut h = header("dev/null", tar::EntryType::Char, 0, 0o666);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_cksum();
        t.append(&h, &[][..]).unwrap();
        file(&mut t, "old/.wh.gone", b"", 0o644);
        dir(&mut t, "opq/");
        file(&mut t, "opq/.wh..wh..opq", b"", 0o644);
        file(&mut t, "opq/new", b"new\n", 0o644);
        // A directory big enough to need several blocks.
        for i in 0..400 {
            file(
                &mut t,
                &format!("many/file-with-a-long-name-{i:04}"),
                b"x",
                0o644,
            );
        }
        // A file with an xattr (PAX).
        t.append_pax_extensions([("SCHILY.xattr.user.note", &b"hello"[..])])
            .unwrap();
        file(&mut t, "etc/withx", b"x\n", 0o644);
        t.into_inner().unwrap()
    }

    fn tmpfile(name: &str) -> (std::path::PathBuf, File) {
        let p = std::env::temp_dir().join(format!("vch-conv-{}-{name}", std::process::id()));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        (p, f)
    }

    #[test]
    fn converts_and_rebuilds_the_exact_tar() {
        let tar_bytes = sample_tar();
        // With and without inline tails (a spent budget puts them in the data area).
        for budget in [Limits::default().inline_budget, 0] {
            let limits = Limits {
                inline_budget: budget,
                ..Limits::default()
            };
            let (path, f) = tmpfile(&format!("sample-{budget}.erofs"));
            let (out, f) = convert_layer(&tar_bytes[..], f, &limits).unwrap();
            assert_eq!(out.diff_id, Digest::of(&tar_bytes));
            assert_eq!(out.tar_size, tar_bytes.len() as u64);
            assert_eq!(out.image_size % 4096, 0);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), out.image_size);
            let mut rebuilt = Vec::new();
            super::super::tar_safety::TarSplit::assemble(&out.tar_split, &f, &mut rebuilt).unwrap();
            assert!(rebuilt == tar_bytes, "tar-split did not rebuild the tar");
            // fsck.erofs checks the image structurally where erofs-utils is installed.
            if let Ok(o) = std::process::Command::new("fsck.erofs").arg(&path).output() {
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            }
            if std::env::var_os("VCH_KEEP_SAMPLE").is_some() {
                let _ = std::fs::copy(&path, format!("/tmp/vch-sample-{budget}.erofs"));
            }
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn gzip_and_zstd_layers() {
        let tar_bytes = sample_tar();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar_bytes).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&tar_bytes[..], 1).unwrap();
        for (blob, c) in [(gz, Compression::Gzip), (zs, Compression::Zstd)] {
            let (path, f) = tmpfile("c.erofs");
            let (out, _) = convert_layer(&blob[..], f, &Limits::default()).unwrap();
            assert_eq!(out.compression, c);
            assert_eq!(out.diff_id, Digest::of(&tar_bytes));
            assert_eq!(out.blob_size, blob.len() as u64);
            let _ = std::fs::remove_file(path);
        }
    }

    fn reject(tar_bytes: &[u8], limits: &Limits) -> (String, String) {
        let (path, f) = tmpfile("bad.erofs");
        let r = convert_layer(tar_bytes, f, limits);
        let _ = std::fs::remove_file(path);
        match r {
            Err(ConvertError::Hostile { entry, reason }) => (entry, reason),
            Err(e) => panic!("expected a hostile-entry error, got {e}"),
            Ok(_) => panic!("hostile layer accepted"),
        }
    }

    fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut t = tar::Builder::new(Vec::new());
        for (p, k, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            // set_path refuses "..", so write the name bytes directly.
            h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
            h.set_entry_type(*k);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if !link.is_empty() {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            t.append(&h, *data).unwrap();
        }
        t.into_inner().unwrap()
    }

    #[test]
    fn hostile_layers_are_refused_naming_the_entry() {
        use tar::EntryType as T;
        let l = Limits::default();
        let (e, r) = reject(&raw_tar(&[("../evil", T::Regular, "", b"x")]), &l);
        assert_eq!(e, "../evil");
        assert!(r.contains(".."), "{r}");
        let (e, r) = reject(&raw_tar(&[("/etc/passwd", T::Regular, "", b"x")]), &l);
        assert_eq!(e, "/etc/passwd");
        assert!(r.contains("absolute"), "{r}");
        let (e, r) = reject(
            &raw_tar(&[
                ("escape", T::Symlink, "/etc", b""),
                ("escape/cron", T::Regular, "", b"x"),
            ]),
            &l,
        );
        assert_eq!(e, "escape/cron");
        assert!(r.contains("symlink"), "{r}");
        let (e, r) = reject(&raw_tar(&[("h", T::Link, "../../etc/shadow", b"")]), &l);
        assert_eq!(e, "h");
        assert!(r.contains("hard link"), "{r}");
        let (_, r) = reject(&raw_tar(&[("h", T::Link, "missing", b"")]), &l);
        assert!(r.contains("not in this layer"), "{r}");
        // Sizes: an entry larger than the limit, and a bomb of zeros.
        let small = Limits {
            max_layer_bytes: 1 << 20,
            ..Limits::default()
        };
        let (e, r) = reject(
            &raw_tar(&[("big", T::Regular, "", &vec![0u8; 2 << 20])]),
            &small,
        );
        assert_eq!(e, "big");
        assert!(r.contains("limit"), "{r}");
        let bomb = raw_tar(&[
            ("a", T::Regular, "", b"a"),
            ("zeros", T::Regular, "", &vec![0u8; 900 << 10]),
            ("z2", T::Regular, "", &vec![0u8; 900 << 10]),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bomb).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 10_000);
        let (e, r) = reject(&gz, &small);
        assert!(e == "z2" || e == "zeros", "{e}");
        assert!(
            r.contains("decompression bomb") || r.contains("limit"),
            "{r}"
        );
        // Device nodes are fine (recorded, not created).
        let (p, f) = tmpfile("dev.erofs");
        convert_layer(&raw_tar(&[("dev/sda", T::Block, "", b"")])[..], f, &l).unwrap();
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let (p, f) = tmpfile("garbage.erofs");
        let r = convert_layer(
            &b"this is not a tar archive at all, just words"[..],
            f,
            &Limits::default(),
        );
        let _ = std::fs::remove_file(p);
        assert!(
            matches!(
                r,
                Err(ConvertError::Hostile { .. }) | Err(ConvertError::Malformed(_))
            ),
            "{:?}",
            r.err()
        );
    }
}
