//! The vSphere side of a VCH: connecting to vCenter (or starting the embedded simulator)
//! and finding or creating what the VCH owns there: its resource pool, VM folder,
//! directory on the datastore and the boot disk of its container VMs.
//!
//! The embedded simulator is behind the default-on cargo feature `embedded`; a build
//! without it reaches only a real vCenter (`--target`).

use std::path::PathBuf;
use vsphere_client::spec::Allocation;
use vsphere_client::{Client, MoRef, TlsTrust};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("vSphere: {0}")]
    Vsphere(#[from] vsphere_client::Error),
    #[error("embedded simulator: {0}")]
    Simulator(String),
    #[error("{0}")]
    Config(String),
    #[error("boot disk: {0}")]
    BootDisk(String),
}

/// How to reach vCenter. Without `url`, the embedded simulator is started.
#[derive(Debug, Clone, Default)]
pub struct TargetConfig {
    pub url: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub thumbprint: Option<String>,
    pub ca_pem: Option<Vec<u8>>,
    pub datacenter: Option<String>,
    pub compute_resource: Option<String>,
    pub datastore: Option<String>,
    /// The VCH's name: its resource pool, VM folder and datastore directory.
    pub name: String,
    pub state_dir: PathBuf,
    /// A prebuilt boot disk (flat ext4 image from `appliance-image`, e.g. with the static
    /// tether) to upload; without it the boot disk is built from the tether binary.
    pub boot_image: Option<PathBuf>,
    /// The tether binary to build the boot disk from (without `boot_image`); default:
    /// the one next to this executable (see `tether_binary`).
    pub tether: Option<PathBuf>,
}

/// Everything the VCH placed in vSphere, resolved once at start.
pub struct Target {
    pub client: Client,
    /// Keeps the embedded simulator alive for the daemon's lifetime.
    #[cfg(feature = "embedded")]
    pub embedded: Option<vcenter_sim::SimServer>,
    /// The embedded simulator's sandbox runtime, where the VMs' NICs and bridges are.
    #[cfg(feature = "embedded")]
    pub sandbox: Option<std::sync::Arc<vcenter_sim::SandboxRuntime>>,
    pub datacenter: MoRef,
    pub datacenter_name: String,
    pub datastore_name: String,
    /// The cluster (or standalone host) the VCH's pool is in: its capacity is the VCH's.
    pub compute_resource: MoRef,
    pub pool: MoRef,
    pub folder: MoRef,
    pub name: String,
    /// `[ds] <name>/boot/vch-boot.vmdk`, attached to every container VM at scsi0:0.
    pub boot_disk: String,
    pub url: String,
}

#[cfg(feature = "embedded")]
async fn start_embedded(
    cfg: &TargetConfig,
) -> Result<
    (
        vcenter_sim::SimServer,
        Client,
        Option<std::sync::Arc<vcenter_sim::SandboxRuntime>>,
    ),
    TargetError,
> {
    let dir = cfg.state_dir.join("vcenter-sim");
    use std::sync::Arc;
    let sandbox = match vcenter_sim::SandboxRuntime::supported() {
        Ok(()) => Some(Arc::new(vcenter_sim::SandboxRuntime::new(dir.join("run")))),
        Err(why) => {
            tracing::warn!("containers will not run: {why}");
            None
        }
    };
    let runtime: Arc<dyn vcenter_sim::HostRuntime> = match &sandbox {
        Some(s) => s.clone(),
        None => Arc::new(vcenter_sim::StateOnlyRuntime),
    };
    let sim_cfg = vcenter_sim::SimConfig::embedded(&dir)
        .map_err(|e| TargetError::Simulator(format!("{}: {e}", dir.display())))?;
    let (user, password) = (sim_cfg.username.clone(), sim_cfg.password.clone());
    let server = vcenter_sim::SimServer::start(
        sim_cfg,
        "127.0.0.1:0".parse().expect("static address"),
        runtime,
    )
    .await
    .map_err(|e| TargetError::Simulator(e.to_string()))?;
    // Over the real wire, with the simulator's certificate pinned: no shortcut.
    let client = Client::connect(
        &server.url,
        TlsTrust::Thumbprint(server.sha256_thumbprint.clone()),
    )
    .await?;
    client.login(&user, &password).await?;
    // vSphere admins (and tests) reach the embedded vCenter with these.
    let info = serde_json::json!({
        "url": server.url, "username": user, "password": password,
        "sha1": server.sha1_thumbprint, "sha256": server.sha256_thumbprint,
    });
    // It holds the password: 0600, like the key (see vcenter_sim::private).
    let info_path = dir.join("sim-info.json");
    if let Err(e) = vcenter_sim::private::write_private(&info_path, info.to_string().as_bytes()) {
        tracing::warn!(path = %info_path.display(), error = %e, "cannot write sim-info.json");
    }
    tracing::info!(url = %server.url, thumbprint = %server.sha1_thumbprint, "embedded vCenter simulator");
    Ok((server, client, sandbox))
}

