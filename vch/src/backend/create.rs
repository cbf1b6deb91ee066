//! `docker create`: the request checked and translated (image, command, volumes,
//! network), then the translator makes the VM.

use super::{internal, VchBackend};
use crate::containers::{Meta, TetherSpec};
use crate::translator::{create, health, naming};
use docker_api::models::*;
use docker_api::options::*;
use docker_api::{Error, Result};

/// `hold` makes a build step's container (see `ContainerSpec::hold`).
pub(super) async fn container_create(
    b: &VchBackend,
    opts: ContainerCreateOptions,
    body: ContainerCreateBody,
    hold: bool,
) -> Result<ContainerCreateResponse> {
    check_supported(&body)?;
    // Checked before any volume is made for the container.
    let tmpfs = crate::mounts::requested(&body)
        .and_then(|volumes| crate::mounts::tmpfs(&body, &volumes))
        .map_err(Error::invalid)?;
    let image = body
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Error::invalid("config.Image is required"))?;
    let image_id = b
        .inner
        .images
        .resolve(&image)
        .map_err(|_| Error::NoSuchImage(image.clone()))?;
    let layers = b.inner.images.layer_disks(&image).map_err(internal)?;
    let (_, cfg) = b
        .inner
        .images
        .image_config(&image)
        .await
        .map_err(internal)?;
    let icfg = cfg.config.clone().unwrap_or_default();
    let id = naming::random_id();
    let name = naming::for_create(opts.name.as_deref(), &id, |n| {
        b.tr().check_new_name(n).is_err()
    });
    b.tr().check_new_name(&name)?;
    let argv = create::command(&body, &icfg)?;
    let env = create::environment(
        &icfg.env.clone().unwrap_or_default(),
        &body.env.clone().unwrap_or_default(),
    );
    // The request's check over the image's; the tether runs it (see translator::health).
    let check = health::merge(body.healthcheck.as_ref(), icfg.healthcheck.as_ref());
    let shell = body
        .shell
        .clone()
        .filter(|s| !s.is_empty())
        .or(icfg.shell.clone())
        .unwrap_or_default();
    let probe = health::probe(check.as_ref(), &shell)?;
    let mut host = body.host_config.clone().unwrap_or_default();
    host.log_config = Some(log_config(host.log_config.as_ref())?);
    let endpoints = b.inner.networks.endpoints_for_create(
        host.network_mode.as_deref(),
        body.networking_config.as_ref(),
    )?;
    // Reported as dockerd does: the network by the name it was asked for, `bridge` for
    // the default one.
    if matches!(
        host.network_mode.as_deref(),
        None | Some("") | Some("default")
    ) {
        host.network_mode = Some("bridge".into());
    }
    let memory_mb = create::memory_mb(host.memory.unwrap_or(0))?;
    let cpus = create::cpus(host.nano_cpus.unwrap_or(0));
    let mut spec = TetherSpec {
        id: id.clone(),
        name: name.clone(),
        hostname: body
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| id[..12].to_string()),
        cmd: argv,
        env,
        user: body
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .or(icfg.user.clone())
            .unwrap_or_default(),
        workdir: body
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .or(icfg.working_dir.clone())
            .unwrap_or_default(),
        layers: vec![],
        scratch: None,
        dns: vec![],
        dns_search: vec![],
        dns_options: vec![],
        hosts: vec![],
        tty: body.tty == Some(true),
        open_stdin: body.open_stdin == Some(true),
        stdin_once: body.stdin_once == Some(true),
        console_size: crate::stdin::console_size(host.console_size.as_ref()),
        parked: false,
        mounts: vec![],
        interfaces: vec![],
        security: crate::security::from_host_config(&host)?,
        health: probe,
        init: host.init == Some(true),
        group_add: host.group_add.clone().unwrap_or_default(),
        tmpfs,
        hold,
    };
    let volumes = super::volumes::volumes_for(b, &id, &body).await?;
    let volume_disks: Vec<String> = volumes
        .iter()
        .map(|v| b.inner.volumes.disk_path(&v.name))
        .collect();
    let meta = Meta {
        id: id.clone(),
        name,
        image: image.clone(),
        image_id: image_id.to_string(),
        created: crate::translator::now(),
        auto_remove: host.auto_remove == Some(true),
        config: ContainerConfig {
            healthcheck: check,
            ..with_image_ports(container_config(&body), &icfg)
        },
        host_config: host.clone(),
        volumes,
    };
    // The addresses are taken now; they go back unless the VM is made (lease.keep()).
    let lease = b.inner.networks.lease(&endpoints, &[])?;
    spec.interfaces = lease.interfaces().to_vec();
    spec.dns = super::routing::dns_for(b, spec.interfaces.first(), host.dns.as_ref());
    let endpoint_links: Vec<String> = endpoints.iter().flat_map(|e| e.links.clone()).collect();
    spec.hosts = super::hosts::entries(b, &host, &endpoint_links, &spec.interfaces)?;
    if let (Some(d), Some(i)) = (
        body.domainname.as_deref().filter(|d| !d.is_empty()),
        spec.interfaces.first(),
    ) {
        // dockerd's line for a container with a domain name: FQDN first.
        let line = format!("{}\t{}.{d} {}", i.address, spec.hostname, spec.hostname);
        spec.hosts.insert(0, line);
    }
    spec.dns_search = host.dns_search.clone().unwrap_or_default();
    spec.dns_options = host.dns_options.clone().unwrap_or_default();
    let plan = create::Plan {
        meta,
        spec,
        layers: layers.iter().map(|l| l.to_string()).collect(),
        volume_disks,
        nics: lease.nics(-93),
        memory_mb,
        cpus,
    };
    let id = b.tr().create(plan).await?;
    lease.keep();
    Ok(ContainerCreateResponse {
        id,
        warnings: vec![],
    })
}

