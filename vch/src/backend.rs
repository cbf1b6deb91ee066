//! The VCH's implementation of the Docker API backend: one thin surface that delegates.
//! Container state, lifecycle, supervision and recovery are the translator's
//! (`crate::translator`); the request-side translation of each area lives in one
//! module of `backend/` (create, exec, attach and logs, inspect and ps, images,
//! volumes, networks, system; top, stats, update, cp and export).

use crate::containers::Container;
use crate::images::store::ImageStore;
use crate::network::Networks;
use crate::target::Target;
use crate::translator::{vsphere::VspherePlatform, Translator};
use docker_api::backend::*;
use docker_api::models::*;
use docker_api::options::*;
use docker_api::{async_trait, Error, Filters, Result};
use futures_util::StreamExt;
use std::sync::Arc;
use vsphere_client::MoRef;

mod archive;
mod build;
mod commit;
mod create;
mod dns_directory;
mod exec;
mod guest_ops;
mod hosts;
mod images;
mod inspect;
mod io;
mod networks;
mod routing;
mod stats;
mod system;
mod top;
mod update;
mod volumes;

struct Inner {
    t: Arc<Target>,
    tr: Translator,
    /// The networks: port groups and address allocation.
    networks: Arc<Networks>,
    /// DNS, published ports and outbound traffic of the networks (None: no legs there).
    router: Option<Arc<crate::router::service::Router>>,
    volumes: Arc<crate::volumes::VolumeStore>,
    images: ImageStore,
}

#[derive(Clone)]
pub struct VchBackend {
    inner: Arc<Inner>,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(e)
}

/// What a removal gives back: the network addresses, anonymous volumes.
struct Resources {
    networks: Arc<Networks>,
    volumes: Arc<crate::volumes::VolumeStore>,
}

#[async_trait]
impl crate::translator::Resources for Resources {
    fn release_addresses(&self, interfaces: &[container_vm::spec::Interface]) {
        self.networks.release(interfaces);
    }
    async fn remove_volume(&self, name: &str) -> std::result::Result<(), String> {
        self.volumes.remove(name).await.map_err(|e| e.to_string())
    }
}

impl VchBackend {
    /// A vSphere error as the Docker client sees it (see translator::error).
    fn vs(&self, e: vsphere_client::Error) -> Error {
        crate::vsphere_errors::to_docker(&self.inner.t.url, e)
    }

    fn tr(&self) -> &Translator {
        &self.inner.tr
    }

    fn resolve(&self, key: &str) -> Result<String> {
        Ok(self.inner.tr.resolve(key)?)
    }

    fn get(&self, id: &str) -> Result<Container> {
        Ok(self.inner.tr.get(id)?)
    }

    fn bump(&self) {
        self.inner.tr.bump()
    }

    fn event(&self, id: &str, action: &str, extra: &[(&str, String)]) {
        self.inner.tr.event(id, action, extra)
    }

    fn network_event(&self, net: &crate::network::Network, action: &str, container: Option<&str>) {
        let ev = crate::translator::events::network_event(net.id(), net.name(), action, container);
        self.inner.tr.events().publish_message(ev);
    }

    pub async fn new(
        t: Target,
        images: ImageStore,
        channels: crate::channel::Channels,
        networks: Networks,
        starts: crate::start_journal::StartJournal,
    ) -> Result<VchBackend> {
        let template = crate::template::ensure(&t, &channels.uri)
            .await
            .map_err(|e| internal(format!("template VM: {e}")))?;
        let volumes = crate::volumes::VolumeStore::open(&t)
            .await
            .map_err(|e| internal(format!("volume store: {e}")))?;
        let t = Arc::new(t);
        let (networks, volumes) = (Arc::new(networks), Arc::new(volumes));
        let platform = VspherePlatform {
            t: t.clone(),
            template: crate::supervisor::TemplateSupervisor::new(template, channels.uri.clone()),
        };
        let tr = Translator::new(
            Arc::new(platform),
            Arc::new(channels.clone()),
            Arc::new(starts),
            Arc::new(Resources {
                networks: networks.clone(),
                volumes: volumes.clone(),
            }),
        );
        let loaded = tr.load().await?;
        // Addresses of containers that exist are taken before any new one is handed out.
        networks.rebuild(loaded.iter().map(|c| &c.spec));
        let router = routing::start(&t, &tr, &networks).await;
        // Recovery is the normal start path (see translator::recovery).
        tr.adopt(loaded).await;
        let b = VchBackend {
            inner: Arc::new(Inner {
                t,
                tr,
                networks,
                router,
                volumes,
                images,
            }),
        };
        // Containers that kept running while the VCH was away get their ports back.
        routing::republish_running(&b).await;
        Ok(b)
    }
}

#[async_trait]
impl Backend for VchBackend {
    async fn version(&self) -> Result<SystemVersion> {
        system::version(self).await
    }

    async fn info(&self) -> Result<SystemInfo> {
        system::info(self).await
    }

