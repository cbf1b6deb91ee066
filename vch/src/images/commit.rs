//! `docker commit`: a container's changes (a layer tar its tether makes from the scratch
//! disk) on top of its image's layers, as a new image whose config is the container's,
//! with `--change` instructions applied.

use super::digest::Digest;
use super::error::Result;
use super::manifest::{ContainerConfig, HistoryEntry, ImageConfigFile};
use super::reference::Reference;
use super::store::ImageStore;
use tokio::io::AsyncRead;

/// What a commit records besides the layer.
pub struct CommitRequest<'a> {
    /// The container's image (its id).
    pub parent: &'a Digest,
    /// The image config of the new image: the container's, `--change`s applied.
    pub config: ContainerConfig,
    pub reference: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub author: Option<&'a str>,
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
        let cc = req.config;
        let parent = self.config_blob(req.parent).await?.parsed.clone();
        let (diff, _pins) = self
            .ingest_layer(layer, "container changes", &parent.rootfs.diff_ids)
            .await?;
        let mut diff_ids = parent.rootfs.diff_ids.clone();
        diff_ids.push(diff);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let author = req.author.filter(|a| !a.is_empty()).map(str::to_string);
        let comment = req.comment.filter(|c| !c.is_empty()).map(str::to_string);
        let mut history = parent.history.clone();
        history.push(HistoryEntry {
            created: Some(now.clone()),
            created_by: Some(req.created_by),
            author: author.clone(),
            comment: comment.clone(),
            empty_layer: false,
        });
        let mut config = ImageConfigFile {
            created: Some(now),
            author,
            comment,
            config: Some(cc),
            history,
            ..parent
        };
        config.rootfs.diff_ids = diff_ids;
        self.register_built(&config, target).await
    }
}
