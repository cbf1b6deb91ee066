//! /volumes/...

use hyper::{Response, StatusCode};

use crate::errors::Result;
use crate::filters::accepted;
use crate::http::{self, Body, Ctx};
use crate::models::VolumeCreateOptions;

pub async fn list(ctx: &mut Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters(accepted::VOLUME_LIST)?;
    let list = ctx.app.backend.volume_list(filters).await?;
    http::json(StatusCode::OK, &list)
}

pub async fn inspect(ctx: &mut Ctx) -> Result<Response<Body>> {
    let v = ctx.app.backend.volume_inspect(ctx.param(0)).await?;
    http::json(StatusCode::OK, &v)
}

pub async fn create(ctx: &mut Ctx) -> Result<Response<Body>> {
    // An empty body creates an anonymous volume, as with dockerd.
    let opts: VolumeCreateOptions = ctx.json().await?.unwrap_or_default();
    let v = ctx.app.backend.volume_create(opts).await?;
    http::json(StatusCode::CREATED, &v)
}

pub async fn prune(ctx: &mut Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters(accepted::VOLUME_PRUNE)?;
    let r = ctx.app.backend.volume_prune(filters).await?;
    http::json(StatusCode::OK, &r)
}

pub async fn delete(ctx: &mut Ctx) -> Result<Response<Body>> {
    ctx.app
        .backend
        .volume_remove(ctx.param(0), ctx.query.bool("force"))
        .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}
