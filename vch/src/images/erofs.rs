//! An EROFS image writer: the layer's file tree goes straight from the tar stream into a
//! read-only filesystem image, without a staging directory on the host and without
//! `mkfs.erofs` (Debian 12's erofs-utils 1.5 cannot read tar). See docs/container-vm.md.
//!
//! Only on-disk features that Linux has read since 5.4 are used, so the guest's 6.1
//! kernel mounts the image: 4 KiB blocks, 64-byte extended inodes (they carry uid/gid as
//! 32 bits and the mtime), uncompressed data in `FLAT_PLAIN` or `FLAT_INLINE` layout
//! (a file's tail, a short symlink or a small directory sits right after its inode),
//! inline xattrs only (no shared xattr table), no superblock checksum.
//!
//! Image layout:
//! ```text
//! block 0            superblock at byte 1024
//! blocks 1..         file data, in tar order (written while the tar streams in)
//!                    directory blocks and long symlinks (written at finish)
//! meta_blkaddr..     inodes, each followed by its xattrs and inline tail; an inode never
//!                    straddles a block boundary (the kernel wants inline data in the
//!                    inode's block); slot 0 stays empty so no inode gets number 0
//! ```

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

pub const BLOCK: u64 = 4096;
const BLOCK_BITS: u8 = 12;
const SUPER_OFFSET: usize = 1024;
const MAGIC: u32 = 0xE0F5_E1E2;
const INODE_SIZE: usize = 64;
const XATTR_HEADER: usize = 12;
const DIRENT_SIZE: usize = 12;
/// A file name longer than this cannot be stored (EROFS_NAME_LEN).
pub const NAME_MAX: usize = 255;

const LAYOUT_PLAIN: u16 = 0;
const LAYOUT_INLINE: u16 = 2;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

pub type NodeId = usize;
/// Extended attributes: full name (`trusted.overlay.opaque`) and value.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;
pub const ROOT: NodeId = 0;

#[derive(Clone, Debug)]
pub enum Kind {
    Dir { children: BTreeMap<Vec<u8>, NodeId> },
    File(FileData),
    Symlink(Vec<u8>),
    CharDev { major: u32, minor: u32 },
    BlockDev { major: u32, minor: u32 },
    Fifo,
}

/// Where a regular file's bytes are: `stored` bytes from block `blkaddr` of the data area
/// (whole blocks, plus the zero-padded tail when it is not inline), and the inline tail.
#[derive(Clone, Debug, Default)]
pub struct FileData {
    pub size: u64,
    pub blkaddr: u32,
    pub stored: u64,
    pub tail: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits (including setuid/setgid/sticky); the type comes from `kind`.
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub mtime_nsec: u32,
    /// Full names (`trusted.overlay.opaque`), values as bytes.
    pub xattrs: Xattrs,
}

impl Node {
    pub fn dir(perm: u32) -> Node {
        Node {
            kind: Kind::Dir {
                children: BTreeMap::new(),
            },
            perm,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            xattrs: Vec::new(),
        }
    }
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }
    fn type_bits(&self) -> u32 {
        match self.kind {
            Kind::Dir { .. } => S_IFDIR,
            Kind::File(_) => S_IFREG,
            Kind::Symlink(_) => S_IFLNK,
            Kind::CharDev { .. } => S_IFCHR,
            Kind::BlockDev { .. } => S_IFBLK,
            Kind::Fifo => S_IFIFO,
        }
    }
    fn file_type(&self) -> u8 {
        match self.kind {
            Kind::File(_) => 1,
            Kind::Dir { .. } => 2,
            Kind::CharDev { .. } => 3,
            Kind::BlockDev { .. } => 4,
            Kind::Fifo => 5,
            Kind::Symlink(_) => 7,
        }
    }
}

