//! Images: pull, list, inspect, tag, history, remove, save, load, prune, import, as the
//! image store (layer disks on the datastore) does them.

use super::{internal, VchBackend};
use crate::containers::Status;
use crate::images::types::ListFilters;
use crate::translator::Translator;
use docker_api::backend::*;
use docker_api::models::*;
use docker_api::options::*;
use docker_api::{Error, Filters, JsonMessage, Result};
use futures_util::StreamExt;
use std::collections::BTreeMap;

pub(super) async fn image_pull(b: &VchBackend, opts: PullOptions) -> Result<ProgressStream> {
    let reference = match &opts.tag {
        Some(t) if t.starts_with("sha256:") => format!("{}@{t}", opts.from_image),
        Some(t) if !t.is_empty() => format!("{}:{t}", opts.from_image),
        _ => opts.from_image.clone(),
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<JsonMessage>>();
    let images = b.inner.images.clone();
    let url = b.inner.t.url.clone();
    let auth = opts
        .auth
        .clone()
        .map(crate::images::auth::RegistryAuth::from);
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let r = images
            .pull(
                &reference,
                opts.platform.as_deref(),
                auth.as_ref(),
                move |ev| {
                    let _ = progress_tx.send(Ok(ev.to_message()));
                },
            )
            .await;
        if let Err(e) = r {
            let _ = tx.send(Err(image_error(&url, e)));
        }
    });
    answer_early(rx).await
}

/// dockerd answers a pull or push that fails before its first message (unknown image,
/// refused credentials, unreachable registry) with the error's status, not a 200 stream
/// carrying it.
pub(super) async fn answer_early(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Result<JsonMessage>>,
) -> Result<ProgressStream> {
    let first = match rx.recv().await {
        Some(Err(e)) => return Err(e),
        first => first,
    };
    let rest = tokio_stream_from(rx);
    Ok(futures_util::stream::iter(first).chain(rest).boxed())
}

/// `POST /images/{name}/push` (`docker push`).
pub(super) async fn image_push(
    b: &VchBackend,
    name: &str,
    opts: PushOptions,
) -> Result<ProgressStream> {
    if opts.platform.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(Error::not_implemented(
            "docker push --platform (images here are single-platform)",
        ));
    }
    let reference = match opts.tag.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<JsonMessage>>();
    let images = b.inner.images.clone();
    let url = b.inner.t.url.clone();
    let auth = opts.auth.map(crate::images::auth::RegistryAuth::from);
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let r = images
            .push(&reference, auth.as_ref(), move |ev| {
                let _ = progress_tx.send(Ok(ev.to_message()));
            })
            .await;
        if let Err(e) = r {
            let _ = tx.send(Err(image_error(&url, e)));
        }
    });
    answer_early(rx).await
}

/// `POST /auth` (`docker login`): the registry checks the credentials; nothing is kept.
pub(super) async fn auth(b: &VchBackend, config: RegistryAuth) -> Result<SystemAuthResponse> {
    let creds = crate::images::auth::RegistryAuth::from(config);
    b.inner
        .images
        .login(&creds)
        .await
        .map_err(|e| image_error(&b.inner.t.url, e))?;
    Ok(SystemAuthResponse {
        status: "Login Succeeded".into(),
        identity_token: None,
    })
}

/// The image store's errors as Docker's (status and wording), in one place.
pub(super) fn image_error(vcenter: &str, e: crate::images::error::ImageError) -> Error {
    use crate::images::error::ImageError as E;
    match e {
        E::NotFound(n) => Error::NoSuchImage(n),
        E::ManifestUnknown(_) | E::NoMatchingPlatform { .. } => Error::NotFound(e.to_string()),
        E::Unauthorized(_) => Error::Unauthorized(e.to_string()),
        E::InvalidReference(_) | E::InvalidArgument(_) => Error::invalid(e.to_string()),
        E::Conflict(m) => Error::Conflict(m),
        // Layer disks go to the datastore: vCenter away is a 503 here too.
        E::Datastore(e) => crate::vsphere_errors::to_docker(vcenter, e),
        other => Error::internal(other),
    }
}

pub(super) async fn image_list(
    b: &VchBackend,
    opts: ImageListOptions,
) -> Result<Vec<ImageSummary>> {
    let mut f = ListFilters::from_map(&filter_map(&opts.filters))
        .map_err(|e| Error::invalid(e.to_string()))?;
    f.all = opts.all;
    let list = b.inner.images.list(&f).map_err(internal)?;
    Ok(list)
}

pub(super) async fn image_inspect(
    b: &VchBackend,
    name: &str,
    _manifests: bool,
) -> Result<ImageInspect> {
    let i = b
        .inner
        .images
        .inspect(name)
        .await
        .map_err(|_| Error::NoSuchImage(name.to_string()))?;
    Ok(i)
}

pub(super) async fn image_tag(
    b: &VchBackend,
    name: &str,
    repo: &str,
    tag: Option<&str>,
) -> Result<()> {
    b.inner
        .images
        .resolve(name)
        .map_err(|_| Error::NoSuchImage(name.to_string()))?;
    b.inner
        .images
        .tag(name, repo, tag)
        .await
        .map_err(|e| Error::invalid(e.to_string()))
}

pub(super) async fn image_history(
    b: &VchBackend,
    name: &str,
    _platform: Option<String>,
) -> Result<Vec<HistoryResponseItem>> {
    b.inner
        .images
        .resolve(name)
        .map_err(|_| Error::NoSuchImage(name.to_string()))?;
    let h = b.inner.images.history(name).await.map_err(internal)?;
    Ok(h)
}

