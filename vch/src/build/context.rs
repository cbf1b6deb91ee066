//! The build context: the tar the client sent (plain or gzip), spooled to a file and
//! indexed by path, so COPY and ADD read exactly the entries they name without
//! unpacking anything on the appliance. Names that leave the context (`..`) and device
//! nodes are refused by name; symlinks are kept as symlinks, never followed.

use super::ignore::{clean, source_glob, Ignore};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    pub mode: u32,
    pub size: u64,
    pub mtime: u64,
    pub uid: u64,
    pub gid: u64,
    /// Symlink target.
    pub link: Option<String>,
    /// Where the data starts in the spooled tar.
    offset: u64,
}

pub struct Context {
    file: File,
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
}

impl Drop for Context {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Owner and permission changes of a COPY/ADD (`--chown`, `--chmod`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Owner {
    /// `None`: 0:0 for COPY from the context; an ADD archive keeps its own.
    pub ids: Option<(u64, u64)>,
    pub mode: Option<u32>,
}

impl Context {
    /// Indexes the plain tar at `path` (blocking). The file is removed with the context.
    pub fn open(path: PathBuf) -> Result<Context, String> {
        let file = File::open(&path).map_err(|e| format!("build context: {e}"))?;
        let mut entries = BTreeMap::new();
        let mut ar = tar::Archive::new(&file);
        let list = ar
            .entries()
            .map_err(|e| format!("build context is not a tar archive: {e}"))?;
        let mut links = Vec::new();
        for e in list {
            let e = e.map_err(|e| format!("build context is not a valid tar archive: {e}"))?;
            let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let name = context_path(&raw)?;
            let h = e.header();
            let kind = match h.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Symlink,
                tar::EntryType::Link => {
                    let to = e
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    links.push((name, context_path(&to)?));
                    continue;
                }
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
                other => {
                    return Err(format!(
                        "build context: {raw:?} is a {} ({other:?}), which cannot be copied into an image",
                        if matches!(other, tar::EntryType::Char | tar::EntryType::Block) {
                            "device node"
                        } else {
                            "special file"
                        }
                    ))
                }
            };
            if name.is_empty() {
                continue;
            }
            let link = (kind == Kind::Symlink).then(|| {
                e.link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            });
            entries.insert(
                name,
                Entry {
                    kind,
                    mode: h.mode().unwrap_or(0o644) & 0o7777,
                    size: if kind == Kind::File { e.size() } else { 0 },
                    mtime: h.mtime().unwrap_or(0),
                    uid: h.uid().unwrap_or(0),
                    gid: h.gid().unwrap_or(0),
                    link,
                    offset: e.raw_file_position(),
                },
            );
        }
        // Hard links become copies of their target (the target may not be copied along).
        for (name, to) in links {
            let target = entries
                .get(&to)
                .cloned()
                .ok_or_else(|| format!("build context: hard link {name:?} to missing {to:?}"))?;
            entries.insert(name, target);
        }
        Ok(Context {
            file,
            path,
            entries,
        })
    }

    /// A file's content (the Dockerfile, .dockerignore); `None` when absent.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let e = self.entries.get(&clean(path))?;
        if e.kind != Kind::File {
            return None;
        }
        let mut out = Vec::with_capacity(e.size as usize);
        self.data(e).read_to_end(&mut out).ok()?;
        Some(out)
    }

    /// Leaves out what `.dockerignore` excludes.
    pub fn apply_ignore(&mut self, ignore: &Ignore) {
        self.entries.retain(|p, _| !ignore.excludes(p));
    }

    pub fn is_dir(&self, path: &str) -> bool {
        path.is_empty()
            || self.entries.get(path).is_some_and(|e| e.kind == Kind::Dir)
            || self.below(path).next().is_some()
    }

