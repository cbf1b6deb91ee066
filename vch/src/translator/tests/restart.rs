use super::super::restart::*;
use super::meta;
use crate::containers::FinalState;
use std::time::Duration;

fn fin(code: i64, by_user: bool, count: i64) -> FinalState {
    FinalState {
        exit_code: code,
        stopped_by_user: by_user,
        restart_count: count,
        ..Default::default()
    }
}

#[test]
fn policies_parse_from_the_record() {
    let m = |hc| Policy::of(&meta("x", "n", hc));
    assert_eq!(m(super::defaults()), Policy::No);
    assert_eq!(m(super::restart_policy("always", 0)), Policy::Always);
    assert_eq!(
        m(super::restart_policy("unless-stopped", 0)),
        Policy::UnlessStopped
    );
    assert_eq!(
        m(super::restart_policy("on-failure", 3)),
        Policy::OnFailure(3)
    );
    assert_eq!(m(super::restart_policy("no", 0)), Policy::No);
    assert_eq!(Policy::OnFailure(2).name(), "on-failure");
}

#[test]
fn no_never_restarts() {
    assert!(!Policy::No.restarts_after(&fin(1, false, 0)));
    assert!(!Policy::No.restarts_after(&fin(0, false, 0)));
}

#[test]
fn always_and_unless_stopped_restart_any_exit_unless_the_user_stopped_it() {
    for p in [Policy::Always, Policy::UnlessStopped] {
        assert!(p.restarts_after(&fin(0, false, 0)));
        assert!(p.restarts_after(&fin(137, false, 99)));
        assert!(!p.restarts_after(&fin(143, true, 0)));
    }
}

#[test]
fn on_failure_restarts_non_zero_exits_within_the_budget() {
    assert!(!Policy::OnFailure(3).restarts_after(&fin(0, false, 0)));
    assert!(Policy::OnFailure(3).restarts_after(&fin(1, false, 2)));
    assert!(!Policy::OnFailure(3).restarts_after(&fin(1, false, 3)));
    assert!(Policy::OnFailure(0).restarts_after(&fin(1, false, 1000)));
    assert!(!Policy::OnFailure(0).restarts_after(&fin(1, true, 0)));
}

#[test]
fn at_daemon_start_only_always_and_unless_stopped_restart() {
    assert!(Policy::Always.restarts_at_daemon_start(&fin(0, false, 0)));
    assert!(Policy::UnlessStopped.restarts_at_daemon_start(&fin(0, false, 0)));
    assert!(!Policy::UnlessStopped.restarts_at_daemon_start(&fin(0, true, 0)));
    assert!(!Policy::OnFailure(0).restarts_at_daemon_start(&fin(1, false, 0)));
    assert!(!Policy::No.restarts_at_daemon_start(&fin(1, false, 0)));
}

#[test]
fn back_off_starts_at_100ms_and_doubles() {
    let short = Duration::from_secs(1);
    let mut d = None;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let next = next_delay(d, short);
        seen.push(next.as_millis());
        d = Some(next);
    }
    assert_eq!(seen, [100, 200, 400, 800, 1600, 3200]);
}

#[test]
fn back_off_is_capped_at_a_minute() {
    let mut d = Some(Duration::from_millis(100));
    for _ in 0..20 {
        d = Some(next_delay(d, Duration::ZERO));
    }
    assert_eq!(d, Some(MAX_DELAY));
    assert_eq!(
        next_delay(Some(Duration::from_secs(40)), Duration::ZERO),
        MAX_DELAY
    );
}

#[test]
fn back_off_resets_after_a_run_of_ten_seconds() {
    let long = Duration::from_secs(10);
    assert_eq!(next_delay(Some(Duration::from_secs(32)), long), FIRST_DELAY);
    assert_eq!(
        next_delay(
            Some(Duration::from_secs(32)),
            long - Duration::from_millis(1)
        ),
        MAX_DELAY
    );
    assert_eq!(next_delay(None, Duration::ZERO), FIRST_DELAY);
}

#[test]
fn run_length_from_rfc3339_times() {
    assert_eq!(
        run_length("2026-01-01T00:00:00Z", "2026-01-01T00:00:12.5Z"),
        Duration::from_millis(12_500)
    );
    assert_eq!(run_length("", "2026-01-01T00:00:00Z"), Duration::ZERO);
    // A clock that went backwards is a zero-length run, not a panic.
    assert_eq!(
        run_length("2026-01-01T00:00:10Z", "2026-01-01T00:00:00Z"),
        Duration::ZERO
    );
}
