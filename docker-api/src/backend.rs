//! The contract between the Docker API front end and whatever runs the containers.
//!
//! The front end owns HTTP: routing, version negotiation, query/body parsing, filters,
//! stdcopy framing, hijacking, JSON-lines streaming and error rendering. A [`Backend`]
//! only sees typed values and returns typed values or a typed [`Error`].
//!
//! Every method has a default that returns `Error::NotImplemented("<feature>")`, which
//! the front end answers with 501 naming the feature, so an implementation can grow one
//! method at a time. Implement it with `#[docker_api::async_trait]`.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio::io::AsyncWrite;

pub use crate::errors::{Error, Result};
use crate::filters::Filters;
use crate::models::*;
use crate::options::*;
use crate::progress::JsonMessage;

/// A stream of raw bytes (tarballs in and out).
pub type ByteStream = BoxStream<'static, Result<Bytes>>;
/// A JSON-lines progress stream (pull, push, load, import). An `Err` item is written as
/// an in-stream `errorDetail` message and ends the stream; an `Err` as the *first* item
/// becomes a proper HTTP error status instead (nothing was sent yet).
pub type ProgressStream = BoxStream<'static, Result<JsonMessage>>;
/// The container's (or exec's) stdin.
pub type StdinWriter = Pin<Box<dyn AsyncWrite + Send + 'static>>;
/// Resolves when a waited-for condition is met.
pub type WaitFuture = BoxFuture<'static, Result<ContainerWaitResponse>>;

/// Which standard stream a chunk of output belongs to (the stdcopy stream id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StreamKind {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
}

/// Output of an attached container or exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputChunk {
    pub kind: StreamKind,
    pub data: Bytes,
}

impl OutputChunk {
    pub fn stdout(data: impl Into<Bytes>) -> Self {
        OutputChunk {
            kind: StreamKind::Stdout,
            data: data.into(),
        }
    }
    pub fn stderr(data: impl Into<Bytes>) -> Self {
        OutputChunk {
            kind: StreamKind::Stderr,
            data: data.into(),
        }
    }
}

/// The I/O of an attach or exec session. The front end frames the output (stdcopy unless
/// `tty`), copies the client's bytes into `stdin` and calls `shutdown()` on it when the
/// client half-closes its side. The session ends when `output` ends.
pub struct AttachStreams {
    /// The process has a TTY: output is raw (not multiplexed) and stdout/stderr are one.
    pub tty: bool,
    /// Present when stdin was requested and the process has it open. Without a TTY the
    /// front end calls `shutdown()` when the client closes its side (EOF on the
    /// connection): like dockerd, close the process's stdin if the container is
    /// `StdinOnce` (the output then ends with the process), otherwise keep it open and end
    /// `output`. A writer dropped without `shutdown()` means the client detached or went
    /// away (always the case with a TTY): the process's stdin stays open.
    pub stdin: Option<StdinWriter>,
    pub output: BoxStream<'static, Result<OutputChunk>>,
    /// Detach key spec ("ctrl-p,ctrl-q") of this session, e.g. an exec's `DetachKeys`;
    /// `None` means the request's `detachKeys` parameter or the default.
    pub detach_keys: Option<String>,
}

/// One log record. With `timestamps=1` the front end prefixes `data` with `timestamp`
/// in RFC 3339 (nanoseconds) form, so records should be whole lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogChunk {
    pub kind: StreamKind,
    pub timestamp: Timestamp,
    pub data: Bytes,
}

/// Container logs. The backend applies `since`/`until`/`tail`/`follow` and the stream
/// selection; the front end frames the records.
pub struct LogStream {
    pub tty: bool,
    pub chunks: BoxStream<'static, Result<LogChunk>>,
}

