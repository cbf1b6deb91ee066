//! `docker build`: the request checked, the context spooled and its Dockerfile parsed
//! before the answer starts (errors there are 400s, as dockerd's), then the steps run
//! (crate::build) with this backend as their [`BuildHost`].

use super::archive::tar_stream;
use super::images::{answer_early, image_error};
use super::VchBackend;
use crate::build::context::Context;
use crate::build::host::{BuildHost, Out, StepContainer, StepError, StepExec, StepResult};
use crate::build::{dockerfile, ignore::Ignore, Request};
use crate::channel::SessionEvent;
use crate::images::digest::Digest;
use crate::images::manifest::ImageConfigFile;
use container_vm::channel::ExecRequest;
use container_vm::ops::OpsRequest;
use docker_api::async_trait;
use docker_api::backend::{ByteStream, ProgressStream};
use docker_api::models::*;
use docker_api::options::{BuildOptions, ContainerCreateOptions, PutArchiveOptions};
use docker_api::progress::{JsonError, JsonMessage};
use docker_api::{Backend as _, Error, Result};
use futures_util::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) async fn build(
    b: &VchBackend,
    opts: BuildOptions,
    body: ByteStream,
) -> Result<ProgressStream> {
    refuse_unsupported(&opts)?;
    for t in &opts.tags {
        crate::images::reference::Reference::parse(t)
            .map_err(|_| Error::invalid(format!("invalid reference format: {t:?}")))?;
    }
    let spool = b.inner.images.config().spool_dir.clone();
    let path = crate::build::context::spool(body, &spool)
        .await
        .map_err(Error::invalid)?;
    let dockerfile_name = opts
        .dockerfile
        .clone()
        .unwrap_or_else(|| "Dockerfile".into());
    let (context, dockerfile) = tokio::task::spawn_blocking(move || {
        let mut ctx = Context::open(path).map_err(Error::invalid)?;
        let text = ctx
            .read(&dockerfile_name)
            .or_else(|| {
                // dockerd also takes a lower-case `dockerfile` when `Dockerfile` is absent.
                (dockerfile_name == "Dockerfile")
                    .then(|| ctx.read("dockerfile"))
                    .flatten()
            })
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Cannot locate specified Dockerfile: {dockerfile_name}"
                ))
            })?;
        let text = String::from_utf8(text)
            .map_err(|_| Error::invalid("the Dockerfile is not UTF-8 text"))?;
        let parsed = dockerfile::parse(&text).map_err(Error::invalid)?;
        if let Some(ignore) = ctx.read(".dockerignore") {
            let ignore =
                Ignore::parse(&String::from_utf8_lossy(&ignore)).map_err(Error::invalid)?;
            ctx.apply_ignore(&ignore);
        }
        Ok::<_, Error>((ctx, parsed))
    })
    .await
    .map_err(super::internal)??;
    let memory_mb = memory_of(&opts)?;
    let host = Arc::new(VchBuildHost {
        b: b.clone(),
        spool,
        auth: opts.registry_config.clone(),
        memory_mb,
    });
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let out = Out(tx.clone());
    let req = Request {
        opts,
        dockerfile,
        context,
    };
    tokio::spawn(async move {
        if let Err(StepError { message, code }) = crate::build::build(host, req, out).await {
            let _ = tx.send(Ok(JsonMessage {
                error: Some(message.clone()),
                error_detail: Some(JsonError { code, message }),
                ..Default::default()
            }));
        }
    });
    answer_early(rx).await
}

/// Options a VM build cannot honour, refused by name (the CLI sends the rest at their
/// defaults; see docker-api routes/build.rs).
fn refuse_unsupported(opts: &BuildOptions) -> Result<()> {
    // `-m` is honoured (the step VMs' memory, see `memory_of`); `--memory-swap` of -1
    // ("unlimited") is what the CLI sends along with it.
    let honoured = |k: &str, v: &str| k == "memory" || (k == "memswap" && v == "-1");
    if let Some((k, v)) = opts.other.iter().find(|(k, v)| !honoured(k, v)) {
        let what = match k.as_str() {
            "version" => format!("BuildKit (version={v}) is not supported by this VCH; use the classic builder (DOCKER_BUILDKIT=0)"),
            "remote" => "building from a remote URL (remote) is not supported by this VCH: send the context".to_string(),
            "squash" => "--squash is not supported by this VCH".to_string(),
            other => format!("build option {other}={v} is not supported by this VCH"),
        };
        return Err(Error::invalid(what));
    }
    if let Some(n) = opts
        .network_mode
        .as_deref()
        .filter(|n| !matches!(*n, "default" | "bridge" | "none"))
    {
        return Err(Error::invalid(format!(
            "build --network={n} is not supported by this VCH (default, bridge, none)"
        )));
    }
    Ok(())
}

