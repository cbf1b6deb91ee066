//! `vch`: the Virtual Container Host daemon.
//!
//!     vch serve -H unix:///run/vch/docker.sock --state-dir /var/lib/vch
//!
//! Without `--target` it starts the embedded vCenter simulator (cargo feature `embedded`,
//! on by default) and talks to it over HTTPS SOAP with its certificate pinned. The
//! container VMs' boot disk holds the separate `tether` binary (`--tether`, default: next
//! to this executable), or is a prebuilt image (`--boot-image`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use vch::backend::VchBackend;
use vch::images::store::{ImageStore, StoreConfig};
use vch::target::{Target, TargetConfig};

#[derive(Parser)]
#[command(
    name = "vch",
    about = "Virtual Container Host: the Docker API on vSphere"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon.
    Serve(Serve),
}

#[derive(Parser)]
struct Serve {
    /// TOML file with the same settings (keys are the long flag names, e.g.
    /// `state-dir = "/var/lib/vch"`, `host = ["unix:///run/vch/docker.sock"]`); flags given
    /// on the command line win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listeners: unix:///path, tcp://127.0.0.1:2375 (repeatable).
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/vch/docker.sock"
    )]
    hosts: Vec<String>,
    /// Allow plain TCP on non-loopback addresses.
    #[arg(long)]
    force_insecure_tcp: bool,
    /// Serve tcp:// listeners over TLS with this certificate (PEM)...
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// ...and key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// With --tlsverify: clients must present a certificate signed by this CA.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Require client certificates (dockerd's --tlsverify); needs --tls-ca.
    #[arg(long, requires = "tls_ca")]
    tlsverify: bool,
    #[arg(long, default_value = "/var/lib/vch")]
    state_dir: PathBuf,
    /// Registries spoken to over plain HTTP (host:port, repeatable).
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// vCenter SDK URL (https://host/sdk); without it the embedded simulator runs.
    #[arg(long)]
    target: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// SHA-1 or SHA-256 thumbprint of the vCenter certificate.
    #[arg(long)]
    thumbprint: Option<String>,
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[arg(long)]
    datacenter: Option<String>,
    #[arg(long)]
    compute_resource: Option<String>,
    #[arg(long)]
    datastore: Option<String>,
    /// Where container VMs' control serial ports connect (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    attach_addr: std::net::SocketAddr,
    /// Name of this VCH: its resource pool, VM folder and datastore directory.
    #[arg(long, default_value = "vch")]
    name: String,
    /// Port group of the bridge network (found, or created on the cluster's hosts);
    /// default: one named after the VCH.
    #[arg(long)]
    bridge_network: Option<String>,
    /// The bridge network's IPv4 subnet, containers get addresses from it.
    #[arg(long, default_value = vch::network::DEFAULT_SUBNET)]
    bridge_subnet: String,
    /// The bridge network's gateway; default: the subnet's first address.
    #[arg(long)]
    bridge_gateway: Option<String>,
    /// Boot disk of the container VMs: a flat image built by `appliance-image` (e.g. from
    /// the static tether), uploaded as is. Default: built from the tether binary.
    #[arg(long)]
    boot_image: Option<PathBuf>,
    /// The tether binary the boot disk is built from (without --boot-image). Default: the
    /// `tether` executable next to this one (`cargo build --release -p tether`).
    #[arg(long, env = vch::tether_binary::ENV)]
    tether: Option<PathBuf>,
}

/// The config file: every key optional, unknown keys refused (a typo must not be ignored).
#[derive(serde::Deserialize, Default, Debug)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    host: Option<Vec<String>>,
    force_insecure_tcp: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    tlsverify: Option<bool>,
    state_dir: Option<PathBuf>,
    insecure_registry: Option<Vec<String>>,
    target: Option<String>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    thumbprint: Option<String>,
    ca_file: Option<PathBuf>,
    datacenter: Option<String>,
    compute_resource: Option<String>,
    datastore: Option<String>,
    attach_addr: Option<std::net::SocketAddr>,
    name: Option<String>,
    bridge_network: Option<String>,
    bridge_subnet: Option<String>,
    bridge_gateway: Option<String>,
    boot_image: Option<PathBuf>,
    tether: Option<PathBuf>,
}

