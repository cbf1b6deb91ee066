//! [`ImageStore`]: the API the Docker image routes and the container-create path call.
//!
//! A pull resolves the reference (platform choice for lists/indexes), refuses what is
//! not a container image, then for each layer, concurrently: download → verify →
//! convert to EROFS → upload the layer disk to `tmp/<uuid>/` → move it whole to
//! `layers/<diff-id>/`. Layers are identified by diff id, so identical layers are stored
//! once; a per-layer lock makes concurrent pulls of one layer download it once. Only
//! when every layer is in place are the manifest and config stored and the index
//! updated, so an interrupted pull leaves no image and no half layer; layers a failed
//! pull added that no image uses are removed again.

use super::auth::RegistryAuth;
use super::convert::{convert_layer, ConvertError, LayerOutput};
use super::datastore::{vmdk_descriptor, Datastore, DatastorePath};
use super::digest::Digest;
use super::error::{ImageError, Result};
use super::index::{BlobRef, ImageRecord, Index, LayerRecord};
use super::manifest::{ContainerConfig, Descriptor, ImageConfigFile};
use super::platform::Platform;
use super::progress::ProgressEvent;
use super::reference::Reference;
use super::registry::{is_digest_error, Registry};
use super::tar_safety::Limits;
use super::types::*;
use docker_api::models::{
    DriverData, ImageInspectMetadata, ImageInspectRootFs, OciDescriptor, OciPlatform,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};
use vsphere_client::Client;

/// Where and how the store keeps images.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Datacenter name (None: the only one).
    pub datacenter: Option<String>,
    /// Datastore name (None: the datacenter's only one).
    pub datastore: Option<String>,
    /// Directory on the datastore, e.g. `<vch-name>/images`.
    pub directory: String,
    /// `host:port` registries spoken to over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Platform pulled when none is asked for.
    pub default_platform: Platform,
    /// Local scratch space for layer images being built (one file per layer in flight).
    /// Owned by this store: what a crashed run left in it is removed at open, so two
    /// stores must not share one (the default is per process).
    pub spool_dir: PathBuf,
    pub limits: Limits,
    pub max_concurrent_downloads: usize,
    /// Tries per layer download when the connection breaks.
    pub download_attempts: u32,
    /// Images with more layers than this get one flattened disk for their containers
    /// (a VM has 4 SCSI controllers of 15 disks, shared with scratch and volumes).
    pub max_layers: usize,
}

impl StoreConfig {
    pub fn new(directory: impl Into<String>) -> StoreConfig {
        StoreConfig {
            datacenter: None,
            datastore: None,
            directory: directory.into(),
            insecure_registries: Vec::new(),
            default_platform: Platform::linux_amd64(),
            spool_dir: std::env::temp_dir().join(format!("vch-image-spool-{}", std::process::id())),
            limits: Limits::default(),
            max_concurrent_downloads: 3,
            download_attempts: 3,
            max_layers: 40,
        }
    }
}

const INDEX_FILE: &str = "repositories.json";
pub(crate) const FILESYSTEM: &str = "erofs";

pub(crate) fn layer_dir(diff_id: &Digest) -> String {
    format!("layers/{}", diff_id.hex())
}
fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

pub(crate) struct ConfigBlob {
    pub raw: Vec<u8>,
    pub parsed: ImageConfigFile,
}

pub(crate) struct Inner {
    pub cfg: StoreConfig,
    pub ds: Datastore,
    pub index: parking_lot::RwLock<Index>,
    /// Serialises index writes (read-modify-write of repositories.json).
    writer: tokio::sync::Mutex<()>,
    layer_locks: parking_lot::Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
    /// Layers in use by pulls/loads in progress: garbage collection leaves them alone.
    pins: parking_lot::Mutex<HashMap<Digest, usize>>,
    configs: parking_lot::Mutex<HashMap<Digest, Arc<ConfigBlob>>>,
    downloads: tokio::sync::Semaphore,
}

/// The image store of one VCH. Cheap to clone.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

/// Unpins layers when a pull ends, however it ends.
pub(crate) struct Pins {
    inner: Arc<Inner>,
    layers: Vec<Digest>,
}

impl Drop for Pins {
    fn drop(&mut self) {
        let mut p = self.inner.pins.lock();
        for l in &self.layers {
            if let Some(n) = p.get_mut(l) {
                *n -= 1;
                if *n == 0 {
                    p.remove(l);
                }
            }
        }
    }
}

/// A local scratch file, removed when dropped.
pub(crate) struct Spool {
    pub path: PathBuf,
}

impl Spool {
    pub fn create(dir: &Path) -> std::io::Result<(Spool, std::fs::File)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.part", uuid::Uuid::new_v4()));
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((Spool { path }, f))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes what a run killed mid-pull or mid-load left in the spool: `*.part` layer
/// files ([`Spool`]) and `load-*` directories (`docker load`). Drop guards clean up
/// every failure the process lives through; this covers the ones it does not (kill -9,
/// power loss). Returns how many entries were removed.
pub(crate) fn sweep_spool(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let gone = if name.ends_with(".part") {
            std::fs::remove_file(&path)
        } else if name.starts_with("load-") && entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            continue;
        };
        match gone {
            Ok(()) => removed += 1,
            Err(e) => warn!(path = %path.display(), error = %e, "cannot remove stale spool entry"),
        }
    }
    Ok(removed)
}

/// An image whose layers are stored, to be recorded by [`ImageStore::register`].
pub(crate) struct NewImage<'a> {
    pub id: &'a Digest,
    pub config_raw: &'a [u8],
    pub config: &'a ImageConfigFile,
    pub diff_ids: &'a [Digest],
    pub flattened: Option<Digest>,
    pub manifest: Option<BlobRef>,
}

