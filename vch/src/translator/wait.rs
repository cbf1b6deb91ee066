//! `docker wait`: resolves on the condition asked for, from the state changes the
//! translator publishes (no polling).

use super::error::{Error, Result};
use super::Translator;
use crate::containers::Status;
use docker_api::options::WaitCondition;
use futures_util::future::BoxFuture;

/// What a wait resolves with: the exit code (0 when none is known).
pub type WaitResult = BoxFuture<'static, Result<i64>>;

impl Translator {
    /// `docker wait --condition`: `not-running` (the default), `next-exit` (an exit
    /// after this call), `removed`. The container must exist when it is called.
    pub fn wait(&self, key: &str, condition: WaitCondition) -> Result<WaitResult> {
        let id = self.resolve(key)?;
        let start = self.get(&id)?;
        let t = self.clone();
        let mut rx = self.subscribe_changes();
        Ok(Box::pin(async move {
            let started_finish = start.finished.as_ref().map(|f| f.finished_at.clone());
            loop {
                rx.borrow_and_update();
                let now = t.inner.containers.read().get(&id).cloned();
                match (condition, now) {
                    (_, None) => {
                        return Ok(t.inner.removed.read().get(&id).copied().unwrap_or(0));
                    }
                    (WaitCondition::NotRunning, Some(c)) if c.status != Status::Running => {
                        return Ok(c.finished.map(|f| f.exit_code).unwrap_or(0));
                    }
                    (WaitCondition::NextExit, Some(c))
                        if c.status == Status::Exited
                            && c.finished.as_ref().map(|f| f.finished_at.clone())
                                != started_finish =>
                    {
                        return Ok(c.finished.map(|f| f.exit_code).unwrap_or(0));
                    }
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return Err(Error::Internal("the VCH is shutting down".into()));
                }
            }
        }))
    }
}
