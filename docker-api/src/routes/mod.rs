//! The route table of API 1.50 and the matcher.
//!
//! [`ROUTES`] lists every route dockerd 28 registers, in dockerd's order, with the
//! handler that serves it or the feature name a 501 answer gives. It is the single source
//! of truth: the dispatcher matches against it and `docs/api-coverage.md` is checked
//! against it by a test.
//!
//! Patterns use dockerd's (gorilla mux) semantics: `{name}` stands for `{name:.*}`, i.e.
//! it may contain slashes (`/images/library/busybox:latest/json`), so the matcher is a
//! small backtracking one rather than a segment trie. The first route whose pattern and
//! method match wins; a path that matches no route (or only routes of other methods) gets
//! dockerd's 404 "page not found".

mod build;
mod containers;
mod exec;
mod images;
mod networks;
mod system;
mod volumes;

use hyper::{Method, Response, StatusCode};

use crate::backend::AttachStreams;
use crate::errors::{Error, Result};
use crate::hijack::{response_head, Session, MULTIPLEXED_STREAM, RAW_STREAM};
use crate::http::{Body, Ctx};

/// What serves a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    // system
    Options,
    Ping,
    Events,
    Info,
    Version,
    SystemDf,
    Auth,
    // containers
    ContainerArchiveHead,
    ContainerList,
    ContainerExport,
    ContainerChanges,
    ContainerInspect,
    ContainerTop,
    ContainerLogs,
    ContainerStats,
    ExecInspect,
    ContainerArchiveGet,
    ContainerCreate,
    ContainerKill,
    ContainerPause,
    ContainerUnpause,
    ContainerRestart,
    ContainerStart,
    ContainerStop,
    ContainerWait,
    ContainerResize,
    ContainerAttach,
    ExecCreate,
    ExecStart,
    ExecResize,
    ContainerRename,
    ContainerUpdate,
    ContainerPrune,
    Commit,
    ContainerArchivePut,
    ContainerDelete,
    // images
    ImageList,
    ImageSearch,
    ImageSaveMany,
    ImageSave,
    ImageHistory,
    ImageInspect,
    ImageLoad,
    Build,
    ImageCreate,
    ImagePush,
    ImageTag,
    ImagePrune,
    ImageDelete,
    // networks
    NetworkList,
    NetworkInspect,
    NetworkCreate,
    NetworkConnect,
    NetworkDisconnect,
    NetworkPrune,
    NetworkDelete,
    // volumes
    VolumeList,
    VolumeInspect,
    VolumeCreate,
    VolumePrune,
    VolumeDelete,
    // distribution
    DistributionInspect,
    /// Answered with 501 "<feature> is not supported by this VCH".
    Unsupported(&'static str),
}

/// One route: method, dockerd path pattern, handler.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
    pub handler: Handler,
}

impl Route {
    /// "implemented" or "501", as written in docs/api-coverage.md.
    pub fn status(&self) -> &'static str {
        match self.handler {
            Handler::Unsupported(_) => "501",
            _ => "implemented",
        }
    }
}

const fn r(method: &'static str, pattern: &'static str, handler: Handler) -> Route {
    Route {
        method,
        pattern,
        handler,
    }
}

use Handler::*;

const SWARM: Handler = Unsupported("swarm");
const SERVICES: Handler = Unsupported("services");
const NODES: Handler = Unsupported("nodes");
const TASKS: Handler = Unsupported("tasks");
const SECRETS: Handler = Unsupported("secrets");
const CONFIGS: Handler = Unsupported("configs");
const PLUGINS: Handler = Unsupported("plugins");
const BUILD: Handler = Unsupported("build cache (BuildKit)");
const CHECKPOINTS: Handler = Unsupported("checkpoints");

