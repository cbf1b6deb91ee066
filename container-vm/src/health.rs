//! Health checks (`HEALTHCHECK` in an image, `--health-*` on `docker run`): the probe the
//! VCH asks a tether to run ([`HealthSpec`], part of the container spec), and the state
//! the tether keeps and reports back ([`HealthState`], in a `Status` frame; see
//! [`crate::status`]).
//!
//! The rules are dockerd's, so that a check behaves the same on either:
//! - the first probe runs one interval after the start (the start interval while the
//!   start period lasts and the container is `starting`), each next one an interval after
//!   the previous one ended ([`next_delay`]);
//! - a probe that exits 0 makes the container `healthy` and ends a failing streak; any
//!   other result (a non-zero exit, a timeout as -1) lengthens the streak, except while
//!   the container is `starting` within its start period; `retries` failures in a row
//!   make it `unhealthy` ([`HealthState::record`]);
//! - the last [`MAX_LOG`] results are kept, each with at most [`MAX_OUTPUT`] bytes of
//!   output (then `...`).
//!
//! The probe runs in the VM, by the tether: it goes on while the VCH restarts, and costs
//! no round trip to vCenter.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Results kept in [`HealthState::log`] (dockerd's `maxLogEntries`).
pub const MAX_LOG: usize = 5;
/// Output bytes kept of one probe (dockerd's `maxOutputLen`).
pub const MAX_OUTPUT: usize = 4096;

/// dockerd's defaults for a zero (unset) value.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;

/// The probe as the tether runs it; the VCH has merged the container's and the image's
/// settings and applied the defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct HealthSpec {
    /// The command, ready to exec (`CMD-SHELL` already wrapped in the shell).
    pub cmd: Vec<String>,
    pub interval_ns: u64,
    pub timeout_ns: u64,
    /// Failures in this period after the start do not count while `starting`.
    pub start_period_ns: u64,
    /// The interval while the start period lasts.
    pub start_interval_ns: u64,
    pub retries: u32,
}

impl HealthSpec {
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_ns)
    }
    pub fn start_period(&self) -> Duration {
        Duration::from_nanos(self.start_period_ns)
    }
    pub fn start_interval(&self) -> Duration {
        Duration::from_nanos(self.start_interval_ns)
    }
}

/// Docker's health states (`State.Health.Status`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    #[default]
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result (`State.Health.Log[]`). Times are RFC 3339.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct ProbeResult {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// A container's health as Docker shows it (`State.Health`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct HealthState {
    pub status: HealthStatus,
    pub failing_streak: u32,
    /// Oldest first, at most [`MAX_LOG`].
    pub log: Vec<ProbeResult>,
}

impl HealthState {
    /// Takes one probe's result; `in_start_period`: the probe started within the start
    /// period. Returns whether the status changed (dockerd then fires `health_status`).
    pub fn record(&mut self, result: ProbeResult, in_start_period: bool, retries: u32) -> bool {
        let before = self.status;
        if self.log.len() >= MAX_LOG {
            self.log.drain(..=self.log.len() - MAX_LOG);
        }
        let passed = result.exit_code == 0;
        self.log.push(result);
        if passed {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(self.status == HealthStatus::Starting && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries.max(1) {
                self.status = HealthStatus::Unhealthy;
            }
        }
        self.status != before
    }
}

/// How long to wait before the next probe, `elapsed` after the container started
/// (dockerd's schedule: the start interval while `starting` within the start period, and
/// never past the period's end).
pub fn next_delay(spec: &HealthSpec, elapsed: Duration, status: HealthStatus) -> Duration {
    let period = spec.start_period();
    if elapsed >= period {
        return spec.interval();
    }
    let left = period - elapsed;
    if left < spec.interval() {
        return left;
    }
    if status == HealthStatus::Starting {
        spec.start_interval()
    } else {
        spec.interval()
    }
}

/// A probe's output, bounded as dockerd bounds it: the first [`MAX_OUTPUT`] bytes, then
/// `...` when there was more.
#[derive(Debug, Default)]
pub struct ProbeOutput {
    kept: Vec<u8>,
    truncated: bool,
}

impl ProbeOutput {
    pub fn push(&mut self, data: &[u8]) {
        let room = MAX_OUTPUT.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&data[..room.min(data.len())]);
        self.truncated |= data.len() > room;
    }

    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.kept).into_owned();
        if self.truncated {
            s.push_str("...");
        }
        s
    }
}