    async fn events(
        &self,
        opts: EventsOptions,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<EventMessage>>> {
        Ok(self
            .tr()
            .events()
            .subscribe(opts.filters, opts.since)
            .map(Ok)
            .boxed())
    }

    // --- images (backend/images.rs) ---
    async fn image_pull(&self, opts: PullOptions) -> Result<ProgressStream> {
        images::image_pull(self, opts).await
    }
    async fn image_push(&self, name: &str, opts: PushOptions) -> Result<ProgressStream> {
        images::image_push(self, name, opts).await
    }
    async fn image_list(&self, opts: ImageListOptions) -> Result<Vec<ImageSummary>> {
        images::image_list(self, opts).await
    }
    async fn image_inspect(&self, name: &str, manifests: bool) -> Result<ImageInspect> {
        images::image_inspect(self, name, manifests).await
    }
    async fn image_tag(&self, name: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        images::image_tag(self, name, repo, tag).await
    }
    async fn image_history(
        &self,
        name: &str,
        platform: Option<String>,
    ) -> Result<Vec<HistoryResponseItem>> {
        images::image_history(self, name, platform).await
    }
    async fn image_remove(
        &self,
        name: &str,
        opts: ImageRemoveOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        images::image_remove(self, name, opts).await
    }
    async fn image_save(&self, names: Vec<String>, platforms: Vec<String>) -> Result<ByteStream> {
        images::image_save(self, names, platforms).await
    }
    async fn image_load(&self, opts: ImageLoadOptions, body: ByteStream) -> Result<ProgressStream> {
        images::image_load(self, opts, body).await
    }
    async fn image_prune(&self, filters: Filters) -> Result<ImagePruneResponse> {
        images::image_prune(self, filters).await
    }
    async fn image_import(&self, opts: ImportOptions, body: ByteStream) -> Result<ProgressStream> {
        images::image_import(self, opts, body).await
    }
    async fn distribution_inspect(
        &self,
        name: &str,
        auth: Option<RegistryAuth>,
    ) -> Result<DistributionInspect> {
        images::distribution_inspect(self, name, auth).await
    }

    // --- containers: create (backend/create.rs), state (the translator) ---
    async fn container_create(
        &self,
        opts: ContainerCreateOptions,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        create::container_create(self, opts, body, false).await
    }

    async fn container_start(&self, id: &str, _detach_keys: Option<String>) -> Result<()> {
        let id = self.resolve(id)?;
        if self.get(&id)?.status == crate::containers::Status::Running {
            return Ok(self.tr().start(&id).await?); // 304, nothing to publish
        }
        // Ports first: a port conflict fails the start, as with dockerd.
        routing::publish(self, &id).await?;
        let started = self.tr().start(&id).await;
        if started.is_err() {
            if let Some(r) = &self.inner.router {
                r.ports.unpublish(&id);
            }
        }
        Ok(started?)
    }

    async fn container_attach(&self, id: &str, opts: AttachOptions) -> Result<AttachStreams> {
        io::container_attach(self, id, opts).await
    }

    async fn container_wait(&self, id: &str, condition: WaitCondition) -> Result<WaitFuture> {
        let done = self.tr().wait(id, condition)?;
        Ok(Box::pin(async move {
            Ok(ContainerWaitResponse {
                status_code: done.await?,
                error: None,
            })
        }))
    }

    async fn container_logs(&self, id: &str, opts: LogsOptions) -> Result<LogStream> {
        io::container_logs(self, id, opts).await
    }

    async fn container_stop(&self, id: &str, opts: StopOptions) -> Result<()> {
        Ok(self
            .tr()
            .stop(id, opts.signal.as_deref(), opts.timeout)
            .await?)
    }

    async fn container_kill(&self, id: &str, signal: Option<String>) -> Result<()> {
        Ok(self.tr().kill(id, signal.as_deref()).await?)
    }

    async fn container_restart(&self, id: &str, opts: StopOptions) -> Result<()> {
        Ok(self
            .tr()
            .restart(id, opts.signal.as_deref(), opts.timeout)
            .await?)
    }

    async fn container_rename(&self, id: &str, new_name: &str) -> Result<()> {
        Ok(self.tr().rename(id, new_name).await?)
    }

    async fn container_pause(&self, id: &str) -> Result<()> {
        Ok(self.tr().pause(id).await?)
    }

    async fn container_unpause(&self, id: &str) -> Result<()> {
        Ok(self.tr().unpause(id).await?)
    }

    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        Ok(self.tr().resize(id, height, width).await?)
    }

    async fn build(&self, opts: BuildOptions, context: ByteStream) -> Result<ProgressStream> {
        build::build(self, opts, context).await
    }

    async fn container_remove(&self, id: &str, opts: ContainerRemoveOptions) -> Result<()> {
        Ok(self.tr().remove(id, opts.force, opts.volumes).await?)
    }