/// A converted layer waiting to be uploaded.
pub(crate) struct Converted {
    pub out: LayerOutput,
    pub spool: Spool,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl ImageStore {
    /// Opens (creating if needed) the store under `config.directory` and loads its index,
    /// so images pulled by an earlier run or another instance are all there. Clears
    /// `tmp/` (uploads a crashed run left behind): one VCH owns its directory.
    pub async fn open(client: Client, config: StoreConfig) -> Result<ImageStore> {
        let ds = Datastore::new(
            client,
            config.datacenter.as_deref(),
            config.datastore.as_deref(),
            &config.directory,
        )
        .await?;
        ds.mkdir("blobs/sha256").await?;
        ds.mkdir("layers").await?;
        ds.delete("tmp").await?;
        ds.mkdir("tmp").await?;
        let index = match ds.get_bytes(INDEX_FILE).await? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| ImageError::invalid("image index repositories.json", e))?,
            None => Index::default(),
        };
        std::fs::create_dir_all(&config.spool_dir)?;
        // Layer contents of private images: this user only (umask aside).
        std::fs::set_permissions(
            &config.spool_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let swept = sweep_spool(&config.spool_dir)?;
        if swept > 0 {
            info!(swept, dir = %config.spool_dir.display(), "removed partial files of an interrupted run");
        }
        info!(
            images = index.images.len(),
            layers = index.layers.len(),
            dir = %ds.path(""),
            "image store opened"
        );
        let downloads = tokio::sync::Semaphore::new(config.max_concurrent_downloads.max(1));
        Ok(ImageStore {
            inner: Arc::new(Inner {
                cfg: config,
                ds,
                index: parking_lot::RwLock::new(index),
                writer: tokio::sync::Mutex::new(()),
                layer_locks: Default::default(),
                pins: Default::default(),
                configs: Default::default(),
                downloads,
            }),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// A copy of the index (for tools and tests).
    pub fn index(&self) -> Index {
        self.inner.index.read().clone()
    }

    // ---- pull -------------------------------------------------------------------------

    /// `docker pull`: pulls `reference` for `platform` (default: the store's) with
    /// optional credentials, reporting progress as Docker's messages.
    pub async fn pull<F>(
        &self,
        reference: &str,
        platform: Option<&str>,
        auth: Option<&RegistryAuth>,
        progress: F,
    ) -> Result<PullOutcome>
    where
        F: FnMut(ProgressEvent) + Send,
    {
        let r = Reference::parse(reference)?;
        let platform = match platform.filter(|p| !p.is_empty()) {
            Some(p) => Platform::parse(p)?,
            None => self.inner.cfg.default_platform.clone(),
        };
        let span = tracing::info_span!("pull", reference = %r, %platform);
        tracing::Instrument::instrument(self.pull_resolved(r, platform, auth, progress), span).await
    }

    async fn pull_resolved<F>(
        &self,
        r: Reference,
        platform: Platform,
        auth: Option<&RegistryAuth>,
        mut progress: F,
    ) -> Result<PullOutcome>
    where
        F: FnMut(ProgressEvent) + Send,
    {
        let reg = Registry::connect(&r, auth, &self.inner.cfg.insecure_registries).await?;
        // Reported once the manifest is there, as dockerd does: a missing image or a
        // refused login fails the request before any progress is sent (404/401).
        let resolved = reg.resolve(&r, &platform).await?;
        progress(ProgressEvent::PullingFrom {
            repository: r.path().to_string(),
            id: r
                .tag()
                .map(str::to_string)
                .or_else(|| r.digest().map(|d| d.to_string()))
                .unwrap_or_default(),
        });
        let manifest = &resolved.manifest;
        manifest.check_media_types()?;
        let config_raw = reg.blob_bytes(&r, &manifest.config).await?;
        let config = ImageConfigFile::parse(&config_raw)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::invalid(
                "image",
                format!(
                    "the config lists {} layers, the manifest {}",
                    config.rootfs.diff_ids.len(),
                    manifest.layers.len()
                ),
            ));
        }
        let id = manifest.config.digest.clone();
        let layers: Vec<(Descriptor, Digest)> = manifest
            .layers
            .iter()
            .cloned()
            .zip(config.rootfs.diff_ids.iter().cloned())
            .collect();
        let pins = self.pin(&config.rootfs.diff_ids);
        let created = Arc::new(parking_lot::Mutex::new(Vec::new()));
        for (d, _) in &layers {
            progress(ProgressEvent::PullingFsLayer {
                layer: d.digest.short().to_string(),
            });
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let work = futures_util::future::try_join_all(
            layers
                .iter()
                .map(|(d, diff)| self.fetch_layer(&reg, &r, d, diff, tx.clone(), created.clone())),
        );
        drop(tx);
        tokio::pin!(work);
        let result = loop {
            tokio::select! {
                Some(ev) = rx.recv() => progress(ev),
                res = &mut work => break res,
            }
        };
        while let Ok(ev) = rx.try_recv() {
            progress(ev);
        }
        let registered = match result {
            Ok(_) => {
                self.register_pulled(&r, &resolved, &config_raw, &config, &layers)
                    .await
            }
            Err(e) => Err(e),
        };
        let new = match registered {
            Ok(new) => new,
            Err(e) => {
                drop(pins);
                let mine = created.lock().clone();
                self.collect_layers(&mine, &NoContainers).await;
                warn!(reference = %r, error = %e, "pull failed");
                return Err(e);
            }
        };
        drop(pins);
        progress(ProgressEvent::Digest {
            digest: resolved.top_digest.to_string(),
        });
        let shown = r.familiar();
        progress(ProgressEvent::Status {
            message: if new {
                format!("Status: Downloaded newer image for {shown}")
            } else {
                format!("Status: Image is up to date for {shown}")
            },
        });
        info!(reference = %r, id = %id, new, "pulled");
        Ok(PullOutcome {
            id,
            reference: r.to_string(),
            digest: resolved.top_digest.clone(),
            downloaded: new,
        })
    }

    pub(crate) fn pin(&self, layers: &[Digest]) -> Pins {
        let mut p = self.inner.pins.lock();
        for l in layers {
            *p.entry(l.clone()).or_default() += 1;
        }
        Pins {
            inner: self.inner.clone(),
            layers: layers.to_vec(),
        }
    }

    fn layer_lock(&self, diff_id: &Digest) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .layer_locks
            .lock()
            .entry(diff_id.clone())
            .or_default()
            .clone()
    }

    /// Whether the layer disk is stored: the index says so, or a completion marker is on
    /// the datastore (a pull whose index write was lost).
    pub(crate) async fn layer_exists(&self, diff_id: &Digest) -> Result<bool> {
        if self.inner.index.read().layers.contains_key(diff_id) {
            return Ok(true);
        }
        let marker = format!("{}/layer.json", layer_dir(diff_id));
        match self.inner.ds.get_bytes(&marker).await? {
            Some(b) => match serde_json::from_slice::<LayerRecord>(&b) {
                Ok(rec) if &rec.diff_id == diff_id => {
                    self.inner.index.write().layers.insert(diff_id.clone(), rec);
                    Ok(true)
                }
                _ => Ok(false),
            },
            None => Ok(false),
        }
    }

    async fn fetch_layer(
        &self,
        reg: &Registry,
        r: &Reference,
        desc: &Descriptor,
        diff_id: &Digest,
        tx: UnboundedSender<ProgressEvent>,
        created: Arc<parking_lot::Mutex<Vec<Digest>>>,
    ) -> Result<()> {
        let short = desc.digest.short().to_string();
        let lock = self.layer_lock(diff_id);
        let _held = lock.lock().await;
        if self.layer_exists(diff_id).await? {
            let _ = tx.send(ProgressEvent::AlreadyExists { layer: short });
            return Ok(());
        }
        let _slot = match self.inner.downloads.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                let _ = tx.send(ProgressEvent::Waiting {
                    layer: short.clone(),
                });
                self.inner
                    .downloads
                    .acquire()
                    .await
                    .map_err(|e| ImageError::Internal(e.to_string()))?
            }
        };
        let attempts = self.inner.cfg.download_attempts.max(1);
        let mut attempt = 1;
        let conv = loop {
            match self.download_convert(reg, r, desc, &tx).await {
                Ok(c) => break c,
                Err(e) if e.is_transient() && attempt < attempts => {
                    warn!(layer = %desc.digest, attempt, error = %e, "layer download failed, retrying");
                    let _ = tx.send(ProgressEvent::Retrying {
                        layer: short.clone(),
                        attempt,
                        error: e.to_string(),
                    });
                    tokio::time::sleep(std::time::Duration::from_secs(attempt as u64)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let _ = tx.send(ProgressEvent::VerifyingChecksum {
            layer: short.clone(),
        });
        if &conv.out.diff_id != diff_id {
            return Err(ImageError::DigestMismatch {
                what: format!("uncompressed content (diff id) of layer {}", desc.digest),
                expected: diff_id.to_string(),
                actual: conv.out.diff_id.to_string(),
            });
        }
        let _ = tx.send(ProgressEvent::DownloadComplete {
            layer: short.clone(),
        });
        let blob = BlobRef {
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
            size: conv.out.blob_size,
        };
        self.upload_layer(conv, Some(blob), &short, &tx).await?;
        created.lock().push(diff_id.clone());
        let _ = tx.send(ProgressEvent::PullComplete { layer: short });
        Ok(())
    }

    async fn download_convert(
        &self,
        reg: &Registry,
        r: &Reference,
        desc: &Descriptor,
        tx: &UnboundedSender<ProgressEvent>,
    ) -> Result<Converted> {
        let short = desc.digest.short().to_string();
        let stream = reg.blob_stream(r, desc).await?;
        let total = desc.size.max(0) as u64;
        let (mut current, mut last) = (0u64, 0u64);
        let ptx = tx.clone();
        let layer = short.clone();
        let stream = stream.inspect(move |c| {
            if let Ok(b) = c {
                current += b.len() as u64;
                if current - last >= 1 << 20 || current == total {
                    last = current;
                    let _ = ptx.send(ProgressEvent::Downloading {
                        layer: layer.clone(),
                        current,
                        total,
                    });
                }
            }
        });
        let reader = ChannelReader::pump(stream);
        let what = format!("layer {}", desc.digest);
        let host = reg.host().to_string();
        let expected = desc.digest.to_string();
        self.convert_blocking(reader, what, move |e| match e {
            ConvertError::Source(io) => match is_digest_error(&io) {
                Some(detail) => ImageError::DigestMismatch {
                    what: format!("layer {expected}"),
                    expected: expected.clone(),
                    actual: detail,
                },
                None => ImageError::Registry {
                    registry: host.clone(),
                    detail: format!("downloading layer {expected}: {io}"),
                },
            },
            other => convert_error(&expected, other),
        })
        .await
    }

    /// Runs the converter on a blocking thread over `src`.
    pub(crate) async fn convert_blocking<R>(
        &self,
        src: R,
        what: String,
        map_err: impl FnOnce(ConvertError) -> ImageError,
    ) -> Result<Converted>
    where
        R: std::io::Read + Send + 'static,
    {
        let (spool, file) = Spool::create(&self.inner.cfg.spool_dir)?;
        let limits = self.inner.cfg.limits.clone();
        let started = std::time::Instant::now();
        let res = tokio::task::spawn_blocking(move || convert_layer(src, file, &limits))
            .await
            .map_err(|e| ImageError::Internal(format!("layer conversion panicked: {e}")))?;
        match res {
            Ok((out, _file)) => {
                debug!(%what, diff_id = %out.diff_id, tar = out.tar_size, disk = out.image_size,
                    ms = started.elapsed().as_millis() as u64, "layer converted");
                Ok(Converted { out, spool })
            }
            Err(e) => Err(map_err(e)),
        }
    }

    /// Uploads a converted layer into `tmp/<uuid>/` and moves the directory to
    /// `layers/<diff-id>/`: a layer directory is either complete or absent.
    pub(crate) async fn upload_layer(
        &self,
        conv: Converted,
        blob: Option<BlobRef>,
        short: &str,
        tx: &UnboundedSender<ProgressEvent>,
    ) -> Result<LayerRecord> {
        let ds = &self.inner.ds;
        let out = &conv.out;
        let tmp = format!("tmp/{}", uuid::Uuid::new_v4());
        ds.mkdir(&tmp).await?;
        let upload_started = std::time::Instant::now();
        let result: Result<LayerRecord> = async {
            let file = tokio::fs::File::open(&conv.spool.path).await?;
            let total = out.image_size;
            let (mut current, mut last) = (0u64, 0u64);
            let ptx = tx.clone();
            let layer = short.to_string();
            let stream =
                tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).inspect(move |c| {
                    if let Ok(b) = c {
                        current += b.len() as u64;
                        if current - last >= 4 << 20 || current == total {
                            last = current;
                            let _ = ptx.send(ProgressEvent::Extracting {
                                layer: layer.clone(),
                                current,
                                total,
                            });
                        }
                    }
                });
            // The descriptor and the tar-split go up while the disk does; the marker last.
            let uuid = uuid::Uuid::new_v4().to_string();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&out.tar_split)?;
            let split = gz.finish()?;
            let (p_flat, p_desc, p_split) = (
                format!("{tmp}/layer-flat.vmdk"),
                format!("{tmp}/layer.vmdk"),
                format!("{tmp}/layer.tarsplit.gz"),
            );
            let (flat, desc, split) = tokio::join!(
                ds.put_stream(&p_flat, total, stream),
                ds.put_bytes(&p_desc, vmdk_descriptor("layer-flat.vmdk", total, &uuid)),
                ds.put_bytes(&p_split, split),
            );
            flat?;
            desc?;
            split?;
            let rec = LayerRecord {
                diff_id: out.diff_id.clone(),
                tar_size: out.tar_size,
                disk_size: out.image_size,
                blob,
                filesystem: FILESYSTEM.to_string(),
            };
            let marker =
                serde_json::to_vec_pretty(&rec).map_err(|e| ImageError::Internal(e.to_string()))?;
            ds.put_bytes(&format!("{tmp}/layer.json"), marker).await?;
            debug!(diff_id = %out.diff_id, bytes = total, ms = upload_started.elapsed().as_millis() as u64, "layer disk uploaded");
            if !ds.mv(&tmp, &layer_dir(&out.diff_id), false).await? {
                // Someone stored the same layer meanwhile (another store on the
                // datastore); theirs is as good as ours.
                ds.delete(&tmp).await?;
            }
            Ok(rec)
        }
        .await;
        match result {
            Ok(rec) => {
                self.inner
                    .index
                    .write()
                    .layers
                    .insert(rec.diff_id.clone(), rec.clone());
                Ok(rec)
            }
            Err(e) => {
                let _ = ds.delete(&tmp).await;
                Err(e)
            }
        }
    }

    pub(crate) async fn store_blob(&self, data: &[u8]) -> Result<Digest> {
        let d = Digest::of(data);
        self.inner
            .ds
            .put_bytes(&blob_path(&d), data.to_vec())
            .await?;
        Ok(d)
    }

    async fn register_pulled(
        &self,
        r: &Reference,
        resolved: &super::registry::Resolved,
        config_raw: &[u8],
        config: &ImageConfigFile,
        layers: &[(Descriptor, Digest)],
    ) -> Result<bool> {
        let index_bytes = resolved
            .index
            .as_ref()
            .map(|(b, _)| b.as_slice())
            .unwrap_or(&[]);
        let (c, m, i) = tokio::join!(
            self.store_blob(config_raw),
            self.store_blob(&resolved.manifest_bytes),
            async {
                if index_bytes.is_empty() {
                    Ok(Digest::of(b""))
                } else {
                    self.store_blob(index_bytes).await
                }
            }
        );
        c?;
        m?;
        i?;
        let id = resolved.manifest.config.digest.clone();
        let manifest = Some(BlobRef {
            digest: resolved.manifest_digest.clone(),
            media_type: resolved
                .manifest
                .media_type
                .clone()
                .unwrap_or_else(|| super::manifest::media::OCI_MANIFEST.to_string()),
            size: resolved.manifest_bytes.len() as u64,
        });
        let mut refs = vec![r.repository().with_digest(resolved.top_digest.clone())];
        if r.digest().is_none() {
            refs.push(r.clone());
        }
        let diff_ids: Vec<Digest> = layers.iter().map(|(_, d)| d.clone()).collect();
        let flattened = self.flatten_if_needed(&diff_ids).await?;
        self.register(
            NewImage {
                id: &id,
                config_raw,
                config,
                diff_ids: &diff_ids,
                flattened,
                manifest,
            },
            &refs,
        )
        .await
    }

    /// Records an image whose layers are stored, and points `refs` at it. Returns
    /// whether anything changed (a new image or a moved reference).
    pub(crate) async fn register(&self, img: NewImage<'_>, refs: &[Reference]) -> Result<bool> {
        let NewImage {
            id,
            config_raw,
            config,
            diff_ids,
            flattened,
            manifest,
        } = img;
        self.inner.configs.lock().insert(
            id.clone(),
            Arc::new(ConfigBlob {
                raw: config_raw.to_vec(),
                parsed: config.clone(),
            }),
        );
        self.update_index(|idx| {
            let mut changed = false;
            let size = diff_ids
                .iter()
                .map(|d| idx.layers.get(d).map(|l| l.tar_size).unwrap_or(0))
                .sum();
            if !idx.images.contains_key(id) {
                changed = true;
                idx.images.insert(
                    id.clone(),
                    ImageRecord {
                        layers: diff_ids.to_vec(),
                        size,
                        created: config.created.clone(),
                        labels: config.labels(),
                        os: config.os.clone(),
                        architecture: config.architecture.clone(),
                        variant: config.variant.clone(),
                        manifest: manifest.clone(),
                        added: now_rfc3339(),
                        last_tag_time: None,
                        flattened: flattened.clone(),
                        parent: None,
                        build_key: None,
                    },
                );
            }
            for r in refs {
                if idx.get_ref(r) != Some(id) {
                    changed = true;
                    idx.set_ref(r, id);
                    if let Some(rec) = idx.images.get_mut(id) {
                        rec.last_tag_time = Some(now_rfc3339());
                    }
                }
            }
            Ok(changed)
        })
        .await
    }

    /// Applies `f` to a copy of the index, persists it, then publishes it: a failed
    /// write leaves the in-memory index as it was.
    pub(crate) async fn update_index<T>(
        &self,
        f: impl FnOnce(&mut Index) -> Result<T>,
    ) -> Result<T> {
        let _w = self.inner.writer.lock().await;
        let mut idx = self.inner.index.read().clone();
        let out = f(&mut idx)?;
        idx.version = 1;
        let bytes =
            serde_json::to_vec_pretty(&idx).map_err(|e| ImageError::Internal(e.to_string()))?;
        let tmp = format!("tmp/{INDEX_FILE}.{}", uuid::Uuid::new_v4());
        self.inner.ds.put_bytes(&tmp, bytes).await?;
        self.inner.ds.mv(&tmp, INDEX_FILE, true).await?;
        // Layers recorded by pulls since we copied the index stay recorded.
        let mut live = self.inner.index.write();
        for (k, v) in &live.layers {
            if !idx.layers.contains_key(k) {
                idx.layers.insert(k.clone(), v.clone());
            }
        }
        *live = idx;
        Ok(out)
    }

    /// Deletes stored layers that no image references, no pull pins and no container
    /// uses. Failures are logged: a leftover layer only costs space.
    pub(crate) async fn collect_layers(
        &self,
        candidates: &[Digest],
        usage: &dyn ImageUsage,
    ) -> Vec<Digest> {
        let mut removed = Vec::new();
        for l in candidates {
            let lock = self.layer_lock(l);
            let _held = lock.lock().await;
            let busy = self.inner.pins.lock().contains_key(l)
                || self.inner.index.read().layer_used(l, None)
                || usage.layer_in_use(&self.layer_disk(l));
            if busy {
                continue;
            }
            match self.inner.ds.delete(&layer_dir(l)).await {
                Ok(()) => {
                    self.inner.index.write().layers.remove(l);
                    removed.push(l.clone());
                }
                Err(e) => warn!(layer = %l, error = %e, "could not delete layer disk"),
            }
        }
        if !removed.is_empty() {
            // Persist the smaller layer table (best effort).
            if let Err(e) = self.update_index(|_| Ok(())).await {
                warn!(error = %e, "could not write the image index");
            }
        }
        removed
    }

    // ---- queries ----------------------------------------------------------------------

    fn layer_disk(&self, diff_id: &Digest) -> DatastorePath {
        self.inner
            .ds
            .path(&format!("{}/layer.vmdk", layer_dir(diff_id)))
    }

    /// The image ID a name (reference, full or short ID) resolves to.
    pub fn resolve(&self, name: &str) -> Result<Digest> {
        self.inner
            .index
            .read()
            .lookup(name)
            .ok_or_else(|| ImageError::NotFound(name.to_string()))
    }

    /// The layer disks of an image, lowest layer first: what container create attaches
    /// (read-only, shared) under the container's scratch disk.
    pub fn layer_disks(&self, name: &str) -> Result<Vec<DatastorePath>> {
        let id = self.resolve(name)?;
        let idx = self.inner.index.read();
        let rec = idx
            .images
            .get(&id)
            .ok_or_else(|| ImageError::NotFound(name.to_string()))?;
        if let Some(f) = &rec.flattened {
            return Ok(vec![self.layer_disk(f)]);
        }
        Ok(rec.layers.iter().map(|l| self.layer_disk(l)).collect())
    }

    /// For an image with more layers than a VM can attach, builds (once) one disk with
    /// all of them applied, from the stored layer disks and tar-splits.
    pub(crate) async fn flatten_if_needed(&self, diff_ids: &[Digest]) -> Result<Option<Digest>> {
        if diff_ids.len() <= self.inner.cfg.max_layers {
            return Ok(None);
        }
        let mut chain = String::from("vch-flatten-v1");
        for d in diff_ids {
            chain.push('\n');
            chain.push_str(d.as_str());
        }
        let flat_id = Digest::of(chain.as_bytes());
        let lock = self.layer_lock(&flat_id);
        let _held = lock.lock().await;
        if self.layer_exists(&flat_id).await? {
            return Ok(Some(flat_id));
        }
        info!(
            layers = diff_ids.len(),
            max = self.inner.cfg.max_layers,
            "flattening image layers into one disk"
        );
        let mut spools = Vec::new();
        let mut readers: Vec<Box<dyn std::io::Read + Send>> = Vec::new();
        let mut tar_size = 0;
        for d in diff_ids {
            let (spool, file) = Spool::create(&self.inner.cfg.spool_dir)?;
            let mut f = tokio::fs::File::from_std(file.try_clone()?);
            let mut s = Box::pin(
                self.inner
                    .ds
                    .get_stream(&format!("{}/layer-flat.vmdk", layer_dir(d)))
                    .await?,
            );
            while let Some(chunk) = s.next().await {
                tokio::io::AsyncWriteExt::write_all(&mut f, &chunk?).await?;
            }
            tokio::io::AsyncWriteExt::flush(&mut f).await?;
            let gz = self
                .inner
                .ds
                .get_bytes(&format!("{}/layer.tarsplit.gz", layer_dir(d)))
                .await?
                .ok_or_else(|| {
                    ImageError::invalid("image store", format!("layer {d} has no tar-split"))
                })?;
            let mut split = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut split)?;
            tar_size += self
                .inner
                .index
                .read()
                .layers
                .get(d)
                .map(|l| l.tar_size)
                .unwrap_or(0);
            readers.push(Box::new(super::tar_safety::SplitReader::new(split, file)));
            spools.push(spool);
        }
        let (spool, file) = Spool::create(&self.inner.cfg.spool_dir)?;
        let limits = self.inner.cfg.limits.clone();
        let (bytes, _) = tokio::task::spawn_blocking(move || {
            super::convert::flatten_layers(readers, file, &limits)
        })
        .await
        .map_err(|e| ImageError::Internal(format!("flattening panicked: {e}")))?
        .map_err(|e| convert_error("flattened image", e))?;
        drop(spools);
        let out = LayerOutput {
            diff_id: flat_id.clone(),
            tar_size,
            blob_size: 0,
            image_size: bytes,
            entries: 0,
            compression: super::convert::Compression::None,
            tar_split: Vec::new(),
        };
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        self.upload_layer(Converted { out, spool }, None, flat_id.short(), &tx)
            .await?;
        Ok(Some(flat_id))
    }

