//! `vcenter-sim`: run the simulator as a standalone HTTPS server.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use vcenter_sim::{Model, SandboxRuntime, SimConfig, SimServer, StateOnlyRuntime};

#[derive(Parser, Debug)]
#[command(
    name = "vcenter-sim",
    about = "A vCenter/ESXi simulator speaking vim25 SOAP over HTTPS"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8989")]
    listen: SocketAddr,
    /// Inventory, certificate and datastore directories live here.
    #[arg(long, default_value = "/var/lib/vcenter-sim")]
    data_dir: PathBuf,
    #[arg(long, default_value = "administrator@vsphere.local")]
    username: String,
    #[arg(long, default_value = "vmware", env = "VCSIM_PASSWORD")]
    password: String,
    /// Datacenters to create in a fresh data directory.
    #[arg(long, default_value_t = 1)]
    datacenters: usize,
    /// DRS clusters per datacenter.
    #[arg(long, default_value_t = 1)]
    clusters: usize,
    /// Hosts per cluster.
    #[arg(long, default_value_t = 3)]
    hosts: usize,
    /// Datastores per datacenter.
    #[arg(long, default_value_t = 1)]
    datastores: usize,
    /// VMs to create in a fresh data directory, spread over the clusters.
    #[arg(long, default_value_t = 0)]
    vms: usize,
    /// Idle seconds before a session expires.
    #[arg(long, default_value_t = 1800)]
    session_timeout: u64,
    /// How powered-on VMs run: `sandbox` executes them as processes in namespaces (needs
    /// root), `state` only tracks their power state. Default: sandbox when possible.
    #[arg(long, value_parser = ["sandbox", "state"])]
    runtime: Option<String>,
    /// Write url, thumbprints and credentials as JSON to this file once listening.
    #[arg(long)]
    info_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let started = std::time::Instant::now();
    let mut cfg = SimConfig::new(&args.data_dir);
    cfg.username = args.username.clone();
    cfg.password = args.password.clone();
    cfg.session_timeout = std::time::Duration::from_secs(args.session_timeout);
    cfg.model = Model {
        datacenters: args.datacenters,
        clusters: args.clusters,
        hosts: args.hosts,
        datastores: args.datastores,
        vms: args.vms,
    };
    let runtime: Arc<dyn vcenter_sim::HostRuntime> =
        match (args.runtime.as_deref(), SandboxRuntime::supported()) {
            (Some("state"), _) => Arc::new(StateOnlyRuntime),
            (Some(_), Err(why)) => {
                eprintln!("vcenter-sim: --runtime sandbox: {why}");
                std::process::exit(1);
            }
            (None, Err(why)) => {
                eprintln!("vcenter-sim: VMs will only change state ({why})");
                Arc::new(StateOnlyRuntime)
            }
            (_, Ok(())) => Arc::new(SandboxRuntime::new(args.data_dir.join("run"))),
        };
    let server = match SimServer::start(cfg, args.listen, runtime).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vcenter-sim: {e}");
            std::process::exit(1);
        }
    };
    let ready_ms = started.elapsed().as_millis();
    println!("vcenter-sim listening on {}", server.url);
    println!("  user:               {}", args.username);
    println!("  SHA-1 thumbprint:   {}", server.sha1_thumbprint);
    println!("  SHA-256 thumbprint: {}", server.sha256_thumbprint);
    println!("  data dir:           {}", args.data_dir.display());
    println!(
        "  inventory entities: {} (ready in {ready_ms} ms)",
        server.sim.inventory_len()
    );
    if let Some(path) = &args.info_file {
        let info = serde_json::json!({
            "url": server.url,
            "username": args.username,
            "password": args.password,
            "sha1": server.sha1_thumbprint,
            "sha256": server.sha256_thumbprint,
            "ready_ms": ready_ms as u64,
            "pid": std::process::id(),
        });
        // It holds the password: 0600.
        if let Err(e) = vcenter_sim::private::write_private(path, info.to_string().as_bytes()) {
            eprintln!("vcenter-sim: cannot write {}: {e}", path.display());
        }
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    server.shutdown().await;
}
