//! `docker top`: the process table the container's tether reads from its /proc.

use super::VchBackend;
use container_vm::ops::{OpsRequest, ProcessTable};
use docker_api::models::ContainerTopResponse;
use docker_api::{Error, Result};

impl VchBackend {
    pub(super) async fn top(
        &self,
        key: &str,
        ps_args: Option<String>,
    ) -> Result<ContainerTopResponse> {
        // The tether formats `ps -ef`'s columns itself; other ps options would need ps.
        if let Some(a) = ps_args
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "-ef")
        {
            return Err(Error::not_implemented(format!(
                "docker top with ps options {a:?} (only the default -ef columns)"
            )));
        }
        let id = self.resolve(key)?;
        if self.get(&id)?.status != crate::containers::Status::Running {
            return Err(Error::not_running(&id));
        }
        let (id, mut s) = self
            .guest_request(&id, "docker top", &OpsRequest::Top)
            .await?;
        let table: ProcessTable = self.guest_answer_as(&id, &mut s).await?;
        Ok(ContainerTopResponse {
            titles: Some(table.titles),
            processes: Some(table.processes),
        })
    }
}
