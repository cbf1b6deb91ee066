//! `docker update`: `--memory`/`--cpus` are the container VM's memory and vCPUs, changed
//! with ReconfigVM_Task (a hot add/remove while it runs; container VMs are created with
//! hot-plug on); `--restart` is kept in the container record (`vch.meta`), written in
//! the same reconfigure so that it survives a VCH restart. Anything else is refused by name.

use super::{internal, VchBackend};
use crate::translator::platform::{PlatformError, VmChange};
use docker_api::models::{ContainerUpdateBody, ContainerUpdateResponse, RestartPolicy};
use docker_api::{Error, Result};

/// Update fields a VM can honour.
const SUPPORTED: &[&str] = &["Memory", "NanoCpus", "RestartPolicy", "MemorySwap"];

/// Whether a JSON field is "not given" (Docker clients send zero values for those).
fn unset(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.values().all(unset),
    }
}

/// The given fields a VM cannot honour, named as the docker CLI flags' API fields.
fn unsupported(body: &ContainerUpdateBody) -> Result<Vec<String>> {
    let v = serde_json::to_value(body).map_err(internal)?;
    let mut out: Vec<String> = v
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, v)| !SUPPORTED.contains(&k.as_str()) && !unset(v))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    // A VM has no swap: only "no swap limit" (-1) or "same as memory" make sense.
    if let Some(sw) = body.memory_swap.filter(|s| *s != 0 && *s != -1) {
        if Some(sw) != body.memory {
            out.push("MemorySwap".into());
        }
    }
    Ok(out)
}

/// Memory in MB as vSphere wants it (a multiple of 4), from bytes; the create path's rule.
pub(super) fn memory_mb(bytes: i64) -> Result<i64> {
    if bytes < 6 << 20 {
        return Err(Error::invalid("Minimum memory limit allowed is 6MB"));
    }
    Ok(((bytes >> 20) + 3) / 4 * 4)
}

fn check_restart_policy(name: &str, retries: i64) -> Result<()> {
    match name {
        "no" | "always" | "unless-stopped" if retries == 0 => Ok(()),
        "no" | "always" | "unless-stopped" => Err(Error::invalid(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        )),
        "on-failure" if retries >= 0 => Ok(()),
        "on-failure" => Err(Error::invalid(
            "invalid restart policy: maximum retry count cannot be negative",
        )),
        other => Err(Error::invalid(format!(
            "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        ))),
    }
}

impl VchBackend {
    pub(super) async fn update(
        &self,
        key: &str,
        body: ContainerUpdateBody,
    ) -> Result<ContainerUpdateResponse> {
        let id = self.resolve(key)?;
        let c = self.get(&id)?;
        let bad = unsupported(&body)?;
        if !bad.is_empty() {
            return Err(Error::not_implemented(format!(
                "docker update of {} (a container VM takes --memory, --cpus and --restart)",
                bad.join(", ")
            )));
        }
        let memory = body.memory.filter(|m| *m != 0);
        let memory_mb = memory.map(memory_mb).transpose()?;
        let nano = body.nano_cpus.filter(|n| *n != 0);
        if nano.is_some_and(|n| n < 0) {
            return Err(Error::invalid(
                "Range of CPUs is from 0.01 to the number of CPUs",
            ));
        }
        let cpus = nano.map(|n| (n + 999_999_999) / 1_000_000_000);
        let policy = body.restart_policy.as_ref().and_then(|p| {
            let name = p.name.map(|n| n.to_string()).unwrap_or_default();
            (!name.is_empty()).then(|| (name, p.maximum_retry_count.unwrap_or(0)))
        });
        if let Some((name, retries)) = &policy {
            check_restart_policy(name, *retries)?;
            if c.meta.auto_remove && name != "no" {
                return Err(Error::invalid(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container",
                ));
            }
        }
        let mut meta = c.meta.clone();
        let h = &mut meta.host_config;
        if memory.is_some() {
            h.memory = memory;
        }
        if nano.is_some() {
            h.nano_cpus = nano;
        }
        if let Some((name, retries)) = &policy {
            h.restart_policy = Some(RestartPolicy {
                name: name.parse().ok(),
                maximum_retry_count: Some(*retries),
            });
        }
        // One reconfigure: the hardware and the record change together or not at all.
        let change = VmChange {
            memory_mb,
            cpus,
            meta: Some(meta.clone()),
            ..Default::default()
        };
        let p = self.tr().platform();
        let mut result = p.reconfigure(&c.vm, &change).await;
        if c.parked && matches!(result, Err(PlatformError::InvalidPowerState(_))) {
            // A created container is a parked, running clone that cannot shrink. Nothing
            // has run in it yet: power it off (its start becomes a cold power-on), change
            // it, and it boots with the new size.
            let _ = p.power_off(&c.vm).await;
            self.tr().update(&id, |cc| cc.parked = false);
            result = p.reconfigure(&c.vm, &change).await;
        }
        if let Err(e) = result {
            return Err(match e {
                // vSphere's answer to a hardware change it cannot make while the VM runs:
                // memory can only grow (there is no memory hot-remove), and only with hot
                // add enabled on the VM.
                PlatformError::InvalidPowerState(_) => Error::Conflict(format!(
                    "Cannot update container {id} while it runs: vSphere refused to change its VM ({e}); \
                     a running container VM's memory can only grow, and only with hot add enabled on the VM \
                     (a paused container's VM is suspended and cannot change at all). \
                     Stop the container, update it, and start it again"
                )),
                e => crate::translator::Error::from(e).into(),
            });
        }
        self.tr().update(&id, |cc| cc.meta = meta);
        self.bump();
        self.event(&id, "update", &[]);
        Ok(ContainerUpdateResponse {
            warnings: Some(vec![]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unsupported_fields() {
        let body: ContainerUpdateBody = serde_json::from_value(serde_json::json!({
            "Memory": 134217728, "CpuShares": 512, "PidsLimit": 0, "BlkioWeight": 300,
            "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}
        }))
        .unwrap();
        assert_eq!(
            unsupported(&body).unwrap(),
            vec!["BlkioWeight", "CpuShares"]
        );
        let ok: ContainerUpdateBody =
            serde_json::from_value(serde_json::json!({"Memory": 134217728, "MemorySwap": -1}))
                .unwrap();
        assert!(unsupported(&ok).unwrap().is_empty());
        assert_eq!(memory_mb(100 << 20).unwrap(), 100);
        assert_eq!(memory_mb(101 << 20).unwrap(), 104);
        assert!(memory_mb(1 << 20).is_err());
        assert!(check_restart_policy("always", 3).is_err());
        assert!(check_restart_policy("on-failure", 3).is_ok());
        assert!(check_restart_policy("sometimes", 0).is_err());
    }
}