    fn below<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(p, _)| p.starts_with(&prefix))
    }

    /// The context paths a COPY/ADD source names: itself, or what its wildcard matches.
    pub fn sources(&self, src: &str) -> Result<Vec<String>, String> {
        let path = clean(src);
        if path.contains(['*', '?', '[']) {
            let glob = source_glob(&path)?;
            let mut dirs: Vec<String> = Vec::new();
            for p in self.entries.keys() {
                let mut d = p.as_str();
                while let Some((parent, _)) = d.rsplit_once('/') {
                    dirs.push(parent.to_string());
                    d = parent;
                }
            }
            let mut found: Vec<String> = self
                .entries
                .keys()
                .cloned()
                .chain(dirs)
                .filter(|p| glob.is_match(p))
                .collect();
            found.sort();
            found.dedup();
            return Ok(found);
        }
        if path.is_empty() || self.entries.contains_key(&path) || self.is_dir(&path) {
            return Ok(vec![path]);
        }
        Err(format!(
            "file not found in build context or excluded by .dockerignore: stat {src}: file does not exist"
        ))
    }

    /// A digest of what copying `sources` would copy: names, kinds, modes, link targets
    /// and contents (the cache key of a COPY/ADD).
    pub fn digest(&self, sources: &[String]) -> String {
        let mut h = Sha256::new();
        for src in sources {
            for (p, e) in self.tree(src) {
                h.update(format!("{p}\0{:?}\0{:o}\0{:?}\0", e.kind, e.mode, e.link));
                if e.kind == Kind::File {
                    let mut r = self.data(e);
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = r.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                }
            }
        }
        hex::encode(h.finalize())
    }

    /// `path` itself (unless the root) and everything below it.
    fn tree<'a>(&'a self, path: &'a str) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        self.entries
            .get_key_value(path)
            .into_iter()
            .chain(self.below(path))
    }

    fn data(&self, e: &Entry) -> At<'_> {
        At {
            file: &self.file,
            pos: e.offset,
            left: e.size,
        }
    }

    /// Writes the entries `src` copies to `dest` into `out`, named relative to the root
    /// (`dest` is absolute). A directory source copies its contents; `dest_is_dir` says
    /// whether a file source goes into `dest` or becomes it.
    pub fn copy_into<W: Write>(
        &self,
        out: &mut tar::Builder<W>,
        src: &str,
        dest: &str,
        dest_is_dir: bool,
        owner: Owner,
    ) -> io::Result<()> {
        let dest = dest.trim_start_matches('/').trim_end_matches('/');
        let join = |rel: &str| -> String {
            match (dest.is_empty(), rel.is_empty()) {
                (true, _) => rel.to_string(),
                (false, true) => dest.to_string(),
                (false, false) => format!("{dest}/{rel}"),
            }
        };
        if self.is_dir(src) && self.entries.get(src).is_none_or(|e| e.kind == Kind::Dir) {
            for (p, e) in self.below(src) {
                let rel = if src.is_empty() {
                    p.as_str()
                } else {
                    &p[src.len() + 1..]
                };
                self.append(out, &join(rel), e, owner)?;
            }
            return Ok(());
        }
        let e = &self.entries[src];
        let name = if dest_is_dir {
            join(src.rsplit('/').next().unwrap_or(src))
        } else {
            dest.to_string()
        };
        self.append(out, &name, e, owner)
    }

    fn append<W: Write>(
        &self,
        out: &mut tar::Builder<W>,
        name: &str,
        e: &Entry,
        owner: Owner,
    ) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        let (uid, gid) = owner.ids.unwrap_or((0, 0));
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(e.mtime);
        h.set_mode(
            owner
                .mode
                .filter(|_| e.kind != Kind::Symlink)
                .unwrap_or(e.mode),
        );
        match e.kind {
            Kind::File => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(e.size);
                out.append_data(&mut h, name, self.data(e))
            }
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                out.append_data(&mut h, name, io::empty())
            }
            Kind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                out.append_link(&mut h, name, e.link.as_deref().unwrap_or_default())
            }
        }
    }

    /// Whether an ADD source is a tar archive (plain or gzip) to unpack.
    pub fn is_archive(&self, src: &str) -> bool {
        let Some(e) = self.entries.get(src).filter(|e| e.kind == Kind::File) else {
            return false;
        };
        let mut head = Vec::new();
        let _ = archive_reader(self.data(e)).and_then(|r| {
            r.take(512).read_to_end(&mut head)?;
            Ok(())
        });
        head.len() >= 262 && &head[257..262] == b"ustar"
    }

    /// ADD of a local archive: its entries under `dest`, kept as they are in it (owner
    /// too, unless `--chown`). Names leaving `dest` and device nodes are refused.
    pub fn unpack_into<W: Write>(
        &self,
        out: &mut tar::Builder<W>,
        src: &str,
        dest: &str,
        owner: Owner,
    ) -> io::Result<()> {
        let dest = dest.trim_start_matches('/').trim_end_matches('/');
        let mut ar = tar::Archive::new(archive_reader(self.data(&self.entries[src]))?);
        for e in ar.entries()? {
            let mut e = e?;
            let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let rel = context_path(&raw).map_err(io::Error::other)?;
            if rel.is_empty() {
                continue;
            }
            let name = if dest.is_empty() {
                rel
            } else {
                format!("{dest}/{rel}")
            };
            let mut h = e.header().clone();
            match h.entry_type() {
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::Directory
                | tar::EntryType::Symlink => {}
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
                other => {
                    return Err(io::Error::other(format!(
                        "ADD {src}: {raw:?} is a {other:?} entry, which this VCH does not unpack"
                    )))
                }
            }
            if let Some((uid, gid)) = owner.ids {
                h.set_uid(uid);
                h.set_gid(gid);
            }
            if h.entry_type() == tar::EntryType::Symlink {
                let to = e
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                out.append_link(&mut h, &name, to)?;
            } else {
                out.append_data(&mut h, &name, &mut e)?;
            }
        }
        Ok(())
    }
}

