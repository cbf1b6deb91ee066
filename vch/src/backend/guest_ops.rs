//! Requests answered by a running container's tether over the control channel: the
//! shared plumbing of `docker top`, `stats`, `cp` and `export`.

use super::{internal, VchBackend};
use crate::channel::{OpsEvent, OpsSession};
use crate::containers::Status;
use container_vm::ops::{ErrorKind, OpsRequest, Reply};
use docker_api::{Error, Result};

/// How long a tether may take to answer (a stat, a process table; streams then go on).
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl VchBackend {
    /// Starts `req` in the tether of the running container `key`. `what` names the
    /// command in the error a stopped container gets.
    pub(super) async fn guest_request(
        &self,
        key: &str,
        what: &str,
        req: &OpsRequest,
    ) -> Result<(String, OpsSession)> {
        let id = self.resolve(key)?;
        let c = self.get(&id)?;
        match c.status {
            Status::Running => {}
            Status::Paused => {
                return Err(Error::Conflict(format!(
                    "{what}: container {id} is paused (its VM is suspended); unpause it first"
                )))
            }
            _ => {
                return Err(Error::Conflict(format!(
                    "{what} needs a running container on this VCH: container {id} is not running"
                )))
            }
        }
        // A container started a moment ago may not have connected its channel yet.
        let chans = self.tr().guest();
        if !chans
            .wait_connected(&id, std::time::Duration::from_secs(5))
            .await
        {
            return Err(Error::Conflict(format!(
                "{what}: container {id} has no control channel connected"
            )));
        }
        let s = chans
            .ops(&id, req)
            .ok_or_else(|| Error::Conflict(format!("Container {id} is not running")))?;
        Ok((id, s))
    }

    /// The tether's answer to the request of `s`, as a Docker error when it failed.
    pub(super) async fn guest_answer(
        &self,
        id: &str,
        s: &mut OpsSession,
    ) -> Result<serde_json::Value> {
        let ev = tokio::time::timeout(ANSWER_TIMEOUT, s.next())
            .await
            .map_err(|_| internal(format!("container {id} did not answer in time")))?;
        match ev {
            Some(OpsEvent::Reply(bytes)) => reply_value(id, &bytes),
            Some(_) => Err(internal("unexpected frame before the answer")),
            None => Err(Error::Conflict(format!("Container {id} is not running"))),
        }
    }

    /// The guest's answer decoded as the contract's type for this request.
    pub(super) async fn guest_answer_as<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        s: &mut OpsSession,
    ) -> Result<T> {
        let v = self.guest_answer(id, s).await?;
        serde_json::from_value(v)
            .map_err(|e| internal(format!("container {id} answered in an unknown form: {e}")))
    }
}

/// Maps the tether's JSON reply to a value or a Docker error.
pub(super) fn reply_value(id: &str, bytes: &[u8]) -> Result<serde_json::Value> {
    match serde_json::from_slice::<Reply>(bytes).map_err(internal)? {
        Reply::Ok(v) => Ok(v),
        Reply::Error {
            kind: ErrorKind::NotFound,
            message,
        } => Err(Error::NotFound(format!("{message} {id}"))),
        Reply::Error {
            kind: ErrorKind::Invalid,
            message,
        } => Err(Error::invalid(message)),
        Reply::Error { message, .. } => Err(internal(message)),
    }
}
