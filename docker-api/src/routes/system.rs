//! /_ping, /version, /info, /events, /system/df, /auth.

use std::time::Duration;

use futures_util::StreamExt;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA};
use hyper::{Response, StatusCode};

use crate::errors::{Error, Result};
use crate::filters::accepted;
use crate::http::{self, Body, Ctx};
use crate::models::SystemVersionComponents;
use crate::options::{DataUsageOptions, EventsOptions, RegistryAuth};
use crate::streaming;
use crate::version::{MAX_API_VERSION, MIN_API_VERSION};

/// The handshake. Served without touching the backend: clients ping before every
/// command and this must stay cheap.
pub fn ping(ctx: &mut Ctx) -> Result<Response<Body>> {
    // HEAD and GET share the route; hyper drops the body of HEAD responses by itself,
    // but dockerd also announces an empty one.
    let head = ctx.method == hyper::Method::HEAD;
    let mut resp = Response::new(http::full(if head { "" } else { "OK" }));
    let h = resp.headers_mut();
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&ctx.app.config.builder_version) {
        h.insert("builder-version", v);
    }
    h.insert("swarm", HeaderValue::from_static("inactive"));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if head {
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    Ok(resp)
}

pub async fn version(ctx: &mut Ctx) -> Result<Response<Body>> {
    let mut v = ctx.app.backend.version().await?;
    // The range must agree with what the version middleware enforces.
    v.api_version = Some(MAX_API_VERSION.to_string());
    v.min_api_version = Some(MIN_API_VERSION.to_string());
    if v.os.is_none() {
        v.os = Some("linux".into());
    }
    // `docker version` prints the Engine component's details, not the top-level fields;
    // dockerd fills both. Complete the details from the top level so they agree.
    let top = [
        ("ApiVersion", v.api_version.clone()),
        ("MinAPIVersion", v.min_api_version.clone()),
        ("GitCommit", v.git_commit.clone()),
        ("GoVersion", v.go_version.clone()),
        ("Os", v.os.clone()),
        ("Arch", v.arch.clone()),
        ("KernelVersion", v.kernel_version.clone()),
        ("BuildTime", v.build_time.clone()),
        (
            "Experimental",
            Some(v.experimental.unwrap_or(false).to_string()),
        ),
    ];
    let version = v.version.clone().unwrap_or_default();
    let components = v.components.get_or_insert_with(Vec::new);
    if !components.iter().any(|c| c.name == "Engine") {
        components.insert(
            0,
            SystemVersionComponents {
                name: "Engine".into(),
                version,
                details: None,
            },
        );
    }
    for c in components.iter_mut().filter(|c| c.name == "Engine") {
        let details = c.details.get_or_insert_with(Default::default);
        for (k, val) in &top {
            if let Some(val) = val {
                if k.ends_with("APIVersion") || *k == "ApiVersion" {
                    details.insert(k.to_string(), val.clone());
                } else {
                    details.entry(k.to_string()).or_insert_with(|| val.clone());
                }
            }
        }
    }
    http::json(StatusCode::OK, &v)
}

pub async fn info(ctx: &mut Ctx) -> Result<Response<Body>> {
    let info = ctx.app.backend.info().await?;
    http::json(StatusCode::OK, &info)
}

pub async fn events(ctx: &mut Ctx) -> Result<Response<Body>> {
    let opts = EventsOptions {
        since: ctx.query.timestamp("since")?,
        until: ctx.query.timestamp("until")?,
        filters: ctx.query.filters(accepted::EVENTS)?,
    };
    if let (Some(s), Some(u)) = (opts.since, opts.until) {
        if s > u {
            return Err(Error::invalid("`since` must be before `until`"));
        }
    }
    let until = opts.until;
    let stream = ctx.app.backend.events(opts).await?;
    // The stream ends at `until` even if the backend keeps it open.
    let stream = match until {
        None => stream,
        Some(u) => {
            let wait = (u - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
            stream.take_until(tokio::time::sleep(wait)).boxed()
        }
    };
    Ok(streaming::json_lines(stream, &ctx.app.closing))
}

pub async fn data_usage(ctx: &mut Ctx) -> Result<Response<Body>> {
    let types = ctx.query.all("type");
    for t in &types {
        if !matches!(t.as_str(), "container" | "image" | "volume" | "build-cache") {
            return Err(Error::invalid(format!("unknown object type: {t}")));
        }
    }
    let du = ctx
        .app
        .backend
        .data_usage(DataUsageOptions { types })
        .await?;
    http::json(StatusCode::OK, &du)
}

pub async fn auth(ctx: &mut Ctx) -> Result<Response<Body>> {
    let config: RegistryAuth = ctx.json().await?.unwrap_or_default();
    let resp = ctx.app.backend.auth(config).await?;
    http::json(StatusCode::OK, &resp)
}