/// The image's `EXPOSE`d ports join the container's `ExposedPorts` (what `-P` publishes
/// and inspect shows), as dockerd merges them.
fn with_image_ports(
    mut config: ContainerConfig,
    image: &crate::images::manifest::ContainerConfig,
) -> ContainerConfig {
    let Some(ports) = image.exposed_ports.as_ref().filter(|p| !p.is_empty()) else {
        return config;
    };
    let exposed = config.exposed_ports.get_or_insert_with(Vec::new);
    for k in ports.keys() {
        if !exposed.contains(k) {
            exposed.push(k.clone());
        }
    }
    config
}

/// The container's part of a create request (`Config` in inspect): the body without its
/// host and networking config.
fn container_config(body: &ContainerCreateBody) -> ContainerConfig {
    let b = body.clone();
    ContainerConfig {
        hostname: b.hostname,
        domainname: b.domainname,
        user: b.user,
        attach_stdin: b.attach_stdin,
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        exposed_ports: b.exposed_ports,
        tty: b.tty,
        open_stdin: b.open_stdin,
        stdin_once: b.stdin_once,
        env: b.env,
        cmd: b.cmd,
        healthcheck: b.healthcheck,
        args_escaped: b.args_escaped,
        image: b.image,
        volumes: b.volumes,
        working_dir: b.working_dir,
        entrypoint: b.entrypoint,
        network_disabled: b.network_disabled,
        mac_address: b.mac_address,
        on_build: b.on_build,
        labels: b.labels,
        stop_signal: b.stop_signal,
        stop_timeout: b.stop_timeout,
        shell: b.shell,
    }
}

/// The logging driver as the VCH applies it. The container's output always goes to its
/// VM's log file on the datastore (attach reads it too); `json-file` and `local` read it
/// back for `docker logs`, `none` refuses to. Log options (rotation) are refused by
/// name: the serial-port file is not rotated.
fn log_config(asked: Option<&HostConfigLogConfig>) -> Result<HostConfigLogConfig> {
    let driver = asked
        .and_then(|l| l.typ.clone())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| LOG_DRIVER.to_string());
    if !["json-file", "local", "none"].contains(&driver.as_str()) {
        return Err(Error::invalid(format!(
            "logging driver {driver:?} is not supported by this VCH (json-file, local, none)"
        )));
    }
    if let Some((opt, _)) = asked
        .and_then(|l| l.config.as_ref())
        .and_then(|c| c.iter().next())
    {
        return Err(Error::invalid(format!(
            "log option {opt:?} is not supported by this VCH: container logs are not rotated"
        )));
    }
    Ok(HostConfigLogConfig {
        typ: Some(driver),
        config: Some(Default::default()),
    })
}

/// What `--log-driver` defaults to (and `docker info` reports).
pub(super) const LOG_DRIVER: &str = "json-file";

/// Flags this VCH cannot honour are refused by name rather than ignored.
fn check_supported(body: &ContainerCreateBody) -> Result<()> {
    if let Some(h) = &body.host_config {
        crate::security::from_host_config(h)?;
        // Checked now, so a bad -p fails the create rather than the start.
        crate::router::ports::bindings(h.port_bindings.as_ref(), false, &[])?;
        if h.network_mode.as_deref() == Some("none")
            && h.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
        {
            return Err(Error::invalid(
                "conflicting options: port publishing and the container type network mode",
            ));
        }
    }
    Ok(())
}