impl Target {
    pub async fn open(cfg: &TargetConfig) -> Result<Target, TargetError> {
        #[cfg(feature = "embedded")]
        let (mut embedded, mut sandbox) = (None, None);
        let (client, url) = match &cfg.url {
            #[cfg(feature = "embedded")]
            None => {
                let (server, client, rt) = start_embedded(cfg).await?;
                let url = server.url.clone();
                embedded = Some(server);
                sandbox = rt;
                (client, url)
            }
            #[cfg(not(feature = "embedded"))]
            None => {
                return Err(TargetError::Config(
                    "built without the embedded simulator: give --target URL".into(),
                ))
            }
            Some(url) => {
                let trust = match (&cfg.thumbprint, &cfg.ca_pem) {
                    (Some(t), _) => TlsTrust::Thumbprint(t.clone()),
                    (None, Some(ca)) => TlsTrust::CaPem(ca.clone()),
                    (None, None) => {
                        return Err(TargetError::Config(
                            "--target needs --thumbprint or --ca-file to trust the server".into(),
                        ))
                    }
                };
                let client = Client::connect(url, trust).await?;
                let user = cfg.user.clone().ok_or_else(|| {
                    TargetError::Config("--user is required with --target".into())
                })?;
                client
                    .login(&user, cfg.password.as_deref().unwrap_or_default())
                    .await?;
                (client, url.clone())
            }
        };
        let (dc_name, dc) = client.datacenter(cfg.datacenter.as_deref()).await?;
        let (ds_name, _) = client.datastore(&dc, cfg.datastore.as_deref()).await?;
        let (cr_name, cr) = client
            .compute_resource(&dc, cfg.compute_resource.as_deref())
            .await?;
        let root_pool = client
            .property(&cr, "resourcePool")
            .await?
            .and_then(|v| v.as_moref().cloned())
            .ok_or_else(|| {
                TargetError::Config(format!("compute resource {cr_name} has no resource pool"))
            })?;
        let pool = match client.find_child(&root_pool, &cfg.name).await? {
            Some(p) => p,
            None => {
                client
                    .create_resource_pool(
                        &root_pool,
                        &cfg.name,
                        &Allocation::default(),
                        &Allocation::default(),
                    )
                    .await?
            }
        };
        let vm_root = client
            .must_find("VM folder", &format!("{dc_name}/vm"))
            .await?;
        let folder = match client.find_child(&vm_root, &cfg.name).await? {
            Some(f) => f,
            None => client.create_folder(&vm_root, &cfg.name).await?,
        };
        let t = Target {
            client,
            #[cfg(feature = "embedded")]
            embedded,
            #[cfg(feature = "embedded")]
            sandbox,
            datacenter: dc,
            datacenter_name: dc_name,
            datastore_name: ds_name,
            compute_resource: cr,
            pool,
            folder,
            name: cfg.name.clone(),
            boot_disk: String::new(),
            url,
        };
        let boot_disk = t
            .install_boot_disk(
                &cfg.state_dir,
                cfg.boot_image.as_deref(),
                cfg.tether.as_deref(),
            )
            .await?;
        Ok(Target { boot_disk, ..t })
    }

    /// `[ds] <name>/<rel>`
    pub fn ds_path(&self, rel: &str) -> String {
        format!("[{}] {}/{rel}", self.datastore_name, self.name)
    }

