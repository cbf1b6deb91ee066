//! Restart policies, decided as dockerd decides them, and dockerd's restart back-off:
//! pure functions of a container's record and its restart history, so that the
//! supervision path only asks and acts.

use crate::containers::{FinalState, Meta};
use std::time::Duration;

/// `--restart`, as the create request (or `docker update`) gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    No,
    Always,
    UnlessStopped,
    /// `on-failure[:N]`: 0 means no limit.
    OnFailure(i64),
}

impl Policy {
    /// The policy in a container's record (`HostConfig.RestartPolicy`).
    pub fn of(meta: &Meta) -> Policy {
        let p = meta.host_config.restart_policy.as_ref();
        Policy::parse(
            &p.and_then(|p| p.name)
                .map(|n| n.to_string())
                .unwrap_or_default(),
            p.and_then(|p| p.maximum_retry_count).unwrap_or(0),
        )
    }

    pub fn parse(name: &str, retries: i64) -> Policy {
        match name {
            "always" => Policy::Always,
            "unless-stopped" => Policy::UnlessStopped,
            "on-failure" => Policy::OnFailure(retries),
            _ => Policy::No,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::No => "no",
            Policy::Always => "always",
            Policy::UnlessStopped => "unless-stopped",
            Policy::OnFailure(_) => "on-failure",
        }
    }

    /// After an exit: `always` and `unless-stopped` restart unless the user stopped the
    /// container; `on-failure` only after a non-zero exit and within the retry budget.
    pub fn restarts_after(self, fin: &FinalState) -> bool {
        match self {
            Policy::Always | Policy::UnlessStopped => !fin.stopped_by_user,
            Policy::OnFailure(max) => {
                !fin.stopped_by_user && fin.exit_code != 0 && (max <= 0 || fin.restart_count < max)
            }
            Policy::No => false,
        }
    }

    /// When the VCH itself starts: containers that exited while it was away are started
    /// again by `always` and `unless-stopped` (unless the user stopped them), as dockerd
    /// does when the daemon starts.
    pub fn restarts_at_daemon_start(self, fin: &FinalState) -> bool {
        matches!(self, Policy::Always | Policy::UnlessStopped) && !fin.stopped_by_user
    }
}

/// dockerd's back-off: the first restart waits 100 ms, each next one twice as long as
/// the last, at most a minute; a run that lasted at least 10 s starts over at 100 ms.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
pub const MAX_DELAY: Duration = Duration::from_secs(60);
pub const RESET_AFTER: Duration = Duration::from_secs(10);

/// What the back-off remembers of a container: the delay of its last policy restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub last_delay: Option<Duration>,
    /// When the current run started (monotonic; unknown for runs of an earlier VCH).
    pub run_started: Option<tokio::time::Instant>,
    /// A policy restart waits for its delay.
    pub pending: bool,
    /// Bumped whenever a waiting restart must not happen any more (stop, start, rm).
    pub generation: u64,
}

/// The delay before the next policy restart, from the last delay and how long the run
/// that just ended lasted.
pub fn next_delay(last_delay: Option<Duration>, ran_for: Duration) -> Duration {
    match last_delay {
        Some(d) if ran_for < RESET_AFTER => (d * 2).min(MAX_DELAY),
        _ => FIRST_DELAY,
    }
}

/// How long a run lasted, from its RFC 3339 start and finish (zero when unknown).
pub fn run_length(started_at: &str, finished_at: &str) -> Duration {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    match (parse(started_at), parse(finished_at)) {
        (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}
