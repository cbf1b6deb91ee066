//! /containers/{id}/exec and /exec/...

use hyper::{Response, StatusCode};

use crate::errors::{Error, Result};
use crate::hijack::{parse_detach_keys, DEFAULT_DETACH_KEYS};
use crate::http::{self, Body, Ctx};
use crate::models::{ExecConfig, ExecStartConfig};

use super::containers::dimensions;
use super::{hijack, IdBody};

pub async fn create(ctx: &mut Ctx) -> Result<Response<Body>> {
    let config: ExecConfig = ctx
        .json()
        .await?
        .ok_or_else(|| Error::invalid("No exec command specified"))?;
    if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(Error::invalid("No exec command specified"));
    }
    if let Some(keys) = config.detach_keys.as_deref().filter(|k| !k.is_empty()) {
        parse_detach_keys(keys)?;
    }
    let id = ctx.app.backend.exec_create(ctx.param(0), config).await?;
    http::json(StatusCode::CREATED, &IdBody { id: &id.id })
}

pub async fn start(ctx: &mut Ctx) -> Result<Response<Body>> {
    let config: ExecStartConfig = ctx.json().await?.unwrap_or_default();
    let detach = config.detach.unwrap_or(false);
    let streams = ctx.app.backend.exec_start(ctx.param(0), config).await?;
    if detach {
        // The process runs on; nobody reads its output.
        drop(streams);
        return Ok(http::empty(StatusCode::OK));
    }
    // An exec's detach keys are part of its config, which the backend hands back.
    let keys = match streams.detach_keys.as_deref().filter(|k| !k.is_empty()) {
        Some(spec) => parse_detach_keys(spec)?,
        None => DEFAULT_DETACH_KEYS.to_vec(),
    };
    Ok(hijack(ctx, streams, keys))
}

pub async fn resize(ctx: &mut Ctx) -> Result<Response<Body>> {
    let (h, w) = dimensions(ctx)?;
    ctx.app.backend.exec_resize(ctx.param(0), h, w).await?;
    Ok(http::empty(StatusCode::OK))
}

pub async fn inspect(ctx: &mut Ctx) -> Result<Response<Body>> {
    let r = ctx.app.backend.exec_inspect(ctx.param(0)).await?;
    http::json(StatusCode::OK, &r)
}
