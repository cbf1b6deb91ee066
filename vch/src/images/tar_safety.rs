//! Reading layer tarballs defensively.
//!
//! The `tar` crate parses each 512-byte header and the PAX records, but its entry
//! iterator reads PAX and GNU long-name records into memory whatever size they claim.
//! This loop reads the stream itself so every allocation and size is bounded, and turns
//! entry paths into checked components: no absolute paths, no `..`, no NUL, names that
//! fit the filesystem. Nothing here touches the host filesystem.
//!
//! Every byte that is not file content is also recorded into a [`TarSplit`], so the exact
//! tar (hence its digest, the layer's diff id) can be rebuilt from the filesystem image
//! for `docker save`; file content is recorded by position in the image.

use std::io::{self, Read};

/// Bounds applied to one layer. Exceeding one fails the layer with an error naming the
/// entry.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Uncompressed size of one layer tar (decompression bombs stop here).
    pub max_layer_bytes: u64,
    /// Number of tar entries in one layer.
    pub max_entries: u64,
    /// A PAX or GNU long-name record.
    pub max_meta_record: u64,
    /// Path length after normalisation.
    pub max_path: usize,
    /// File tails kept in memory to inline into the image.
    pub inline_budget: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_layer_bytes: 64 << 30,
            max_entries: 2_000_000,
            max_meta_record: 1 << 20,
            max_path: 4096,
            inline_budget: 64 << 20,
        }
    }
}

#[derive(Debug)]
pub enum TarError {
    /// Hostile or malformed input, attributed to an entry ("" when before any).
    Entry { entry: String, reason: String },
    /// The underlying stream failed.
    Io(io::Error),
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        TarError::Io(e)
    }
}

