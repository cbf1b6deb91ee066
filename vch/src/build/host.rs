//! What a build needs of the VCH: images (resolve, pull, register, cache lookup) and
//! step containers (start, exec, copy in and out, commit, remove).

use crate::images::digest::Digest;
use crate::images::manifest::ImageConfigFile;
use docker_api::async_trait;
use docker_api::progress::JsonMessage;
use std::path::PathBuf;

/// A step's failure as the build stream reports it: the message and dockerd's code (a
/// RUN's exit code; 1 otherwise).
#[derive(Debug)]
pub struct StepError {
    pub message: String,
    pub code: i32,
}

impl<T: Into<String>> From<T> for StepError {
    fn from(m: T) -> Self {
        StepError {
            message: m.into(),
            code: 1,
        }
    }
}

pub type StepResult<T> = Result<T, StepError>;

/// Where a build's output goes; closed when the client went away.
#[derive(Clone)]
pub struct Out(pub tokio::sync::mpsc::UnboundedSender<docker_api::Result<JsonMessage>>);

impl Out {
    pub fn text(&self, s: impl Into<String>) {
        let _ = self.0.send(Ok(JsonMessage {
            stream: Some(s.into()),
            ..Default::default()
        }));
    }
    pub fn message(&self, m: JsonMessage) {
        let _ = self.0.send(Ok(m));
    }
    pub fn gone(&self) -> bool {
        self.0.is_closed()
    }
}

/// How a step's container is made.
#[derive(Clone, Debug, Default)]
pub struct StepContainer {
    /// What `docker ps` shows as its command.
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    /// `--network` of the build (None: the default network).
    pub network: Option<String>,
    /// `--add-host`.
    pub extra_hosts: Vec<String>,
}

/// One command exec'd in a step's container.
#[derive(Clone, Debug, Default)]
pub struct StepExec {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
}

#[async_trait]
pub trait BuildHost: Send + Sync {
    /// A FROM image's id, pulled when missing (or always with `pull`), the pull's
    /// progress going to `out`.
    async fn base_image(
        &self,
        name: &str,
        pull: bool,
        platform: Option<&str>,
        out: &Out,
    ) -> StepResult<Digest>;
    async fn image_config(&self, id: &Digest) -> StepResult<ImageConfigFile>;
    /// The image a step with `key` made from `parent` before (`None`: FROM scratch).
    fn cached(&self, parent: Option<&Digest>, key: &str) -> Option<Digest>;
    /// Registers a config-only step's image.
    async fn register(
        &self,
        config: &ImageConfigFile,
        parent: Option<&Digest>,
        key: &str,
    ) -> StepResult<Digest>;
    /// A step image whose new layer is the tar at `layer` (FROM scratch: no container).
    async fn add_layer(
        &self,
        layer: PathBuf,
        config: ImageConfigFile,
        parent: Option<&Digest>,
        key: &str,
    ) -> StepResult<Digest>;
    /// Makes and starts a step container from `image`; returns its id.
    async fn start(&self, image: &Digest, c: &StepContainer) -> StepResult<String>;
    /// Runs a command in it, its output to `out` (unless `quiet`); returns its exit code.
    async fn exec(&self, container: &str, e: &StepExec, out: &Out, quiet: bool) -> StepResult<i64>;
    /// `Some(is_dir)` when `path` exists in the container.
    async fn stat(&self, container: &str, path: &str) -> StepResult<Option<bool>>;
    /// `docker cp` out: a tar of `path`, rooted at its base name.
    async fn get(&self, container: &str, path: &str) -> StepResult<Vec<u8>>;
    /// `docker cp` in: the tar at `tar` unpacked at `/`.
    async fn put(&self, container: &str, tar: PathBuf) -> StepResult<()>;
    /// The container's changes as the new layer of an image with `config`.
    async fn commit(
        &self,
        container: &str,
        config: ImageConfigFile,
        parent: &Digest,
        key: &str,
    ) -> StepResult<Digest>;
    /// Removes a step container (stopping it first).
    async fn remove(&self, container: &str);
    /// Tags the built image.
    async fn tag(&self, id: &Digest, reference: &str) -> StepResult<()>;
    /// Where a build spools its context and COPY tars.
    fn spool_dir(&self) -> PathBuf;
}
