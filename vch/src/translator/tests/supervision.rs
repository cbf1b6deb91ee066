//! Exits through the pool watch, restart policies with back-off, the template healed.

use super::super::fakes::Rig;
use super::super::platform::PlatformError;
use super::restart_policy;
use crate::containers::Status;
use std::time::Duration;
use tokio::time::Instant;

fn status_of(e: super::super::Error) -> u16 {
    crate::translator::error::to_docker(e).status().as_u16()
}

/// Waits for the container to run again after an exit; returns how long it took.
async fn restarted_after(rig: &Rig, id: &str, code: i64) -> Duration {
    let before = rig.c(id).started_at.clone();
    let t0 = Instant::now();
    rig.p.exit(id, code);
    rig.until("restarted", |r| {
        let c = r.c(id);
        c.status == Status::Running && c.started_at != before
    })
    .await;
    t0.elapsed()
}

#[tokio::test(start_paused = true)]
async fn always_restarts_after_100ms_then_doubles() {
    let rig = Rig::new();
    let i = rig.run("web", restart_policy("always", 0)).await;
    let mut delays = Vec::new();
    for _ in 0..4 {
        delays.push(restarted_after(&rig, &i, 0).await.as_millis() / 10 * 10);
    }
    assert_eq!(delays, [100, 200, 400, 800]);
    assert_eq!(rig.c(&i).finished.unwrap().restart_count, 4);
}

#[tokio::test(start_paused = true)]
async fn the_back_off_resets_after_a_run_of_ten_seconds() {
    let rig = Rig::new();
    let i = rig.run("web", restart_policy("always", 0)).await;
    for _ in 0..3 {
        restarted_after(&rig, &i, 1).await;
    }
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(Duration::from_secs(11)).await;
    let d = restarted_after(&rig, &i, 1).await;
    assert!(d < Duration::from_millis(150), "{d:?}");
}

#[tokio::test(start_paused = true)]
async fn no_restart_before_the_delay() {
    let rig = Rig::new();
    let i = rig.run("web", restart_policy("always", 0)).await;
    rig.p.exit(&i, 0);
    rig.until_status(&i, Status::Exited).await;
    assert!(rig.t.restart_pending(&i));
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(rig.status(&i), Some(Status::Exited));
    rig.until_status(&i, Status::Running).await;
    assert!(!rig.t.restart_pending(&i));
}

#[tokio::test(start_paused = true)]
async fn on_failure_stops_after_its_budget() {
    let rig = Rig::new();
    let i = rig.run("web", restart_policy("on-failure", 2)).await;
    restarted_after(&rig, &i, 1).await;
    restarted_after(&rig, &i, 1).await;
    rig.p.exit(&i, 1);
    rig.until_status(&i, Status::Exited).await;
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(rig.status(&i), Some(Status::Exited));
    assert_eq!(rig.c(&i).finished.unwrap().restart_count, 2);
}

#[tokio::test(start_paused = true)]
async fn on_failure_does_not_restart_a_clean_exit() {
    let rig = Rig::new();
    let i = rig.run("web", restart_policy("on-failure", 0)).await;
    rig.p.exit(&i, 0);
    rig.until_status(&i, Status::Exited).await;
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.status(&i), Some(Status::Exited));
    assert!(!rig.t.restart_pending(&i));
}

#[tokio::test(start_paused = true)]
async fn no_policy_means_no_restart() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.exit(&i, 1);
    rig.until_status(&i, Status::Exited).await;
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.p.count("power_on"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stopped_container_is_not_restarted_by_its_policy() {
    for policy in ["always", "unless-stopped", "on-failure"] {
        let rig = Rig::new();
        let i = rig.run("web", restart_policy(policy, 0)).await;
        rig.t.stop(&i, None, Some(10)).await.unwrap();
        // allow-sleep: (paused clock) the time passing is the behaviour under test
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(rig.status(&i), Some(Status::Exited), "{policy}");
        assert_eq!(rig.p.count("power_on"), 0, "{policy}");
    }
}

#[tokio::test(start_paused = true)]
async fn stop_during_the_back_off_calls_the_restart_off() {
    let rig = Rig::new();
    let i = rig.run("web", restart_policy("always", 0)).await;
    for _ in 0..5 {
        restarted_after(&rig, &i, 1).await;
    }
    rig.p.exit(&i, 1); // the next delay is 3.2 s
    rig.until_status(&i, Status::Exited).await;
    assert!(rig.t.restart_pending(&i));
    rig.t.stop(&i, None, None).await.unwrap();
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(rig.status(&i), Some(Status::Exited));
    assert!(rig.c(&i).finished.unwrap().stopped_by_user);
}

#[tokio::test(start_paused = true)]
async fn a_user_start_during_the_back_off_is_not_doubled() {
    let rig = Rig::new();
    let i = rig.run("web", restart_policy("always", 0)).await;
    for _ in 0..5 {
        restarted_after(&rig, &i, 1).await;
    }
    rig.p.exit(&i, 1);
    rig.until_status(&i, Status::Exited).await;
    rig.t.start(&i).await.unwrap();
    let ons = rig.p.count("power_on");
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        rig.p.count("power_on"),
        ons,
        "the waiting restart was called off"
    );
    assert_eq!(rig.status(&i), Some(Status::Running));
}

