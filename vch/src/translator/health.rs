//! Health checks as the translator sees them: the check a create asks for (the request's
//! settings over the image's, validated and resolved as dockerd does) turned into the
//! probe the tether runs (`container_vm::health::HealthSpec`), and the tethers' status
//! reports (pid, health) applied to their containers, firing `health_status` events.
//! The probes themselves run in the VMs (tether `health.rs`).

use super::error::{Error, Result};
use super::Translator;
use container_vm::health::{self as contract, HealthSpec, HealthState, HealthStatus};
use container_vm::status::GuestStatus;
use docker_api::models::{Health, HealthConfig, HealthStatusEnum, HealthcheckResult};
use std::time::Duration;

/// dockerd's merge of a container's check with its image's: an unset field (no test, a
/// zero duration or count) takes the image's value.
pub fn merge(request: Option<&HealthConfig>, image: Option<&HealthConfig>) -> Option<HealthConfig> {
    let (Some(r), Some(i)) = (request, image) else {
        return request.or(image).cloned();
    };
    let or = |mine: Option<i64>, theirs: Option<i64>| mine.filter(|v| *v != 0).or(theirs);
    Some(HealthConfig {
        test: r.test.clone().filter(|t| !t.is_empty()).or(i.test.clone()),
        interval: or(r.interval, i.interval),
        timeout: or(r.timeout, i.timeout),
        retries: or(r.retries, i.retries),
        start_period: or(r.start_period, i.start_period),
        start_interval: or(r.start_interval, i.start_interval),
    })
}

/// The probe the tether runs for a (merged) check, `None` for no check (`NONE`, or no
/// test). `shell` is the container's `SHELL` for `CMD-SHELL` (`/bin/sh -c` without one).
/// Bad settings are refused with dockerd's wording.
pub fn probe(check: Option<&HealthConfig>, shell: &[String]) -> Result<Option<HealthSpec>> {
    let Some(check) = check else { return Ok(None) };
    let durations = [
        ("Interval", check.interval),
        ("Timeout", check.timeout),
        ("StartPeriod", check.start_period),
        ("StartInterval", check.start_interval),
    ];
    for (name, value) in durations {
        let ns = value.unwrap_or(0);
        if ns != 0 && ns < 1_000_000 {
            return Err(Error::Invalid(format!(
                "{name} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    let retries = check.retries.unwrap_or(0);
    if retries < 0 {
        return Err(Error::Invalid(
            "Retries in Healthcheck cannot be negative".into(),
        ));
    }
    let test = check.test.clone().unwrap_or_default();
    let cmd: Vec<String> = match test.first().map(String::as_str) {
        None | Some("NONE") => return Ok(None),
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") if test.len() > 1 => {
            let sh = if shell.is_empty() {
                vec!["/bin/sh".to_string(), "-c".to_string()]
            } else {
                shell.to_vec()
            };
            sh.into_iter().chain(test[1..].iter().cloned()).collect()
        }
        Some("CMD-SHELL") => Vec::new(),
        Some(other) => {
            return Err(Error::Invalid(format!(
                "unknown Healthcheck type {other:?} (expected CMD, CMD-SHELL or NONE)"
            )))
        }
    };
    if cmd.first().is_none_or(|c| c.is_empty()) {
        return Err(Error::Invalid("the Healthcheck command is empty".into()));
    }
    let ns = |v: Option<i64>, default: Duration| match v.unwrap_or(0) {
        0 => default.as_nanos() as u64,
        v => v as u64,
    };
    Ok(Some(HealthSpec {
        cmd,
        interval_ns: ns(check.interval, contract::DEFAULT_INTERVAL),
        timeout_ns: ns(check.timeout, contract::DEFAULT_TIMEOUT),
        start_period_ns: ns(check.start_period, Duration::ZERO),
        start_interval_ns: ns(check.start_interval, contract::DEFAULT_START_INTERVAL),
        retries: match retries {
            0 => contract::DEFAULT_RETRIES,
            r => u32::try_from(r).unwrap_or(u32::MAX),
        },
    }))
}

/// `State.Health` as Docker's model.
pub fn to_docker(h: &HealthState) -> Health {
    Health {
        status: Some(match h.status {
            HealthStatus::Starting => HealthStatusEnum::STARTING,
            HealthStatus::Healthy => HealthStatusEnum::HEALTHY,
            HealthStatus::Unhealthy => HealthStatusEnum::UNHEALTHY,
        }),
        failing_streak: Some(i64::from(h.failing_streak)),
        log: Some(
            h.log
                .iter()
                .map(|r| HealthcheckResult {
                    start: Some(r.start.clone()),
                    end: Some(r.end.clone()),
                    exit_code: Some(r.exit_code),
                    output: Some(r.output.clone()),
                })
                .collect(),
        ),
    }
}

/// What `ps` adds to a running container's status: ` (healthy)`, ` (health: starting)`.
pub fn status_suffix(h: Option<&HealthState>) -> String {
    match h.map(|h| h.status) {
        None => String::new(),
        Some(HealthStatus::Starting) => " (health: starting)".into(),
        Some(s) => format!(" ({})", s.as_str()),
    }
}

/// `ps --filter health=`: `starting`, `healthy`, `unhealthy` or `none` (no check).
pub fn filter_name(h: Option<&HealthState>) -> &'static str {
    h.map(|h| h.status.as_str()).unwrap_or("none")
}

impl Translator {
    /// Applies the tethers' reports as they come (started once, with the pool watch).
    pub(super) fn watch_statuses(&self) {
        let mut reports = self.guest().statuses();
        let t = self.clone();
        tokio::spawn(async move {
            while let Some((id, status)) = reports.recv().await {
                t.apply_status(&id, status);
            }
        });
    }

    /// One report: the pid and health; a health status that changed fires dockerd's
    /// `health_status: <status>` event.
    pub(super) fn apply_status(&self, id: &str, status: GuestStatus) {
        let changed = self.update(id, |c| {
            let before = c.reported.health.as_ref().map(|h| h.status);
            let after = status.health.as_ref().map(|h| h.status);
            c.reported = status;
            after.filter(|a| Some(*a) != before && *a != HealthStatus::Starting)
        });
        if let Some(Some(s)) = changed {
            self.bump();
            self.event(id, &format!("health_status: {}", s.as_str()), &[]);
        }
    }

    /// A run starts: no pid yet unless its tether has already reported one, and a check
    /// starts over (`starting`).
    pub(super) fn reset_reported(&self, id: &str) {
        self.update(id, |c| {
            if c.reported.pid == 0 {
                c.reported.health = c.spec.health.as_ref().map(|_| HealthState::default());
            }
        });
    }
}