/// Maps an xattr name onto EROFS's (prefix index, suffix). None: not storable.
pub fn xattr_index(name: &[u8]) -> Option<(u8, &[u8])> {
    const PREFIXES: &[(&[u8], u8)] = &[(b"user.", 1), (b"trusted.", 4), (b"security.", 6)];
    if name == b"system.posix_acl_access" {
        return Some((2, b""));
    }
    if name == b"system.posix_acl_default" {
        return Some((3, b""));
    }
    for (p, i) in PREFIXES {
        if let Some(rest) = name.strip_prefix(*p) {
            if !rest.is_empty() && rest.len() <= 255 {
                return Some((*i, rest));
            }
        }
    }
    None
}

/// Bytes the inline xattr area of a node takes (0 without xattrs).
pub fn xattr_ibody_size(xattrs: &[(Vec<u8>, Vec<u8>)]) -> usize {
    if xattrs.is_empty() {
        return 0;
    }
    XATTR_HEADER
        + xattrs
            .iter()
            .map(|(n, v)| {
                let suffix = xattr_index(n).map(|(_, s)| s.len()).unwrap_or(0);
                round4(4 + suffix + v.len())
            })
            .sum::<usize>()
}

/// Largest xattr area we accept: the inode and its xattrs must fit in one block.
pub const MAX_XATTR_IBODY: usize = BLOCK as usize - INODE_SIZE - 64;

fn round4(n: usize) -> usize {
    (n + 3) & !3
}
fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// Builds an image into `out` (a fresh file): data is appended while the tree is built,
/// metadata is laid out by [`Builder::finish`].
pub struct Builder<W: Write + Seek> {
    out: W,
    pub nodes: Vec<Node>,
    /// Next free block of the data area.
    next_block: u64,
    /// Bytes of file tails kept in memory for inlining; past the budget tails go to the
    /// data area, so a layer with millions of small files cannot exhaust memory.
    inline_budget: usize,
    zeros: Vec<u8>,
    build_time: u64,
}

/// What [`Builder::finish`] produced.
#[derive(Clone, Debug)]
pub struct ImageSummary {
    /// Size of the image in bytes (a multiple of the block size).
    pub bytes: u64,
    pub inodes: u64,
}

impl<W: Write + Seek> Builder<W> {
    pub fn new(mut out: W, inline_budget: usize) -> io::Result<Self> {
        // Block 0 holds the superblock, written last.
        out.write_all(&vec![0u8; BLOCK as usize])?;
        let mut root = Node::dir(0o755);
        root.mtime = 0;
        Ok(Builder {
            out,
            nodes: vec![root],
            next_block: 1,
            inline_budget,
            zeros: vec![0u8; BLOCK as usize],
            build_time: 0,
        })
    }