/// The output dockerd records for a probe that ran out of time (exit code -1).
pub fn timeout_output(timeout: Duration, output: &str) -> String {
    let d = go_duration(timeout);
    if output.is_empty() {
        format!("Health check exceeded timeout ({d})")
    } else {
        format!("Health check exceeded timeout ({d}): {output}")
    }
}

/// A duration as Go prints it (`time.Duration.String`): `30s`, `1m30s`, `1h0m0s`,
/// `1.5s`, `500ms`, as dockerd's messages show it.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    // Below a second: one unit with a decimal fraction.
    let fraction = |value: u128, unit: u128, suffix: &str| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return format!("{whole}{suffix}");
        }
        let digits = unit.ilog10() as usize;
        let frac = format!("{rest:0digits$}");
        format!("{whole}.{}{suffix}", frac.trim_end_matches('0'))
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return fraction(ns, 1_000, "µs");
    }
    if ns < 1_000_000_000 {
        return fraction(ns, 1_000_000, "ms");
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let seconds = fraction(s * 1_000_000_000 + sub, 1_000_000_000, "s");
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HealthSpec {
        HealthSpec {
            cmd: vec!["true".into()],
            interval_ns: 30_000_000_000,
            timeout_ns: 30_000_000_000,
            start_period_ns: 0,
            start_interval_ns: 5_000_000_000,
            retries: 3,
        }
    }

    fn probe(code: i64) -> ProbeResult {
        ProbeResult {
            exit_code: code,
            ..Default::default()
        }
    }

    #[test]
    fn failures_turn_unhealthy_after_retries_and_a_pass_heals() {
        let mut h = HealthState::default();
        assert!(!h.record(probe(1), false, 3));
        assert!(!h.record(probe(1), false, 3));
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 2));
        assert!(
            h.record(probe(1), false, 3),
            "the third failure changes the status"
        );
        assert_eq!(h.status, HealthStatus::Unhealthy);
        assert!(!h.record(probe(-1), false, 3));
        assert_eq!(h.failing_streak, 4);
        assert!(h.record(probe(0), false, 3));
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_while_starting() {
        let mut h = HealthState::default();
        for _ in 0..5 {
            h.record(probe(1), true, 1);
        }
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 0));
        // Once healthy, the start period no longer shields it.
        h.record(probe(0), true, 1);
        assert!(h.record(probe(1), true, 1));
        assert_eq!(h.status, HealthStatus::Unhealthy);
    }

    #[test]
    fn the_log_keeps_the_last_five_results() {
        let mut h = HealthState::default();
        for code in 0..8 {
            h.record(probe(code), false, 100);
        }
        let codes: Vec<i64> = h.log.iter().map(|r| r.exit_code).collect();
        assert_eq!(codes, [3, 4, 5, 6, 7]);
    }

    #[test]
    fn the_schedule_uses_the_start_interval_within_the_start_period() {
        let mut s = spec();
        assert_eq!(
            next_delay(&s, Duration::ZERO, HealthStatus::Starting),
            s.interval()
        );
        s.start_period_ns = 60_000_000_000;
        let secs = Duration::from_secs;
        assert_eq!(next_delay(&s, secs(0), HealthStatus::Starting), secs(5));
        assert_eq!(next_delay(&s, secs(0), HealthStatus::Healthy), secs(30));
        // Never past the end of the period.
        assert_eq!(next_delay(&s, secs(50), HealthStatus::Healthy), secs(10));
        assert_eq!(next_delay(&s, secs(61), HealthStatus::Starting), secs(30));
    }

    #[test]
    fn output_is_bounded_as_dockerd_bounds_it() {
        let mut o = ProbeOutput::default();
        o.push(b"ok\n");
        assert_eq!(o.text(), "ok\n");
        o.push(&vec![b'x'; MAX_OUTPUT]);
        let t = o.text();
        assert_eq!(t.len(), MAX_OUTPUT + 3);
        assert!(t.starts_with("ok\nxx") && t.ends_with("x..."));
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        let cases = [
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(10), "10ns"),
            (Duration::ZERO, "0s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want);
        }
        assert_eq!(
            timeout_output(Duration::from_secs(1), ""),
            "Health check exceeded timeout (1s)"
        );
    }

    #[test]
    fn a_state_has_a_pinned_json_form() {
        let mut h = HealthState::default();
        h.record(
            ProbeResult {
                start: "s".into(),
                end: "e".into(),
                exit_code: 0,
                output: "ok".into(),
            },
            false,
            3,
        );
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(
            json,
            r#"{"status":"healthy","failing_streak":0,"log":[{"start":"s","end":"e","exit_code":0,"output":"ok"}]}"#
        );
        assert_eq!(serde_json::from_str::<HealthState>(&json).unwrap(), h);
    }
}
