//! /containers/... and /commit.

use base64::Engine;
use futures_util::StreamExt;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};

use crate::errors::{Error, Result};
use crate::filters::accepted;
use crate::hijack::{parse_detach_keys, DEFAULT_DETACH_KEYS, MULTIPLEXED_STREAM, RAW_STREAM};
use crate::http::{self, Body, Ctx, APPLICATION_JSON, APPLICATION_TAR};
use crate::models::{
    ContainerConfig, ContainerCreateBody, ContainerUpdateBody, ContainerWaitExitError,
    ContainerWaitResponse,
};
use crate::options::*;
use crate::streaming;
use crate::validate;

use super::{hijack, IdBody};

const PATH_STAT_HEADER: &str = "x-docker-container-path-stat";

pub async fn list(ctx: &mut Ctx) -> Result<Response<Body>> {
    let q = &ctx.query;
    let opts = ContainerListOptions {
        all: q.bool("all"),
        limit: q
            .num::<i64>("limit")?
            .filter(|l| *l > 0)
            .map(|l| l as usize),
        size: q.bool("size"),
        filters: q.filters(accepted::CONTAINER_LIST)?,
    };
    let list = ctx.app.backend.container_list(opts).await?;
    http::json(StatusCode::OK, &list)
}

pub async fn create(ctx: &mut Ctx) -> Result<Response<Body>> {
    let name = match ctx.query.string("name") {
        Some(n) => Some(validate::container_name(&n)?),
        None => None,
    };
    let opts = ContainerCreateOptions {
        name,
        platform: ctx.query.string("platform"),
    };
    // The tighter of the server's limit and create's own.
    let limit = ctx.app.config.max_body_bytes.min(validate::MAX_CREATE_BODY);
    let body: ContainerCreateBody = ctx
        .json_limited(limit)
        .await?
        .ok_or_else(|| Error::invalid("config cannot be empty in order to create a container"))?;
    validate::create_body(&body)?;
    let created = ctx.app.backend.container_create(opts, body).await?;
    http::json(StatusCode::CREATED, &created)
}

pub async fn inspect(ctx: &mut Ctx) -> Result<Response<Body>> {
    let c = ctx
        .app
        .backend
        .container_inspect(ctx.param(0), ctx.query.bool("size"))
        .await?;
    http::json(StatusCode::OK, &c)
}

pub async fn top(ctx: &mut Ctx) -> Result<Response<Body>> {
    let t = ctx
        .app
        .backend
        .container_top(ctx.param(0), ctx.query.string("ps_args"))
        .await?;
    http::json(StatusCode::OK, &t)
}

pub async fn changes(ctx: &mut Ctx) -> Result<Response<Body>> {
    let c = ctx.app.backend.container_changes(ctx.param(0)).await?;
    http::json(StatusCode::OK, &c)
}

pub async fn export(ctx: &mut Ctx) -> Result<Response<Body>> {
    let s = ctx.app.backend.container_export(ctx.param(0)).await?;
    Ok(streaming::bytes(s, APPLICATION_TAR, &ctx.app.closing))
}

/// `tail`: a line count or "all"; like dockerd, anything unparsable means all.
fn parse_tail(v: Option<&str>) -> Tail {
    match v.map(str::trim).and_then(|v| v.parse::<i64>().ok()) {
        Some(n) if n >= 0 => Tail::Lines(n as u64),
        _ => Tail::All,
    }
}