    /// Uploads the boot disk unless the datastore already has this one: the prebuilt
    /// `image`, or else one built from the tether binary (`tether`, or the one next to
    /// this executable).
    async fn install_boot_disk(
        &self,
        state_dir: &std::path::Path,
        image: Option<&std::path::Path>,
        tether: Option<&std::path::Path>,
    ) -> Result<String, TargetError> {
        let boot_err = |e: &dyn std::fmt::Display| TargetError::BootDisk(e.to_string());
        let source = match image {
            Some(p) => {
                appliance_image::check_boot_image(p).map_err(|e| boot_err(&e))?;
                p.to_path_buf()
            }
            None => crate::tether_binary::locate(tether).map_err(|e| boot_err(&e))?,
        };
        let meta = std::fs::metadata(&source)
            .map_err(|e| boot_err(&format_args!("{}: {e}", source.display())))?;
        // Size and mtime name the disk, so a new build (or image) is uploaded beside the
        // old one, which the VMs created from it keep using.
        let stamp = format!(
            "{}{}-{}",
            if image.is_some() { "img-" } else { "" },
            meta.len(),
            meta.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
        let name = format!("vch-boot-{stamp}");
        let rel = format!("{}/boot/{name}.vmdk", self.name);
        let present = self
            .client
            .download_bytes(
                &self.datacenter_name,
                &self.datastore_name,
                &rel,
                Some((0, Some(0))),
            )
            .await
            .is_ok();
        if !present {
            let build = state_dir.join("boot");
            let (extent, descriptor) = match image {
                Some(img) => (
                    img.to_path_buf(),
                    appliance_image::flat_descriptor(&format!("{name}-flat.vmdk"), meta.len()),
                ),
                None => {
                    let disk = appliance_image::build_boot_disk(&source, &build, &name)
                        .map_err(|e| boot_err(&e))?;
                    let text =
                        std::fs::read_to_string(&disk.descriptor).map_err(|e| boot_err(&e))?;
                    (disk.extent, text)
                }
            };
            let dir = self.ds_path("boot");
            if let Err(e) = self
                .client
                .make_directory(&self.datacenter, &dir, true)
                .await
            {
                if e.fault_type() != Some("FileAlreadyExists") {
                    return Err(e.into());
                }
            }
            // The extent first: a descriptor on the datastore means the disk is complete.
            let extent_bytes = std::fs::read(&extent)
                .map_err(|e| boot_err(&format_args!("{}: {e}", extent.display())))?;
            for (bytes, remote) in [
                (extent_bytes, format!("{}/boot/{name}-flat.vmdk", self.name)),
                (descriptor.into_bytes(), rel.clone()),
            ] {
                self.client
                    .upload_bytes(&self.datacenter_name, &self.datastore_name, &remote, bytes)
                    .await?;
            }
            let _ = std::fs::remove_dir_all(&build);
        }
        Ok(self.ds_path(&format!("boot/{name}.vmdk")))
    }
}

impl Target {
    /// Where the VCH takes its leg on its networks (the router's container side): the
    /// embedded simulator's network namespace. None for a real vCenter (the appliance's
    /// own NICs, not built yet) or a simulator that cannot run VMs.
    pub fn network_legs(&self) -> Option<std::sync::Arc<dyn crate::router::Legs>> {
        #[cfg(feature = "embedded")]
        if let Some(rt) = &self.sandbox {
            return match rt.network() {
                Ok(net) => Some(std::sync::Arc::new(SimLegs(net))),
                Err(e) => {
                    tracing::warn!("the simulator's network namespace: {e}");
                    None
                }
            };
        }
        None
    }
}

#[cfg(feature = "embedded")]
struct SimLegs(std::sync::Arc<vcenter_sim::sandbox::net::SimNet>);

#[cfg(feature = "embedded")]
impl crate::router::Legs for SimLegs {
    fn netns_path(&self) -> PathBuf {
        self.0.netns_path()
    }
    fn bridge(&self, portgroup: &str) -> std::io::Result<String> {
        self.0.ensure_bridge(portgroup)
    }
}
