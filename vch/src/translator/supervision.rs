//! Supervision: the VCH learns that a container's VM went off (its own exit, a kill, an
//! admin) through one PropertyCollector watch over its pool, records the final state,
//! removes `--rm` containers, and applies restart policies with dockerd's back-off. The
//! template VM going away is handed to the platform to heal.

use super::platform::VmChange;
use super::recovery::{self, Action};
use super::restart::{self, Policy};
use super::{now, Translator};
use crate::containers::{Container, FinalState, Status};
use futures_util::StreamExt;
use std::time::Duration;
use vsphere_client::MoRef;

/// How long `--rm` waits for attached clients to read the output up to the exit record.
const READERS_BOUND: Duration = Duration::from_secs(5);

impl Translator {
    /// Takes over recovered containers (see `recovery`): all are known before the pool
    /// watch reports their VMs; then each gets what is left to do.
    pub async fn adopt(&self, loaded: Vec<Container>) {
        let actions: Vec<(String, Action)> = {
            let mut cs = self.inner.containers.write();
            loaded
                .into_iter()
                .map(|c| {
                    let entry = (c.meta.id.clone(), recovery::action(&c));
                    cs.insert(c.meta.id.clone(), c);
                    entry
                })
                .collect()
        };
        self.watch_statuses();
        self.watch_pool();
        for (id, action) in actions {
            match action {
                Action::RecordExit => self.record_exit(&id).await,
                // Policies are enforced by the VCH, also across its own restarts.
                Action::Restart => {
                    let _ = self.start_now(&id).await;
                }
                Action::Watch | Action::Nothing => {}
            }
        }
    }

