//! The verbs that change a container's state: start, stop, kill, restart, pause,
//! unpause, rename, remove (and resize of its terminal).

use super::error::{Error, Result};
use super::platform::{PlatformError, VmChange};
use super::{now, signals, volume_busy, Translator};
use crate::containers::{FinalState, Status};
use container_vm::channel::{resize_payload, Frame, Kind};
use std::time::Duration;

/// How long a start waits for a parked clone's tether to connect its channel.
const CONNECT_FOR_START: Duration = Duration::from_secs(10);
/// How long stop and kill wait for a container started a moment ago to connect.
const CONNECT_FOR_SIGNAL: Duration = Duration::from_secs(2);

impl Translator {
    /// `docker start`.
    pub async fn start(&self, key: &str) -> Result<()> {
        let id = self.resolve(key)?;
        let c = self.get(&id)?;
        if c.status == Status::Running {
            return Err(Error::NotModified("container already started".into()));
        }
        // A second start is a cold power-on of the same VM; the next exit record in the
        // log supersedes the previous one.
        self.mark_stopped_by_user(&id, false);
        self.start_now(&id).await
    }

    /// Records whether the user stopped the container (restart policies hold off), and
    /// calls off a policy restart that waits for its back-off.
    pub(super) fn mark_stopped_by_user(&self, id: &str, stopped: bool) {
        self.cancel_pending_restart(id);
        self.update(id, |c| {
            c.finished
                .get_or_insert_with(FinalState::default)
                .stopped_by_user = stopped;
        });
    }

    pub(super) async fn start_now(&self, id: &str) -> Result<()> {
        let c = self.get(id)?;
        let p = self.platform();
        // Taken before the guest can run: the run's exit record is never older.
        let started = now();
        if c.parked {
            // A created container is a running clone whose tether waits for the word.
            // Running before the word: the pool watch may see the exit right after it.
            let g = self.guest();
            let connected = g.wait_connected(id, CONNECT_FOR_START).await;
            if connected {
                self.persist_started(id, &started).await;
            }
            self.set_running(id, false, &started);
            if !connected || !g.start(id) {
                self.update(id, |cc| {
                    cc.status = Status::Created;
                    cc.parked = true;
                });
                if connected {
                    self.persist_started(id, "").await;
                }
                return Err(Error::Internal(format!(
                    "container VM {} did not connect its control channel",
                    c.vm_name
                )));
            }
        } else {
            // A second start is a cold power-on of the container's own VM, with its own
            // watch: the pool watch could miss an on-off cycle between two of its polls.
            for v in &c.meta.volumes {
                if let Some(other) = self.active_volume_users(&v.name, Some(id)).first() {
                    return Err(volume_busy(&v.name, other));
                }
            }
            self.update(id, |cc| cc.watched = true);
            self.persist_started(id, &started).await;
            if let Err(e) = p.power_on(&c.vm).await {
                self.update(id, |cc| cc.watched = false);
                self.persist_started(id, "").await;
                return Err(e.into());
            }
            self.set_running(id, true, &started);
            self.monitor(id.to_string());
        }
        self.bump();
        self.event(id, "start", &[]);
        Ok(())
    }

    fn set_running(&self, id: &str, watched: bool, started: &str) {
        self.run_started(id);
        self.update(id, |cc| {
            cc.status = Status::Running;
            cc.parked = false;
            cc.watched = watched;
            cc.started_at = Some(started.to_string());
        });
        self.reset_reported(id);
    }

    /// Records the start durably before it is acknowledged (see `start_journal`): a
    /// start that is acknowledged is never lost, one cut short may show as exited. An
    /// empty `started` takes a failed start back.
    async fn persist_started(&self, id: &str, started: &str) {
        if let Err(e) = self.inner.starts.record(id, started).await {
            tracing::warn!(container = id, "cannot record the start: {e}");
        }
    }