pub fn entry_err(entry: &[u8], reason: impl Into<String>) -> TarError {
    TarError::Entry {
        entry: String::from_utf8_lossy(entry).into_owned(),
        reason: reason.into(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    HardLink,
    Symlink,
    CharDev,
    BlockDev,
    Dir,
    Fifo,
}

/// One entry, with PAX and GNU extensions already applied.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The path as written in the archive (for error messages).
    pub raw_path: Vec<u8>,
    pub kind: EntryKind,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub mtime_nsec: u32,
    pub link: Vec<u8>,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Splits a tar path into components, refusing anything that could leave the layer root.
/// An empty result is the root itself (`./`).
pub fn clean_path(raw: &[u8], max_len: usize) -> Result<Vec<Vec<u8>>, String> {
    if raw.contains(&0) {
        return Err("path contains a NUL byte".into());
    }
    if raw.first() == Some(&b'/') {
        return Err("absolute path".into());
    }
    if raw.len() > max_len {
        return Err(format!("path longer than {max_len} bytes"));
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => continue,
            b".." => return Err("path escapes the layer root (\"..\")".into()),
            c if c.len() > super::erofs::NAME_MAX => {
                return Err(format!(
                    "file name longer than {} bytes",
                    super::erofs::NAME_MAX
                ))
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

/// The non-content bytes of a tar plus references to where file content went.
#[derive(Default)]
pub struct TarSplit {
    buf: Vec<u8>,
    raw: Vec<u8>,
}

/// Tar-split records: `R` + u32 length + bytes, `D` + u64 offset + u64 length (content
/// stored in the filesystem image at that byte offset).
impl TarSplit {
    pub fn raw(&mut self, b: &[u8]) {
        self.raw.extend_from_slice(b);
    }
    pub fn data(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.flush_raw();
        self.buf.push(b'D');
        self.buf.extend_from_slice(&offset.to_le_bytes());
        self.buf.extend_from_slice(&len.to_le_bytes());
    }
    fn flush_raw(&mut self) {
        if self.raw.is_empty() {
            return;
        }
        for chunk in self.raw.chunks(u32::MAX as usize) {
            self.buf.push(b'R');
            self.buf
                .extend_from_slice(&(chunk.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(chunk);
        }
        self.raw.clear();
    }
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.flush_raw();
        self.buf
    }

    /// Rebuilds the tar: raw records are copied, content is read from `image` with
    /// positioned reads.
    pub fn assemble(
        split: &[u8],
        image: &std::fs::File,
        out: &mut impl io::Write,
    ) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "corrupt tar-split record");
        let mut i = 0;
        let mut buf = vec![0u8; 1 << 20];
        while i < split.len() {
            match split[i] {
                b'R' => {
                    let len = split
                        .get(i + 1..i + 5)
                        .and_then(|b| b.try_into().ok())
                        .map(u32::from_le_bytes)
                        .ok_or_else(bad)? as usize;
                    let data = split.get(i + 5..i + 5 + len).ok_or_else(bad)?;
                    out.write_all(data)?;
                    i += 5 + len;
                }
                b'D' => {
                    let rec = split.get(i + 1..i + 17).ok_or_else(bad)?;
                    let mut off = u64::from_le_bytes(rec[0..8].try_into().map_err(|_| bad())?);
                    let mut len = u64::from_le_bytes(rec[8..16].try_into().map_err(|_| bad())?);
                    while len > 0 {
                        let n = len.min(buf.len() as u64) as usize;
                        image.read_exact_at(&mut buf[..n], off)?;
                        out.write_all(&buf[..n])?;
                        off += n as u64;
                        len -= n as u64;
                    }
                    i += 17;
                }
                _ => return Err(bad()),
            }
        }
        Ok(())
    }
}

/// The rebuilt tar as a reader (see [`TarSplit::assemble`]).
pub struct SplitReader {
    split: Vec<u8>,
    pos: usize,
    image: std::fs::File,
    /// Remaining bytes of the current record: raw bytes at `raw_at`, or image content at
    /// `data_at`.
    raw_at: usize,
    data_at: u64,
    left: u64,
    is_raw: bool,
}

impl SplitReader {
    pub fn new(split: Vec<u8>, image: std::fs::File) -> SplitReader {
        SplitReader {
            split,
            pos: 0,
            image,
            raw_at: 0,
            data_at: 0,
            left: 0,
            is_raw: true,
        }
    }

    fn next_record(&mut self) -> io::Result<bool> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "corrupt tar-split record");
        let s = &self.split;
        let Some(&kind) = s.get(self.pos) else {
            return Ok(false);
        };
        match kind {
            b'R' => {
                let len = s
                    .get(self.pos + 1..self.pos + 5)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_le_bytes)
                    .ok_or_else(bad)? as usize;
                if self.pos + 5 + len > s.len() {
                    return Err(bad());
                }
                self.is_raw = true;
                self.raw_at = self.pos + 5;
                self.left = len as u64;
                self.pos += 5 + len;
            }
            b'D' => {
                let rec = s.get(self.pos + 1..self.pos + 17).ok_or_else(bad)?;
                self.is_raw = false;
                self.data_at = u64::from_le_bytes(rec[0..8].try_into().map_err(|_| bad())?);
                self.left = u64::from_le_bytes(rec[8..16].try_into().map_err(|_| bad())?);
                self.pos += 17;
            }
            _ => return Err(bad()),
        }
        Ok(true)
    }
}

impl Read for SplitReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        while self.left == 0 {
            if !self.next_record()? {
                return Ok(0);
            }
        }
        let n = (buf.len() as u64).min(self.left) as usize;
        if self.is_raw {
            buf[..n].copy_from_slice(&self.split[self.raw_at..self.raw_at + n]);
            self.raw_at += n;
        } else {
            self.image.read_exact_at(&mut buf[..n], self.data_at)?;
            self.data_at += n as u64;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads entries from an uncompressed tar stream.
pub struct TarReader<'a, R: Read> {
    r: R,
    limits: &'a Limits,
    entries: u64,
    pub split: TarSplit,
    /// Content bytes of the current entry not yet consumed, and its padding.
    pending: u64,
    pending_pad: u64,
    done: bool,
}

impl<'a, R: Read> TarReader<'a, R> {
    pub fn new(r: R, limits: &'a Limits) -> Self {
        TarReader {
            r,
            limits,
            entries: 0,
            split: TarSplit::default(),
            pending: 0,
            pending_pad: 0,
            done: false,
        }
    }

    pub fn into_inner(self) -> (R, TarSplit) {
        (self.r, self.split)
    }

    /// Reads exactly `buf.len()` bytes; Ok(false) on a clean end of stream before the
    /// first byte.
    fn read_block(&mut self, buf: &mut [u8]) -> Result<bool, TarError> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(TarError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "tar stream ends in the middle of a header",
                    )))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TarError::Io(e)),
            }
        }
        Ok(true)
    }

    /// Reads a metadata record's payload (PAX, long name) of `size` bytes, bounded.
    fn read_record(&mut self, name: &[u8], size: u64) -> Result<Vec<u8>, TarError> {
        if size > self.limits.max_meta_record {
            return Err(entry_err(
                name,
                format!(
                    "metadata record of {size} bytes exceeds the limit of {} bytes",
                    self.limits.max_meta_record
                ),
            ));
        }
        let padded = size.div_ceil(512) * 512;
        let mut b = vec![0u8; padded as usize];
        self.r.read_exact(&mut b)?;
        self.split.raw(&b);
        b.truncate(size as usize);
        Ok(b)
    }

    /// Content of the current entry: read exactly `Entry::size` bytes through this.
    pub fn content(&mut self) -> ContentReader<'_, 'a, R> {
        ContentReader { t: self }
    }

    /// Skips whatever content of the current entry was not read, and its padding.
    fn finish_entry(&mut self) -> Result<(), TarError> {
        let mut skip = self.pending + self.pending_pad;
        let mut buf = [0u8; 8192];
        while skip > 0 {
            let n = skip.min(buf.len() as u64) as usize;
            self.r.read_exact(&mut buf[..n])?;
            self.split.raw(&buf[..n]);
            skip -= n as u64;
        }
        self.pending = 0;
        self.pending_pad = 0;
        Ok(())
    }

    /// The next entry, or None at the end of the archive.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        self.finish_entry()?;
        if self.done {
            return Ok(None);
        }
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        loop {
            let mut block = [0u8; 512];
            if !self.read_block(&mut block)? {
                // End of stream without the two zero blocks: accepted, like Go's reader.
                self.done = true;
                return Ok(None);
            }
            self.split.raw(&block);
            if block.iter().all(|b| *b == 0) {
                self.done = true;
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block);
            let raw_name = header.path_bytes().into_owned();
            let stored: u32 = block[..148]
                .iter()
                .chain([b' '; 8].iter())
                .chain(block[156..].iter())
                .map(|b| *b as u32)
                .sum();
            let cksum = header
                .cksum()
                .map_err(|_| entry_err(&raw_name, "unreadable header checksum"))?;
            if stored != cksum {
                return Err(entry_err(
                    &raw_name,
                    "header checksum mismatch (not a tar stream?)",
                ));
            }
            let size = header
                .entry_size()
                .map_err(|_| entry_err(&raw_name, "unreadable size field"))?;
            let kind = header.entry_type();
            match kind.as_byte() {
                b'x' => {
                    let rec = self.read_record(&raw_name, size)?;
                    for ext in tar::PaxExtensions::new(&rec) {
                        let ext = ext.map_err(|_| entry_err(&raw_name, "malformed PAX record"))?;
                        pax.push((ext.key_bytes().to_vec(), ext.value_bytes().to_vec()));
                    }
                    continue;
                }
                b'g' => {
                    // Global PAX headers are ignored by dockerd too.
                    self.read_record(&raw_name, size)?;
                    continue;
                }
                b'L' => {
                    let mut n = self.read_record(&raw_name, size)?;
                    while n.last() == Some(&0) {
                        n.pop();
                    }
                    long_name = Some(n);
                    continue;
                }
                b'K' => {
                    let mut n = self.read_record(&raw_name, size)?;
                    while n.last() == Some(&0) {
                        n.pop();
                    }
                    long_link = Some(n);
                    continue;
                }
                _ => {}
            }
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(entry_err(
                    &raw_name,
                    format!("layer has more than {} entries", self.limits.max_entries),
                ));
            }
            let mut e = Entry {
                raw_path: long_name.take().unwrap_or(raw_name),
                kind: EntryKind::File,
                size,
                mode: header.mode().unwrap_or(0o644),
                uid: header.uid().unwrap_or(0).min(u32::MAX as u64) as u32,
                gid: header.gid().unwrap_or(0).min(u32::MAX as u64) as u32,
                mtime: header.mtime().unwrap_or(0),
                mtime_nsec: 0,
                link: long_link
                    .take()
                    .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
                    .unwrap_or_default(),
                dev_major: header.device_major().ok().flatten().unwrap_or(0),
                dev_minor: header.device_minor().ok().flatten().unwrap_or(0),
                xattrs: Vec::new(),
            };
            for (k, v) in pax.drain(..) {
                let num = || {
                    std::str::from_utf8(&v)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                };
                match k.as_slice() {
                    b"path" => e.raw_path = v,
                    b"linkpath" => e.link = v,
                    b"size" => {
                        e.size = num().ok_or_else(|| entry_err(&e.raw_path, "bad PAX size"))?
                    }
                    b"uid" => e.uid = num().unwrap_or(0).min(u32::MAX as u64) as u32,
                    b"gid" => e.gid = num().unwrap_or(0).min(u32::MAX as u64) as u32,
                    b"mtime" => {
                        let s = String::from_utf8_lossy(&v).into_owned();
                        let (secs, frac) = s.split_once('.').unwrap_or((&s, ""));
                        e.mtime = secs.parse::<i64>().unwrap_or(0).max(0) as u64;
                        let mut f: String = frac.chars().take(9).collect();
                        while f.len() < 9 {
                            f.push('0');
                        }
                        e.mtime_nsec = f.parse().unwrap_or(0);
                    }
                    k if k.starts_with(b"SCHILY.xattr.") => {
                        e.xattrs.push((k[b"SCHILY.xattr.".len()..].to_vec(), v));
                    }
                    k if k.starts_with(b"GNU.sparse.") => {
                        return Err(entry_err(&e.raw_path, "sparse files are not supported"));
                    }
                    _ => {}
                }
            }
            e.kind = match kind.as_byte() {
                b'0' | b'\0' | b'7' => EntryKind::File,
                b'1' => EntryKind::HardLink,
                b'2' => EntryKind::Symlink,
                b'3' => EntryKind::CharDev,
                b'4' => EntryKind::BlockDev,
                b'5' => EntryKind::Dir,
                b'6' => EntryKind::Fifo,
                b'S' => return Err(entry_err(&e.raw_path, "sparse files are not supported")),
                other => {
                    return Err(entry_err(
                        &e.raw_path,
                        format!("unsupported tar entry type {:?}", other as char),
                    ))
                }
            };
            // Only regular files carry content; other entries' sizes are skipped as data.
            let budget = self.limits.max_layer_bytes;
            if e.size > budget {
                return Err(entry_err(
                    &e.raw_path,
                    format!(
                        "size {} exceeds the layer size limit of {budget} bytes",
                        e.size
                    ),
                ));
            }
            self.pending = e.size;
            self.pending_pad = e.size.div_ceil(512) * 512 - e.size;
            if e.kind != EntryKind::File {
                // Content of non-files (hard links may carry some) is not meaningful.
                self.finish_entry()?;
                e.size = 0;
            }
            return Ok(Some(e));
        }
    }
}

/// Reads the content of the current entry; bytes read through it are *not* recorded in
/// the tar-split (the caller records where they went).
pub struct ContentReader<'t, 'a, R: Read> {
    t: &'t mut TarReader<'a, R>,
}

impl<R: Read> Read for ContentReader<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.t.pending == 0 {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.t.pending) as usize;
        let got = self.t.r.read(&mut buf[..n])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar stream ends in the middle of a file",
            ));
        }
        self.t.pending -= got as u64;
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined() {
        let ok = |p: &str| clean_path(p.as_bytes(), 4096).unwrap();
        assert_eq!(ok("./a/b/"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(ok("a//./b"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(ok("./").is_empty());
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", "a\0b"] {
            assert!(clean_path(bad.as_bytes(), 4096).is_err(), "{bad:?}");
        }
        assert!(clean_path("x".repeat(256).as_bytes(), 4096).is_err());
        assert!(clean_path("a/".repeat(3000).as_bytes(), 4096).is_err());
    }
}