#[tokio::test(start_paused = true)]
async fn rm_during_the_back_off_removes_for_good() {
    let rig = Rig::new();
    let i = rig.run("web", restart_policy("always", 0)).await;
    rig.p.exit(&i, 1);
    rig.until_status(&i, Status::Exited).await;
    rig.t.remove(&i, false, false).await.unwrap();
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!rig.t.exists(&i));
    assert_eq!(rig.p.count("power_on"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_killed_always_container_restarts_unless_the_user_killed_it() {
    let rig = Rig::new();
    let i = rig.run("web", restart_policy("always", 0)).await;
    rig.p.power_off_out_of_band(&rig.c(&i).vm);
    rig.until("restarted", |r| {
        r.p.count("power_on") == 1 && r.status(&i) == Some(Status::Running)
    })
    .await;
    assert_eq!(rig.c(&i).finished.unwrap().exit_code, 137);
    rig.t.kill(&i, None).await.unwrap();
    rig.until_status(&i, Status::Exited).await;
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.status(&i), Some(Status::Exited));
}

#[tokio::test(start_paused = true)]
async fn the_template_going_off_is_healed() {
    let rig = Rig::new();
    rig.p.template_goes_off();
    rig.until("healed", |r| r.p.heals().0 == 1).await;
    rig.create("web", super::defaults()).await;
}

#[tokio::test(start_paused = true)]
async fn a_clone_refused_by_an_off_template_heals_it_and_clones_again() {
    let rig = Rig::new();
    rig.p.fail(
        "instant_clone",
        PlatformError::InvalidPowerState("vSphere: off".into()),
    );
    rig.create("web", super::defaults()).await;
    assert_eq!(rig.p.heals(), (1, 0));
    assert_eq!(rig.p.count("instant_clone"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_clone_of_a_vanished_template_heals_it() {
    let rig = Rig::new();
    rig.p.fail(
        "instant_clone",
        PlatformError::NotFound("vSphere: gone".into()),
    );
    rig.create("web", super::defaults()).await;
    assert_eq!(rig.p.heals(), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_hung_template_is_power_cycled_once() {
    let rig = Rig::new();
    rig.p.fail(
        "instant_clone",
        PlatformError::NotAnswering("vSphere: not answering".into()),
    );
    rig.create("web", super::defaults()).await;
    assert_eq!(rig.p.heals().1, 1);
}

#[tokio::test(start_paused = true)]
async fn healing_is_tried_once_per_create() {
    let rig = Rig::new();
    for _ in 0..2 {
        rig.p.fail(
            "instant_clone",
            PlatformError::InvalidPowerState("vSphere: off".into()),
        );
    }
    let e = rig
        .t
        .create(super::plan(&super::naming_id(), "web", super::defaults()))
        .await
        .unwrap_err();
    assert_eq!(status_of(e), 409);
    assert_eq!(rig.p.count("instant_clone"), 2);
}

#[tokio::test(start_paused = true)]
async fn creates_wait_for_an_unready_template_then_answer_503() {
    let rig = Rig::new();
    rig.p.set_template_ready(false);
    let t0 = Instant::now();
    let e = rig
        .t
        .create(super::plan(&super::naming_id(), "web", super::defaults()))
        .await
        .unwrap_err();
    assert!(t0.elapsed() >= crate::supervisor::READY_BOUND);
    assert_eq!(status_of(e), 503);
}

#[tokio::test(start_paused = true)]
async fn a_create_waiting_for_the_template_goes_on_once_it_is_ready() {
    let rig = Rig::new();
    rig.p.set_template_ready(false);
    let t = rig.t.clone();
    let h = tokio::spawn(async move {
        t.create(super::plan(&super::naming_id(), "web", super::defaults()))
            .await
    });
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!h.is_finished());
    rig.p.set_template_ready(true);
    h.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn vcenter_unreachable_at_create_is_503_and_leaves_nothing() {
    let rig = Rig::new();
    rig.p.set_unreachable(true);
    let e = rig
        .t
        .create(super::plan(&super::naming_id(), "web", super::defaults()))
        .await
        .unwrap_err();
    assert_eq!(status_of(e), 503);
    assert!(rig.t.all().is_empty());
}

#[tokio::test(start_paused = true)]
async fn too_many_layers_is_400() {
    let rig = Rig::new();
    let mut plan = super::plan(&super::naming_id(), "web", super::defaults());
    plan.layers = (0..63).map(|n| format!("[ds] l{n}.vmdk")).collect();
    assert_eq!(status_of(rig.t.create(plan).await.unwrap_err()), 400);
}

#[tokio::test(start_paused = true)]
async fn an_exit_is_recorded_once_even_with_two_watches() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.exit(&i, 0);
    rig.until_status(&i, Status::Exited).await;
    rig.t.start(&i).await.unwrap(); // cold: its own watch and the pool watch
    rig.p.exit(&i, 0);
    rig.until("second exit", |r| {
        r.events_of(&i).iter().filter(|a| *a == "die").count() == 2
    })
    .await;
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rig.events_of(&i).iter().filter(|a| *a == "die").count(), 2);
}