    /// Reads the pool's VMs and the start journal back into containers.
    pub async fn load(&self) -> super::Result<Vec<Container>> {
        let records = self.platform().list_vms().await?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let journal = r
                    .meta
                    .as_ref()
                    .and_then(|m| self.inner.starts.started(&m.id));
                recovery::recover(r, journal)
            })
            .collect())
    }

    /// One watch over the VCH pool's VMs records the exit of every container whose VM
    /// powers off (a watch per container would hold a long poll per running container).
    /// A parked clone goes from on to off exactly once, so the pool view cannot miss it.
    pub(super) fn watch_pool(&self) {
        let t = self.clone();
        let mut offs = self.platform().watch_pool();
        tokio::spawn(async move {
            while let Some(vm) = offs.next().await {
                if t.platform().is_template(&vm) {
                    // Off or deleted, by an admin, a crash or a restarted vCenter.
                    let t = t.clone();
                    tokio::spawn(async move {
                        let why = "the template VM was powered off or removed";
                        t.platform().heal_template(why).await;
                    });
                } else {
                    t.vm_powered_off(&vm);
                }
            }
        });
    }

    fn vm_powered_off(&self, vm: &MoRef) {
        let claimed = {
            let mut cs = self.inner.containers.write();
            let Some(c) = cs.values_mut().find(|c| &c.vm == vm) else {
                return;
            };
            // A parked clone that went away: its next start is a cold power-on.
            c.parked = false;
            let claim = matches!(c.status, Status::Running | Status::Paused) && !c.watched;
            if claim {
                c.watched = true;
            }
            claim.then(|| c.meta.id.clone())
        };
        if let Some(id) = claimed {
            let t = self.clone();
            tokio::spawn(async move { t.record_exit(&id).await });
        }
    }

    /// Watches a cold-started container's VM until it powers off, then finishes it.
    pub(super) fn monitor(&self, id: String) {
        let t = self.clone();
        let Ok(c) = self.get(&id) else { return };
        let off = self.platform().watch_off(&c.vm);
        tokio::spawn(async move {
            off.await;
            t.record_exit(&id).await;
        });
    }

    /// The durable exit record is the log's last line; none means the VM was killed.
    pub(super) async fn record_exit(&self, id: &str) {
        let Ok(c) = self.get(id) else { return };
        let since = c.started_at.clone();
        let exit = self
            .platform()
            .exit_record(&c.vm_name, since.as_deref())
            .await;
        let (code, error) = exit.map(|e| (e.code, e.error)).unwrap_or((137, None));
        self.finish(id, code, error).await;
    }

    /// Records the exit, persists it in the (now powered-off) VM's extraConfig, removes
    /// the container if it was created with --rm, and restarts it if its policy says so.
    async fn finish(&self, id: &str, code: i64, error: Option<String>) {
        // A SIGKILL (137) may be the VM's OOM killer: the exit record says so.
        let Ok(c) = self.get(id) else { return };
        let oom_killed = code == 137
            && self
                .platform()
                .oom_killed(&c.vm_name, c.started_at.as_deref())
                .await;
        let Some((vm, fin, auto_remove, policy)) = self.update(id, |c| {
            let before = c.finished.clone().unwrap_or_default();
            let fin = FinalState {
                stopped_by_user: before.stopped_by_user,
                restart_count: before.restart_count,
                exit_code: code,
                error,
                oom_killed,
                finished_at: now(),
                started_at: c.started_at.clone().unwrap_or_default(),
            };
            c.status = Status::Exited;
            c.watched = false;
            c.reported.pid = 0;
            c.finished = Some(fin.clone());
            (c.vm.clone(), fin, c.meta.auto_remove, Policy::of(&c.meta))
        }) else {
            return;
        };
        self.bump();
        self.event(id, "die", &[("exitCode", code.to_string())]);
        if auto_remove {
            self.until_output_read(id).await;
            let _ = self.remove_now(id, false, true).await;
            return;
        }
        let change = VmChange {
            final_state: Some(fin.clone()),
            ..Default::default()
        };
        if let Err(e) = self.platform().reconfigure(&vm, &change).await {
            tracing::warn!(vm = %vm.value, "cannot persist the exit state: {e}");
        }
        if policy.restarts_after(&fin) {
            self.restart_after_backoff(id, policy, &fin).await;
        }
    }

    /// Lets attached clients read the output up to the exit record (bounded).
    async fn until_output_read(&self, id: &str) {
        let deadline = tokio::time::Instant::now() + READERS_BOUND;
        while tokio::time::Instant::now() < deadline {
            if self.inner.readers.lock().get(id).copied().unwrap_or(0) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A policy restart, after dockerd's back-off (see `restart::next_delay`). A stop,
    /// start or removal meanwhile calls it off.
    async fn restart_after_backoff(&self, id: &str, policy: Policy, fin: &FinalState) {
        let (delay, generation) = {
            let mut rs = self.inner.restarts.lock();
            let h = rs.entry(id.to_string()).or_default();
            // Measured on the monotonic clock when this VCH saw the run start; from the
            // recorded times otherwise.
            let ran_for = match h.run_started {
                Some(s) => s.elapsed(),
                None => restart::run_length(&fin.started_at, &fin.finished_at),
            };
            let delay = restart::next_delay(h.last_delay, ran_for);
            h.last_delay = Some(delay);
            h.pending = true;
            (delay, h.generation)
        };
        self.update(id, |c| {
            if let Some(f) = c.finished.as_mut() {
                f.restart_count += 1;
            }
        });
        tracing::info!(
            container = id,
            policy = policy.name(),
            ?delay,
            "restarting per restart policy"
        );
        tokio::time::sleep(delay).await;
        {
            let mut rs = self.inner.restarts.lock();
            match rs.get_mut(id) {
                Some(h) if h.generation == generation && h.pending => h.pending = false,
                _ => return,
            }
        }
        if self.get(id).map(|c| c.status) != Ok(Status::Exited) {
            return;
        }
        if let Err(e) = self.start_now(id).await {
            tracing::warn!(container = id, "restart policy: {e}");
        }
    }

    /// Calls off a policy restart waiting for its back-off; whether one was waiting.
    pub(super) fn cancel_pending_restart(&self, id: &str) -> bool {
        let mut rs = self.inner.restarts.lock();
        match rs.get_mut(id) {
            Some(h) => {
                h.generation += 1;
                std::mem::take(&mut h.pending)
            }
            None => false,
        }
    }

    /// Notes when a run starts, for the back-off's "ran for at least 10 s".
    pub(super) fn run_started(&self, id: &str) {
        self.inner
            .restarts
            .lock()
            .entry(id.to_string())
            .or_default()
            .run_started = Some(tokio::time::Instant::now());
    }

    /// Whether a policy restart waits for its back-off (dockerd's `restarting`).
    pub fn restart_pending(&self, id: &str) -> bool {
        self.inner
            .restarts
            .lock()
            .get(id)
            .is_some_and(|h| h.pending)
    }
}