/// Applies the config file under the flags (and environment variables) actually given.
fn apply_config(s: &mut Serve, f: FileConfig, m: &clap::ArgMatches) {
    use clap::parser::ValueSource;
    let from_cli = |id: &str| {
        matches!(
            m.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    macro_rules! take {
        ($field:ident, $id:literal) => {
            if !from_cli($id) {
                if let Some(v) = f.$field {
                    s.$field = v.into();
                }
            }
        };
    }
    if !from_cli("hosts") {
        if let Some(v) = f.host {
            s.hosts = v;
        }
    }
    if !from_cli("insecure_registries") {
        if let Some(v) = f.insecure_registry {
            s.insecure_registries = v;
        }
    }
    take!(force_insecure_tcp, "force_insecure_tcp");
    take!(tls_cert, "tls_cert");
    take!(tls_key, "tls_key");
    take!(tls_ca, "tls_ca");
    take!(tlsverify, "tlsverify");
    take!(state_dir, "state_dir");
    take!(target, "target");
    take!(user, "user");
    take!(password_file, "password_file");
    take!(thumbprint, "thumbprint");
    take!(ca_file, "ca_file");
    take!(datacenter, "datacenter");
    take!(compute_resource, "compute_resource");
    take!(datastore, "datastore");
    take!(attach_addr, "attach_addr");
    take!(name, "name");
    take!(bridge_network, "bridge_network");
    take!(bridge_subnet, "bridge_subnet");
    take!(bridge_gateway, "bridge_gateway");
    take!(boot_image, "boot_image");
    take!(tether, "tether");
}

/// Parses the command line and merges the config file it names.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Cmd, String> {
    use clap::{CommandFactory, FromArgMatches};
    let m = Cli::command()
        .try_get_matches_from(args)
        .map_err(|e| e.to_string())?;
    let cli = Cli::from_arg_matches(&m).map_err(|e| e.to_string())?;
    match cli.cmd {
        Cmd::Serve(mut s) => {
            if let Some(path) = s.config.clone() {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let f: FileConfig =
                    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                let sub = m.subcommand_matches("serve").ok_or("serve: no arguments")?;
                apply_config(&mut s, f, sub);
            }
            Ok(Cmd::Serve(s))
        }
    }
}

fn listener(h: &str, s: &Serve) -> Result<docker_api::Listener, String> {
    if let Some(p) = h.strip_prefix("unix://") {
        return Ok(docker_api::Listener::Unix(PathBuf::from(p)));
    }
    if let Some(a) = h.strip_prefix("tcp://") {
        let addr = a
            .parse()
            .map_err(|e| format!("bad address in -H {h}: {e}"))?;
        return Ok(match (&s.tls_cert, &s.tls_key) {
            (Some(cert), Some(key)) => docker_api::Listener::Tls {
                addr,
                cert: cert.clone(),
                key: key.clone(),
                client_ca: if s.tlsverify { s.tls_ca.clone() } else { None },
            },
            _ => docker_api::Listener::Tcp {
                addr,
                force: s.force_insecure_tcp,
            },
        });
    }
    Err(format!("-H {h}: use unix:///path or tcp://host:port"))
}

async fn serve(s: Serve) -> Result<(), String> {
    // The boot disk's tether, found before anything is created: a missing one is a clear
    // error at once, not after the simulator started.
    let tether = match &s.boot_image {
        Some(_) => None,
        None => Some(vch::tether_binary::locate(s.tether.as_deref())?),
    };
    // 0700, also when it already exists from an older version that left it open: it holds
    // the simulator's key and password, the image store and (below it) container logs.
    std::fs::create_dir_all(&s.state_dir)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&s.state_dir, std::fs::Permissions::from_mode(0o700))
        })
        .map_err(|e| format!("{}: {e}", s.state_dir.display()))?;
    let password = match &s.password_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let ca_pem = match &s.ca_file {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    // Checked before anything is created in vSphere.
    let bridge_cfg = vch::network::BridgeConfig::new(
        s.bridge_network.as_deref().unwrap_or(&s.name),
        &s.bridge_subnet,
        s.bridge_gateway.as_deref(),
    )?;
    let cfg = TargetConfig {
        url: s.target.clone(),
        user: s.user.clone(),
        password,
        thumbprint: s.thumbprint.clone(),
        ca_pem,
        datacenter: s.datacenter.clone(),
        compute_resource: s.compute_resource.clone(),
        datastore: s.datastore.clone(),
        name: s.name.clone(),
        state_dir: s.state_dir.clone(),
        boot_image: s.boot_image.clone(),
        tether,
    };
    let target = Target::open(&cfg).await.map_err(|e| e.to_string())?;
    tracing::info!(vcenter = %target.url, pool = %target.pool, "connected");
    let mut store_cfg = StoreConfig::new(format!("{}/images", s.name));
    store_cfg.datacenter = Some(target.datacenter_name.clone());
    store_cfg.datastore = Some(target.datastore_name.clone());
    store_cfg.insecure_registries = s.insecure_registries.clone();
    store_cfg.spool_dir = s.state_dir.join("spool");
    let images = ImageStore::open(target.client.clone(), store_cfg)
        .await
        .map_err(|e| e.to_string())?;
    // The VMs' serial port 1 connects here. With the embedded simulator the VMs run on
    // this machine; with vCenter, --attach-addr must be reachable from the ESXi hosts.
    let channels = vch::channel::Channels::listen(s.attach_addr)
        .await
        .map_err(|e| format!("attach listener {}: {e}", s.attach_addr))?;
    let networks = vch::network::Networks::open(&target, bridge_cfg).await?;
    let starts = vch::start_journal::StartJournal::open(&s.state_dir)
        .map_err(|e| format!("start journal in {}: {e}", s.state_dir.display()))?;
    let backend = VchBackend::new(target, images, channels, networks, starts)
        .await
        .map_err(|e| e.to_string())?;
    let mut builder = docker_api::Server::builder().backend(Arc::new(backend));
    for h in &s.hosts {
        if let Some(p) = h.strip_prefix("unix://") {
            if let Some(dir) = std::path::Path::new(p).parent() {
                let _ = std::fs::create_dir_all(dir);
            }
        }
        builder = builder.listen(listener(h, &s)?);
    }
    let server = builder.bind().await.map_err(|e| e.to_string())?;
    for h in &s.hosts {
        println!("DOCKER_HOST={h}");
    }
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    server.serve(shutdown).await.map_err(|e| e.to_string())
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cmd = match parse(std::env::args()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // Belt and braces for "private state": whatever the daemon or the embedded simulator
    // creates (state files, datastore files, container logs) is readable by this user
    // only, even where the code that creates it forgets to say so. Set before any thread
    // exists. The Docker socket gets its 0660 explicitly (docker group convention).
    // SAFETY: umask only changes the process's file creation mask.
    unsafe { libc::umask(0o077) };
    raise_fd_limit();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let r = rt.block_on(async {
        match cmd {
            Cmd::Serve(s) => serve(s).await,
        }
    });
    if let Err(e) = r {
        eprintln!("vch: {e}");
        std::process::exit(1);
    }
}

/// Raises the soft limit on open files to the hard one (as Go's runtime does for dockerd):
/// every running container VM holds a few descriptors (serial ports, guestinfo channel),
/// and every client connection one, so the usual soft 1024 runs out at a few hundred
/// containers. The connection caps (docker-api) stay far below it.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bridge_settings_come_from_flags_or_the_config_file() {
        let Cmd::Serve(s) = parse(args(&["vch", "serve"])).unwrap();
        assert_eq!(s.bridge_network, None);
        assert_eq!(s.bridge_subnet, "172.17.0.0/16");
        let dir = std::env::temp_dir().join(format!("vch-cfg-net-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("vch.toml");
        std::fs::write(
            &f,
            "bridge-network = \"containers\"\nbridge-subnet = \"10.20.0.0/16\"\nbridge-gateway = \"10.20.0.254\"\n",
        )
        .unwrap();
        let p = f.to_str().unwrap();
        let Cmd::Serve(s) = parse(args(&["vch", "serve", "--config", p])).unwrap();
        assert_eq!(s.bridge_network.as_deref(), Some("containers"));
        assert_eq!(s.bridge_subnet, "10.20.0.0/16");
        assert_eq!(s.bridge_gateway.as_deref(), Some("10.20.0.254"));
        let Cmd::Serve(s) = parse(args(&[
            "vch",
            "serve",
            "--config",
            p,
            "--bridge-subnet",
            "10.30.0.0/24",
        ]))
        .unwrap();
        assert_eq!(s.bridge_subnet, "10.30.0.0/24");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_tether_comes_from_the_flag_the_environment_or_the_config_file() {
        let dir = std::env::temp_dir().join(format!("vch-cfg-tether-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("vch.toml");
        std::fs::write(&f, "tether = \"/from/file\"\n").unwrap();
        let p = f.to_str().unwrap();
        // SAFETY: no other test of this binary reads VCH_TETHER.
        std::env::remove_var(vch::tether_binary::ENV);
        let Cmd::Serve(s) = parse(args(&["vch", "serve"])).unwrap();
        assert_eq!(s.tether, None);
        let Cmd::Serve(s) = parse(args(&["vch", "serve", "--config", p])).unwrap();
        assert_eq!(s.tether, Some(PathBuf::from("/from/file")));
        std::env::set_var(vch::tether_binary::ENV, "/from/env");
        // The environment wins over the file, the flag over both.
        let Cmd::Serve(s) = parse(args(&["vch", "serve", "--config", p])).unwrap();
        assert_eq!(s.tether, Some(PathBuf::from("/from/env")));
        let Cmd::Serve(s) =
            parse(args(&["vch", "serve", "--config", p, "--tether", "/flag"])).unwrap();
        assert_eq!(s.tether, Some(PathBuf::from("/flag")));
        std::env::remove_var(vch::tether_binary::ENV);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn config_file_fills_in_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("vch-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("vch.toml");
        std::fs::write(
            &f,
            "state-dir = \"/srv/vch\"\nname = \"from-file\"\nhost = [\"unix:///tmp/a.sock\"]\ninsecure-registry = [\"127.0.0.1:5000\"]\nboot-image = \"/srv/boot-flat.vmdk\"\n",
        )
        .unwrap();
        let Cmd::Serve(s) = parse(args(&[
            "vch",
            "serve",
            "--config",
            f.to_str().unwrap(),
            "--name",
            "from-flag",
        ]))
        .unwrap();
        assert_eq!(s.state_dir, PathBuf::from("/srv/vch"));
        assert_eq!(s.name, "from-flag");
        assert_eq!(s.hosts, vec!["unix:///tmp/a.sock".to_string()]);
        assert_eq!(s.insecure_registries, vec!["127.0.0.1:5000".to_string()]);
        assert_eq!(s.boot_image, Some(PathBuf::from("/srv/boot-flat.vmdk")));
        let Cmd::Serve(s) = parse(args(&[
            "vch",
            "serve",
            "--config",
            f.to_str().unwrap(),
            "--boot-image",
            "/opt/tpl-flat.vmdk",
        ]))
        .unwrap();
        assert_eq!(s.boot_image, Some(PathBuf::from("/opt/tpl-flat.vmdk")));
        let Cmd::Serve(s) = parse(args(&["vch", "serve"])).unwrap();
        assert_eq!(s.boot_image, None);
        std::fs::write(&f, "stat-dir = \"/typo\"\n").unwrap();
        let err = parse(args(&["vch", "serve", "--config", f.to_str().unwrap()]))
            .err()
            .unwrap();
        assert!(err.contains("stat-dir"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
