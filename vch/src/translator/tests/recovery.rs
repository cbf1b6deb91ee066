//! Recovery from every combination of what a (re)starting VCH finds: VM on/off, the
//! tether's state, a final state recorded or not (and of which run), the start in the
//! journal or not.

use super::super::fakes::{FakeVm, MemStarts, Rig};
use super::super::platform::{Power, VmRecord};
use super::super::recovery::{action, recover, Action};
use super::{id, meta, restart_policy, spec};
use crate::containers::{FinalState, Status};
use std::sync::Arc;
use vsphere_client::MoRef;

const T1: &str = "2026-01-01T00:00:01Z";
const T2: &str = "2026-01-01T00:00:02Z";

fn record(
    power: Power,
    guest: Option<&str>,
    fin_of: Option<&str>,
    hc: docker_api::models::HostConfig,
) -> VmRecord {
    let i = id("ab");
    VmRecord {
        vm: MoRef::new("VirtualMachine", "vm-1"),
        name: "web-ab0000000000".into(),
        power,
        spec: Some(spec(&i)),
        meta: Some(meta(&i, "web", hc)),
        final_state: fin_of.map(|s| FinalState {
            exit_code: 3,
            started_at: s.to_string(),
            finished_at: "2026-01-01T00:00:09Z".into(),
            ..Default::default()
        }),
        guest_state: guest.map(str::to_string),
        started: None,
    }
}

/// (power, guest state, final state of run, journal start) -> (status, parked, interrupted)
type Case<'a> = (
    Power,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Status,
    bool,
    bool,
);

#[test]
fn every_combination_recovers_to_the_right_state() {
    use Status::*;
    let cases: &[Case] = &[
        // A parked clone: created, whatever else.
        (Power::On, Some("created"), None, None, Created, true, false),
        (
            Power::On,
            Some("created"),
            None,
            Some(T1),
            Created,
            true,
            false,
        ),
        // On and running (or the guest says nothing yet): running.
        (
            Power::On,
            Some("running"),
            None,
            Some(T1),
            Running,
            false,
            false,
        ),
        (Power::On, None, None, Some(T1), Running, false, false),
        (
            Power::On,
            Some("exited"),
            Some(T1),
            Some(T2),
            Running,
            false,
            false,
        ),
        // Off, never started: created (a parked clone that died with the VCH).
        (
            Power::Off,
            Some("created"),
            None,
            None,
            Created,
            false,
            false,
        ),
        (Power::Off, None, None, None, Created, false, false),
        // Off, its last run's final state recorded: exited.
        (
            Power::Off,
            Some("exited"),
            Some(T1),
            Some(T1),
            Exited,
            false,
            false,
        ),
        (Power::Off, None, Some(T1), None, Exited, false, false),
        // Off, started (journal) without the final state of that run: interrupted.
        (
            Power::Off,
            Some("running"),
            None,
            Some(T1),
            Running,
            false,
            true,
        ),
        (
            Power::Off,
            Some("exited"),
            Some(T1),
            Some(T2),
            Running,
            false,
            true,
        ),
        (
            Power::Off,
            Some("created"),
            None,
            Some(T1),
            Running,
            false,
            true,
        ),
        // Suspended: paused.
        (
            Power::Suspended,
            Some("running"),
            None,
            Some(T1),
            Paused,
            false,
            false,
        ),
    ];
    for (power, guest, fin, journal, status, parked, interrupted) in cases {
        let c = recover(
            record(*power, *guest, *fin, super::defaults()),
            journal.map(str::to_string),
        )
        .unwrap();
        let case = format!("{power:?} {guest:?} fin={fin:?} journal={journal:?}");
        assert_eq!(c.status, *status, "{case}");
        assert_eq!(c.parked, *parked, "{case}");
        assert_eq!(c.interrupted, *interrupted, "{case}");
        assert_eq!(
            c.watched, *interrupted,
            "{case}: the start path records its exit"
        );
    }
}

#[test]
fn the_journal_wins_over_the_vms_own_start_key() {
    let mut r = record(Power::Off, None, Some(T1), super::defaults());
    r.started = Some(T1.into());
    // The VM's key says the recorded run; the journal knows a later start.
    assert!(recover(r.clone(), Some(T2.into())).unwrap().interrupted);
    let c = recover(r, None).unwrap();
    assert!(!c.interrupted);
    assert_eq!(c.started_at.as_deref(), Some(T1));
}

#[test]
fn vms_without_container_records_are_not_containers() {
    let mut r = record(Power::On, None, None, super::defaults());
    r.meta = None;
    assert!(recover(r, None).is_none());
    let mut r = record(Power::On, None, None, super::defaults());
    r.spec = None;
    assert!(recover(r, None).is_none());
}

