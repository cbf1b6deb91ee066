//! /networks/...

use hyper::{Response, StatusCode};

use crate::errors::{Error, Result};
use crate::filters::accepted;
use crate::http::{self, Body, Ctx};
use crate::models::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};

pub async fn list(ctx: &mut Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters(accepted::NETWORK_LIST)?;
    let list = ctx.app.backend.network_list(filters).await?;
    http::json(StatusCode::OK, &list)
}

pub async fn inspect(ctx: &mut Ctx) -> Result<Response<Body>> {
    let n = ctx
        .app
        .backend
        .network_inspect(
            ctx.param(0),
            ctx.query.bool("verbose"),
            ctx.query.string("scope"),
        )
        .await?;
    http::json(StatusCode::OK, &n)
}

pub async fn create(ctx: &mut Ctx) -> Result<Response<Body>> {
    let req: NetworkCreateRequest = ctx
        .json()
        .await?
        .ok_or_else(|| Error::invalid("network name must be specified"))?;
    if req.name.trim().is_empty() {
        return Err(Error::invalid("network name must be specified"));
    }
    let r = ctx.app.backend.network_create(req).await?;
    http::json(StatusCode::CREATED, &r)
}

pub async fn connect(ctx: &mut Ctx) -> Result<Response<Body>> {
    let req: NetworkConnectRequest = ctx
        .json()
        .await?
        .ok_or_else(|| Error::invalid("a container must be specified"))?;
    ctx.app.backend.network_connect(ctx.param(0), req).await?;
    Ok(http::empty(StatusCode::OK))
}

pub async fn disconnect(ctx: &mut Ctx) -> Result<Response<Body>> {
    let req: NetworkDisconnectRequest = ctx
        .json()
        .await?
        .ok_or_else(|| Error::invalid("a container must be specified"))?;
    ctx.app
        .backend
        .network_disconnect(ctx.param(0), req)
        .await?;
    Ok(http::empty(StatusCode::OK))
}

pub async fn prune(ctx: &mut Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters(accepted::NETWORK_PRUNE)?;
    let r = ctx.app.backend.network_prune(filters).await?;
    http::json(StatusCode::OK, &r)
}

pub async fn delete(ctx: &mut Ctx) -> Result<Response<Body>> {
    ctx.app.backend.network_remove(ctx.param(0)).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}