/// A tar stream of an ADD source: gzip is unpacked, a plain tar passed as is.
fn archive_reader<'a>(r: At<'a>) -> io::Result<Box<dyn Read + 'a>> {
    let mut magic = [0u8; 2];
    let n = r.file.read_at(&mut magic, r.pos)?;
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(r))
    } else {
        Box::new(r)
    })
}

/// An entry name as a context path: relative, `/`-separated, never above the root.
fn context_path(raw: &str) -> Result<String, String> {
    if raw.split('/').any(|p| p == "..") {
        return Err(format!(
            "build context: entry {raw:?} points outside the context"
        ));
    }
    Ok(clean(raw))
}

/// Reads one entry's data out of the spooled tar.
struct At<'a> {
    file: &'a File,
    pos: u64,
    left: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(self.left as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "build context ends inside an entry",
            ));
        }
        self.pos += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Spools the context stream into `dir` (gzip unpacked on the way); returns the tar's path.
pub async fn spool(body: docker_api::backend::ByteStream, dir: &Path) -> Result<PathBuf, String> {
    use futures_util::StreamExt;
    let path = dir.join(format!("build-context-{}.tar", uuid::Uuid::new_v4()));
    let raw = path.with_extension("raw");
    let mut f = tokio::fs::File::create(&raw)
        .await
        .map_err(|e| format!("cannot spool the build context: {e}"))?;
    let mut body = body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("reading the build context: {e}"))?;
        tokio::io::AsyncWriteExt::write_all(&mut f, &chunk)
            .await
            .map_err(|e| format!("cannot spool the build context: {e}"))?;
    }
    drop(f);
    let out = path.clone();
    tokio::task::spawn_blocking(move || -> Result<PathBuf, String> {
        let mut src = File::open(&raw).map_err(|e| e.to_string())?;
        let mut magic = [0u8; 6];
        let n = src.read_at(&mut magic, 0).unwrap_or(0);
        let result = if n >= 2 && magic[..2] == [0x1f, 0x8b] {
            let mut dst = File::create(&out).map_err(|e| e.to_string())?;
            io::copy(&mut flate2::read::GzDecoder::new(&mut src), &mut dst)
                .map(|_| out.clone())
                .map_err(|e| format!("build context: bad gzip data: {e}"))
        } else if n >= 3 && (&magic[..3] == b"BZh" || magic[..6] == [0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Err("build context: bzip2 and xz contexts are not supported by this VCH; send a plain or gzip tar".into())
        } else if !is_tar(&src) {
            // `docker build - < Dockerfile`: the body is the Dockerfile itself, no context.
            dockerfile_only(&mut src, &out)
        } else {
            std::fs::rename(&raw, &out)
                .map(|_| out.clone())
                .map_err(|e| e.to_string())
        };
        let _ = std::fs::remove_file(&raw);
        result
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether `f` starts with a tar header (or is empty: an empty context).
fn is_tar(f: &File) -> bool {
    let mut head = [0u8; 512];
    match f.read_at(&mut head, 0) {
        Ok(0) => true,
        Ok(n) if n >= 262 => &head[257..262] == b"ustar" || head.iter().all(|b| *b == 0),
        _ => false,
    }
}

/// A context holding only `Dockerfile`, made from a body that is one.
fn dockerfile_only(src: &mut File, out: &Path) -> Result<PathBuf, String> {
    let mut text = Vec::new();
    src.read_to_end(&mut text).map_err(|e| e.to_string())?;
    if std::str::from_utf8(&text).is_err() {
        return Err("the build context is neither a tar archive nor a Dockerfile".into());
    }
    let mut b = tar::Builder::new(File::create(out).map_err(|e| e.to_string())?);
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(text.len() as u64);
    b.append_data(&mut h, "Dockerfile", &text[..])
        .and_then(|_| b.finish())
        .map_err(|e| e.to_string())?;
    Ok(out.to_path_buf())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn context_of(entries: &[(&str, &str)]) -> Context {
        let dir = std::env::temp_dir().join(format!("vch-ctx-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            if let Some(to) = data.strip_prefix("->") {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, to).unwrap();
            } else if name.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, io::empty()).unwrap();
            } else {
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, data.as_bytes()).unwrap();
            }
        }
        b.finish().unwrap();
        drop(b);
        Context::open(path).unwrap()
    }

    fn names(ctx: &Context, src: &str, dest: &str, dir: bool) -> Vec<String> {
        let mut b = tar::Builder::new(Vec::new());
        ctx.copy_into(&mut b, src, dest, dir, Owner::default())
            .unwrap();
        let data = b.into_inner().unwrap();
        let mut ar = tar::Archive::new(&data[..]);
        ar.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn copies_files_dirs_and_wildcards() {
        let ctx = context_of(&[
            ("./Dockerfile", "FROM x"),
            ("app/", ""),
            ("app/main.sh", "echo hi"),
            ("app/lib/util.sh", "u"),
            ("a.txt", "A"),
            ("b.txt", "B"),
            ("link", "->app/main.sh"),
        ]);
        assert_eq!(ctx.read("Dockerfile").unwrap(), b"FROM x");
        assert_eq!(names(&ctx, "a.txt", "/dst/f", false), ["dst/f"]);
        assert_eq!(names(&ctx, "a.txt", "/dst/", true), ["dst/a.txt"]);
        assert_eq!(
            names(&ctx, "app", "/srv", true),
            ["srv/lib/util.sh", "srv/main.sh"]
        );
        assert_eq!(ctx.sources("*.txt").unwrap(), ["a.txt", "b.txt"]);
        assert_eq!(
            ctx.sources("app/li?").unwrap(),
            ["app/lib"],
            "implied directories match"
        );
        assert!(ctx
            .sources("nope")
            .unwrap_err()
            .contains("file not found in build context"));
        assert_eq!(
            names(&ctx, "link", "/l", false),
            ["l"],
            "symlinks stay links"
        );
        assert_ne!(ctx.digest(&["a.txt".into()]), ctx.digest(&["b.txt".into()]));
    }

    #[test]
    fn refuses_escapes_and_devices() {
        let dir = std::env::temp_dir().join(format!("vch-ctx-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("evil.tar");
        // The tar crate refuses to write `..`; write the name into the header by hand.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_size(0);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend([0u8; 1024]);
        std::fs::write(&path, &data).unwrap();
        assert!(Context::open(path.clone())
            .err()
            .unwrap()
            .contains("outside the context"));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Char);
        h.set_size(0);
        b.append_data(&mut h, "dev/null", io::empty()).unwrap();
        std::fs::write(&path, b.into_inner().unwrap()).unwrap();
        assert!(Context::open(path).err().unwrap().contains("device node"));
    }
}
