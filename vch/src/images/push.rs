//! `docker push`: an image's layers, config and manifest uploaded to its registry, with
//! dockerd's progress lines.
//!
//! A layer the repository already has is not sent (`Layer already exists`); one the VCH
//! pulled from another repository of the same registry is mounted from there
//! (`Mounted from …`, no bytes sent); any other is rebuilt from its disk and tar-split
//! (the exact tar it was pulled or committed as), gzip-compressed into a spool file and
//! uploaded. The manifest is Docker's schema 2, or OCI when a reused blob is OCI-typed.
//! The manifest digest becomes a RepoDigest of the image, as after a dockerd push.

use super::archive::HashingWriter;
use super::auth::RegistryAuth;
use super::digest::Digest;
use super::error::{ImageError, Result};
use super::index::BlobRef;
use super::manifest::media;
use super::progress::ProgressEvent;
use super::reference::Reference;
use super::registry::Registry;
use super::store::{ImageStore, Spool};
use std::io::Write;

/// A layer as the manifest lists it.
struct Pushed {
    digest: Digest,
    size: u64,
    media_type: String,
}

impl ImageStore {
    /// Pushes `name` (a tagged reference; `latest` when untagged).
    pub async fn push<F>(
        &self,
        name: &str,
        auth: Option<&RegistryAuth>,
        mut progress: F,
    ) -> Result<()>
    where
        F: FnMut(ProgressEvent) + Send,
    {
        let r = Reference::parse(name)?;
        let r = match r.tag() {
            Some(_) => r,
            None => r.with_tag("latest")?,
        };
        let id = self
            .resolve(&r.to_string())
            .map_err(|_| ImageError::NotFound(format!("tag does not exist: {}", r.familiar())))?;
        let reg = Registry::connect(&r, auth, &self.inner.cfg.insecure_registries).await?;
        reg.authorize_push(&r).await?;
        progress(ProgressEvent::Status {
            message: format!("The push refers to repository [{}]", r.repository()),
        });
        let config = self.config_blob(&id).await?.raw.clone();
        let (layers, sources) = {
            let idx = self.inner.index.read();
            let rec = idx
                .images
                .get(&id)
                .ok_or_else(|| ImageError::NotFound(r.familiar()))?;
            let layers: Vec<(Digest, u64, Option<BlobRef>)> = rec
                .layers
                .iter()
                .filter_map(|d| idx.layers.get(d))
                .map(|l| (l.diff_id.clone(), l.tar_size, l.blob.clone()))
                .collect();
            // Per layer, the repositories of the same registry that may hold its blob:
            // those of every local image with the layer (what dockerd's distribution
            // metadata remembers).
            let sources: Vec<Vec<Reference>> = layers
                .iter()
                .map(|(diff, _, _)| {
                    let mut repos: Vec<Reference> = Vec::new();
                    for (img, _) in idx.images.iter().filter(|(_, i)| i.layers.contains(diff)) {
                        for s in idx.references_to(img) {
                            let repo = s.repository();
                            if s.domain() == r.domain()
                                && s.path() != r.path()
                                && !repos.contains(&repo)
                            {
                                repos.push(repo);
                            }
                        }
                    }
                    repos
                })
                .collect();
            (layers, sources)
        };
        // dockerd lists the layers top first.
        for (diff, _, _) in layers.iter().rev() {
            progress(layer_status(diff, "Preparing"));
        }
        let mut pushed = Vec::new();
        for ((diff, size, blob), sources) in layers.iter().zip(&sources) {
            pushed.push(
                self.push_layer(&reg, &r, diff, *size, blob.as_ref(), sources, &mut progress)
                    .await?,
            );
        }
        let config_digest = Digest::of(&config);
        if !reg.has_blob(&r, &config_digest).await? {
            reg.push_blob_bytes(&r, config.clone(), &config_digest)
                .await?;
        }
        let oci = pushed
            .iter()
            .any(|p| p.media_type.starts_with("application/vnd.oci"));
        let (manifest_type, config_type) = if oci {
            (media::OCI_MANIFEST, media::OCI_CONFIG)
        } else {
            (media::DOCKER_MANIFEST, media::DOCKER_CONFIG)
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "size": config.len(), "digest": config_digest},
            "layers": pushed.iter().map(|p| serde_json::json!({
                "mediaType": p.media_type, "size": p.size, "digest": p.digest,
            })).collect::<Vec<_>>(),
        });
        let body =
            serde_json::to_vec(&manifest).map_err(|e| ImageError::Internal(e.to_string()))?;
        let digest = Digest::of(&body);
        let size = body.len();
        reg.push_manifest(&r, body, manifest_type).await?;
        let with_digest = r.repository().with_digest(digest.clone());
        self.update_index(|idx| {
            idx.set_ref(&with_digest, &id);
            Ok(())
        })
        .await?;
        progress(ProgressEvent::Status {
            message: format!(
                "{}: digest: {digest} size: {size}",
                r.tag().unwrap_or("latest")
            ),
        });
        Ok(())
    }

    /// One layer: skipped, mounted or uploaded.
    #[allow(clippy::too_many_arguments)] // each is one part of the push
    async fn push_layer<F>(
        &self,
        reg: &Registry,
        r: &Reference,
        diff: &Digest,
        tar_size: u64,
        pulled: Option<&BlobRef>,
        sources: &[Reference],
        progress: &mut F,
    ) -> Result<Pushed>
    where
        F: FnMut(ProgressEvent) + Send,
    {
        if let Some(b) = pulled {
            let reuse = Pushed {
                digest: b.digest.clone(),
                size: b.size,
                media_type: b.media_type.clone(),
            };
            if reg.has_blob(r, &b.digest).await? {
                progress(layer_status(diff, "Layer already exists"));
                return Ok(reuse);
            }
            for s in sources {
                if reg.mount_blob(r, s, &b.digest).await {
                    progress(layer_status(diff, &format!("Mounted from {}", s.path())));
                    return Ok(reuse);
                }
            }
        }
        progress(layer_status(diff, "Pushing"));
        let parts = self.layer_parts(diff).await?;
        let (spool, file) = Spool::create(&self.inner.cfg.spool_dir)?;
        let d = diff.clone();
        let (digest, size) = tokio::task::spawn_blocking(move || -> Result<(Digest, u64)> {
            let counted = HashingWriter::new(std::io::BufWriter::new(file));
            let mut gz = flate2::write::GzEncoder::new(counted, flate2::Compression::fast());
            parts.rebuild(&d, tar_size, &mut gz)?;
            let mut counted = gz.finish()?;
            counted.flush()?;
            Ok(counted.finish())
        })
        .await
        .map_err(|e| ImageError::Internal(e.to_string()))??;
        if !reg.has_blob(r, &digest).await? {
            reg.push_blob_file(r, &spool.path, &digest, size).await?;
        }
        progress(layer_status(diff, "Pushed"));
        Ok(Pushed {
            digest,
            size,
            media_type: media::DOCKER_LAYER.to_string(),
        })
    }
}

fn layer_status(diff: &Digest, status: &str) -> ProgressEvent {
    ProgressEvent::LayerStatus {
        layer: diff.short().to_string(),
        status: status.to_string(),
    }
}