/// `docker build -m`: the memory of each step's VM, as `docker run -m` sets it.
fn memory_of(opts: &BuildOptions) -> Result<Option<i64>> {
    opts.other
        .iter()
        .find(|(k, _)| k == "memory")
        .map(|(_, v)| {
            v.parse::<i64>()
                .map_err(|_| Error::invalid(format!("invalid value for parameter memory: {v:?}")))
        })
        .transpose()
}

struct VchBuildHost {
    b: VchBackend,
    spool: PathBuf,
    /// `X-Registry-Config`: credentials for pulling FROM images, by registry.
    auth: std::collections::BTreeMap<String, docker_api::options::RegistryAuth>,
    memory_mb: Option<i64>,
}

impl VchBuildHost {
    /// The credentials the client sent for the registry of `image`, if any.
    fn auth_for(&self, image: &str) -> Option<crate::images::auth::RegistryAuth> {
        let r = crate::images::reference::Reference::parse(image).ok()?;
        let hub = r.domain() == "docker.io";
        self.auth
            .iter()
            .find(|(k, _)| {
                let host = k
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap_or_default();
                host == r.domain() || (hub && host.ends_with("docker.io"))
            })
            .map(|(_, a)| a.clone().into())
    }
}

fn step_err(e: Error) -> StepError {
    StepError::from(e.to_string())
}

impl VchBuildHost {
    async fn register_layer<R>(
        &self,
        layer: R,
        mut config: ImageConfigFile,
        parent: Option<&Digest>,
        key: &str,
    ) -> StepResult<Digest>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let images = &self.b.inner.images;
        let (diff, _pins) = images
            .ingest_layer(layer, "build step", &config.rootfs.diff_ids)
            .await
            .map_err(|e| e.to_string())?;
        config.rootfs.diff_ids.push(diff);
        Ok(images
            .register_step(&config, parent, key)
            .await
            .map_err(|e| e.to_string())?)
    }
}

#[async_trait]
impl BuildHost for VchBuildHost {
    async fn base_image(
        &self,
        name: &str,
        pull: bool,
        platform: Option<&str>,
        out: &Out,
    ) -> StepResult<Digest> {
        let images = &self.b.inner.images;
        if !pull {
            if let Ok(id) = images.resolve(name) {
                return Ok(id);
            }
        }
        let progress = out.clone();
        let auth = self.auth_for(name);
        images
            .pull(name, platform, auth.as_ref(), move |ev| {
                progress.message(ev.to_message())
            })
            .await
            .map_err(|e| image_error(&self.b.inner.t.url, e).to_string())?;
        Ok(images.resolve(name).map_err(|e| e.to_string())?)
    }

    async fn image_config(&self, id: &Digest) -> StepResult<ImageConfigFile> {
        let (_, file) = self
            .b
            .inner
            .images
            .image_config(&id.to_string())
            .await
            .map_err(|e| e.to_string())?;
        Ok(file)
    }

    fn cached(&self, parent: Option<&Digest>, key: &str) -> Option<Digest> {
        self.b.inner.images.cached_step(parent, key)
    }

    async fn register(
        &self,
        config: &ImageConfigFile,
        parent: Option<&Digest>,
        key: &str,
    ) -> StepResult<Digest> {
        Ok(self
            .b
            .inner
            .images
            .register_step(config, parent, key)
            .await
            .map_err(|e| e.to_string())?)
    }

    async fn add_layer(
        &self,
        layer: PathBuf,
        config: ImageConfigFile,
        parent: Option<&Digest>,
        key: &str,
    ) -> StepResult<Digest> {
        let f = tokio::fs::File::open(&layer)
            .await
            .map_err(|e| e.to_string())?;
        let r = self.register_layer(f, config, parent, key).await;
        let _ = tokio::fs::remove_file(&layer).await;
        r
    }

