//! /images/... and /distribution/{name}/json.

use hyper::{Response, StatusCode};

use crate::errors::{Error, Result};
use crate::filters::accepted;
use crate::http::{self, Body, Ctx, APPLICATION_TAR};
use crate::options::*;
use crate::streaming;

pub async fn list(ctx: &mut Ctx) -> Result<Response<Body>> {
    let q = &ctx.query;
    let opts = ImageListOptions {
        all: q.bool("all"),
        digests: q.bool("digests"),
        shared_size: q.bool("shared-size"),
        manifests: q.bool("manifests"),
        filters: q.filters(accepted::IMAGE_LIST)?,
    };
    let list = ctx.app.backend.image_list(opts).await?;
    http::json(StatusCode::OK, &list)
}

/// `POST /images/create`: a pull with `fromImage`, an import with `fromSrc`.
pub async fn create(ctx: &mut Ctx) -> Result<Response<Body>> {
    let platform = ctx.query.string("platform");
    if let Some(from_image) = ctx.query.string("fromImage") {
        let opts = PullOptions {
            from_image,
            tag: ctx.query.string("tag"),
            platform,
            // dockerd ignores a malformed header on pulls for compatibility.
            auth: ctx.registry_auth(false)?,
        };
        let progress = ctx.app.backend.image_pull(opts).await?;
        return streaming::progress(progress, &ctx.app.closing).await;
    }
    let from_src = ctx
        .query
        .string("fromSrc")
        .ok_or_else(|| Error::invalid("either fromImage or fromSrc must be given"))?;
    let opts = ImportOptions {
        from_src,
        repo: ctx.query.string("repo"),
        tag: ctx.query.string("tag"),
        message: ctx.query.string("message"),
        changes: ctx.query.all("changes"),
        platform,
    };
    let body = ctx.body_stream();
    let progress = ctx.app.backend.image_import(opts, body).await?;
    streaming::progress(progress, &ctx.app.closing).await
}

pub async fn inspect(ctx: &mut Ctx) -> Result<Response<Body>> {
    let img = ctx
        .app
        .backend
        .image_inspect(ctx.param(0), ctx.query.bool("manifests"))
        .await?;
    http::json(StatusCode::OK, &img)
}

pub async fn history(ctx: &mut Ctx) -> Result<Response<Body>> {
    let h = ctx
        .app
        .backend
        .image_history(ctx.param(0), ctx.query.string("platform"))
        .await?;
    http::json(StatusCode::OK, &h)
}

pub async fn push(ctx: &mut Ctx) -> Result<Response<Body>> {
    let opts = PushOptions {
        tag: ctx.query.string("tag"),
        platform: ctx.query.string("platform"),
        auth: ctx.registry_auth(true)?,
    };
    let progress = ctx.app.backend.image_push(ctx.param(0), opts).await?;
    streaming::progress(progress, &ctx.app.closing).await
}

pub async fn tag(ctx: &mut Ctx) -> Result<Response<Body>> {
    let repo = ctx
        .query
        .string("repo")
        .ok_or_else(|| Error::invalid("repository name must have at least one component"))?;
    let tag = ctx.query.string("tag");
    ctx.app
        .backend
        .image_tag(ctx.param(0), &repo, tag.as_deref())
        .await?;
    Ok(http::empty(StatusCode::CREATED))
}

pub async fn delete(ctx: &mut Ctx) -> Result<Response<Body>> {
    let opts = ImageRemoveOptions {
        force: ctx.query.bool("force"),
        noprune: ctx.query.bool("noprune"),
        platforms: ctx.query.all("platforms"),
    };
    let r = ctx.app.backend.image_remove(ctx.param(0), opts).await?;
    http::json(StatusCode::OK, &r)
}

pub async fn search(ctx: &mut Ctx) -> Result<Response<Body>> {
    let q = &ctx.query;
    let opts = ImageSearchOptions {
        term: q.get("term").unwrap_or("").to_string(),
        limit: q.num::<usize>("limit")?,
        filters: q.filters(accepted::IMAGE_SEARCH)?,
        auth: ctx.registry_auth(false)?,
    };
    let r = ctx.app.backend.image_search(opts).await?;
    http::json(StatusCode::OK, &r)
}

pub async fn prune(ctx: &mut Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters(accepted::IMAGE_PRUNE)?;
    let r = ctx.app.backend.image_prune(filters).await?;
    http::json(StatusCode::OK, &r)
}

pub async fn save(ctx: &mut Ctx) -> Result<Response<Body>> {
    let names = vec![ctx.param(0).to_string()];
    let tar = ctx
        .app
        .backend
        .image_save(names, ctx.query.all("platform"))
        .await?;
    Ok(streaming::bytes(tar, APPLICATION_TAR, &ctx.app.closing))
}

pub async fn save_many(ctx: &mut Ctx) -> Result<Response<Body>> {
    let names = ctx.query.all("names");
    let tar = ctx
        .app
        .backend
        .image_save(names, ctx.query.all("platform"))
        .await?;
    Ok(streaming::bytes(tar, APPLICATION_TAR, &ctx.app.closing))
}

pub async fn load(ctx: &mut Ctx) -> Result<Response<Body>> {
    let opts = ImageLoadOptions {
        quiet: ctx.query.bool("quiet"),
        platforms: ctx.query.all("platform"),
    };
    let body = ctx.body_stream();
    let progress = ctx.app.backend.image_load(opts, body).await?;
    streaming::progress(progress, &ctx.app.closing).await
}

pub async fn distribution(ctx: &mut Ctx) -> Result<Response<Body>> {
    let auth = ctx.registry_auth(false)?;
    let r = ctx
        .app
        .backend
        .distribution_inspect(ctx.param(0), auth)
        .await?;
    http::json(StatusCode::OK, &r)
}
