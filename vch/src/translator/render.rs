//! A container's state as Docker clients read it (`inspect`'s `State`, `ps`'s columns),
//! as Docker's typed models.

use crate::containers::{Container, Status};
use chrono::{DateTime, Utc};
use docker_api::models::{ContainerState, ContainerStateStatusEnum, ContainerSummaryStateEnum};

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

/// `ps`'s `State` column as Docker's model.
pub fn summary_state(c: &Container, restarting: bool) -> ContainerSummaryStateEnum {
    state_of(c, restarting)
        .parse()
        .unwrap_or(ContainerSummaryStateEnum::EMPTY)
}

/// `inspect`'s `State`; `restarting`: a restart policy's start is pending.
pub fn state(c: &Container, restarting: bool) -> ContainerState {
    let running = matches!(c.status, Status::Running | Status::Paused);
    let f = c.finished.clone().unwrap_or_default();
    let restarting = restarting && c.status == Status::Exited;
    ContainerState {
        status: state_of(c, restarting)
            .parse()
            .ok()
            .or(Some(ContainerStateStatusEnum::EMPTY)),
        running: Some(running),
        paused: Some(c.status == Status::Paused),
        restarting: Some(restarting),
        oom_killed: Some(f.oom_killed),
        dead: Some(false),
        pid: Some(if running { c.reported.pid.into() } else { 0 }),
        exit_code: Some(f.exit_code),
        error: Some(f.error.unwrap_or_default()),
        started_at: Some(c.started_at.clone().unwrap_or_else(|| ZERO_TIME.into())),
        finished_at: Some(if f.finished_at.is_empty() {
            ZERO_TIME.to_string()
        } else {
            f.finished_at
        }),
        health: c.reported.health.as_ref().map(super::health::to_docker),
    }
}

/// `ps`'s STATUS column as dockerd words it at `now`: "Up 5 minutes", "Exited (0) 2
/// hours ago", `Restarting (<code>) … ago` during a restart policy's back-off.
pub fn status_text(c: &Container, restarting: bool, now: DateTime<Utc>) -> String {
    let f = c.finished.as_ref();
    let code = f.map(|f| f.exit_code).unwrap_or(0);
    let since = |t: Option<&str>| -> Option<String> {
        let t =
            DateTime::parse_from_rfc3339(t.filter(|t| !t.is_empty() && *t != ZERO_TIME)?).ok()?;
        Some(human_duration(now.signed_duration_since(t)))
    };
    let finished = f.map(|f| f.finished_at.as_str());
    let ago = |t: Option<&str>| since(t).map(|d| format!(" {d} ago")).unwrap_or_default();
    if restarting && c.status == Status::Exited {
        return format!("Restarting ({code}){}", ago(finished));
    }
    let up = || match since(c.started_at.as_deref()) {
        Some(d) => format!("Up {d}"),
        None => "Up".to_string(),
    };
    match c.status {
        Status::Running => format!(
            "{}{}",
            up(),
            super::health::status_suffix(c.reported.health.as_ref())
        ),
        Status::Paused => format!("{} (Paused)", up()),
        Status::Exited => format!("Exited ({code}){}", ago(finished)),
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
    }
}

/// A duration as Docker words it (go-units' `HumanDuration`).
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = d.num_minutes();
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Rounded, as go-units does (`d.Hours() + 0.5`).
    let hours = (d.num_seconds() as f64 / 3600.0 + 0.5) as i64;
    match hours {
        1 => "About an hour".into(),
        h if h < 48 => format!("{h} hours"),
        h if h < 24 * 7 * 2 => format!("{} days", h / 24),
        h if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        h if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", d.num_hours() / 24 / 365),
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
