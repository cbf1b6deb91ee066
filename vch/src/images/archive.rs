//! `docker save`, `docker load` and `docker import`.
//!
//! **save** writes the archive dockerd 25+ writes: an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/...`) that also carries the classic `manifest.json`, so
//! both `docker load` and OCI tools read it. Layer tars are rebuilt byte for byte from
//! the layer disk and its tar-split, and checked against the diff id as they stream.
//!
//! **load** reads that format, the classic docker-archive (`<id>/layer.tar`, symlinked
//! duplicate layers) and plain OCI layout tarballs. The outer archive is as untrusted as
//! a layer: it is read with the same bounded tar reader, its members are spooled to
//! local files under generated names (nothing is created from the names in it), and
//! links inside it are resolved as names, never on the filesystem.
//!
//! **import** turns one filesystem tarball into a single-layer image.

use super::convert::ConvertError;
use super::digest::{Digest, HashingReader};
use super::error::{ImageError, Result};
use super::manifest::{media, ContainerConfig, HistoryEntry, ImageConfigFile, Manifest, RootFs};
use super::platform::Platform;
use super::progress::ProgressEvent;
use super::reference::Reference;
use super::store::{convert_error, layer_dir, ImageStore, NewImage, Spool};
use super::tar_safety::{clean_path, EntryKind, Limits, TarReader, TarSplit};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::SyncIoBridge;

/// Writes members of an outer tar archive.
struct OuterTar<W: Write> {
    w: W,
}

impl<W: Write> OuterTar<W> {
    fn header(&mut self, path: &str, size: u64) -> std::io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)?;
        h.set_size(size);
        h.set_mode(0o444);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(0);
        h.set_cksum();
        self.w.write_all(h.as_bytes())
    }
    fn pad(&mut self, size: u64) -> std::io::Result<()> {
        let pad = (512 - size % 512) % 512;
        self.w.write_all(&vec![0u8; pad as usize])
    }
    fn file(&mut self, path: &str, data: &[u8]) -> std::io::Result<()> {
        self.header(path, data.len() as u64)?;
        self.w.write_all(data)?;
        self.pad(data.len() as u64)
    }
    fn finish(mut self) -> std::io::Result<W> {
        self.w.write_all(&[0u8; 1024])?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// A writer that hashes and counts.
/// Writes through, hashing and counting what passes.
pub(crate) struct HashingWriter<W> {
    w: W,
    h: sha2::Sha256,
    n: u64,
}

impl<W> HashingWriter<W> {
    pub(crate) fn new(w: W) -> Self {
        HashingWriter {
            w,
            h: Default::default(),
            n: 0,
        }
    }

    /// The digest and length of what was written.
    pub(crate) fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.h), self.n)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        let n = self.w.write(buf)?;
        self.h.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// What a layer's exact tar is rebuilt from: its disk (spooled here) and its tar-split.
pub(crate) struct LayerParts {
    disk: Spool,
    split_gz: Vec<u8>,
}