/// Everything the Docker API can ask of the container runtime.
///
/// `id` arguments are whatever the client sent: full id, unique id prefix or name
/// (without the leading slash); resolving them is the backend's job, as is answering
/// `Error::NoSuchContainer(id)` and friends.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    // ---- system ----------------------------------------------------------------------

    /// `GET /info`.
    async fn info(&self) -> Result<SystemInfo> {
        Err(Error::not_implemented("info"))
    }
    /// `GET /version`. The front end overrides `ApiVersion` and `MinAPIVersion` with the
    /// range it negotiates, so that they always agree with the handshake.
    async fn version(&self) -> Result<SystemVersion> {
        Err(Error::not_implemented("version"))
    }
    /// `GET /events`: a live stream (past events from `since` first). The front end ends
    /// it at `until` and on server shutdown.
    async fn events(
        &self,
        _opts: EventsOptions,
    ) -> Result<BoxStream<'static, Result<EventMessage>>> {
        Err(Error::not_implemented("events"))
    }
    /// `GET /system/df`.
    async fn data_usage(&self, _opts: DataUsageOptions) -> Result<SystemDataUsageResponse> {
        Err(Error::not_implemented("disk usage"))
    }
    /// `POST /auth`: check registry credentials.
    async fn auth(&self, _config: RegistryAuth) -> Result<SystemAuthResponse> {
        Err(Error::not_implemented("registry login"))
    }

    // ---- containers ------------------------------------------------------------------

    /// `GET /containers/json`.
    async fn container_list(&self, _opts: ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        Err(Error::not_implemented("container list"))
    }
    /// `POST /containers/create`. A taken name is [`Error::name_conflict`]; a missing
    /// image is `Error::NoSuchImage` (the CLI then pulls and retries).
    async fn container_create(
        &self,
        _opts: ContainerCreateOptions,
        _body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        Err(Error::not_implemented("container create"))
    }
    /// `GET /containers/{id}/json`.
    async fn container_inspect(&self, _id: &str, _size: bool) -> Result<ContainerInspectResponse> {
        Err(Error::not_implemented("container inspect"))
    }
    /// `GET /containers/{id}/top`.
    async fn container_top(
        &self,
        _id: &str,
        _ps_args: Option<String>,
    ) -> Result<ContainerTopResponse> {
        Err(Error::not_implemented("container top"))
    }
    /// `GET /containers/{id}/logs`.
    async fn container_logs(&self, _id: &str, _opts: LogsOptions) -> Result<LogStream> {
        Err(Error::not_implemented("container logs"))
    }
    /// `GET /containers/{id}/changes`.
    async fn container_changes(&self, _id: &str) -> Result<Vec<FilesystemChange>> {
        Err(Error::not_implemented("container changes"))
    }
    /// `GET /containers/{id}/export`: the root filesystem as a tarball.
    async fn container_export(&self, _id: &str) -> Result<ByteStream> {
        Err(Error::not_implemented("container export"))
    }
    /// `GET /containers/{id}/stats`: one sample per item; the front end takes only the
    /// first when `stream` is false.
    async fn container_stats(
        &self,
        _id: &str,
        _opts: StatsOptions,
    ) -> Result<BoxStream<'static, Result<ContainerStatsResponse>>> {
        Err(Error::not_implemented("container stats"))
    }
    /// `POST /containers/{id}/resize`.
    async fn container_resize(&self, _id: &str, _height: u16, _width: u16) -> Result<()> {
        Err(Error::not_implemented("container resize"))
    }
    /// `POST /containers/{id}/start`. Already running: `Error::NotModified`.
    async fn container_start(&self, _id: &str, _detach_keys: Option<String>) -> Result<()> {
        Err(Error::not_implemented("container start"))
    }
    /// `POST /containers/{id}/stop`. Already stopped: `Error::NotModified`.
    async fn container_stop(&self, _id: &str, _opts: StopOptions) -> Result<()> {
        Err(Error::not_implemented("container stop"))
    }
    /// `POST /containers/{id}/restart`.
    async fn container_restart(&self, _id: &str, _opts: StopOptions) -> Result<()> {
        Err(Error::not_implemented("container restart"))
    }
    /// `POST /containers/{id}/kill`. `signal` defaults to SIGKILL.
    async fn container_kill(&self, _id: &str, _signal: Option<String>) -> Result<()> {
        Err(Error::not_implemented("container kill"))
    }
    /// `POST /containers/{id}/update`.
    async fn container_update(
        &self,
        _id: &str,
        _body: ContainerUpdateBody,
    ) -> Result<ContainerUpdateResponse> {
        Err(Error::not_implemented("container update"))
    }
    /// `POST /containers/{id}/rename`.
    async fn container_rename(&self, _id: &str, _new_name: &str) -> Result<()> {
        Err(Error::not_implemented("container rename"))
    }
    /// `POST /containers/{id}/pause`.
    async fn container_pause(&self, _id: &str) -> Result<()> {
        Err(Error::not_implemented("container pause"))
    }
    /// `POST /containers/{id}/unpause`.
    async fn container_unpause(&self, _id: &str) -> Result<()> {
        Err(Error::not_implemented("container unpause"))
    }
    /// `POST /containers/{id}/attach`. Must return as soon as the session is registered
    /// (before the container starts: `docker run` attaches, then starts), with output
    /// that ends when the container stops (or after the log replay when `!stream`).
    async fn container_attach(&self, _id: &str, _opts: AttachOptions) -> Result<AttachStreams> {
        Err(Error::not_implemented("container attach"))
    }
    /// `POST /containers/{id}/wait`. Return once the wait is *registered* (the front end
    /// then sends the response headers, which `docker run` waits for before starting the
    /// container); the returned future resolves when the condition is met.
    async fn container_wait(&self, _id: &str, _condition: WaitCondition) -> Result<WaitFuture> {
        Err(Error::not_implemented("container wait"))
    }
    /// `DELETE /containers/{id}`.
    async fn container_remove(&self, _id: &str, _opts: ContainerRemoveOptions) -> Result<()> {
        Err(Error::not_implemented("container remove"))
    }
    /// `HEAD /containers/{id}/archive`.
    async fn container_archive_stat(&self, _id: &str, _path: &str) -> Result<PathStat> {
        Err(Error::not_implemented("container archive"))
    }
    /// `GET /containers/{id}/archive`: stat of `path` and a tarball of it.
    async fn container_archive_get(
        &self,
        _id: &str,
        _path: &str,
    ) -> Result<(PathStat, ByteStream)> {
        Err(Error::not_implemented("container archive"))
    }
    /// `PUT /containers/{id}/archive`: extract the tarball `body` at `opts.path`.
    async fn container_archive_put(
        &self,
        _id: &str,
        _opts: PutArchiveOptions,
        _body: ByteStream,
    ) -> Result<()> {
        Err(Error::not_implemented("container archive"))
    }
    /// `POST /containers/prune`.
    async fn container_prune(&self, _filters: Filters) -> Result<ContainerPruneResponse> {
        Err(Error::not_implemented("container prune"))
    }
    /// `POST /commit`; `config` is the optional container config from the body.
    async fn container_commit(
        &self,
        _opts: CommitOptions,
        _config: Option<ContainerConfig>,
    ) -> Result<IdResponse> {
        Err(Error::not_implemented("commit"))
    }

    // ---- exec ------------------------------------------------------------------------

    /// `POST /containers/{id}/exec`.
    async fn exec_create(&self, _container: &str, _config: ExecConfig) -> Result<IdResponse> {
        Err(Error::not_implemented("exec"))
    }
    /// `POST /exec/{id}/start`. With `Detach` the front end answers 200 at once and drops
    /// the returned streams (the process keeps running).
    async fn exec_start(&self, _id: &str, _config: ExecStartConfig) -> Result<AttachStreams> {
        Err(Error::not_implemented("exec"))
    }
    /// `POST /exec/{id}/resize`.
    async fn exec_resize(&self, _id: &str, _height: u16, _width: u16) -> Result<()> {
        Err(Error::not_implemented("exec resize"))
    }
    /// `GET /exec/{id}/json`.
    async fn exec_inspect(&self, _id: &str) -> Result<ExecInspectResponse> {
        Err(Error::not_implemented("exec"))
    }

    // ---- images ----------------------------------------------------------------------

    /// `GET /images/json`.
    async fn image_list(&self, _opts: ImageListOptions) -> Result<Vec<ImageSummary>> {
        Err(Error::not_implemented("image list"))
    }
    /// `POST /images/create?fromImage=`.
    async fn image_pull(&self, _opts: PullOptions) -> Result<ProgressStream> {
        Err(Error::not_implemented("image pull"))
    }
    /// `POST /images/create?fromSrc=`; `body` is the tarball when `from_src` is "-".
    async fn image_import(
        &self,
        _opts: ImportOptions,
        _body: ByteStream,
    ) -> Result<ProgressStream> {
        Err(Error::not_implemented("image import"))
    }
    /// `GET /images/{name}/json`.
    async fn image_inspect(&self, _name: &str, _manifests: bool) -> Result<ImageInspect> {
        Err(Error::not_implemented("image inspect"))
    }
    /// `GET /images/{name}/history`.
    async fn image_history(
        &self,
        _name: &str,
        _platform: Option<String>,
    ) -> Result<Vec<HistoryResponseItem>> {
        Err(Error::not_implemented("image history"))
    }
    /// `POST /images/{name}/push`.
    /// `POST /build`: builds from the context tar in `context`; the stream carries the
    /// build's output (`stream`), the image id (`aux`) and a failure as `errorDetail`.
    async fn build(&self, _opts: BuildOptions, _context: ByteStream) -> Result<ProgressStream> {
        Err(Error::not_implemented("build"))
    }
    async fn image_push(&self, _name: &str, _opts: PushOptions) -> Result<ProgressStream> {
        Err(Error::not_implemented("image push"))
    }
    /// `POST /images/{name}/tag`.
    async fn image_tag(&self, _name: &str, _repo: &str, _tag: Option<&str>) -> Result<()> {
        Err(Error::not_implemented("image tag"))
    }
    /// `DELETE /images/{name}`.
    async fn image_remove(
        &self,
        _name: &str,
        _opts: ImageRemoveOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        Err(Error::not_implemented("image remove"))
    }
    /// `GET /images/search`.
    async fn image_search(
        &self,
        _opts: ImageSearchOptions,
    ) -> Result<Vec<ImageSearchResponseItem>> {
        Err(Error::not_implemented("image search"))
    }
    /// `POST /images/prune`.
    async fn image_prune(&self, _filters: Filters) -> Result<ImagePruneResponse> {
        Err(Error::not_implemented("image prune"))
    }
    /// `GET /images/{name}/get` and `GET /images/get?names=`: a `docker save` tarball.
    async fn image_save(&self, _names: Vec<String>, _platforms: Vec<String>) -> Result<ByteStream> {
        Err(Error::not_implemented("image save"))
    }
    /// `POST /images/load`.
    async fn image_load(
        &self,
        _opts: ImageLoadOptions,
        _body: ByteStream,
    ) -> Result<ProgressStream> {
        Err(Error::not_implemented("image load"))
    }
    /// `GET /distribution/{name}/json`.
    async fn distribution_inspect(
        &self,
        _name: &str,
        _auth: Option<RegistryAuth>,
    ) -> Result<DistributionInspect> {
        Err(Error::not_implemented("distribution inspect"))
    }

    // ---- networks --------------------------------------------------------------------

    /// `GET /networks`.
    async fn network_list(&self, _filters: Filters) -> Result<Vec<Network>> {
        Err(Error::not_implemented("networks"))
    }
    /// `GET /networks/{id}`.
    async fn network_inspect(
        &self,
        _id: &str,
        _verbose: bool,
        _scope: Option<String>,
    ) -> Result<Network> {
        Err(Error::not_implemented("networks"))
    }
    /// `POST /networks/create`.
    async fn network_create(&self, _req: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        Err(Error::not_implemented("networks"))
    }
    /// `POST /networks/{id}/connect`.
    async fn network_connect(&self, _id: &str, _req: NetworkConnectRequest) -> Result<()> {
        Err(Error::not_implemented("networks"))
    }
    /// `POST /networks/{id}/disconnect`.
    async fn network_disconnect(&self, _id: &str, _req: NetworkDisconnectRequest) -> Result<()> {
        Err(Error::not_implemented("networks"))
    }
    /// `DELETE /networks/{id}`.
    async fn network_remove(&self, _id: &str) -> Result<()> {
        Err(Error::not_implemented("networks"))
    }
    /// `POST /networks/prune`.
    async fn network_prune(&self, _filters: Filters) -> Result<NetworkPruneResponse> {
        Err(Error::not_implemented("network prune"))
    }

    // ---- volumes ---------------------------------------------------------------------

    /// `GET /volumes`.
    async fn volume_list(&self, _filters: Filters) -> Result<VolumeListResponse> {
        Err(Error::not_implemented("volumes"))
    }
    /// `POST /volumes/create`.
    async fn volume_create(&self, _opts: VolumeCreateOptions) -> Result<Volume> {
        Err(Error::not_implemented("volumes"))
    }
    /// `GET /volumes/{name}`.
    async fn volume_inspect(&self, _name: &str) -> Result<Volume> {
        Err(Error::not_implemented("volumes"))
    }
    /// `DELETE /volumes/{name}`.
    async fn volume_remove(&self, _name: &str, _force: bool) -> Result<()> {
        Err(Error::not_implemented("volumes"))
    }
    /// `POST /volumes/prune`.
    async fn volume_prune(&self, _filters: Filters) -> Result<VolumePruneResponse> {
        Err(Error::not_implemented("volume prune"))
    }
}