    /// The image config (container defaults, history, rootfs) and its raw bytes.
    pub async fn image_config(&self, name: &str) -> Result<(Digest, ImageConfigFile)> {
        let id = self.resolve(name)?;
        let c = self.config_blob(&id).await?;
        Ok((id, c.parsed.clone()))
    }

    pub(crate) async fn config_blob(&self, id: &Digest) -> Result<Arc<ConfigBlob>> {
        if let Some(c) = self.inner.configs.lock().get(id) {
            return Ok(c.clone());
        }
        let raw = self
            .inner
            .ds
            .get_bytes(&blob_path(id))
            .await?
            .ok_or_else(|| ImageError::invalid("image store", format!("config {id} is missing")))?;
        id.verify("image config on the datastore", &raw)?;
        let parsed = ImageConfigFile::parse(&raw)?;
        let c = Arc::new(ConfigBlob { raw, parsed });
        self.inner.configs.lock().insert(id.clone(), c.clone());
        Ok(c)
    }

    /// `docker images`.
    pub fn list(&self, filters: &ListFilters) -> Result<Vec<ImageSummary>> {
        let idx = self.inner.index.read();
        let created_of = |id: &Digest| -> i64 {
            idx.images
                .get(id)
                .and_then(|r| r.created.as_deref())
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .map(|t| t.timestamp())
                .unwrap_or(0)
        };
        let bound = |name: &Option<String>| -> Result<Option<i64>> {
            match name {
                None => Ok(None),
                Some(n) => {
                    let id = idx
                        .lookup(n)
                        .ok_or_else(|| ImageError::NotFound(n.clone()))?;
                    Ok(Some(created_of(&id)))
                }
            }
        };
        let before = bound(&filters.before)?;
        let since = bound(&filters.since)?;
        let mut out = Vec::new();
        for (id, rec) in &idx.images {
            let tags = idx.repo_tags(id);
            let created = created_of(id);
            // A build's intermediate images, as `docker images` hides them without -a.
            if !filters.all && tags.is_empty() && idx.has_children(id) {
                continue;
            }
            if let Some(d) = filters.dangling {
                if d != tags.is_empty() {
                    continue;
                }
            }
            if !filters.reference.is_empty() {
                let names: Vec<String> = idx
                    .references_to(id)
                    .iter()
                    .flat_map(|r| [r.familiar(), r.familiar_name()])
                    .collect();
                if !filters
                    .reference
                    .iter()
                    .any(|p| names.iter().any(|n| glob(p, n)))
                {
                    continue;
                }
            }
            if !labels_match(&rec.labels, &filters.label) {
                continue;
            }
            if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
                continue;
            }
            out.push(ImageSummary {
                id: id.to_string(),
                parent_id: rec
                    .parent
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                repo_tags: tags,
                repo_digests: idx.repo_digests(id),
                created,
                size: rec.size as i64,
                shared_size: -1,
                labels: rec.labels.clone().into_iter().collect(),
                containers: -1,
                ..Default::default()
            });
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// `docker login`: whether the registry accepts `creds` (for its `serveraddress`).
    pub async fn login(&self, creds: &RegistryAuth) -> Result<()> {
        super::registry::login(
            &creds.serveraddress,
            creds,
            &self.inner.cfg.insecure_registries,
        )
        .await
    }

    /// `docker image inspect`.
    pub async fn inspect(&self, name: &str) -> Result<ImageInspect> {
        let id = self.resolve(name)?;
        let cfg = self.config_blob(&id).await?;
        let c = &cfg.parsed;
        let idx = self.inner.index.read();
        let rec = idx
            .images
            .get(&id)
            .ok_or_else(|| ImageError::NotFound(name.to_string()))?;
        let disks: Vec<DatastorePath> = rec.layers.iter().map(|l| self.layer_disk(l)).collect();
        let mut data = HashMap::new();
        data.insert(
            "LayerDisks".to_string(),
            disks
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(":"),
        );
        data.insert("Filesystem".to_string(), FILESYSTEM.to_string());
        let config = c
            .config
            .as_ref()
            .map(ContainerConfig::to_docker)
            .transpose()?;
        Ok(ImageInspect {
            id: Some(id.to_string()),
            repo_tags: Some(idx.repo_tags(&id)),
            repo_digests: Some(idx.repo_digests(&id)),
            parent: Some(
                rec.parent
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            ),
            comment: Some(c.comment.clone().unwrap_or_default()),
            created: c.created.clone(),
            docker_version: Some(c.docker_version.clone().unwrap_or_default()),
            author: Some(c.author.clone().unwrap_or_default()),
            config,
            architecture: Some(c.architecture.clone()),
            variant: c.variant.clone(),
            os: Some(c.os.clone()),
            os_version: c.os_version.clone(),
            size: Some(rec.size as i64),
            graph_driver: Some(DriverData {
                name: "vsphere-layer-disks".to_string(),
                data,
            }),
            root_fs: Some(ImageInspectRootFs {
                typ: "layers".to_string(),
                layers: Some(rec.layers.iter().map(|l| l.to_string()).collect()),
            }),
            metadata: Some(ImageInspectMetadata {
                last_tag_time: rec.last_tag_time.clone(),
            }),
            ..Default::default()
        })
    }

    /// `docker history`, newest first.
    pub async fn history(&self, name: &str) -> Result<Vec<HistoryResponseItem>> {
        let id = self.resolve(name)?;
        let cfg = self.config_blob(&id).await?;
        let (tags, sizes) = {
            let idx = self.inner.index.read();
            let rec = idx
                .images
                .get(&id)
                .ok_or_else(|| ImageError::NotFound(name.to_string()))?;
            let sizes: Vec<u64> = rec
                .layers
                .iter()
                .map(|l| idx.layers.get(l).map(|x| x.tar_size).unwrap_or(0))
                .collect();
            (idx.repo_tags(&id), sizes)
        };
        let mut layer = sizes.into_iter();
        let mut items: Vec<HistoryResponseItem> = cfg
            .parsed
            .history
            .iter()
            .map(|h| HistoryResponseItem {
                id: "<missing>".to_string(),
                created: h
                    .created
                    .as_deref()
                    .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                    .map(|t| t.timestamp())
                    .unwrap_or(0),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: Vec::new(),
                size: if h.empty_layer {
                    0
                } else {
                    layer.next().unwrap_or(0) as i64
                },
                comment: h.comment.clone().unwrap_or_default(),
            })
            .collect();
        items.reverse();
        if let Some(top) = items.first_mut() {
            top.id = id.to_string();
            top.tags = tags;
        } else {
            items.push(HistoryResponseItem {
                id: id.to_string(),
                created: cfg
                    .parsed
                    .created_time()
                    .map(|t| t.timestamp())
                    .unwrap_or(0),
                created_by: String::new(),
                tags,
                size: 0,
                comment: String::new(),
            });
        }
        Ok(items)
    }

    /// `docker tag SOURCE REPO[:TAG]`.
    pub async fn tag(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let id = self.resolve(source)?;
        let target = match tag.filter(|t| !t.is_empty()) {
            Some(t) => Reference::parse_normalized(repo)?
                .repository()
                .with_tag(t)?,
            None => {
                let r = Reference::parse(repo)?;
                if r.digest().is_some() {
                    return Err(ImageError::InvalidArgument(
                        "refusing to create a tag with a digest reference".into(),
                    ));
                }
                r
            }
        };
        self.update_index(|idx| {
            idx.set_ref(&target, &id);
            if let Some(rec) = idx.images.get_mut(&id) {
                rec.last_tag_time = Some(now_rfc3339());
            }
            Ok(())
        })
        .await
    }

    /// `docker rmi [-f] NAME`, with dockerd's rules: a name removes that reference (and
    /// digest references of the repository when its last tag goes), and the image only
    /// when nothing names it any more; an ID removes the image (all its references with
    /// `force`). A running container's image is never removed; a stopped container's
    /// only with `force`.
    pub async fn remove(
        &self,
        name: &str,
        force: bool,
        usage: &dyn ImageUsage,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let id = self.resolve(name)?;
        let by_ref = Reference::parse(name)
            .ok()
            .filter(|r| self.inner.index.read().get_ref(r) == Some(&id));
        let users = usage.containers_using(&id);
        let mut records = Vec::new();
        if let Some(r) = by_ref {
            let refs = self.inner.index.read().references_to(&id);
            // dockerd's "single reference": every reference is of this repository and at
            // most one is a tag (`repo:tag` plus its `repo@digest` still count as one).
            let single = refs.iter().all(|o| o.name() == r.name())
                && refs.iter().filter(|o| o.digest().is_none()).count() <= 1;
            if single && !force {
                if let Some(c) = users.first() {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{}\" (must force) - container {} is using its referenced image {}",
                        name, short_id(&c.id), id.short()
                    )));
                }
            }
            let remaining = self
                .update_index(|idx| {
                    idx.remove_ref(&r);
                    records.push(untagged(r.familiar()));
                    if r.digest().is_none() {
                        let same_repo_tag = idx
                            .references_to(&id)
                            .iter()
                            .any(|o| o.name() == r.name() && o.digest().is_none());
                        if !same_repo_tag {
                            for o in idx.references_to(&id) {
                                if o.name() == r.name() && o.digest().is_some() {
                                    idx.remove_ref(&o);
                                    records.push(untagged(o.familiar()));
                                }
                            }
                        }
                    }
                    Ok(idx.references_to(&id).len())
                })
                .await?;
            if remaining > 0 {
                return Ok(records);
            }
            // Nothing names it any more: delete it, unless a container uses it (then it
            // stays, dangling, as dockerd leaves it).
            if !users.is_empty() || self.inner.index.read().has_children(&id) {
                return Ok(records);
            }
        } else {
            if self.inner.index.read().has_children(&id) {
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                    id.short()
                )));
            }
            if let Some(c) = users.iter().find(|c| c.running) {
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
                    id.short(),
                    short_id(&c.id)
                )));
            }
            if !force {
                if let Some(c) = users.first() {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
                        id.short(),
                        short_id(&c.id)
                    )));
                }
                let refs = self.inner.index.read().references_to(&id);
                let mut repos: Vec<String> = refs.iter().map(|r| r.name()).collect();
                repos.sort();
                repos.dedup();
                if repos.len() > 1 {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        id.short()
                    )));
                }
            }
        }
        records.extend(self.delete_image(&id, usage).await?);
        Ok(records)
    }

    /// Drops every reference to the image and the image itself, then its layers that
    /// nothing else uses; then, as dockerd does, the build parents it leaves untagged,
    /// childless and unused.
    async fn delete_image(
        &self,
        id: &Digest,
        usage: &dyn ImageUsage,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let mut records = Vec::new();
        let mut next = Some(id.clone());
        while let Some(id) = next.take() {
            let (items, parent) = self.delete_one(&id, usage).await?;
            records.extend(items);
            next = parent.filter(|p| {
                let idx = self.inner.index.read();
                idx.images.contains_key(p)
                    && idx.references_to(p).is_empty()
                    && !idx.has_children(p)
            });
            next = next.filter(|p| usage.containers_using(p).is_empty());
        }
        Ok(records)
    }

    /// One image of [`Self::delete_image`]; also returns its build parent.
    async fn delete_one(
        &self,
        id: &Digest,
        usage: &dyn ImageUsage,
    ) -> Result<(Vec<ImageDeleteResponseItem>, Option<Digest>)> {
        let mut records = Vec::new();
        let (layers, parent) = self
            .update_index(|idx| {
                for r in idx.references_to(id) {
                    idx.remove_ref(&r);
                    records.push(untagged(r.familiar()));
                }
                let rec = idx.images.remove(id);
                records.push(deleted(id.to_string()));
                let parent = rec.as_ref().and_then(|r| r.parent.clone());
                Ok((
                    rec.map(|r| r.layers.into_iter().chain(r.flattened).collect::<Vec<_>>())
                        .unwrap_or_default(),
                    parent,
                ))
            })
            .await?;
        self.inner.configs.lock().remove(id);
        for l in self.collect_layers(&layers, usage).await {
            records.push(deleted(l.to_string()));
        }
        Ok((records, parent))
    }

    /// `docker image prune`: dangling images (or, with `dangling=false`, every image no
    /// container uses) matching the filters.
    pub async fn prune(
        &self,
        filters: &PruneFilters,
        usage: &dyn ImageUsage,
    ) -> Result<ImagePruneResponse> {
        let candidates: Vec<(Digest, Vec<Digest>)> = {
            let idx = self.inner.index.read();
            idx.images
                .iter()
                .filter(|(id, rec)| {
                    let tagged = !idx.references_to(id).is_empty();
                    let created = rec
                        .created
                        .as_deref()
                        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok());
                    (!filters.dangling || !tagged)
                        && !idx.has_children(id)
                        && labels_match(&rec.labels, &filters.label)
                        && filters.until.is_none_or(|u| created.is_some_and(|c| c < u))
                })
                .map(|(id, rec)| (id.clone(), rec.layers.clone()))
                .collect()
        };
        // Both fields always present, as dockerd sends them (an empty list, 0 bytes).
        let mut images_deleted = Vec::new();
        let mut space_reclaimed = 0i64;
        for (id, layers) in candidates {
            let gone = !self.inner.index.read().images.contains_key(&id);
            if gone || !usage.containers_using(&id).is_empty() {
                continue;
            }
            let sizes: HashMap<Digest, u64> = {
                let idx = self.inner.index.read();
                layers
                    .iter()
                    .filter_map(|l| idx.layers.get(l).map(|r| (l.clone(), r.disk_size)))
                    .collect()
            };
            let items = self.delete_image(&id, usage).await?;
            for it in &items {
                if let Some(d) = it.deleted.as_deref().and_then(|d| Digest::parse(d).ok()) {
                    space_reclaimed += *sizes.get(&d).unwrap_or(&0) as i64;
                }
            }
            images_deleted.extend(items);
        }
        Ok(ImagePruneResponse {
            images_deleted: Some(images_deleted),
            space_reclaimed: Some(space_reclaimed),
        })
    }

    /// `GET /distribution/{name}/json`: what the registry has for a reference.
    pub async fn distribution_inspect(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<DistributionInspect> {
        let r = Reference::parse(reference)?;
        let reg = Registry::connect(&r, auth, &self.inner.cfg.insecure_registries).await?;
        let (bytes, digest) = reg.manifest_raw(&r).await?;
        let parsed = super::manifest::Manifest::parse(&bytes, None)?;
        let (media_type, platforms) = match parsed {
            super::manifest::Manifest::Index(ix) => (
                ix.media_type
                    .clone()
                    .unwrap_or_else(|| super::manifest::media::OCI_INDEX.into()),
                ix.manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref())
                    .map(super::manifest::DescriptorPlatform::to_docker)
                    .collect(),
            ),
            super::manifest::Manifest::Image(m) => {
                let cfg = ImageConfigFile::parse(&reg.blob_bytes(&r, &m.config).await?)?;
                (
                    m.media_type
                        .clone()
                        .unwrap_or_else(|| super::manifest::media::OCI_MANIFEST.into()),
                    vec![OciPlatform {
                        architecture: Some(cfg.architecture),
                        os: Some(cfg.os),
                        variant: cfg.variant,
                        os_version: cfg.os_version,
                        ..Default::default()
                    }],
                )
            }
        };
        Ok(DistributionInspect {
            descriptor: OciDescriptor {
                media_type: Some(media_type),
                digest: Some(digest.to_string()),
                size: Some(bytes.len() as i64),
                ..Default::default()
            },
            platforms,
        })
    }
}