    pub fn add(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// The timestamp recorded in the superblock (the newest mtime seen is a good choice:
    /// it keeps the image a pure function of the tar).
    pub fn set_build_time(&mut self, t: u64) {
        self.build_time = t;
    }

    /// Copies exactly `size` bytes of file content from `r` into the data area. The last
    /// partial block is kept for inlining when `xattr_len` leaves room for it in the
    /// inode's block. `on_chunk` sees every chunk (for the tar-split record).
    pub fn write_file<R: Read>(
        &mut self,
        r: &mut R,
        size: u64,
        xattr_len: usize,
        buf: &mut [u8],
    ) -> io::Result<FileData> {
        let full = size / BLOCK * BLOCK;
        let tail_len = (size - full) as usize;
        let blkaddr = self.next_block;
        let mut left = full;
        while left > 0 {
            let n = (left.min(buf.len() as u64)) as usize;
            r.read_exact(&mut buf[..n])?;
            self.out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        let mut stored = full;
        let mut tail = None;
        if tail_len > 0 {
            let mut t = vec![0u8; tail_len];
            r.read_exact(&mut t)?;
            let fits = INODE_SIZE + xattr_len + tail_len <= BLOCK as usize;
            if fits && self.inline_budget >= tail_len {
                self.inline_budget -= tail_len;
                tail = Some(t);
            } else {
                self.out.write_all(&t)?;
                self.out
                    .write_all(&self.zeros[..BLOCK as usize - tail_len])?;
                stored += BLOCK;
            }
        }
        self.next_block += stored / BLOCK;
        if self.next_block > u32::MAX as u64 {
            return Err(io::Error::other("filesystem image larger than 16 TiB"));
        }
        Ok(FileData {
            size,
            blkaddr: if stored > 0 { blkaddr as u32 } else { 0 },
            stored,
            tail,
        })
    }

    /// Lays out the metadata, writes directories, inodes and the superblock.
    /// `uuid` makes the image identifiable (we derive it from the layer's diff id).
    pub fn finish(mut self, uuid: [u8; 16]) -> io::Result<(ImageSummary, W)> {
        // 1. Reachable inodes in breadth-first order (root first, so its nid is small),
        //    with link counts. Hard links are several dirents naming one node.
        let n = self.nodes.len();
        let mut order = Vec::new();
        let mut seen = vec![false; n];
        let mut nlink = vec![0u32; n];
        let mut parent = vec![ROOT; n];
        seen[ROOT] = true;
        order.push(ROOT);
        let mut i = 0;
        while i < order.len() {
            let id = order[i];
            i += 1;
            if let Kind::Dir { children } = &self.nodes[id].kind {
                let mut subdirs = 0;
                for &c in children.values() {
                    if self.nodes[c].is_dir() {
                        subdirs += 1;
                        parent[c] = id;
                    }
                    nlink[c] += 1;
                    if !seen[c] {
                        seen[c] = true;
                        order.push(c);
                    }
                }
                nlink[id] = 2 + subdirs;
            }
        }

        // 2. Sizes: xattrs, inline tails, directory blocks (which depend on names only).
        struct Plan {
            xattr: usize,
            inline: usize,
            layout: u16,
            size: u64,
            blkaddr: u32,
            /// Directory blocks: the (name, child) entries of each block.
            dir_blocks: Vec<Vec<(Vec<u8>, Option<NodeId>)>>,
            nid: u64,
        }
        let mut plans: Vec<Option<Plan>> = (0..n).map(|_| None).collect();
        for &id in &order {
            let node = &self.nodes[id];
            let xattr = xattr_ibody_size(&node.xattrs);
            let mut p = Plan {
                xattr,
                inline: 0,
                layout: LAYOUT_PLAIN,
                size: 0,
                blkaddr: 0,
                dir_blocks: Vec::new(),
                nid: 0,
            };
            match &node.kind {
                Kind::File(f) => {
                    p.size = f.size;
                    p.blkaddr = f.blkaddr;
                    if let Some(t) = &f.tail {
                        p.inline = t.len();
                        p.layout = LAYOUT_INLINE;
                    }
                }
                Kind::Symlink(t) => {
                    p.size = t.len() as u64;
                    if INODE_SIZE + xattr + t.len() <= BLOCK as usize && !t.is_empty() {
                        p.inline = t.len();
                        p.layout = LAYOUT_INLINE;
                    } else if !t.is_empty() {
                        p.blkaddr = self.next_block as u32;
                        self.next_block += (t.len() as u64).div_ceil(BLOCK);
                    }
                }
                Kind::Dir { children } => {
                    // "." and ".." sort with the other names (the kernel binary-searches).
                    let mut entries: Vec<(Vec<u8>, Option<NodeId>)> = children
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(*v)))
                        .collect();
                    entries.push((b".".to_vec(), None));
                    entries.push((b"..".to_vec(), None));
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    let mut blocks: Vec<Vec<(Vec<u8>, Option<NodeId>)>> = vec![Vec::new()];
                    let mut used = 0usize;
                    for e in entries {
                        let cost = DIRENT_SIZE + e.0.len();
                        if used + cost > BLOCK as usize {
                            blocks.push(Vec::new());
                            used = 0;
                        }
                        used += cost;
                        if let Some(b) = blocks.last_mut() {
                            b.push(e);
                        }
                    }
                    p.size = (blocks.len() as u64 - 1) * BLOCK + used as u64;
                    let full = blocks.len() as u64 - 1;
                    if INODE_SIZE + xattr + used <= BLOCK as usize {
                        p.inline = used;
                        p.layout = LAYOUT_INLINE;
                        if full > 0 {
                            p.blkaddr = self.next_block as u32;
                            self.next_block += full;
                        }
                    } else {
                        p.blkaddr = self.next_block as u32;
                        self.next_block += full + 1;
                    }
                    p.dir_blocks = blocks;
                }
                _ => {}
            }
            plans[id] = Some(p);
        }
        if self.next_block > u32::MAX as u64 {
            return Err(io::Error::other("filesystem image larger than 16 TiB"));
        }
        let meta_blkaddr = self.next_block;

        // 3. Inode slots. Slot 0 is left empty: inode number 0 means "no file" to readdir
        //    users such as Go's os.ReadDir.
        let mut cursor: u64 = 32;
        for &id in &order {
            let Some(p) = plans[id].as_mut() else {
                continue;
            };
            let total = (INODE_SIZE + p.xattr + p.inline) as u64;
            cursor = round_up(cursor, 32);
            if cursor % BLOCK + total > BLOCK {
                cursor = round_up(cursor, BLOCK);
            }
            p.nid = cursor / 32;
            cursor += total;
        }
        let root_nid = plans[ROOT].as_ref().map(|p| p.nid).unwrap_or(1);
        if root_nid > u16::MAX as u64 {
            return Err(io::Error::other("root inode out of range"));
        }
        let meta_len = round_up(cursor, BLOCK) as usize;
        let mut meta = vec![0u8; meta_len];
        let nid_of =
            |plans: &Vec<Option<Plan>>, id: NodeId| plans[id].as_ref().map(|p| p.nid).unwrap_or(0);

        // 4. Directory contents (they need the children's nids), written to the data area
        //    in the order their blocks were allocated, and inline tails into `meta`.
        let mut dir_writes: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut ino: u32 = 0;
        for &id in &order {
            ino += 1;
            let node = &self.nodes[id];
            let Some(p) = plans[id].as_ref() else {
                continue;
            };
            let mut blocks_bytes: Vec<Vec<u8>> = Vec::new();
            if let Kind::Dir { .. } = node.kind {
                for blk in &p.dir_blocks {
                    let mut b = Vec::with_capacity(BLOCK as usize);
                    let mut nameoff = blk.len() * DIRENT_SIZE;
                    for (name, child) in blk {
                        let (cnid, ft) = match (name.as_slice(), child) {
                            (b".", _) => (p.nid, 2u8),
                            (b"..", _) => (nid_of(&plans, parent[id]), 2u8),
                            (_, Some(c)) => (nid_of(&plans, *c), self.nodes[*c].file_type()),
                            (_, None) => (0, 0),
                        };
                        b.extend_from_slice(&cnid.to_le_bytes());
                        b.extend_from_slice(&(nameoff as u16).to_le_bytes());
                        b.push(ft);
                        b.push(0);
                        nameoff += name.len();
                    }
                    for (name, _) in blk {
                        b.extend_from_slice(name);
                    }
                    blocks_bytes.push(b);
                }
            }
            // The inode itself.
            let off = (p.nid * 32) as usize;
            let inode = &mut meta[off..off + INODE_SIZE];
            let icount: u16 = if p.xattr == 0 {
                0
            } else {
                ((p.xattr - XATTR_HEADER) / 4 + 1) as u16
            };
            let format: u16 = 1 | (p.layout << 1);
            let mode = (node.type_bits() | (node.perm & 0o7777)) as u16;
            let i_u: u32 = match node.kind {
                Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
                }
                Kind::Fifo => 0,
                _ => p.blkaddr,
            };
            inode[0..2].copy_from_slice(&format.to_le_bytes());
            inode[2..4].copy_from_slice(&icount.to_le_bytes());
            inode[4..6].copy_from_slice(&mode.to_le_bytes());
            inode[8..16].copy_from_slice(&p.size.to_le_bytes());
            inode[16..20].copy_from_slice(&i_u.to_le_bytes());
            inode[20..24].copy_from_slice(&ino.to_le_bytes());
            inode[24..28].copy_from_slice(&node.uid.to_le_bytes());
            inode[28..32].copy_from_slice(&node.gid.to_le_bytes());
            inode[32..40].copy_from_slice(&node.mtime.to_le_bytes());
            inode[40..44].copy_from_slice(&node.mtime_nsec.to_le_bytes());
            inode[44..48].copy_from_slice(&nlink[id].max(1).to_le_bytes());
            // Inline xattrs: a 12-byte header (no shared xattrs), then the entries.
            let mut x = off + INODE_SIZE;
            if p.xattr > 0 {
                x += XATTR_HEADER;
                for (name, value) in &node.xattrs {
                    let Some((idx, suffix)) = xattr_index(name) else {
                        continue;
                    };
                    meta[x] = suffix.len() as u8;
                    meta[x + 1] = idx;
                    meta[x + 2..x + 4].copy_from_slice(&(value.len() as u16).to_le_bytes());
                    meta[x + 4..x + 4 + suffix.len()].copy_from_slice(suffix);
                    let v = x + 4 + suffix.len();
                    meta[v..v + value.len()].copy_from_slice(value);
                    x += round4(4 + suffix.len() + value.len());
                }
            }
            let inline_at = off + INODE_SIZE + p.xattr;
            match &node.kind {
                Kind::File(f) => {
                    if let Some(t) = &f.tail {
                        meta[inline_at..inline_at + t.len()].copy_from_slice(t);
                    }
                }
                Kind::Symlink(t) => {
                    if p.layout == LAYOUT_INLINE {
                        meta[inline_at..inline_at + t.len()].copy_from_slice(t);
                    } else if !t.is_empty() {
                        let mut b = t.clone();
                        b.resize(round_up(t.len() as u64, BLOCK) as usize, 0);
                        dir_writes.push((p.blkaddr, b));
                    }
                }
                Kind::Dir { .. } => {
                    let last = blocks_bytes.pop().unwrap_or_default();
                    let mut plain = Vec::new();
                    for mut b in blocks_bytes {
                        b.resize(BLOCK as usize, 0);
                        plain.extend_from_slice(&b);
                    }
                    if p.layout == LAYOUT_INLINE {
                        meta[inline_at..inline_at + last.len()].copy_from_slice(&last);
                    } else {
                        let mut b = last;
                        b.resize(BLOCK as usize, 0);
                        plain.extend_from_slice(&b);
                    }
                    if !plain.is_empty() {
                        dir_writes.push((p.blkaddr, plain));
                    }
                }
                _ => {}
            }
        }
        // The data area was appended in allocation order; keep it that way.
        dir_writes.sort_by_key(|(b, _)| *b);
        for (_, bytes) in dir_writes {
            self.out.write_all(&bytes)?;
        }
        self.out.write_all(&meta)?;
        let total_blocks = meta_blkaddr + meta_len as u64 / BLOCK;

        // 5. Superblock.
        let mut sb = [0u8; 128];
        sb[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        sb[12] = BLOCK_BITS;
        sb[14..16].copy_from_slice(&(root_nid as u16).to_le_bytes());
        sb[16..24].copy_from_slice(&(order.len() as u64).to_le_bytes());
        sb[24..32].copy_from_slice(&self.build_time.to_le_bytes());
        sb[36..40].copy_from_slice(&(total_blocks as u32).to_le_bytes());
        sb[40..44].copy_from_slice(&(meta_blkaddr as u32).to_le_bytes());
        sb[48..64].copy_from_slice(&uuid);
        sb[64..71].copy_from_slice(b"vch-lyr");
        self.out.flush()?;
        self.out.seek(SeekFrom::Start(SUPER_OFFSET as u64))?;
        self.out.write_all(&sb)?;
        self.out.seek(SeekFrom::Start(total_blocks * BLOCK))?;
        self.out.flush()?;
        Ok((
            ImageSummary {
                bytes: total_blocks * BLOCK,
                inodes: order.len() as u64,
            },
            self.out,
        ))
    }
}
