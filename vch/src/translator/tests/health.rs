//! Health checks: the create-time resolution (merge with the image's, dockerd's
//! validation, the probe the tether runs) and the tethers' reports applied to containers
//! (inspect's `State.Health` and `State.Pid`, ps's status and filter, events).

use super::super::fakes::Rig;
use super::super::filters::{select, Query};
use super::super::health::{merge, probe};
use super::super::render;
use crate::containers::Status;
use container_vm::health::{HealthState, HealthStatus, ProbeResult};
use container_vm::status::GuestStatus;
use docker_api::filters::Filters;
use docker_api::models::{HealthConfig, HealthStatusEnum};

fn check(test: &[&str]) -> HealthConfig {
    HealthConfig {
        test: Some(test.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

const SECOND: i64 = 1_000_000_000;

#[test]
fn the_request_overrides_the_image_field_by_field() {
    let image = HealthConfig {
        interval: Some(5 * SECOND),
        retries: Some(7),
        ..check(&["CMD", "image-check"])
    };
    let request = HealthConfig {
        interval: Some(2 * SECOND),
        retries: Some(0),
        ..Default::default()
    };
    let m = merge(Some(&request), Some(&image)).unwrap();
    assert_eq!(m.test, image.test, "no test asked: the image's");
    assert_eq!((m.interval, m.retries), (Some(2 * SECOND), Some(7)));
    assert_eq!(merge(None, Some(&image)), Some(image.clone()));
    assert_eq!(merge(None, None), None);
    // --no-healthcheck turns the image's off.
    let off = merge(Some(&check(&["NONE"])), Some(&image));
    assert_eq!(probe(off.as_ref(), &[]).unwrap(), None);
}

#[test]
fn probes_get_dockerds_defaults_and_shell() {
    let p = probe(Some(&check(&["CMD-SHELL", "wget -q localhost"])), &[])
        .unwrap()
        .unwrap();
    assert_eq!(p.cmd, ["/bin/sh", "-c", "wget -q localhost"]);
    assert_eq!(
        (p.interval().as_secs(), p.timeout().as_secs(), p.retries),
        (30, 30, 3)
    );
    assert_eq!(
        (p.start_period().as_secs(), p.start_interval().as_secs()),
        (0, 5)
    );
    let shell = vec!["/bin/ash".to_string(), "-ec".to_string()];
    let p = probe(Some(&check(&["CMD-SHELL", "true"])), &shell)
        .unwrap()
        .unwrap();
    assert_eq!(p.cmd, ["/bin/ash", "-ec", "true"], "the container's SHELL");
    let p = probe(Some(&check(&["CMD", "/bin/check", "--fast"])), &[])
        .unwrap()
        .unwrap();
    assert_eq!(p.cmd, ["/bin/check", "--fast"]);
}

#[test]
fn bad_checks_are_refused_with_dockerds_words() {
    let cases = [
        (
            HealthConfig {
                interval: Some(999),
                ..check(&["CMD", "x"])
            },
            "Interval in Healthcheck cannot be less than 1ms",
        ),
        (
            HealthConfig {
                timeout: Some(1),
                ..check(&["CMD", "x"])
            },
            "Timeout in Healthcheck cannot be less than 1ms",
        ),
        (
            HealthConfig {
                retries: Some(-1),
                ..check(&["CMD", "x"])
            },
            "Retries in Healthcheck cannot be negative",
        ),
        (check(&["HTTP", "/"]), "unknown Healthcheck type \"HTTP\""),
        (check(&["CMD"]), "the Healthcheck command is empty"),
    ];
    for (c, want) in cases {
        let e = probe(Some(&c), &[]).unwrap_err();
        let d = crate::translator::error::to_docker(e);
        assert_eq!(d.status().as_u16(), 400);
        assert!(d.to_string().contains(want), "{d} / {want}");
    }
}

fn report(pid: i32, status: HealthStatus, streak: u32) -> GuestStatus {
    GuestStatus {
        pid,
        health: Some(HealthState {
            status,
            failing_streak: streak,
            log: vec![ProbeResult {
                start: "2026-12-06T00:00:00Z".into(),
                end: "2026-12-06T00:00:01Z".into(),
                exit_code: i64::from(streak > 0),
                output: "probe said so\n".into(),
            }],
        }),
    }
}

/// Runs a container whose spec carries a check.
async fn run_checked(rig: &Rig, name: &str) -> String {
    let id = crate::translator::naming::random_id();
    let mut plan = super::plan(&id, name, super::defaults());
    plan.spec.health = probe(Some(&check(&["CMD", "true"])), &[]).unwrap();
    rig.t.create(plan).await.unwrap();
    rig.t.start(&id).await.unwrap();
    id
}

fn health_filter(rig: &Rig, value: &str) -> Vec<String> {
    let q = Query {
        all: true,
        filters: Filters::from_pairs([("health", value)]),
        ..Default::default()
    };
    select(rig.t.all(), &q)
        .unwrap()
        .into_iter()
        .map(|c| c.meta.name)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn reports_drive_state_health_pid_ps_and_events() {
    let rig = Rig::new();
    let id = run_checked(&rig, "web").await;
    rig.run("plain", super::defaults()).await;
    let c = rig.c(&id);
    let state = render::state(&c, false);
    assert_eq!(
        state.health.and_then(|h| h.status),
        Some(HealthStatusEnum::STARTING),
        "a checked container starts as starting"
    );
    assert_eq!(state.pid, Some(0), "no pid before the tether says it");
    assert_eq!(health_filter(&rig, "starting"), ["web"]);
    assert_eq!(health_filter(&rig, "none"), ["plain"]);

    rig.g.report(&id, report(42, HealthStatus::Healthy, 0));
    rig.until("healthy", |r| {
        r.c(&id).reported.health.map(|h| h.status) == Some(HealthStatus::Healthy)
    })
    .await;
    let c = rig.c(&id);
    let state = render::state(&c, false);
    assert_eq!(state.pid, Some(42));
    let h = state.health.unwrap();
    assert_eq!(h.status, Some(HealthStatusEnum::HEALTHY));
    assert_eq!(h.log.unwrap()[0].output.as_deref(), Some("probe said so\n"));
    let ps = render::status_text(&c, false, chrono::Utc::now());
    assert!(ps.starts_with("Up ") && ps.ends_with(" (healthy)"), "{ps}");
    assert_eq!(health_filter(&rig, "healthy"), ["web"]);

    // The same status again fires nothing; a change fires dockerd's event.
    rig.g.report(&id, report(42, HealthStatus::Healthy, 0));
    rig.g.report(&id, report(42, HealthStatus::Unhealthy, 3));
    rig.until("unhealthy", |r| {
        r.c(&id).reported.health.map(|h| h.status) == Some(HealthStatus::Unhealthy)
    })
    .await;
    let health_events: Vec<String> = rig
        .events_of(&id)
        .into_iter()
        .filter(|a| a.starts_with("health_status"))
        .collect();
    assert_eq!(
        health_events,
        ["health_status: healthy", "health_status: unhealthy"]
    );
    let ps = render::status_text(&rig.c(&id), false, chrono::Utc::now());
    assert!(ps.ends_with(" (unhealthy)"), "{ps}");

    // After the exit: no pid, the last health kept; a new run starts over.
    rig.p.exit(&id, 0);
    rig.until_status(&id, Status::Exited).await;
    let state = render::state(&rig.c(&id), false);
    assert_eq!(state.pid, Some(0));
    assert_eq!(
        state.health.and_then(|h| h.status),
        Some(HealthStatusEnum::UNHEALTHY)
    );
    rig.t.start(&id).await.unwrap();
    assert_eq!(
        rig.c(&id).reported.health.map(|h| h.status),
        Some(HealthStatus::Starting)
    );
}

#[tokio::test(start_paused = true)]
async fn a_report_that_beats_the_start_is_kept() {
    let rig = Rig::new();
    let id = crate::translator::naming::random_id();
    let mut plan = super::plan(&id, "early", super::defaults());
    plan.spec.health = probe(Some(&check(&["CMD", "true"])), &[]).unwrap();
    rig.t.create(plan).await.unwrap();
    // The tether runs the process and reports before the start is recorded.
    rig.g.report(&id, report(7, HealthStatus::Starting, 0));
    rig.until("reported", |r| r.c(&id).reported.pid == 7).await;
    rig.t.start(&id).await.unwrap();
    assert_eq!(render::state(&rig.c(&id), false).pid, Some(7));
}