/// Feeds a byte stream to a blocking reader through a channel. The stream (network
/// reads, oci-client's digest check, progress) is driven by its own task on the async
/// runtime while the converter runs on a blocking thread: the two stages overlap on two
/// cores. (`SyncIoBridge` would poll the stream on the converter's own thread.)
pub(crate) struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    cur: bytes::Bytes,
    done: bool,
}

impl ChannelReader {
    pub fn pump<S>(stream: S) -> ChannelReader
    where
        S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                let failed = item.is_err();
                // The reader is gone (conversion failed): stop downloading.
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        ChannelReader {
            rx,
            cur: bytes::Bytes::new(),
            done: false,
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                None => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Maps a conversion failure that is not about the transfer.
pub(crate) fn convert_error(layer: &str, e: ConvertError) -> ImageError {
    match e {
        ConvertError::Hostile { entry, reason } => ImageError::HostileLayer {
            layer: layer.to_string(),
            entry,
            reason,
        },
        ConvertError::Malformed(m) => ImageError::invalid(format!("layer {layer}"), m),
        ConvertError::Output(io) => ImageError::Io(io),
        ConvertError::Source(io) => ImageError::invalid(format!("layer {layer}"), io),
    }
}

/// A delete item saying a reference was removed.
fn untagged(reference: impl Into<String>) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem {
        untagged: Some(reference.into()),
        deleted: None,
    }
}

/// A delete item saying an image or layer was deleted.
fn deleted(id: impl Into<String>) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem {
        untagged: None,
        deleted: Some(id.into()),
    }
}