pub async fn logs(ctx: &mut Ctx) -> Result<Response<Body>> {
    let q = &ctx.query;
    let opts = LogsOptions {
        follow: q.bool("follow"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        since: q.timestamp("since")?,
        until: q.timestamp("until")?,
        timestamps: q.bool("timestamps"),
        tail: parse_tail(q.get("tail")),
        details: q.bool("details"),
    };
    if !(opts.stdout || opts.stderr) {
        return Err(Error::invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let timestamps = opts.timestamps;
    let logs = ctx.app.backend.container_logs(ctx.param(0), opts).await?;
    let content_type = if !logs.tty && ctx.version.at_least(1, 42) {
        MULTIPLEXED_STREAM
    } else {
        RAW_STREAM
    };
    let body = streaming::logs(logs, timestamps, &ctx.app.closing);
    Ok(http::streaming(
        StatusCode::OK,
        HeaderValue::from_static(content_type),
        body,
    ))
}

pub async fn stats(ctx: &mut Ctx) -> Result<Response<Body>> {
    let stream = ctx.query.bool_or("stream", true);
    let one_shot = ctx.query.bool_or("one-shot", false);
    if stream && one_shot {
        return Err(Error::invalid("cannot have stream=true and one-shot=true"));
    }
    let mut s = ctx
        .app
        .backend
        .container_stats(ctx.param(0), StatsOptions { stream, one_shot })
        .await?;
    if stream {
        return Ok(streaming::json_lines(s, &ctx.app.closing));
    }
    let first = s
        .next()
        .await
        .ok_or_else(|| Error::internal("no stats available"))??;
    http::json(StatusCode::OK, &first)
}

pub async fn resize(ctx: &mut Ctx) -> Result<Response<Body>> {
    let (h, w) = dimensions(ctx)?;
    ctx.app.backend.container_resize(ctx.param(0), h, w).await?;
    Ok(http::empty(StatusCode::OK))
}

/// `h` and `w`, both required (dockerd: `strconv.Atoi` of each).
pub fn dimensions(ctx: &Ctx) -> Result<(u16, u16)> {
    let get = |k: &str| {
        ctx.query.num::<u16>(k)?.ok_or_else(|| {
            Error::invalid(format!(
                "invalid value for parameter {k}: a number is required"
            ))
        })
    };
    Ok((get("h")?, get("w")?))
}

pub async fn start(ctx: &mut Ctx) -> Result<Response<Body>> {
    // A host config in the start body was removed in API 1.24; dockerd refuses any body
    // longer than a trivial "{}"/"null".
    let body = ctx.body_bytes().await?;
    if body.len() > 7 {
        return Err(Error::invalid(
            "starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24",
        ));
    }
    ctx.app
        .backend
        .container_start(ctx.param(0), ctx.query.string("detachKeys"))
        .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

fn stop_options(ctx: &Ctx) -> Result<StopOptions> {
    Ok(StopOptions {
        signal: ctx.query.string("signal"),
        timeout: ctx.query.num::<i64>("t")?,
    })
}

pub async fn stop(ctx: &mut Ctx) -> Result<Response<Body>> {
    let opts = stop_options(ctx)?;
    ctx.app.backend.container_stop(ctx.param(0), opts).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn restart(ctx: &mut Ctx) -> Result<Response<Body>> {
    let opts = stop_options(ctx)?;
    ctx.app
        .backend
        .container_restart(ctx.param(0), opts)
        .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn kill(ctx: &mut Ctx) -> Result<Response<Body>> {
    ctx.app
        .backend
        .container_kill(ctx.param(0), ctx.query.string("signal"))
        .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn pause(ctx: &mut Ctx) -> Result<Response<Body>> {
    ctx.app.backend.container_pause(ctx.param(0)).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn unpause(ctx: &mut Ctx) -> Result<Response<Body>> {
    ctx.app.backend.container_unpause(ctx.param(0)).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn rename(ctx: &mut Ctx) -> Result<Response<Body>> {
    let new_name = ctx
        .query
        .string("name")
        .ok_or_else(|| Error::invalid("Neither old nor new names may be empty"))?;
    let new_name = validate::container_name(&new_name)?;
    ctx.app
        .backend
        .container_rename(ctx.param(0), &new_name)
        .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn update(ctx: &mut Ctx) -> Result<Response<Body>> {
    let body: ContainerUpdateBody = ctx.json().await?.unwrap_or_default();
    let r = ctx.app.backend.container_update(ctx.param(0), body).await?;
    http::json(StatusCode::OK, &r)
}

pub async fn prune(ctx: &mut Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters(accepted::CONTAINER_PRUNE)?;
    let r = ctx.app.backend.container_prune(filters).await?;
    http::json(StatusCode::OK, &r)
}

pub async fn commit(ctx: &mut Ctx) -> Result<Response<Body>> {
    let q = &ctx.query;
    let opts = CommitOptions {
        container: q.get("container").unwrap_or("").to_string(),
        repo: q.string("repo"),
        tag: q.string("tag"),
        comment: q.string("comment"),
        author: q.string("author"),
        // dockerd pauses by default since API 1.13.
        pause: q.bool_or("pause", true),
        changes: q.all("changes"),
    };
    let config: Option<ContainerConfig> = ctx.json().await?;
    let id = ctx.app.backend.container_commit(opts, config).await?;
    http::json(StatusCode::CREATED, &IdBody { id: &id.id })
}

pub async fn delete(ctx: &mut Ctx) -> Result<Response<Body>> {
    let opts = ContainerRemoveOptions {
        force: ctx.query.bool("force"),
        volumes: ctx.query.bool("v"),
        link: ctx.query.bool("link"),
    };
    ctx.app.backend.container_remove(ctx.param(0), opts).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn attach(ctx: &mut Ctx) -> Result<Response<Body>> {
    let q = &ctx.query;
    let detach_keys = match q.string("detachKeys") {
        Some(spec) => parse_detach_keys(&spec)?,
        None => DEFAULT_DETACH_KEYS.to_vec(),
    };
    let opts = AttachOptions {
        stdin: q.bool("stdin"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        stream: q.bool("stream"),
        logs: q.bool("logs"),
        detach_keys: q.string("detachKeys"),
    };
    // Errors (no such container...) are still proper HTTP responses: the connection is
    // only taken over once the backend accepted the attach.
    let streams = ctx.app.backend.container_attach(ctx.param(0), opts).await?;
    let detach_keys = match streams.detach_keys.as_deref().filter(|k| !k.is_empty()) {
        Some(spec) => parse_detach_keys(spec)?,
        None => detach_keys,
    };
    Ok(hijack(ctx, streams, detach_keys))
}

pub async fn wait(ctx: &mut Ctx) -> Result<Response<Body>> {
    let condition = match ctx.query.get("condition") {
        None => WaitCondition::NotRunning,
        Some(c) => WaitCondition::parse(c)
            .ok_or_else(|| Error::invalid(format!("invalid condition: {c:?}")))?,
    };
    let done = ctx
        .app
        .backend
        .container_wait(ctx.param(0), condition)
        .await?;
    let closing = ctx.app.closing.clone();
    let failed = |message: String| ContainerWaitResponse {
        status_code: -1,
        error: Some(ContainerWaitExitError {
            message: Some(message),
        }),
    };
    // Headers go out now (the body is pending): `docker run` waits for them before it
    // starts the container. The body follows at exit.
    let body = futures_util::stream::once(async move {
        let r = tokio::select! {
            r = done => r.unwrap_or_else(|e| failed(e.to_string())),
            _ = closing.cancelled() => failed("the daemon is shutting down".into()),
        };
        Ok(streaming::json_line(&r))
    });
    Ok(http::streaming(StatusCode::OK, APPLICATION_JSON, body))
}

fn archive_path(ctx: &Ctx) -> Result<String> {
    ctx.query
        .string("path")
        .ok_or_else(|| Error::invalid("bad parameter: path cannot be empty"))
}

fn stat_header(stat: &PathStat) -> Result<HeaderValue> {
    let json = serde_json::to_vec(stat).map_err(Error::internal)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(json);
    HeaderValue::from_str(&b64).map_err(Error::internal)
}

pub async fn archive_head(ctx: &mut Ctx) -> Result<Response<Body>> {
    let path = archive_path(ctx)?;
    let stat = ctx
        .app
        .backend
        .container_archive_stat(ctx.param(0), &path)
        .await?;
    let mut resp = http::empty(StatusCode::OK);
    resp.headers_mut()
        .insert(PATH_STAT_HEADER, stat_header(&stat)?);
    Ok(resp)
}

pub async fn archive_get(ctx: &mut Ctx) -> Result<Response<Body>> {
    let path = archive_path(ctx)?;
    let (stat, tar) = ctx
        .app
        .backend
        .container_archive_get(ctx.param(0), &path)
        .await?;
    let mut resp = streaming::bytes(tar, APPLICATION_TAR, &ctx.app.closing);
    resp.headers_mut()
        .insert(PATH_STAT_HEADER, stat_header(&stat)?);
    Ok(resp)
}

pub async fn archive_put(ctx: &mut Ctx) -> Result<Response<Body>> {
    let opts = PutArchiveOptions {
        path: archive_path(ctx)?,
        no_overwrite_dir_non_dir: ctx.query.bool("noOverwriteDirNonDir"),
        copy_uid_gid: ctx.query.bool("copyUIDGID"),
    };
    let body = ctx.body_stream();
    ctx.app
        .backend
        .container_archive_put(ctx.param(0), opts, body)
        .await?;
    Ok(http::empty(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail() {
        assert_eq!(parse_tail(None), Tail::All);
        assert_eq!(parse_tail(Some("all")), Tail::All);
        assert_eq!(parse_tail(Some("5")), Tail::Lines(5));
        assert_eq!(parse_tail(Some("-1")), Tail::All);
    }
}