pub(super) async fn image_remove(
    b: &VchBackend,
    name: &str,
    opts: ImageRemoveOptions,
) -> Result<Vec<ImageDeleteResponseItem>> {
    b.inner
        .images
        .resolve(name)
        .map_err(|_| Error::NoSuchImage(name.to_string()))?;
    let usage = Usage(b.tr().clone());
    let items = b
        .inner
        .images
        .remove(name, opts.force, &usage)
        .await
        .map_err(|e| image_error(&b.inner.t.url, e))?;
    Ok(items)
}

pub(super) async fn image_save(
    b: &VchBackend,
    names: Vec<String>,
    _platforms: Vec<String>,
) -> Result<ByteStream> {
    for n in &names {
        b.inner
            .images
            .resolve(n)
            .map_err(|_| Error::NoSuchImage(n.clone()))?;
    }
    let s = b.inner.images.save_stream(names);
    Ok(s.map(|r| r.map_err(internal)).boxed())
}

pub(super) async fn image_load(
    b: &VchBackend,
    _opts: ImageLoadOptions,
    body: ByteStream,
) -> Result<ProgressStream> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<JsonMessage>>();
    let images = b.inner.images.clone();
    let input = tokio_util::io::StreamReader::new(body.map(|r| r.map_err(std::io::Error::other)));
    tokio::spawn(async move {
        let ptx = tx.clone();
        match images
            .load(input, move |ev| {
                let _ = ptx.send(Ok(ev.to_message()));
            })
            .await
        {
            Ok(refs) => {
                for r in refs {
                    let msg = if r.starts_with("sha256:") {
                        format!("Loaded image ID: {r}\n")
                    } else {
                        format!("Loaded image: {r}\n")
                    };
                    let _ = tx.send(Ok(JsonMessage {
                        stream: Some(msg),
                        ..Default::default()
                    }));
                }
            }
            Err(e) => {
                let _ = tx.send(Err(Error::invalid(e.to_string())));
            }
        }
    });
    Ok(tokio_stream_from(rx))
}

pub(super) async fn image_prune(b: &VchBackend, filters: Filters) -> Result<ImagePruneResponse> {
    let map = filter_map(&filters);
    let f = crate::images::types::PruneFilters::from_map(&map)
        .map_err(|e| Error::invalid(e.to_string()))?;
    let report = b
        .inner
        .images
        .prune(&f, &Usage(b.tr().clone()))
        .await
        .map_err(internal)?;
    Ok(report)
}

pub(super) async fn image_import(
    b: &VchBackend,
    opts: ImportOptions,
    body: ByteStream,
) -> Result<ProgressStream> {
    if opts.from_src != "-" {
        return Err(Error::not_implemented(
            "importing from a URL (fromSrc other than -)",
        ));
    }
    let reference = match (&opts.repo, &opts.tag) {
        (Some(r), Some(t)) if !r.is_empty() && !t.is_empty() => Some(format!("{r}:{t}")),
        (Some(r), _) if !r.is_empty() => Some(r.clone()),
        _ => None,
    };
    let mut config = crate::images::manifest::ContainerConfig::default();
    for change in &opts.changes {
        crate::build::config::apply_change(&mut config, change).map_err(Error::invalid)?;
    }
    let input = tokio_util::io::StreamReader::new(body.map(|r| r.map_err(std::io::Error::other)));
    let id = b
        .inner
        .images
        .import(
            input,
            reference.as_deref(),
            opts.message.as_deref(),
            config,
            opts.platform.as_deref(),
        )
        .await
        .map_err(|e| Error::invalid(e.to_string()))?;
    let msg = JsonMessage {
        status: Some(id.to_string()),
        ..Default::default()
    };
    Ok(futures_util::stream::iter([Ok(msg)]).boxed())
}

pub(super) async fn distribution_inspect(
    b: &VchBackend,
    name: &str,
    auth: Option<RegistryAuth>,
) -> Result<DistributionInspect> {
    let auth = auth.map(crate::images::auth::RegistryAuth::from);
    let d = b
        .inner
        .images
        .distribution_inspect(name, auth.as_ref())
        .await
        .map_err(|e| Error::NotFound(e.to_string()))?;
    Ok(d)
}
/// Tells the image store which images and layer disks containers still use.
pub(super) struct Usage(pub Translator);

impl crate::images::types::ImageUsage for Usage {
    fn containers_using(
        &self,
        image_id: &crate::images::digest::Digest,
    ) -> Vec<crate::images::types::ContainerUse> {
        let id = image_id.to_string();
        self.0
            .all()
            .into_iter()
            .filter(|c| c.meta.image_id == id)
            .map(|c| crate::images::types::ContainerUse {
                id: c.meta.id.clone(),
                running: c.status == Status::Running,
            })
            .collect()
    }

    fn layer_in_use(&self, disk: &crate::images::datastore::DatastorePath) -> bool {
        let _ = disk;
        // Layer disks are only attached to containers of images that use them, and a used
        // image is never deleted without force; forced, its containers keep their VMs'
        // disks because Destroy_Task does not delete shared non-persistent disks.
        !self.0.all().is_empty()
    }
}

/// The `filters` query as key -> values, the shape the image store's filters parse.
pub(super) fn filter_map(filters: &Filters) -> BTreeMap<String, Vec<String>> {
    filters
        .names()
        .map(|n| {
            (
                n.to_string(),
                filters.get(n).into_iter().map(str::to_string).collect(),
            )
        })
        .collect()
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Result<JsonMessage>>,
) -> ProgressStream {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
