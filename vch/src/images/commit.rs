//! `docker commit`: a container's changes (a layer tar its tether makes from the scratch
//! disk) on top of its image's layers, as a new image whose config is the container's,
//! with `--change` instructions applied.

use super::archive::apply_change;
use super::convert::ConvertError;
use super::digest::Digest;
use super::error::{ImageError, Result};
use super::manifest::{ContainerConfig, HistoryEntry, ImageConfigFile};
use super::reference::Reference;
use super::store::{ImageStore, NewImage};
use tokio::io::AsyncRead;
use tokio_util::io::SyncIoBridge;

/// What a commit records besides the layer.
pub struct CommitRequest<'a> {
    /// The container's image (its id).
    pub parent: &'a Digest,
    /// The image config of the new image before `changes`: the container's.
    pub config: ContainerConfig,
    pub reference: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub author: Option<&'a str>,
    /// Dockerfile instructions (`--change`).
    pub changes: &'a [String],
    /// The history line's `created_by`: the container's command, as dockerd writes it.
    pub created_by: String,
}

impl ImageStore {
    /// Makes the image; returns its id.
    pub async fn commit<R>(&self, layer: R, req: CommitRequest<'_>) -> Result<Digest>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let target = req
            .reference
            .filter(|r| !r.is_empty())
            .map(Reference::parse)
            .transpose()?;
        let mut cc = req.config;
        for c in req.changes {
            apply_change(&mut cc, c)?;
        }
        let parent = self.config_blob(req.parent).await?.parsed.clone();
        let conv = self
            .convert_blocking(
                SyncIoBridge::new(layer),
                "container changes".into(),
                |e| match e {
                    ConvertError::Source(io) => ImageError::Io(io),
                    other => super::store::convert_error("container changes", other),
                },
            )
            .await?;
        let diff = conv.out.diff_id.clone();
        let mut diff_ids = parent.rootfs.diff_ids.clone();
        diff_ids.push(diff.clone());
        let _pins = self.pin(&diff_ids);
        if !self.layer_exists(&diff).await? {
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            self.upload_layer(conv, None, diff.short(), &tx).await?;
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let mut history = parent.history.clone();
        history.push(HistoryEntry {
            created: Some(now.clone()),
            created_by: Some(req.created_by),
            author: req.author.filter(|a| !a.is_empty()).map(str::to_string),
            comment: req.comment.filter(|c| !c.is_empty()).map(str::to_string),
            empty_layer: false,
        });
        let mut config = ImageConfigFile {
            created: Some(now),
            author: req.author.filter(|a| !a.is_empty()).map(str::to_string),
            comment: req.comment.filter(|c| !c.is_empty()).map(str::to_string),
            config: Some(cc),
            history,
            ..parent
        };
        config.rootfs.diff_ids = diff_ids.clone();
        let raw = serde_json::to_vec(&config).map_err(|e| ImageError::Internal(e.to_string()))?;
        let id = self.store_blob(&raw).await?;
        let refs: Vec<Reference> = target.into_iter().collect();
        self.register(
            NewImage {
                id: &id,
                config_raw: &raw,
                config: &config,
                diff_ids: &diff_ids,
                flattened: None,
                manifest: None,
            },
            &refs,
        )
        .await?;
        Ok(id)
    }
}