#[test]
fn actions_follow_state_and_policy() {
    let rec = |power, fin: Option<&str>, journal: Option<&str>, hc| {
        recover(record(power, None, fin, hc), journal.map(str::to_string)).unwrap()
    };
    let none = super::defaults();
    assert_eq!(
        action(&rec(Power::Off, None, Some(T1), none.clone())),
        Action::RecordExit
    );
    assert_eq!(
        action(&rec(Power::On, None, Some(T1), none.clone())),
        Action::Watch
    );
    assert_eq!(
        action(&rec(Power::Off, Some(T1), Some(T1), none.clone())),
        Action::Nothing
    );
    assert_eq!(
        action(&rec(
            Power::Off,
            Some(T1),
            Some(T1),
            restart_policy("always", 0)
        )),
        Action::Restart
    );
    assert_eq!(
        action(&rec(
            Power::Off,
            Some(T1),
            Some(T1),
            restart_policy("unless-stopped", 0)
        )),
        Action::Restart
    );
    assert_eq!(
        action(&rec(
            Power::Off,
            Some(T1),
            Some(T1),
            restart_policy("on-failure", 0)
        )),
        Action::Nothing
    );
    let mut stopped = rec(Power::Off, Some(T1), Some(T1), restart_policy("always", 0));
    stopped.finished.as_mut().unwrap().stopped_by_user = true;
    assert_eq!(action(&stopped), Action::Nothing);
    assert_eq!(
        action(&rec(Power::Off, None, None, restart_policy("always", 0))),
        Action::Nothing
    );
}

/// A VCH that starts over a pool a previous one left.
async fn restarted(vm: FakeVm, journal: Option<&str>) -> (Rig, String, MoRef) {
    let p = super::super::fakes::FakePlatform::new();
    let i = vm.meta.as_ref().unwrap().id.clone();
    let r = p.insert(vm);
    let starts = Arc::new(MemStarts::default());
    if let Some(s) = journal {
        starts.starts.lock().insert(i.clone(), s.to_string());
    }
    let rig = Rig::on(p, starts);
    let loaded = rig.t.load().await.unwrap();
    rig.t.adopt(loaded).await;
    (rig, i, r)
}

fn vm(power: Power, hc: docker_api::models::HostConfig) -> FakeVm {
    let i = super::naming_id();
    FakeVm::container("web-x", spec(&i), meta(&i, "web", hc), power)
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_run_gets_the_exit_code_its_log_says() {
    let mut v = vm(Power::Off, super::defaults());
    v.exit = Some(super::super::platform::ExitRecord {
        code: 7,
        error: None,
    });
    let (rig, i, r) = restarted(v, Some(T1)).await;
    assert_eq!(rig.status(&i), Some(Status::Exited));
    assert_eq!(rig.c(&i).finished.unwrap().exit_code, 7);
    // Persisted in the VM, so the next VCH start finds it exited, not interrupted.
    assert_eq!(rig.p.vm(&r).unwrap().final_state.unwrap().started_at, T1);
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_run_without_exit_record_was_killed() {
    let (rig, i, _) = restarted(vm(Power::Off, super::defaults()), Some(T1)).await;
    assert_eq!(rig.c(&i).finished.unwrap().exit_code, 137);
}

#[tokio::test(start_paused = true)]
async fn a_never_started_clone_stays_created_whatever_its_log_says() {
    let mut v = vm(Power::Off, super::defaults());
    v.exit = Some(super::super::platform::ExitRecord {
        code: 125,
        error: None,
    });
    let (rig, i, _) = restarted(v, None).await;
    assert_eq!(rig.status(&i), Some(Status::Created));
    assert!(rig.c(&i).finished.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_running_container_is_watched_again_and_its_exit_recorded() {
    let (rig, i, _) = restarted(vm(Power::On, super::defaults()), Some(T1)).await;
    assert_eq!(rig.status(&i), Some(Status::Running));
    rig.p.exit(&i, 4);
    rig.until_status(&i, Status::Exited).await;
    assert_eq!(rig.c(&i).finished.unwrap().exit_code, 4);
}

#[tokio::test(start_paused = true)]
async fn always_containers_that_exited_meanwhile_start_again_with_the_vch() {
    let mut v = vm(Power::Off, restart_policy("always", 0));
    v.final_state = Some(FinalState {
        started_at: T1.into(),
        exit_code: 0,
        ..Default::default()
    });
    let (rig, i, r) = restarted(v, Some(T1)).await;
    assert_eq!(rig.status(&i), Some(Status::Running));
    assert_eq!(rig.p.vm(&r).unwrap().power, Power::On);
}

#[tokio::test(start_paused = true)]
async fn unless_stopped_containers_the_user_stopped_stay_down() {
    let mut v = vm(Power::Off, restart_policy("unless-stopped", 0));
    v.final_state = Some(FinalState {
        started_at: T1.into(),
        stopped_by_user: true,
        ..Default::default()
    });
    let (rig, i, _) = restarted(v, Some(T1)).await;
    assert_eq!(rig.status(&i), Some(Status::Exited));
    assert_eq!(rig.p.count("power_on"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_vcenter_at_start_is_a_503() {
    let p = super::super::fakes::FakePlatform::new();
    p.set_unreachable(true);
    let rig = Rig::on(p, Arc::new(MemStarts::default()));
    let e = crate::translator::error::to_docker(rig.t.load().await.unwrap_err());
    assert_eq!(e.status().as_u16(), 503);
}