    async fn start(&self, image: &Digest, c: &StepContainer) -> StepResult<String> {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(c.cmd.clone()),
            entrypoint: Some(vec![]),
            env: Some(c.env.clone()),
            user: Some(c.user.clone()),
            working_dir: Some(c.workdir.clone()),
            // The image's health check has nothing to probe in a step container.
            healthcheck: Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                memory: self.memory_mb,
                network_mode: c.network.clone(),
                extra_hosts: Some(c.extra_hosts.clone()).filter(|h| !h.is_empty()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created =
            super::create::container_create(&self.b, ContainerCreateOptions::default(), body, true)
                .await
                .map_err(step_err)?;
        if let Err(e) = self.b.container_start(&created.id, None).await {
            self.remove(&created.id).await;
            return Err(step_err(e));
        }
        Ok(created.id)
    }

    async fn exec(&self, container: &str, e: &StepExec, out: &Out, quiet: bool) -> StepResult<i64> {
        let tr = self.b.tr();
        let id = tr
            .exec_create(
                container,
                ExecRequest {
                    cmd: e.argv.clone(),
                    env: e.env.clone(),
                    user: e.user.clone(),
                    workdir: e.workdir.clone(),
                    tty: false,
                    attach_stdin: false,
                    console_size: None,
                },
            )
            .map_err(|e| e.to_string())?;
        let started = tr.exec_start(&id, None).await.map_err(|e| e.to_string())?;
        let mut output = started.output;
        while let Some(ev) = output.next().await {
            match ev {
                SessionEvent::Out { data, .. } if !quiet => {
                    out.text(String::from_utf8_lossy(&data).into_owned())
                }
                SessionEvent::Exit {
                    error: Some(err), ..
                } if !quiet => out.text(format!("{err}\n")),
                _ => {}
            }
        }
        let state = tr.exec_inspect(&id).map_err(|e| e.to_string())?;
        Ok(state.exit.unwrap_or(-1))
    }

    async fn stat(&self, container: &str, path: &str) -> StepResult<Option<bool>> {
        match self.b.archive_stat(container, path).await {
            Ok(s) => Ok(Some(s.mode & (1 << 31) != 0)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(step_err(e)),
        }
    }

    async fn get(&self, container: &str, path: &str) -> StepResult<Vec<u8>> {
        let (_, mut s) = self
            .b
            .archive_get(container, path)
            .await
            .map_err(step_err)?;
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.map_err(step_err)?);
        }
        Ok(out)
    }

    async fn put(&self, container: &str, tar: PathBuf) -> StepResult<()> {
        let f = tokio::fs::File::open(&tar)
            .await
            .map_err(|e| e.to_string())?;
        // Full-size frames: each one costs a credit from the tether (see archive_put).
        let body = tokio_util::io::ReaderStream::with_capacity(f, container_vm::ops::CHUNK)
            .map(|r| r.map_err(|e| Error::internal(e.to_string())))
            .boxed();
        self.b
            .archive_put(
                container,
                PutArchiveOptions {
                    path: "/".into(),
                    no_overwrite_dir_non_dir: false,
                    copy_uid_gid: false,
                },
                body,
            )
            .await
            .map_err(step_err)
    }

    async fn commit(
        &self,
        container: &str,
        config: ImageConfigFile,
        parent: &Digest,
        key: &str,
    ) -> StepResult<Digest> {
        let (id, mut s) = self
            .b
            .guest_request(
                container,
                "docker build",
                &OpsRequest::Layer { pause: false },
            )
            .await
            .map_err(step_err)?;
        self.b.guest_answer(&id, &mut s).await.map_err(step_err)?;
        let layer = tokio_util::io::StreamReader::new(
            tar_stream(s).map(|r| r.map_err(|e| std::io::Error::other(e.to_string()))),
        );
        self.register_layer(layer, config, Some(parent), key).await
    }

    async fn remove(&self, container: &str) {
        if let Err(e) = self.b.tr().remove(container, true, true).await {
            tracing::warn!(container, error = %e, "removing a build step container");
        }
    }

    async fn tag(&self, id: &Digest, reference: &str) -> StepResult<()> {
        let (repo, tag) = split_tag(reference);
        self.b
            .inner
            .images
            .tag(&id.to_string(), repo, tag)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn spool_dir(&self) -> PathBuf {
        self.spool.clone()
    }
}

/// `repo[:tag]` split as `docker tag` takes it (a registry port is not a tag).
fn split_tag(reference: &str) -> (&str, Option<&str>) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (reference, None),
    }
}