    /// Resolves once the container is no longer running.
    pub(super) async fn until_not_running(&self, id: &str) {
        let mut rx = self.subscribe_changes();
        loop {
            rx.borrow_and_update();
            let running = self
                .inner
                .containers
                .read()
                .get(id)
                .map(|c| matches!(c.status, Status::Running | Status::Paused))
                .unwrap_or(false);
            if !running || rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// `docker stop`: the stop signal through the control channel, then after the
    /// timeout (default 10 s) a hard stop, which for a VM is a power-off.
    pub async fn stop(&self, key: &str, signal: Option<&str>, timeout: Option<i64>) -> Result<()> {
        let id = self.resolve(key)?;
        let c = self.get(&id)?;
        if c.status != Status::Running {
            // Exited and waiting for a policy restart: the stop calls it off (dockerd
            // stops a restarting container).
            if self.cancel_pending_restart(&id) {
                self.mark_stopped_by_user(&id, true);
                return Ok(());
            }
            return Err(Error::NotModified("container already stopped".into()));
        }
        self.mark_stopped_by_user(&id, true);
        let sig = signals::for_stop(signal);
        let g = self.guest();
        // A container started a moment ago may not have connected its channel yet.
        let connected = g.wait_connected(&id, CONNECT_FOR_SIGNAL).await;
        if connected && g.signal(&id, sig) {
            let grace = Duration::from_secs(timeout.unwrap_or(10).max(0) as u64);
            if tokio::time::timeout(grace, self.until_not_running(&id))
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        // It may have ended meanwhile (its own exit): powered off already is stopped.
        match self.platform().power_off(&c.vm).await {
            Err(PlatformError::InvalidPowerState(_)) | Ok(()) => {}
            Err(e) => return Err(e.into()),
        }
        self.until_not_running(&id).await;
        Ok(())
    }

    /// `docker kill`: SIGKILL is a power-off; other signals go through the channel.
    pub async fn kill(&self, key: &str, signal: Option<&str>) -> Result<()> {
        let id = self.resolve(key)?;
        let c = self.get(&id)?;
        if c.status != Status::Running {
            return Err(Error::NotRunning(id));
        }
        let sig = signals::for_kill(signal).map_err(Error::Invalid)?;
        self.mark_stopped_by_user(&id, true);
        let g = self.guest();
        if sig != signals::KILL {
            g.wait_connected(&id, CONNECT_FOR_SIGNAL).await;
            if !g.signal(&id, sig) {
                return Err(Error::Conflict(format!(
                    "cannot send signal {sig}: container {id} has no control channel connected"
                )));
            }
            return Ok(());
        }
        Ok(self.platform().power_off(&c.vm).await?)
    }

    /// `docker restart`: stop (when it runs), then start at once (no back-off).
    pub async fn restart(
        &self,
        key: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let id = self.resolve(key)?;
        if matches!(self.get(&id)?.status, Status::Running | Status::Paused) {
            self.stop(&id, signal, timeout).await?;
        }
        self.mark_stopped_by_user(&id, false);
        self.start_now(&id).await
    }

    /// `docker rename`: the record changes in the VM's extraConfig (not guestinfo), so it
    /// survives while the VM runs.
    pub async fn rename(&self, key: &str, new_name: &str) -> Result<()> {
        let id = self.resolve(key)?;
        let new_name = new_name.trim_start_matches('/').to_string();
        self.check_new_name(&new_name)?;
        let (vm, meta) = self
            .update(&id, |c| {
                c.meta.name = new_name;
                (c.vm.clone(), c.meta.clone())
            })
            .ok_or_else(|| Error::NoSuchContainer(id.clone()))?;
        let change = VmChange {
            meta: Some(meta),
            ..Default::default()
        };
        self.platform().reconfigure(&vm, &change).await?;
        self.bump();
        self.event(&id, "rename", &[]);
        Ok(())
    }

    /// `docker pause`: a paused container is a suspended VM.
    pub async fn pause(&self, key: &str) -> Result<()> {
        let id = self.resolve(key)?;
        let c = self.get(&id)?;
        match c.status {
            Status::Running => {}
            Status::Paused => {
                return Err(Error::Conflict(format!("Container {id} is already paused")))
            }
            _ => return Err(Error::NotRunning(id)),
        }
        self.platform().suspend(&c.vm).await?;
        self.update(&id, |cc| cc.status = Status::Paused);
        self.bump();
        self.event(&id, "pause", &[]);
        Ok(())
    }

    pub async fn unpause(&self, key: &str) -> Result<()> {
        let id = self.resolve(key)?;
        let c = self.get(&id)?;
        if c.status != Status::Paused {
            return Err(Error::Conflict(format!("Container {id} is not paused")));
        }
        self.platform().power_on(&c.vm).await?;
        self.update(&id, |cc| cc.status = Status::Running);
        self.bump();
        self.event(&id, "unpause", &[]);
        Ok(())
    }

    /// `docker rm [-f] [-v]`.
    pub async fn remove(&self, key: &str, force: bool, anonymous_volumes: bool) -> Result<()> {
        let id = self.resolve(key)?;
        self.remove_now(&id, force, anonymous_volumes).await
    }

    pub(super) async fn remove_now(
        &self,
        id: &str,
        force: bool,
        anonymous_volumes: bool,
    ) -> Result<()> {
        let c = self.get(id)?;
        let p = self.platform();
        if c.status == Status::Running && !force {
            return Err(Error::Conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                c.meta.name
            )));
        }
        self.cancel_pending_restart(id);
        if c.status != Status::Exited || c.parked {
            // Running (forced), paused, or a parked clone: the VM is on. An already-off VM
            // answers InvalidPowerState, which is fine.
            let _ = p.power_off(&c.vm).await;
        }
        self.update(id, |cc| cc.status = Status::Removing);
        if !c.meta.volumes.is_empty() {
            // Destroy deletes every persistent disk of a VM: volumes are detached first.
            p.detach_volumes(&c.vm).await?;
        }
        match p.destroy(&c.vm).await {
            Ok(()) | Err(PlatformError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let res = &self.inner.resources;
        if anonymous_volumes {
            for v in c.meta.volumes.iter().filter(|v| v.anonymous) {
                if self.volume_users(&v.name, Some(id)).is_empty() {
                    if let Err(e) = res.remove_volume(&v.name).await {
                        tracing::warn!(volume = %v.name, "removing anonymous volume: {e}");
                    }
                }
            }
        }
        res.release_addresses(&c.spec.interfaces);
        let code = c.finished.map(|f| f.exit_code).unwrap_or(0);
        self.inner.removed.write().insert(id.to_string(), code);
        self.event(id, "destroy", &[]);
        self.inner.containers.write().remove(id);
        self.inner.restarts.lock().remove(id);
        self.inner.starts.forget(id).await;
        self.bump();
        Ok(())
    }

    /// `docker resize` of the main process's terminal.
    pub async fn resize(&self, key: &str, height: u16, width: u16) -> Result<()> {
        let id = self.resolve(key)?;
        if self.get(&id)?.status != Status::Running {
            return Err(Error::Conflict(format!("Container {id} is not running")));
        }
        let frame = Frame::new(Kind::Resize, 0, resize_payload(height, width));
        let g = self.guest().clone();
        if !g.send(&id, frame.clone()) {
            // Just started (the CLI resizes right after the start): the VM's channel is
            // not up yet. The tether keeps the frame until the process runs.
            tokio::spawn(async move {
                if g.wait_connected(&id, CONNECT_FOR_START).await {
                    g.send(&id, frame);
                }
            });
        }
        Ok(())
    }
}