/// Every route of API 1.50, in dockerd's registration order.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    // --- system
    r("OPTIONS", "/{anyroute}", Options),
    r("GET", "/_ping", Ping),
    r("HEAD", "/_ping", Ping),
    r("GET", "/events", Events),
    r("GET", "/info", Info),
    r("GET", "/version", Version),
    r("GET", "/system/df", SystemDf),
    r("POST", "/auth", Auth),
    // --- checkpoints (experimental in dockerd). Registered before the container routes,
    // as dockerd does, or `DELETE /containers/{name}` would mask their DELETE.
    r("GET", "/containers/{name}/checkpoints", CHECKPOINTS),
    r("POST", "/containers/{name}/checkpoints", CHECKPOINTS),
    r("DELETE", "/containers/{name}/checkpoints/{checkpoint}", CHECKPOINTS),
    // --- containers
    r("HEAD", "/containers/{name}/archive", ContainerArchiveHead),
    r("GET", "/containers/json", ContainerList),
    r("GET", "/containers/{name}/export", ContainerExport),
    r("GET", "/containers/{name}/changes", ContainerChanges),
    r("GET", "/containers/{name}/json", ContainerInspect),
    r("GET", "/containers/{name}/top", ContainerTop),
    r("GET", "/containers/{name}/logs", ContainerLogs),
    r("GET", "/containers/{name}/stats", ContainerStats),
    r("GET", "/containers/{name}/attach/ws", Unsupported("websocket attach")),
    r("GET", "/exec/{id}/json", ExecInspect),
    r("GET", "/containers/{name}/archive", ContainerArchiveGet),
    r("POST", "/containers/create", ContainerCreate),
    r("POST", "/containers/{name}/kill", ContainerKill),
    r("POST", "/containers/{name}/pause", ContainerPause),
    r("POST", "/containers/{name}/unpause", ContainerUnpause),
    r("POST", "/containers/{name}/restart", ContainerRestart),
    r("POST", "/containers/{name}/start", ContainerStart),
    r("POST", "/containers/{name}/stop", ContainerStop),
    r("POST", "/containers/{name}/wait", ContainerWait),
    r("POST", "/containers/{name}/resize", ContainerResize),
    r("POST", "/containers/{name}/attach", ContainerAttach),
    r("POST", "/containers/{name}/exec", ExecCreate),
    r("POST", "/exec/{name}/start", ExecStart),
    r("POST", "/exec/{name}/resize", ExecResize),
    r("POST", "/containers/{name}/rename", ContainerRename),
    r("POST", "/containers/{name}/update", ContainerUpdate),
    r("POST", "/containers/prune", ContainerPrune),
    r("POST", "/commit", Commit),
    r("PUT", "/containers/{name}/archive", ContainerArchivePut),
    r("DELETE", "/containers/{name}", ContainerDelete),
    // --- images
    r("GET", "/images/json", ImageList),
    r("GET", "/images/search", ImageSearch),
    r("GET", "/images/get", ImageSaveMany),
    r("GET", "/images/{name}/get", ImageSave),
    r("GET", "/images/{name}/history", ImageHistory),
    r("GET", "/images/{name}/json", ImageInspect),
    r("POST", "/images/load", ImageLoad),
    r("POST", "/images/create", ImageCreate),
    r("POST", "/images/{name}/push", ImagePush),
    r("POST", "/images/{name}/tag", ImageTag),
    r("POST", "/images/prune", ImagePrune),
    r("DELETE", "/images/{name}", ImageDelete),
    // --- networks
    r("GET", "/networks", NetworkList),
    r("GET", "/networks/", NetworkList),
    r("GET", "/networks/{id}", NetworkInspect),
    r("POST", "/networks/create", NetworkCreate),
    r("POST", "/networks/{id}/connect", NetworkConnect),
    r("POST", "/networks/{id}/disconnect", NetworkDisconnect),
    r("POST", "/networks/prune", NetworkPrune),
    r("DELETE", "/networks/{id}", NetworkDelete),
    // --- volumes
    r("GET", "/volumes", VolumeList),
    r("GET", "/volumes/{name}", VolumeInspect),
    r("POST", "/volumes/create", VolumeCreate),
    r("POST", "/volumes/prune", VolumePrune),
    r("PUT", "/volumes/{name}", Unsupported("cluster volumes")),
    r("DELETE", "/volumes/{name}", VolumeDelete),
    // --- distribution
    r("GET", "/distribution/{name}/json", DistributionInspect),
    // --- build, session, grpc
    r("POST", "/build", Build),
    r("POST", "/build/prune", BUILD),
    r("POST", "/build/cancel", BUILD),
    r("POST", "/session", Unsupported("session")),
    r("POST", "/grpc", Unsupported("grpc")),
    // --- swarm
    r("GET", "/swarm", SWARM),
    r("GET", "/swarm/unlockkey", SWARM),
    r("POST", "/swarm/init", SWARM),
    r("POST", "/swarm/join", SWARM),
    r("POST", "/swarm/leave", SWARM),
    r("POST", "/swarm/update", SWARM),
    r("POST", "/swarm/unlock", SWARM),
    r("GET", "/services", SERVICES),
    r("GET", "/services/{id}", SERVICES),
    r("POST", "/services/create", SERVICES),
    r("POST", "/services/{id}/update", SERVICES),
    r("DELETE", "/services/{id}", SERVICES),
    r("GET", "/services/{id}/logs", SERVICES),
    r("GET", "/nodes", NODES),
    r("GET", "/nodes/{id}", NODES),
    r("DELETE", "/nodes/{id}", NODES),
    r("POST", "/nodes/{id}/update", NODES),
    r("GET", "/tasks", TASKS),
    r("GET", "/tasks/{id}", TASKS),
    r("GET", "/tasks/{id}/logs", TASKS),
    r("GET", "/secrets", SECRETS),
    r("POST", "/secrets/create", SECRETS),
    r("DELETE", "/secrets/{id}", SECRETS),
    r("GET", "/secrets/{id}", SECRETS),
    r("POST", "/secrets/{id}/update", SECRETS),
    r("GET", "/configs", CONFIGS),
    r("POST", "/configs/create", CONFIGS),
    r("DELETE", "/configs/{id}", CONFIGS),
    r("GET", "/configs/{id}", CONFIGS),
    r("POST", "/configs/{id}/update", CONFIGS),
    // --- plugins
    r("GET", "/plugins", PLUGINS),
    r("GET", "/plugins/{name}/json", PLUGINS),
    r("GET", "/plugins/privileges", PLUGINS),
    r("DELETE", "/plugins/{name}", PLUGINS),
    r("POST", "/plugins/{name}/enable", PLUGINS),
    r("POST", "/plugins/{name}/disable", PLUGINS),
    r("POST", "/plugins/pull", PLUGINS),
    r("POST", "/plugins/{name}/push", PLUGINS),
    r("POST", "/plugins/{name}/upgrade", PLUGINS),
    r("POST", "/plugins/{name}/set", PLUGINS),
    r("POST", "/plugins/create", PLUGINS),
];

