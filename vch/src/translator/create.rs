//! `docker create` as a container spec: the command from the image and the request, the
//! environment merged, the VM's shape (memory, vCPUs), and the VM the translator makes
//! for it (`Translator::create`).

use super::error::{Error, Result};
use super::platform::{CloneRequest, PlatformError, VmChange};
use super::Translator;
use crate::containers::{Container, Meta, Status, TetherSpec};
use crate::images::manifest::ContainerConfig;
use docker_api::models::ContainerCreateBody;

/// The command: the request's entrypoint (else the image's) followed by the request's
/// cmd; an entrypoint given without cmd drops the image's cmd, as Docker does.
pub fn command(body: &ContainerCreateBody, image: &ContainerConfig) -> Result<Vec<String>> {
    let entrypoint = body
        .entrypoint
        .clone()
        .or(image.entrypoint.clone())
        .unwrap_or_default();
    let cmd = match (&body.cmd, &body.entrypoint) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => image.cmd.clone().unwrap_or_default(),
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(Error::Invalid("no command specified".into()));
    }
    Ok(argv)
}

/// The image's environment with the request's variables replacing those of the same name.
pub fn environment(image: &[String], request: &[String]) -> Vec<String> {
    let mut env = image.to_vec();
    for kv in request {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    env
}

/// Memory in MB for `-m` bytes (0: the default 512 MB), in vSphere's 4 MB steps.
pub fn memory_mb(bytes: i64) -> Result<i64> {
    match bytes {
        0 => Ok(512),
        b if b < 6 << 20 => Err(Error::Invalid("Minimum memory limit allowed is 6MB".into())),
        b => Ok(((b >> 20) + 3) / 4 * 4),
    }
}

/// vCPUs for `--cpus` (nano CPUs), rounded up; 0: one.
pub fn cpus(nano: i64) -> i64 {
    match nano {
        0 => 1,
        n => (n + 999_999_999) / 1_000_000_000,
    }
}

/// Everything a container VM is made from, decided before vSphere is asked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub meta: Meta,
    pub spec: TetherSpec,
    pub layers: Vec<String>,
    pub volume_disks: Vec<String>,
    /// One NIC per network, in the order of the spec's interfaces.
    pub nics: Vec<vsphere_client::spec::Device>,
    pub memory_mb: i64,
    pub cpus: i64,
}

impl Translator {
    /// Makes the container's VM (an instant clone of the template, parked until `start`)
    /// and records the container. The template may be away: creates wait for it
    /// (bounded, then 503), and a clone refused because the parent is off, gone or hung
    /// heals it once and tries again.
    pub async fn create(&self, plan: Plan) -> Result<String> {
        let p = self.platform();
        let id = plan.meta.id.clone();
        let vm_name = super::naming::vm_name(&plan.meta.name, &id);
        let mut req = CloneRequest {
            vm_name: vm_name.clone(),
            layers: plan.layers,
            spec: plan.spec,
            meta: plan.meta,
            volume_disks: plan.volume_disks,
            nics: plan.nics,
        };
        let mut healed = false;
        let vm = loop {
            let tpl = p
                .template(crate::supervisor::READY_BOUND)
                .await
                .map_err(Error::Unavailable)?;
            match p.instant_clone(&tpl, &mut req).await {
                Ok(vm) => break vm,
                // The parent is off or gone and the pool watch has not said so yet: heal
                // it now and clone once more.
                Err(e @ (PlatformError::InvalidPowerState(_) | PlatformError::NotFound(_)))
                    if !healed =>
                {
                    healed = true;
                    p.heal_template(&format!("instant clone refused: {e}"))
                        .await;
                }
                // The template is on but does not answer (hung): power-cycle it, once.
                Err(e @ PlatformError::NotAnswering(_)) if !healed => {
                    healed = true;
                    p.reset_template(&format!("instant clone failed: {e}"))
                        .await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        if (plan.memory_mb, plan.cpus) != (crate::template::MEMORY_MB, crate::template::CPUS) {
            // Clones start with the template's hardware; the rest is a hot reconfigure.
            let shape = VmChange {
                memory_mb: Some(plan.memory_mb),
                cpus: Some(plan.cpus),
                ..Default::default()
            };
            if let Err(e) = p.reconfigure(&vm, &shape).await {
                let _ = p.power_off(&vm).await;
                let _ = p.destroy(&vm).await;
                return Err(e.into());
            }
        }
        self.inner.containers.write().insert(
            id.clone(),
            Container {
                meta: req.meta,
                spec: req.spec,
                vm,
                vm_name,
                status: Status::Created,
                started_at: None,
                finished: None,
                parked: true,
                watched: false,
                interrupted: false,
                reported: Default::default(),
            },
        );
        self.bump();
        self.event(&id, "create", &[]);
        Ok(id)
    }
}
