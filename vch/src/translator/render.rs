//! A container's state as Docker clients read it (`inspect`'s `State`, `ps`'s columns).

use crate::containers::{Container, Status};

/// Docker's name of a state (`ps --filter status=`, `State.Status`).
pub fn state_name(s: Status) -> &'static str {
    match s {
        Status::Created => "created",
        Status::Running => "running",
        Status::Exited => "exited",
        Status::Removing => "removing",
        Status::Paused => "paused",
    }
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Docker's state of a container: `restarting` while a restart policy's back-off runs
/// (the VM is off, a start is scheduled), else the state of its status.
pub fn state_of(c: &Container, restarting: bool) -> &'static str {
    if restarting && c.status == Status::Exited {
        "restarting"
    } else {
        state_name(c.status)
    }
}

/// `inspect`'s `State`; `restarting`: a restart policy's start is pending.
pub fn state_json(c: &Container, restarting: bool) -> serde_json::Value {
    let running = matches!(c.status, Status::Running | Status::Paused);
    let f = c.finished.clone().unwrap_or_default();
    let restarting = restarting && c.status == Status::Exited;
    serde_json::json!({
        "Status": state_of(c, restarting), "Running": running, "Paused": c.status == Status::Paused,
        "Restarting": restarting, "OOMKilled": f.oom_killed, "Dead": false, "Pid": 0,
        "ExitCode": f.exit_code, "Error": f.error.unwrap_or_default(),
        "StartedAt": c.started_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
        "FinishedAt": if f.finished_at.is_empty() { ZERO_TIME.to_string() } else { f.finished_at },
    })
}

/// `ps`'s STATUS column (`Restarting (<code>)` during a restart policy's back-off).
pub fn status_text(c: &Container, restarting: bool) -> String {
    let code = c.finished.as_ref().map(|f| f.exit_code).unwrap_or(0);
    if restarting && c.status == Status::Exited {
        return format!("Restarting ({code})");
    }
    match c.status {
        Status::Running => "Up".to_string(),
        Status::Paused => "Up (Paused)".to_string(),
        Status::Exited => format!(
            "Exited ({})",
            c.finished.as_ref().map(|f| f.exit_code).unwrap_or(0)
        ),
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
    }
}

/// The command line `ps` shows.
pub fn command(c: &Container) -> String {
    c.spec.cmd.join(" ")
}

/// Creation time in seconds since the epoch (`ps`'s `Created`).
pub fn created_unix(c: &Container) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&c.meta.created)
        .map(|d| d.timestamp())
        .unwrap_or(0)
}