/// Finds the route for `method` and the (version-stripped, percent-decoded) `path`.
/// Returns the route and its parameters.
pub fn lookup(method: &Method, path: &str) -> Option<(&'static Route, Vec<String>)> {
    let mut params = Vec::new();
    for route in ROUTES {
        if route.method != method.as_str() {
            continue;
        }
        params.clear();
        if match_pattern(route.pattern, path, &mut params) {
            return Some((route, params));
        }
    }
    None
}

/// Matches `path` against a pattern whose `{x}` parts match one or more characters,
/// slashes included (greedy, with backtracking, like the `.*` regexps dockerd uses).
pub fn match_pattern(pattern: &str, path: &str, params: &mut Vec<String>) -> bool {
    let Some(open) = pattern.find('{') else {
        return pattern == path;
    };
    let (lit, rest) = pattern.split_at(open);
    let Some(path) = path.strip_prefix(lit) else {
        return false;
    };
    let close = match rest.find('}') {
        Some(c) => c,
        None => return false,
    };
    let after = &rest[close + 1..];
    // The literal after the parameter (up to the next parameter) anchors the candidates.
    let next_lit = after.split('{').next().unwrap_or("");
    // Try the longest parameter value first (greedy).
    let mut end = path.len();
    loop {
        if end == 0 {
            return false;
        }
        if path.is_char_boundary(end) && path[end..].starts_with(next_lit) {
            let depth = params.len();
            params.push(path[..end].to_string());
            if match_pattern(after, &path[end..], params) {
                return true;
            }
            params.truncate(depth);
        }
        end -= 1;
    }
}

/// `{"Id": ...}`: the generated `IdResponse` serializes its field as lowercase `id`,
/// while dockerd (and docker-py, which indexes `['Id']`) use `Id`.
#[derive(serde::Serialize)]
pub(crate) struct IdBody<'a> {
    #[serde(rename = "Id")]
    pub id: &'a str,
}

/// Takes over the connection for an attach/exec session (see [`crate::hijack`]).
/// Returns the placeholder response whose head is swallowed.
pub(crate) fn hijack(ctx: &Ctx, streams: AttachStreams, detach_keys: Vec<u8>) -> Response<Body> {
    // dockerd decides on the request's `Upgrade` header being present at all.
    let upgrade = ctx.headers.contains_key(hyper::header::UPGRADE);
    let content_type = if !streams.tty && ctx.version.at_least(1, 42) {
        MULTIPLEXED_STREAM
    } else {
        RAW_STREAM
    };
    let head = response_head(upgrade, content_type, &ctx.app.common_headers_canonical());
    let handover = ctx.conn.arm();
    ctx.app.spawn_session(
        handover,
        Session {
            head,
            streams,
            detach_keys,
        },
    );
    crate::http::empty(StatusCode::SWITCHING_PROTOCOLS)
}