impl LayerParts {
    /// Writes the layer's tar into `out`, byte for byte as it was pulled or loaded, and
    /// fails unless it hashes to its diff id (blocking: call off the runtime).
    pub(crate) fn rebuild(&self, diff: &Digest, size: u64, out: &mut dyn Write) -> Result<()> {
        let mut split = Vec::new();
        flate2::read::GzDecoder::new(&self.split_gz[..]).read_to_end(&mut split)?;
        let image = std::fs::File::open(&self.disk.path)?;
        let mut hw = HashingWriter {
            w: out,
            h: Default::default(),
            n: 0,
        };
        TarSplit::assemble(&split, &image, &mut hw)?;
        let (n, got) = (hw.n, Digest::from_hasher(hw.h));
        if &got != diff || n != size {
            return Err(ImageError::DigestMismatch {
                what: format!("rebuilt tar of layer {diff}"),
                expected: diff.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(())
    }
}

impl ImageStore {
    /// A layer made here (`import`, `commit`): its tar converted and uploaded unless the
    /// store has it. The returned pins hold it, and `also` (the layers below it), until
    /// the image that uses them is registered.
    pub(crate) async fn ingest_layer<R>(
        &self,
        tar: R,
        what: &str,
        also: &[Digest],
    ) -> Result<(Digest, super::store::Pins)>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let label = what.to_string();
        let conv = self
            .convert_blocking(SyncIoBridge::new(tar), what.into(), move |e| match e {
                ConvertError::Source(io) => ImageError::Io(io),
                other => convert_error(&label, other),
            })
            .await?;
        let diff = conv.out.diff_id.clone();
        let mut held = also.to_vec();
        held.push(diff.clone());
        let pins = self.pin(&held);
        if !self.layer_exists(&diff).await? {
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            self.upload_layer(conv, None, diff.short(), &tx).await?;
        }
        Ok((diff, pins))
    }

    /// Stores the config of an image made here and registers it (under `target` when
    /// given); its layers are the config's diff ids. Returns the image id.
    pub(crate) async fn register_built(
        &self,
        config: &ImageConfigFile,
        target: Option<Reference>,
    ) -> Result<Digest> {
        let raw = serde_json::to_vec(config).map_err(|e| ImageError::Internal(e.to_string()))?;
        let id = self.store_blob(&raw).await?;
        let refs: Vec<Reference> = target.into_iter().collect();
        self.register(
            NewImage {
                id: &id,
                config_raw: &raw,
                config,
                diff_ids: &config.rootfs.diff_ids,
                flattened: None,
                manifest: None,
            },
            &refs,
        )
        .await?;
        Ok(id)
    }

    /// Registers an image a build step made from `parent`, under the step's cache key
    /// (see `build`); returns its id.
    pub(crate) async fn register_step(
        &self,
        config: &ImageConfigFile,
        parent: Option<&Digest>,
        key: &str,
    ) -> Result<Digest> {
        let id = self.register_built(config, None).await?;
        self.update_index(|idx| {
            if let Some(rec) = idx.images.get_mut(&id) {
                if rec.build_key.is_none() && Some(&id) != parent {
                    rec.parent = parent.cloned();
                    rec.build_key = Some(key.to_string());
                }
            }
            Ok(())
        })
        .await?;
        Ok(id)
    }

    /// The image a build step with `key` made from `parent` before, if it is still here.
    pub(crate) fn cached_step(&self, parent: Option<&Digest>, key: &str) -> Option<Digest> {
        self.inner.index.read().built_from(parent, key)
    }

    /// Fetches a layer's disk and tar-split from the datastore.
    pub(crate) async fn layer_parts(&self, diff: &Digest) -> Result<LayerParts> {
        let (disk, file) = Spool::create(&self.inner.cfg.spool_dir)?;
        let mut f = tokio::fs::File::from_std(file);
        let mut s = Box::pin(
            self.inner
                .ds
                .get_stream(&format!("{}/layer-flat.vmdk", layer_dir(diff)))
                .await?,
        );
        while let Some(chunk) = s.next().await {
            tokio::io::AsyncWriteExt::write_all(&mut f, &chunk?).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut f).await?;
        let split_gz = self
            .inner
            .ds
            .get_bytes(&format!("{}/layer.tarsplit.gz", layer_dir(diff)))
            .await?
            .ok_or_else(|| {
                ImageError::invalid("image store", format!("layer {diff} has no tar-split"))
            })?;
        Ok(LayerParts { disk, split_gz })
    }
}

/// Removes a spool directory when dropped.
struct SpoolDir(PathBuf);
impl Drop for SpoolDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn join_err(e: tokio::task::JoinError) -> ImageError {
    ImageError::Internal(format!("archive worker failed: {e}"))
}

impl ImageStore {
    /// `docker save NAME...` into `out` (see the module docs for the format).
    pub async fn save<W>(&self, names: &[String], out: W) -> Result<()>
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        struct Item {
            id: Digest,
            tags: Vec<Reference>,
            layers: Vec<(Digest, u64)>,
            config: Vec<u8>,
        }
        let mut items: Vec<Item> = Vec::new();
        for name in names {
            let id = self.resolve(name)?;
            let tag = Reference::parse(name)
                .ok()
                .filter(|r| r.digest().is_none())
                .filter(|r| self.inner.index.read().get_ref(r) == Some(&id));
            if let Some(it) = items.iter_mut().find(|i| i.id == id) {
                it.tags.extend(tag);
                continue;
            }
            let config = self.config_blob(&id).await?.raw.clone();
            let layers = {
                let idx = self.inner.index.read();
                let rec = idx
                    .images
                    .get(&id)
                    .ok_or_else(|| ImageError::NotFound(name.clone()))?;
                rec.layers
                    .iter()
                    .map(|l| {
                        idx.layers
                            .get(l)
                            .map(|r| (l.clone(), r.tar_size))
                            .ok_or_else(|| {
                                ImageError::invalid(
                                    "image store",
                                    format!("layer {l} is not recorded"),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>>>()?
            };
            items.push(Item {
                id,
                tags: tag.into_iter().collect(),
                layers,
                config,
            });
        }
        let mut writer = Some(OuterTar {
            w: SyncIoBridge::new(out),
        });
        let mut written: Vec<Digest> = Vec::new();
        for it in &items {
            for (diff, size) in &it.layers {
                if written.contains(diff) {
                    continue;
                }
                written.push(diff.clone());
                let parts = self.layer_parts(diff).await?;
                let mut w = writer
                    .take()
                    .ok_or_else(|| ImageError::Internal("archive writer lost".into()))?;
                let (diff, size) = (diff.clone(), *size);
                let w = tokio::task::spawn_blocking(move || -> Result<OuterTar<_>> {
                    w.header(&blob_name(&diff), size)?;
                    parts.rebuild(&diff, size, &mut w.w)?;
                    w.pad(size)?;
                    Ok(w)
                })
                .await
                .map_err(join_err)??;
                writer = Some(w);
            }
        }
        let mut index_manifests = Vec::new();
        let mut classic = Vec::new();
        let mut small: Vec<(String, Vec<u8>)> = Vec::new();
        for it in &items {
            small.push((blob_name(&it.id), it.config.clone()));
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media::OCI_MANIFEST,
                "config": {"mediaType": media::OCI_CONFIG, "digest": it.id, "size": it.config.len()},
                "layers": it.layers.iter().map(|(d, s)| serde_json::json!({"mediaType": media::OCI_LAYER, "digest": d, "size": s})).collect::<Vec<_>>(),
            });
            let mbytes =
                serde_json::to_vec(&manifest).map_err(|e| ImageError::Internal(e.to_string()))?;
            let mdigest = Digest::of(&mbytes);
            small.push((blob_name(&mdigest), mbytes.clone()));
            let base = serde_json::json!({"mediaType": media::OCI_MANIFEST, "digest": mdigest, "size": mbytes.len()});
            if it.tags.is_empty() {
                index_manifests.push(base.clone());
            }
            for t in &it.tags {
                let mut d = base.clone();
                d["annotations"] = serde_json::json!({
                    "io.containerd.image.name": t.to_string(),
                    "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest"),
                });
                index_manifests.push(d);
            }
            classic.push(serde_json::json!({
                "Config": blob_name(&it.id),
                "RepoTags": it.tags.iter().map(|t| t.familiar()).collect::<Vec<_>>(),
                "Layers": it.layers.iter().map(|(d, _)| blob_name(d)).collect::<Vec<_>>(),
            }));
        }
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": index_manifests});
        small.push((
            "index.json".into(),
            serde_json::to_vec(&index).unwrap_or_default(),
        ));
        small.push((
            "manifest.json".into(),
            serde_json::to_vec(&classic).unwrap_or_default(),
        ));
        small.push((
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
        let mut w = writer
            .take()
            .ok_or_else(|| ImageError::Internal("archive writer lost".into()))?;
        tokio::task::spawn_blocking(move || -> Result<()> {
            for (p, b) in small {
                w.file(&p, &b)?;
            }
            let mut bridge = w.finish()?;
            bridge.shutdown()?;
            Ok(())
        })
        .await
        .map_err(join_err)??;
        Ok(())
    }

    /// `docker save` as a byte stream (what the `GET /images/get` route returns). An
    /// error ends the stream with an `Err` item.
    pub fn save_stream(
        &self,
        names: Vec<String>,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        let (rd, wr) = tokio::io::duplex(256 << 10);
        let store = self.clone();
        let (etx, erx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let r = store.save(&names, wr).await;
            let _ = etx.send(r);
        });
        let data = tokio_util::io::ReaderStream::with_capacity(rd, 256 << 10);
        let tail = futures_util::stream::once(async move {
            match erx.await {
                Ok(Err(e)) => Some(Err(std::io::Error::other(e.to_string()))),
                _ => None,
            }
        })
        .filter_map(|x| async move { x });
        data.chain(tail)
    }

    /// `docker load`: a docker-archive or OCI layout tarball. Returns the references
    /// (or image IDs, for untagged images) loaded.
    pub async fn load<R, F>(&self, input: R, mut progress: F) -> Result<Vec<String>>
    where
        R: AsyncRead + Unpin + Send + 'static,
        F: FnMut(ProgressEvent) + Send,
    {
        let dir = self
            .inner
            .cfg
            .spool_dir
            .join(format!("load-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let guard = SpoolDir(dir.clone());
        let limits = self.inner.cfg.limits.clone();
        let members = tokio::task::spawn_blocking(move || {
            spool_archive(SyncIoBridge::new(input), &dir, &limits)
        })
        .await
        .map_err(join_err)??;
        let images = plan_load(&members, &self.inner.cfg.default_platform)?;
        let mut loaded = Vec::new();
        for img in images {
            let config = ImageConfigFile::parse(&img.config)?;
            if config.rootfs.diff_ids.len() != img.layers.len() {
                return Err(ImageError::invalid(
                    "archive",
                    format!(
                        "config lists {} layers, the manifest {}",
                        config.rootfs.diff_ids.len(),
                        img.layers.len()
                    ),
                ));
            }
            let _pins = self.pin(&config.rootfs.diff_ids);
            for (layer, diff) in img.layers.iter().zip(&config.rootfs.diff_ids) {
                let short = diff.short().to_string();
                if self.layer_exists(diff).await? {
                    continue;
                }
                let file = std::fs::File::open(
                    layer
                        .path
                        .as_ref()
                        .ok_or_else(|| ImageError::invalid("archive", "missing layer"))?,
                )?;
                let what = format!("layer {diff}");
                let d = diff.to_string();
                let expected_blob = layer.digest.clone();
                let conv =
                    self.convert_blocking(HashCheck::new(file, expected_blob), what, move |e| {
                        match e {
                            ConvertError::Source(io) => {
                                ImageError::invalid(format!("layer {d}"), io)
                            }
                            other => convert_error(&d, other),
                        }
                    })
                    .await?;
                if &conv.out.diff_id != diff {
                    return Err(ImageError::DigestMismatch {
                        what: format!(
                            "layer {}",
                            img.layers
                                .iter()
                                .position(|l| std::ptr::eq(l, layer))
                                .unwrap_or(0)
                                + 1
                        ),
                        expected: diff.to_string(),
                        actual: conv.out.diff_id.to_string(),
                    });
                }
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                self.upload_layer(conv, None, &short, &tx).await?;
                drop(tx);
                while rx.recv().await.is_some() {}
            }
            let id = Digest::of(&img.config);
            self.store_blob(&img.config).await?;
            let refs: Vec<Reference> = img
                .tags
                .iter()
                .filter_map(|t| Reference::parse(t).ok())
                .collect();
            let flattened = self.flatten_if_needed(&config.rootfs.diff_ids).await?;
            self.register(
                NewImage {
                    id: &id,
                    config_raw: &img.config,
                    config: &config,
                    diff_ids: &config.rootfs.diff_ids,
                    flattened,
                    manifest: None,
                },
                &refs,
            )
            .await?;
            if refs.is_empty() {
                progress(ProgressEvent::Stream {
                    message: format!("Loaded image ID: {id}"),
                });
                loaded.push(id.to_string());
            }
            for r in refs {
                progress(ProgressEvent::Stream {
                    message: format!("Loaded image: {}", r.familiar()),
                });
                loaded.push(r.familiar());
            }
        }
        drop(guard);
        Ok(loaded)
    }

    /// `docker import`: a filesystem tarball (plain, gzip or zstd) as a one-layer
    /// image with `config` (the `--change` instructions applied by the caller, see
    /// `build::config::apply_change`). Returns the image ID.
    pub async fn import<R>(
        &self,
        input: R,
        reference: Option<&str>,
        message: Option<&str>,
        config: ContainerConfig,
        platform: Option<&str>,
    ) -> Result<Digest>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let target = reference
            .filter(|r| !r.is_empty())
            .map(Reference::parse)
            .transpose()?;
        let platform = match platform.filter(|p| !p.is_empty()) {
            Some(p) => Platform::parse(p)?,
            None => self.inner.cfg.default_platform.clone(),
        };
        let cc = config;
        let (diff, _pins) = self.ingest_layer(input, "imported tarball", &[]).await?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let config = ImageConfigFile {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            created: Some(now.clone()),
            comment: Some(message.unwrap_or("Imported from -").to_string()),
            config: Some(cc),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![diff.clone()],
            },
            history: vec![HistoryEntry {
                created: Some(now),
                created_by: Some(String::new()),
                comment: Some(message.unwrap_or("Imported from -").to_string()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let id = self.register_built(&config, target).await?;
        Ok(id)
    }
}

/// A reader that fails at its end unless the content hashes to `expected` (blobs of an
/// OCI layout are verified; docker-archive layers have no blob digest).
struct HashCheck<R> {
    inner: Option<HashingReader<R>>,
    expected: Option<Digest>,
}

impl<R: Read> HashCheck<R> {
    fn new(r: R, expected: Option<Digest>) -> Self {
        HashCheck {
            inner: Some(HashingReader::new(r)),
            expected,
        }
    }
}

impl<R: Read> Read for HashCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let n = inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let (Some(want), Some(h)) = (self.expected.take(), self.inner.take()) {
                let (got, _, _) = h.finish();
                if got != want {
                    return Err(std::io::Error::other(format!(
                        "blob digest mismatch: expected {want}, got {got}"
                    )));
                }
            }
        }
        Ok(n)
    }
}

/// Members of an archive: names → spooled files, and links → names.
struct Members {
    files: HashMap<String, PathBuf>,
    links: HashMap<String, String>,
}

impl Members {
    fn resolve(&self, name: &str) -> Option<&PathBuf> {
        let mut n = name.trim_start_matches("./").to_string();
        for _ in 0..16 {
            if let Some(p) = self.files.get(&n) {
                return Some(p);
            }
            n = self.links.get(&n)?.clone();
        }
        None
    }
    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let p = self
            .resolve(name)
            .ok_or_else(|| ImageError::invalid("archive", format!("{name} is missing")))?;
        let meta = std::fs::metadata(p)?;
        if meta.len() > 8 << 20 {
            return Err(ImageError::invalid(
                "archive",
                format!("{name} is too large"),
            ));
        }
        Ok(std::fs::read(p)?)
    }
}

fn spool_archive<R: Read>(r: R, dir: &std::path::Path, limits: &Limits) -> Result<Members> {
    let mut tar = TarReader::new(r, limits);
    let mut m = Members {
        files: HashMap::new(),
        links: HashMap::new(),
    };
    let bad = |e: super::tar_safety::TarError| match e {
        super::tar_safety::TarError::Entry { entry, reason } => {
            ImageError::invalid("archive", format!("{entry}: {reason}"))
        }
        super::tar_safety::TarError::Io(io) => ImageError::invalid("archive", io),
    };
    let mut n = 0u64;
    while let Some(e) = tar.next_entry().map_err(bad)? {
        let comps = clean_path(&e.raw_path, limits.max_path).map_err(|r| {
            ImageError::invalid(
                "archive",
                format!("{}: {r}", String::from_utf8_lossy(&e.raw_path)),
            )
        })?;
        let name = comps
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("/");
        match e.kind {
            EntryKind::File => {
                n += 1;
                let p = dir.join(format!("m{n}"));
                let mut f = std::fs::File::create(&p)?;
                std::io::copy(&mut tar.content(), &mut f)?;
                m.files.insert(name, p);
            }
            EntryKind::Symlink | EntryKind::HardLink => {
                let target = String::from_utf8_lossy(&e.link).into_owned();
                // Symlinks are relative to the member's directory, hard links to the root.
                let joined = if e.kind == EntryKind::Symlink && !target.starts_with('/') {
                    let parent = name.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                    format!("{parent}/{target}")
                } else {
                    target.trim_start_matches('/').to_string()
                };
                let mut parts: Vec<&str> = Vec::new();
                for c in joined.split('/') {
                    match c {
                        "" | "." => {}
                        ".." => {
                            parts.pop();
                        }
                        c => parts.push(c),
                    }
                }
                m.links.insert(name, parts.join("/"));
            }
            _ => {}
        }
    }
    Ok(m)
}

struct LoadLayer {
    path: Option<PathBuf>,
    /// The blob digest, when the format names one (OCI layout).
    digest: Option<Digest>,
}

struct LoadImage {
    config: Vec<u8>,
    layers: Vec<LoadLayer>,
    tags: Vec<String>,
}

#[derive(serde::Deserialize)]
struct ClassicEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn plan_load(m: &Members, platform: &Platform) -> Result<Vec<LoadImage>> {
    if m.resolve("manifest.json").is_some() {
        let entries: Vec<ClassicEntry> = serde_json::from_slice(&m.read("manifest.json")?)
            .map_err(|e| ImageError::invalid("archive manifest.json", e))?;
        return entries
            .into_iter()
            .map(|e| {
                Ok(LoadImage {
                    config: m.read(&e.config)?,
                    layers: e
                        .layers
                        .iter()
                        .map(|l| {
                            let path = m.resolve(l).cloned();
                            if path.is_none() {
                                return Err(ImageError::invalid(
                                    "archive",
                                    format!("layer {l} is missing"),
                                ));
                            }
                            // Docker 25+ archives name layers by digest: check it.
                            let digest = l
                                .strip_prefix("blobs/sha256/")
                                .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok());
                            Ok(LoadLayer { path, digest })
                        })
                        .collect::<Result<_>>()?,
                    tags: e.repo_tags.unwrap_or_default(),
                })
            })
            .collect();
    }
    if m.resolve("index.json").is_some() {
        let index = match Manifest::parse(&m.read("index.json")?, Some(media::OCI_INDEX))? {
            Manifest::Index(i) => i,
            Manifest::Image(_) => {
                return Err(ImageError::invalid("archive", "index.json is not an index"))
            }
        };
        let mut out = Vec::new();
        for d in &index.manifests {
            let blob = |dg: &Digest| -> Result<Vec<u8>> {
                let b = m.read(&blob_name(dg))?;
                dg.verify(&format!("archive blob {dg}"), &b)?;
                Ok(b)
            };
            let mut bytes = blob(&d.digest)?;
            let mut manifest = Manifest::parse(&bytes, Some(&d.media_type))?;
            if let Manifest::Index(ix) = &manifest {
                let chosen = ix.select(platform)?.digest.clone();
                bytes = blob(&chosen)?;
                manifest = Manifest::parse(&bytes, None)?;
            }
            let Manifest::Image(im) = manifest else {
                return Err(ImageError::invalid("archive", "nested index"));
            };
            im.check_media_types()?;
            let ann = d.annotations.clone().unwrap_or_default();
            let tags: Vec<String> = ann
                .get("io.containerd.image.name")
                .cloned()
                .or_else(|| {
                    ann.get("org.opencontainers.image.ref.name")
                        .filter(|n| n.contains(':') || n.contains('/'))
                        .cloned()
                })
                .into_iter()
                .collect();
            out.push(LoadImage {
                config: blob(&im.config.digest)?,
                layers: im
                    .layers
                    .iter()
                    .map(|l| LoadLayer {
                        path: m.resolve(&blob_name(&l.digest)).cloned(),
                        digest: Some(l.digest.clone()),
                    })
                    .collect(),
                tags,
            });
        }
        return Ok(out);
    }
    Err(ImageError::invalid(
        "archive",
        "neither manifest.json nor index.json found: not a docker save or OCI layout tarball",
    ))
}