    async fn auth(&self, config: RegistryAuth) -> Result<SystemAuthResponse> {
        images::auth(self, config).await
    }

    async fn data_usage(&self, opts: DataUsageOptions) -> Result<SystemDataUsageResponse> {
        system::data_usage(self, opts).await
    }

    async fn container_prune(
        &self,
        filters: docker_api::Filters,
    ) -> Result<ContainerPruneResponse> {
        let deleted = self.tr().prune_containers(&filters).await?;
        // A container's scratch disk is thin-provisioned on the datastore; its used size
        // is not asked of vCenter here, so nothing is claimed as reclaimed.
        Ok(ContainerPruneResponse {
            containers_deleted: Some(deleted),
            space_reclaimed: Some(0),
        })
    }

    async fn container_inspect(&self, id: &str, size: bool) -> Result<ContainerInspectResponse> {
        inspect::container_inspect(self, id, size).await
    }

    async fn container_list(&self, opts: ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        inspect::container_list(self, opts).await
    }

    // --- exec (backend/exec.rs) ---
    async fn exec_create(&self, container: &str, config: ExecConfig) -> Result<IdResponse> {
        exec::exec_create(self, container, config).await
    }
    async fn exec_start(&self, id: &str, config: ExecStartConfig) -> Result<AttachStreams> {
        exec::exec_start(self, id, config).await
    }
    async fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        exec::exec_resize(self, id, height, width).await
    }
    async fn exec_inspect(&self, id: &str) -> Result<ExecInspectResponse> {
        exec::exec_inspect(self, id).await
    }

    // --- volumes (backend/volumes.rs) ---
    async fn volume_create(&self, opts: VolumeCreateOptions) -> Result<Volume> {
        volumes::volume_create(self, opts).await
    }
    async fn volume_list(&self, filters: Filters) -> Result<VolumeListResponse> {
        volumes::volume_list(self, filters).await
    }
    async fn volume_inspect(&self, name: &str) -> Result<Volume> {
        volumes::volume_inspect(self, name).await
    }
    async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        volumes::volume_remove(self, name, force).await
    }
    async fn volume_prune(&self, filters: Filters) -> Result<VolumePruneResponse> {
        volumes::volume_prune(self, filters).await
    }

    // --- networks (backend/networks.rs) ---
    async fn network_list(&self, filters: Filters) -> Result<Vec<Network>> {
        networks::network_list(self, filters).await
    }
    async fn network_inspect(
        &self,
        id: &str,
        verbose: bool,
        scope: Option<String>,
    ) -> Result<Network> {
        networks::network_inspect(self, id, verbose, scope).await
    }
    async fn network_create(&self, req: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        networks::network_create(self, req).await
    }
    async fn network_connect(&self, id: &str, req: NetworkConnectRequest) -> Result<()> {
        networks::network_connect(self, id, req).await
    }
    async fn network_disconnect(&self, id: &str, req: NetworkDisconnectRequest) -> Result<()> {
        networks::network_disconnect(self, id, req).await
    }
    async fn network_remove(&self, id: &str) -> Result<()> {
        networks::network_remove(self, id).await
    }
    async fn network_prune(&self, filters: Filters) -> Result<NetworkPruneResponse> {
        networks::network_prune(self, filters).await
    }

    // --- container operations (top, stats, update, cp, export) ---
    async fn container_top(
        &self,
        id: &str,
        ps_args: Option<String>,
    ) -> Result<ContainerTopResponse> {
        self.top(id, ps_args).await
    }
    async fn container_stats(
        &self,
        id: &str,
        opts: StatsOptions,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<ContainerStatsResponse>>> {
        self.stats(id, opts).await
    }
    async fn container_update(
        &self,
        id: &str,
        body: ContainerUpdateBody,
    ) -> Result<ContainerUpdateResponse> {
        self.update(id, body).await
    }
    async fn container_archive_stat(&self, id: &str, path: &str) -> Result<PathStat> {
        self.archive_stat(id, path).await
    }
    async fn container_archive_get(&self, id: &str, path: &str) -> Result<(PathStat, ByteStream)> {
        self.archive_get(id, path).await
    }
    async fn container_archive_put(
        &self,
        id: &str,
        opts: PutArchiveOptions,
        body: ByteStream,
    ) -> Result<()> {
        self.archive_put(id, opts, body).await
    }
    async fn container_export(&self, id: &str) -> Result<ByteStream> {
        self.export(id).await
    }
    async fn container_changes(&self, id: &str) -> Result<Vec<FilesystemChange>> {
        commit::changes(self, id).await
    }
    async fn container_commit(
        &self,
        opts: CommitOptions,
        config: Option<ContainerConfig>,
    ) -> Result<IdResponse> {
        commit::commit(self, opts, config).await
    }
}

/// Docker reports which VM backs a container nowhere; admins find it by this name.
pub fn vm_moref(b: &VchBackend, id: &str) -> Option<MoRef> {
    b.inner.tr.get(id).ok().map(|c| c.vm)
}
