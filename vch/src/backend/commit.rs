//! `docker diff` and `docker commit`: the container's changes come from its tether (the
//! scratch disk's overlay upper directory, see tether `ops/changes.rs`); a commit turns
//! them into a layer on top of the container's image (`images::commit`).

use super::archive::tar_stream;
use super::images::image_error;
use super::VchBackend;
use crate::containers::Container;
use crate::images::commit::CommitRequest;
use crate::images::manifest::ContainerConfig as ImageConfig;
use container_vm::ops::OpsRequest;
use docker_api::models::{ContainerConfig, FilesystemChange, IdResponse};
use docker_api::options::CommitOptions;
use docker_api::{Error, Result};
use futures_util::StreamExt;
use std::collections::BTreeMap;

pub(super) async fn changes(b: &VchBackend, key: &str) -> Result<Vec<FilesystemChange>> {
    let (id, mut s) = b
        .guest_request(key, "docker diff", &OpsRequest::Changes)
        .await?;
    b.guest_answer_as(&id, &mut s).await
}

pub(super) async fn commit(
    b: &VchBackend,
    opts: CommitOptions,
    body: Option<ContainerConfig>,
) -> Result<IdResponse> {
    let req = OpsRequest::Layer { pause: opts.pause };
    let (id, mut s) = b
        .guest_request(&opts.container, "docker commit", &req)
        .await?;
    b.guest_answer(&id, &mut s).await?;
    let c = b.get(&id)?;
    let (parent, image) = b
        .inner
        .images
        .image_config(&c.meta.image_id)
        .await
        .map_err(|e| image_error(&b.inner.t.url, e))?;
    let mut config = image_config(&c, &image.config.unwrap_or_default(), body.as_ref());
    for change in &opts.changes {
        crate::build::config::apply_change(&mut config, change).map_err(Error::invalid)?;
    }
    let layer = tokio_util::io::StreamReader::new(
        tar_stream(s).map(|r| r.map_err(|e| std::io::Error::other(e.to_string()))),
    );
    let reference = opts.repo.as_deref().filter(|r| !r.is_empty()).map(|r| {
        format!(
            "{r}:{}",
            opts.tag
                .as_deref()
                .filter(|t| !t.is_empty())
                .unwrap_or("latest")
        )
    });
    let new = b
        .inner
        .images
        .commit(
            layer,
            CommitRequest {
                parent: &parent,
                config,
                reference: reference.as_deref(),
                comment: opts.comment.as_deref(),
                author: opts.author.as_deref(),
                created_by: c.spec.cmd.join(" "),
            },
        )
        .await
        .map_err(|e| image_error(&b.inner.t.url, e))?;
    b.tr().event(
        &id,
        "commit",
        &[("comment", opts.comment.clone().unwrap_or_default())],
    );
    Ok(IdResponse {
        id: new.to_string(),
    })
}

/// The new image's defaults, as dockerd makes them: the image's, overridden by what the
/// container was created with (its merged environment and command), then by the config
/// sent with the commit.
fn image_config(c: &Container, image: &ImageConfig, body: Option<&ContainerConfig>) -> ImageConfig {
    let mut out = image.clone();
    let keys = |v: &Option<Vec<String>>| -> Option<BTreeMap<String, serde_json::Value>> {
        v.as_ref().filter(|v| !v.is_empty()).map(|v| {
            v.iter()
                .map(|k| (k.clone(), serde_json::json!({})))
                .collect()
        })
    };
    for cfg in std::iter::once(&c.meta.config).chain(body) {
        let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        if let Some(e) = cfg.entrypoint.clone() {
            out.entrypoint = Some(e);
            // An entrypoint without a cmd drops the image's cmd, as at create.
            out.cmd = cfg.cmd.clone();
        } else if let Some(cmd) = cfg.cmd.clone() {
            out.cmd = Some(cmd);
        }
        out.user = text(&cfg.user).or(out.user);
        out.working_dir = text(&cfg.working_dir).or(out.working_dir);
        out.stop_signal = text(&cfg.stop_signal).or(out.stop_signal);
        if let Some(p) = keys(&cfg.exposed_ports) {
            out.exposed_ports
                .get_or_insert_with(BTreeMap::new)
                .extend(p);
        }
        if let Some(v) = keys(&cfg.volumes) {
            out.volumes.get_or_insert_with(BTreeMap::new).extend(v);
        }
        if let Some(l) = cfg.labels.as_ref().filter(|l| !l.is_empty()) {
            let labels = out.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(l.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if cfg.healthcheck.is_some() {
            out.healthcheck = cfg.healthcheck.clone();
        }
        if let Some(s) = cfg.shell.clone().filter(|s| !s.is_empty()) {
            out.shell = Some(s);
        }
    }
    // The environment the container ran with (image's merged with the request's), then
    // the commit's own.
    let mut env = c.spec.env.clone();
    for kv in body.and_then(|b| b.env.clone()).unwrap_or_default() {
        let key = kv.split('=').next().unwrap_or_default().to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    out.env = Some(env);
    out
}