/// Runs the handler of `route`.
pub async fn dispatch(handler: Handler, ctx: &mut Ctx) -> Result<Response<Body>> {
    match handler {
        Options => Ok(crate::http::empty(hyper::StatusCode::OK)),
        Ping => system::ping(ctx),
        Events => system::events(ctx).await,
        Info => system::info(ctx).await,
        Version => system::version(ctx).await,
        SystemDf => system::data_usage(ctx).await,
        Auth => system::auth(ctx).await,

        ContainerArchiveHead => containers::archive_head(ctx).await,
        ContainerList => containers::list(ctx).await,
        ContainerExport => containers::export(ctx).await,
        ContainerChanges => containers::changes(ctx).await,
        ContainerInspect => containers::inspect(ctx).await,
        ContainerTop => containers::top(ctx).await,
        ContainerLogs => containers::logs(ctx).await,
        ContainerStats => containers::stats(ctx).await,
        ContainerArchiveGet => containers::archive_get(ctx).await,
        ContainerCreate => containers::create(ctx).await,
        ContainerKill => containers::kill(ctx).await,
        ContainerPause => containers::pause(ctx).await,
        ContainerUnpause => containers::unpause(ctx).await,
        ContainerRestart => containers::restart(ctx).await,
        ContainerStart => containers::start(ctx).await,
        ContainerStop => containers::stop(ctx).await,
        ContainerWait => containers::wait(ctx).await,
        ContainerResize => containers::resize(ctx).await,
        ContainerAttach => containers::attach(ctx).await,
        ContainerRename => containers::rename(ctx).await,
        ContainerUpdate => containers::update(ctx).await,
        ContainerPrune => containers::prune(ctx).await,
        Commit => containers::commit(ctx).await,
        ContainerArchivePut => containers::archive_put(ctx).await,
        ContainerDelete => containers::delete(ctx).await,

        ExecInspect => exec::inspect(ctx).await,
        ExecCreate => exec::create(ctx).await,
        ExecStart => exec::start(ctx).await,
        ExecResize => exec::resize(ctx).await,

        ImageList => images::list(ctx).await,
        ImageSearch => images::search(ctx).await,
        ImageSaveMany => images::save_many(ctx).await,
        ImageSave => images::save(ctx).await,
        ImageHistory => images::history(ctx).await,
        ImageInspect => images::inspect(ctx).await,
        ImageLoad => images::load(ctx).await,
        Build => build::build(ctx).await,
        ImageCreate => images::create(ctx).await,
        ImagePush => images::push(ctx).await,
        ImageTag => images::tag(ctx).await,
        ImagePrune => images::prune(ctx).await,
        ImageDelete => images::delete(ctx).await,
        DistributionInspect => images::distribution(ctx).await,

        NetworkList => networks::list(ctx).await,
        NetworkInspect => networks::inspect(ctx).await,
        NetworkCreate => networks::create(ctx).await,
        NetworkConnect => networks::connect(ctx).await,
        NetworkDisconnect => networks::disconnect(ctx).await,
        NetworkPrune => networks::prune(ctx).await,
        NetworkDelete => networks::delete(ctx).await,

        VolumeList => volumes::list(ctx).await,
        VolumeInspect => volumes::inspect(ctx).await,
        VolumeCreate => volumes::create(ctx).await,
        VolumePrune => volumes::prune(ctx).await,
        VolumeDelete => volumes::delete(ctx).await,

        Unsupported(feature) => Err(Error::not_implemented(feature)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(method: &str, path: &str) -> Option<(Handler, Vec<String>)> {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        lookup(&m, path).map(|(r, p)| (r.handler, p))
    }

    #[test]
    fn greedy_params() {
        assert_eq!(
            find("GET", "/images/library/busybox:latest/json"),
            Some((ImageInspect, vec!["library/busybox:latest".into()]))
        );
        assert_eq!(find("GET", "/images/json"), Some((ImageList, vec![])));
        assert_eq!(
            find("DELETE", "/images/a/b/c"),
            Some((ImageDelete, vec!["a/b/c".into()]))
        );
        assert_eq!(
            find("DELETE", "/containers/x/checkpoints/cp1"),
            Some((CHECKPOINTS, vec!["x".into(), "cp1".into()]))
        );
        assert_eq!(
            find("GET", "/containers/abc/json"),
            Some((ContainerInspect, vec!["abc".into()]))
        );
        assert_eq!(
            find("GET", "/containers/json"),
            Some((ContainerList, vec![]))
        );
        assert_eq!(find("GET", "/nope"), None);
        assert_eq!(find("PUT", "/_ping"), None);
        assert_eq!(find("GET", "/images//json"), None);
        assert!(find("OPTIONS", "/anything/at/all").is_some());
    }

    #[test]
    fn table_has_no_duplicates() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.pattern)),
                "duplicate {} {}",
                r.method,
                r.pattern
            );
        }
    }
}
