//! Typed query parameters handed to the [`crate::Backend`].
//!
//! The front end parses and validates the query string (types, filter names, defaults) so
//! that a backend only ever sees well-formed values. Bodies use the generated models.

use serde::{Deserialize, Serialize};

use crate::filters::Filters;
use crate::models::AuthConfig;

/// Registry credentials from `X-Registry-Auth` or the `POST /auth` body. Wraps the
/// generated `AuthConfig`, which lacks the token fields the docker CLI sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryAuth {
    #[serde(flatten)]
    pub config: AuthConfig,
    /// base64("user:password"), as stored in the CLI's config.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    #[serde(
        rename = "identitytoken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub identity_token: Option<String>,
    #[serde(
        rename = "registrytoken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub registry_token: Option<String>,
}

/// Timestamps (`since`, `until`, log lines) are UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// `GET /containers/json`.
#[derive(Clone, Debug, Default)]
pub struct ContainerListOptions {
    pub all: bool,
    /// Return at most this many (most recently created first); implies `all`.
    pub limit: Option<usize>,
    pub size: bool,
    /// Validated against [`crate::filters::accepted::CONTAINER_LIST`].
    pub filters: Filters,
}

/// `POST /containers/create` query.
#[derive(Clone, Debug, Default)]
pub struct ContainerCreateOptions {
    /// Requested name without the leading slash; `None` means generate one.
    pub name: Option<String>,
    pub platform: Option<String>,
}

/// `POST /containers/{id}/stop` and `/restart`.
#[derive(Clone, Debug, Default)]
pub struct StopOptions {
    pub signal: Option<String>,
    /// Seconds to wait before killing; `None` = the container's default, -1 = forever.
    pub timeout: Option<i64>,
}

/// `DELETE /containers/{id}`.
#[derive(Clone, Debug, Default)]
pub struct ContainerRemoveOptions {
    pub force: bool,
    /// Remove anonymous volumes.
    pub volumes: bool,
    pub link: bool,
}

/// `POST /containers/{id}/attach` and the websocket variant.
#[derive(Clone, Debug, Default)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Stream live output (as opposed to replaying logs only).
    pub stream: bool,
    /// Replay the container's logs first.
    pub logs: bool,
    /// Already validated; the front end handles detaching (see [`crate::hijack`]).
    pub detach_keys: Option<String>,
}

/// `condition` of `POST /containers/{id}/wait`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return at once if the container is not running, else at its exit.
    #[default]
    NotRunning,
    /// Return at the next exit, even if the container is stopped now (`docker run`).
    NextExit,
    /// Return when the container has been removed (`docker run --rm`).
    Removed,
}

impl WaitCondition {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "not-running" => Some(WaitCondition::NotRunning),
            "next-exit" => Some(WaitCondition::NextExit),
            "removed" => Some(WaitCondition::Removed),
            _ => None,
        }
    }
}

/// How many log lines to return from the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tail {
    #[default]
    All,
    Lines(u64),
}

/// `GET /containers/{id}/logs`.
#[derive(Clone, Debug, Default)]
pub struct LogsOptions {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// The front end adds the timestamp prefixes; backends may ignore this.
    pub timestamps: bool,
    pub tail: Tail,
    pub details: bool,
}

/// `GET /containers/{id}/stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatsOptions {
    pub stream: bool,
    pub one_shot: bool,
}

/// `PUT /containers/{id}/archive`.
#[derive(Clone, Debug, Default)]
pub struct PutArchiveOptions {
    pub path: String,
    pub no_overwrite_dir_non_dir: bool,
    pub copy_uid_gid: bool,
}

/// `POST /commit`.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    pub container: String,
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub comment: Option<String>,
    pub author: Option<String>,
    pub pause: bool,
    /// Dockerfile instructions to apply (`changes`, repeated).
    pub changes: Vec<String>,
}

/// `GET /images/json`.
#[derive(Clone, Debug, Default)]
pub struct ImageListOptions {
    pub all: bool,
    pub digests: bool,
    pub shared_size: bool,
    pub manifests: bool,
    pub filters: Filters,
}

/// `POST /images/create?fromImage=...` (pull).
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// As sent: may itself carry a tag or digest (`busybox:1.36`) when `tag` is absent.
    pub from_image: String,
    /// Tag or digest.
    pub tag: Option<String>,
    pub platform: Option<String>,
    pub auth: Option<RegistryAuth>,
}

/// `POST /images/create?fromSrc=...` (import).
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// A URL, or "-" when the tarball is the request body.
    pub from_src: String,
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub message: Option<String>,
    pub changes: Vec<String>,
    pub platform: Option<String>,
}

/// `POST /build` (the classic builder). The context is the request body (a tar, maybe
/// compressed). Options the CLI always sends at their defaults arrive here as they were
/// sent; the backend refuses, naming it, any it cannot honour.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// `-f`: the Dockerfile's path inside the context ("Dockerfile" when empty).
    pub dockerfile: Option<String>,
    /// `-t`, repeatable.
    pub tags: Vec<String>,
    /// `-q`: only the image id is streamed.
    pub quiet: bool,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: pull the FROM images even when present.
    pub pull: bool,
    /// Remove the step containers after a successful step (default true).
    pub remove: bool,
    /// Remove them even after a failed one.
    pub force_remove: bool,
    /// `--build-arg`: a value of `None` takes the variable from the client's environment,
    /// which the CLI has already resolved, so it means "unset" here.
    pub build_args: std::collections::BTreeMap<String, Option<String>>,
    /// `--label`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--target`: the last stage built.
    pub target: Option<String>,
    /// `--network` of the RUN steps.
    pub network_mode: Option<String>,
    /// `--platform`.
    pub platform: Option<String>,
    /// `--add-host`.
    pub extra_hosts: Vec<String>,
    /// Every other query parameter that was set to something other than its default,
    /// by its name (`remote`, `squash`, `memory`, `cachefrom`, ...), for the backend to
    /// honour or refuse by name.
    pub other: Vec<(String, String)>,
    /// `X-Registry-Config`: credentials per registry for pulling FROM images.
    pub registry_config: std::collections::BTreeMap<String, RegistryAuth>,
}

/// `POST /images/{name}/push`.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    pub tag: Option<String>,
    pub platform: Option<String>,
    pub auth: Option<RegistryAuth>,
}

/// `DELETE /images/{name}`.
#[derive(Clone, Debug, Default)]
pub struct ImageRemoveOptions {
    pub force: bool,
    pub noprune: bool,
    pub platforms: Vec<String>,
}

/// `GET /images/search`.
#[derive(Clone, Debug, Default)]
pub struct ImageSearchOptions {
    pub term: String,
    pub limit: Option<usize>,
    pub filters: Filters,
    pub auth: Option<RegistryAuth>,
}

/// `POST /images/load`.
#[derive(Clone, Debug, Default)]
pub struct ImageLoadOptions {
    pub quiet: bool,
    pub platforms: Vec<String>,
}

/// `GET /events`.
#[derive(Clone, Debug, Default)]
pub struct EventsOptions {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub filters: Filters,
}

/// `GET /system/df`.
#[derive(Clone, Debug, Default)]
pub struct DataUsageOptions {
    /// Object types to report (container, image, volume, build-cache); empty = all.
    pub types: Vec<String>,
}

/// Result of `HEAD`/`GET /containers/{id}/archive`: sent base64-encoded in the
/// `X-Docker-Container-Path-Stat` header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits (directory = 1<<31, symlink = 1<<27, plus permissions).
    pub mode: u32,
    /// RFC 3339.
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}
