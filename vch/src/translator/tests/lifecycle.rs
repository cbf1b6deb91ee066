//! create -> start -> stop/kill/exit -> rm, and the rules of each verb.

use super::super::fakes::Rig;
use super::super::platform::{PlatformError, Power};
use super::super::Error;
use crate::containers::Status;
use docker_api::options::WaitCondition;

fn status_of(e: Error) -> u16 {
    crate::translator::error::to_docker(e).status().as_u16()
}

#[tokio::test(start_paused = true)]
async fn create_makes_a_parked_clone_and_a_create_event() {
    let rig = Rig::new();
    let i = rig.create("web", super::defaults()).await;
    let c = rig.c(&i);
    assert_eq!(c.status, Status::Created);
    assert!(c.parked);
    assert_eq!(c.vm_name, format!("web-{}", &i[..12]));
    assert!(c.spec.parked, "the tether waits for the word");
    assert_eq!(rig.p.vm(&c.vm).unwrap().power, Power::On);
    assert_eq!(rig.events_of(&i), ["create"]);
}

#[tokio::test(start_paused = true)]
async fn create_reshapes_the_clone_only_when_it_differs_from_the_template() {
    let rig = Rig::new();
    rig.create("small", super::defaults()).await;
    assert_eq!(rig.p.count("reconfigure"), 0);
    let mut plan = super::plan(&super::naming_id(), "big", super::defaults());
    plan.memory_mb = 512;
    plan.cpus = 2;
    let i = rig.t.create(plan).await.unwrap();
    let v = rig.p.vm(&rig.c(&i).vm).unwrap();
    assert_eq!((v.memory_mb, v.cpus), (512, 2));
}

#[tokio::test(start_paused = true)]
async fn a_failed_reshape_destroys_the_clone() {
    let rig = Rig::new();
    rig.p
        .fail("reconfigure", PlatformError::Busy("vSphere: busy".into()));
    let mut plan = super::plan(&super::naming_id(), "big", super::defaults());
    plan.memory_mb = 512;
    let e = rig.t.create(plan).await.unwrap_err();
    assert_eq!(status_of(e), 409);
    assert_eq!(rig.p.vm_count(), 0);
    assert!(rig.t.all().is_empty());
}

#[tokio::test(start_paused = true)]
async fn first_start_tells_the_parked_tether_to_run() {
    let rig = Rig::new();
    let i = rig.create("web", super::defaults()).await;
    rig.t.start(&i).await.unwrap();
    let c = rig.c(&i);
    assert_eq!(c.status, Status::Running);
    assert!(!c.parked);
    assert_eq!(*rig.g.started.lock(), std::slice::from_ref(&i));
    assert_eq!(
        rig.p.count("power_on"),
        0,
        "no boot: the clone runs already"
    );
    assert!(
        rig.starts.starts.lock().contains_key(&i),
        "the start is journaled"
    );
    assert_eq!(rig.events_of(&i), ["create", "start"]);
}

#[tokio::test(start_paused = true)]
async fn starting_a_running_container_is_304() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    assert_eq!(status_of(rig.t.start(&i).await.unwrap_err()), 304);
}

#[tokio::test(start_paused = true)]
async fn a_clone_whose_tether_never_connects_stays_created_and_the_start_is_taken_back() {
    let rig = Rig::new();
    let i = super::naming_id();
    rig.g.mute.lock().insert(i.clone());
    rig.t
        .create(super::plan(&i, "web", super::defaults()))
        .await
        .unwrap();
    let e = rig.t.start(&i).await.unwrap_err();
    assert_eq!(status_of(e.clone()), 500);
    assert!(e.to_string().contains("did not connect"), "{e}");
    let c = rig.c(&i);
    assert_eq!((c.status, c.parked), (Status::Created, true));
    assert!(!rig.starts.starts.lock().contains_key(&i));
}

#[tokio::test(start_paused = true)]
async fn an_exit_is_recorded_with_its_code_and_persisted() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.exit(&i, 3);
    rig.until_status(&i, Status::Exited).await;
    let f = rig.c(&i).finished.unwrap();
    assert_eq!(f.exit_code, 3);
    assert!(!f.finished_at.is_empty());
    assert_eq!(
        rig.p
            .vm(&rig.c(&i).vm)
            .unwrap()
            .final_state
            .unwrap()
            .exit_code,
        3
    );
    assert_eq!(rig.events_of(&i), ["create", "start", "die"]);
}

#[tokio::test(start_paused = true)]
async fn an_exit_error_and_oom_kill_are_kept() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.exit_with(&i, 137, Some("out of memory"), true);
    rig.until_status(&i, Status::Exited).await;
    let f = rig.c(&i).finished.unwrap();
    assert!(f.oom_killed);
    assert_eq!(f.error.as_deref(), Some("out of memory"));
}

#[tokio::test(start_paused = true)]
async fn oom_is_only_claimed_for_a_sigkill() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.exit_with(&i, 1, None, true);
    rig.until_status(&i, Status::Exited).await;
    assert!(!rig.c(&i).finished.unwrap().oom_killed);
}

#[tokio::test(start_paused = true)]
async fn a_vm_powered_off_out_of_band_exits_137() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.power_off_out_of_band(&rig.c(&i).vm);
    rig.until_status(&i, Status::Exited).await;
    assert_eq!(rig.c(&i).finished.unwrap().exit_code, 137);
}

#[tokio::test(start_paused = true)]
async fn second_start_is_a_cold_power_on_with_its_own_watch() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.exit(&i, 0);
    rig.until_status(&i, Status::Exited).await;
    rig.t.start(&i).await.unwrap();
    assert_eq!(rig.p.count("power_on"), 1);
    assert!(rig.c(&i).watched);
    rig.p.exit(&i, 5);
    rig.until("second exit", |r| {
        r.c(&i).finished.map(|f| f.exit_code) == Some(5)
    })
    .await;
    assert_eq!(
        rig.events_of(&i),
        ["create", "start", "die", "start", "die"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cold_start_vcenter_refuses_is_taken_back() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.exit(&i, 0);
    rig.until_status(&i, Status::Exited).await;
    let before = rig.starts.starts.lock().get(&i).cloned();
    rig.p.set_unreachable(true);
    let e = rig.t.start(&i).await.unwrap_err();
    assert_eq!(status_of(e), 503);
    let c = rig.c(&i);
    assert_eq!(c.status, Status::Exited);
    assert!(!c.watched);
    assert_ne!(rig.starts.starts.lock().get(&i).cloned(), before);
}

#[tokio::test(start_paused = true)]
async fn stop_sends_term_and_the_process_exit_ends_it() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.t.stop(&i, None, Some(10)).await.unwrap();
    assert_eq!(rig.g.signals_of(&i), [15]);
    assert_eq!(rig.c(&i).status, Status::Exited);
    let f = rig.c(&i).finished.unwrap();
    assert_eq!(f.exit_code, 143);
    assert!(f.stopped_by_user);
    assert_eq!(rig.p.count("power_off"), 0, "no hard stop was needed");
}

#[tokio::test(start_paused = true)]
async fn stop_powers_off_after_the_timeout_when_the_signal_is_ignored() {
    let rig = Rig::new();
    rig.g.exit_on.lock().clear();
    let i = rig.run("web", super::defaults()).await;
    let t0 = tokio::time::Instant::now();
    rig.t.stop(&i, Some("SIGUSR1"), Some(3)).await.unwrap();
    assert!(t0.elapsed() >= std::time::Duration::from_secs(3));
    assert_eq!(rig.g.signals_of(&i), [10]);
    assert_eq!(rig.p.count("power_off"), 1);
    assert_eq!(rig.c(&i).finished.unwrap().exit_code, 137);
}

#[tokio::test(start_paused = true)]
async fn stopping_a_stopped_container_is_304() {
    let rig = Rig::new();
    let i = rig.create("web", super::defaults()).await;
    assert_eq!(
        status_of(rig.t.stop(&i, None, None).await.unwrap_err()),
        304
    );
}

#[tokio::test(start_paused = true)]
async fn stop_when_vcenter_is_away_is_503() {
    let rig = Rig::new();
    rig.g.exit_on.lock().clear();
    let i = rig.run("web", super::defaults()).await;
    rig.p.set_unreachable(true);
    let e = rig.t.stop(&i, None, Some(0)).await.unwrap_err();
    let d = crate::translator::error::to_docker(e);
    assert_eq!(d.status().as_u16(), 503);
    assert!(
        d.to_string()
            .contains("vCenter https://vc.test/sdk is unreachable"),
        "{d}"
    );
}

#[tokio::test(start_paused = true)]
async fn kill_is_a_power_off() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.t.kill(&i, None).await.unwrap();
    rig.until_status(&i, Status::Exited).await;
    assert_eq!(rig.p.count("power_off"), 1);
    assert!(rig.g.signals_of(&i).is_empty());
    let f = rig.c(&i).finished.unwrap();
    assert_eq!(f.exit_code, 137);
    assert!(f.stopped_by_user);
}

#[tokio::test(start_paused = true)]
async fn kill_with_another_signal_goes_through_the_channel() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.t.kill(&i, Some("HUP")).await.unwrap();
    assert_eq!(rig.g.signals_of(&i), [1]);
    assert_eq!(rig.c(&i).status, Status::Running);
    assert_eq!(rig.p.count("power_off"), 0);
}

#[tokio::test(start_paused = true)]
async fn kill_refuses_bad_signals_and_stopped_containers() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    assert_eq!(
        status_of(rig.t.kill(&i, Some("NOPE")).await.unwrap_err()),
        400
    );
    let j = rig.create("idle", super::defaults()).await;
    let e = rig.t.kill(&j, None).await.unwrap_err();
    assert_eq!(e, Error::NotRunning(j.clone()));
    assert_eq!(status_of(e), 409);
}

#[tokio::test(start_paused = true)]
async fn kill_with_a_signal_and_no_channel_is_409() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.exit(&i, 0); // the channel goes with the VM; the exit is not recorded yet
    rig.t.update(&i, |c| c.status = Status::Running);
    let e = rig.t.kill(&i, Some("USR1")).await.unwrap_err();
    assert_eq!(status_of(e), 409);
}

#[tokio::test(start_paused = true)]
async fn restart_stops_then_starts_without_back_off() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    let t0 = tokio::time::Instant::now();
    rig.t.restart(&i, None, Some(10)).await.unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_millis(100));
    let c = rig.c(&i);
    assert_eq!(c.status, Status::Running);
    assert!(!c.finished.unwrap().stopped_by_user);
    assert_eq!(rig.p.count("power_on"), 1);
}

#[tokio::test(start_paused = true)]
async fn restart_of_a_created_container_starts_it() {
    let rig = Rig::new();
    let i = rig.create("web", super::defaults()).await;
    rig.t.restart(&i, None, None).await.unwrap();
    assert_eq!(rig.c(&i).status, Status::Running);
}

#[tokio::test(start_paused = true)]
async fn pause_suspends_and_unpause_resumes() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.t.pause(&i).await.unwrap();
    assert_eq!(rig.c(&i).status, Status::Paused);
    assert_eq!(rig.p.vm(&rig.c(&i).vm).unwrap().power, Power::Suspended);
    assert_eq!(status_of(rig.t.pause(&i).await.unwrap_err()), 409);
    rig.t.unpause(&i).await.unwrap();
    assert_eq!(rig.c(&i).status, Status::Running);
    assert_eq!(status_of(rig.t.unpause(&i).await.unwrap_err()), 409);
    assert_eq!(rig.events_of(&i), ["create", "start", "pause", "unpause"]);
}

#[tokio::test(start_paused = true)]
async fn pausing_a_stopped_container_is_409() {
    let rig = Rig::new();
    let i = rig.create("web", super::defaults()).await;
    assert_eq!(
        rig.t.pause(&i).await.unwrap_err(),
        Error::NotRunning(i.clone())
    );
}

#[tokio::test(start_paused = true)]
async fn rename_persists_the_record_in_the_vm_and_frees_the_old_name() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.t.rename(&i, "/api").await.unwrap();
    assert_eq!(rig.c(&i).meta.name, "api");
    assert_eq!(rig.p.vm(&rig.c(&i).vm).unwrap().meta.unwrap().name, "api");
    assert_eq!(rig.t.resolve("api").unwrap(), i);
    assert!(rig.t.resolve("web").is_err());
    assert!(rig.events_of(&i).contains(&"rename".to_string()));
    rig.create("web", super::defaults()).await;
}

#[tokio::test(start_paused = true)]
async fn rename_to_a_taken_or_invalid_name_is_refused() {
    let rig = Rig::new();
    let a = rig.create("one", super::defaults()).await;
    rig.create("two", super::defaults()).await;
    assert_eq!(status_of(rig.t.rename(&a, "two").await.unwrap_err()), 409);
    assert_eq!(status_of(rig.t.rename(&a, "one").await.unwrap_err()), 409);
    assert_eq!(status_of(rig.t.rename(&a, "b@d").await.unwrap_err()), 400);
    assert_eq!(rig.c(&a).meta.name, "one");
    assert_eq!(
        status_of(rig.t.rename("nope", "x1").await.unwrap_err()),
        404
    );
}

#[tokio::test(start_paused = true)]
async fn rm_of_a_running_container_needs_force() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    let e = rig.t.remove(&i, false, false).await.unwrap_err();
    assert_eq!(status_of(e.clone()), 409);
    assert!(
        e.to_string().contains("cannot remove container \"/web\""),
        "{e}"
    );
    rig.t.remove(&i, true, false).await.unwrap();
    assert!(!rig.t.exists(&i));
    assert_eq!(rig.p.vm_count(), 0);
    assert!(rig.events_of(&i).ends_with(&["destroy".to_string()]));
    assert!(
        !rig.starts.starts.lock().contains_key(&i),
        "forgotten in the journal"
    );
}

#[tokio::test(start_paused = true)]
async fn rm_of_a_created_container_powers_its_parked_clone_off() {
    let rig = Rig::new();
    let i = rig.create("web", super::defaults()).await;
    rig.t.remove(&i, false, false).await.unwrap();
    assert_eq!(rig.p.count("power_off"), 1);
    assert_eq!(rig.p.count("destroy"), 1);
}

#[tokio::test(start_paused = true)]
async fn rm_of_an_exited_container_does_not_power_off_and_tolerates_a_vanished_vm() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.exit(&i, 0);
    rig.until_status(&i, Status::Exited).await;
    rig.p
        .fail("destroy", PlatformError::NotFound("vSphere: gone".into()));
    rig.t.remove(&i, false, false).await.unwrap();
    assert_eq!(rig.p.count("power_off"), 0);
    assert!(!rig.t.exists(&i));
}

#[tokio::test(start_paused = true)]
async fn rm_when_vcenter_is_away_is_503_and_keeps_the_container() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.exit(&i, 0);
    rig.until_status(&i, Status::Exited).await;
    rig.p.set_unreachable(true);
    assert_eq!(
        status_of(rig.t.remove(&i, false, false).await.unwrap_err()),
        503
    );
    assert!(rig.t.exists(&i));
}

#[tokio::test(start_paused = true)]
async fn rm_gives_back_addresses_and_with_v_anonymous_volumes_nobody_else_uses() {
    let rig = Rig::new();
    let i = super::naming_id();
    let mut plan = super::plan(&i, "web", super::defaults());
    plan.spec.interfaces = vec![container_vm::spec::Interface {
        address: "172.17.0.2".into(),
        ..Default::default()
    }];
    let vol = |n: &str, anonymous| crate::mounts::VolumeMountRecord {
        name: n.into(),
        destination: format!("/{n}"),
        rw: true,
        anonymous,
    };
    plan.meta.volumes = vec![vol("anon1", true), vol("named", false), vol("shared", true)];
    rig.t.create(plan).await.unwrap();
    let mut other = super::plan(&super::naming_id(), "other", super::defaults());
    other.meta.volumes = vec![vol("shared", true)];
    rig.t.create(other).await.unwrap();
    rig.t.remove(&i, true, true).await.unwrap();
    assert_eq!(*rig.res.released.lock(), ["172.17.0.2"]);
    assert_eq!(*rig.res.removed_volumes.lock(), ["anon1"]);
    assert_eq!(
        rig.p.count("detach_volumes"),
        1,
        "volumes are detached before destroy"
    );
}

#[tokio::test(start_paused = true)]
async fn auto_remove_removes_the_container_when_it_exits() {
    let rig = Rig::new();
    let i = rig.run("web", super::auto_remove()).await;
    let removed = rig.t.wait(&i, WaitCondition::Removed).unwrap();
    rig.p.exit(&i, 9);
    assert_eq!(removed.await.unwrap(), 9);
    assert!(!rig.t.exists(&i));
    assert_eq!(rig.events_of(&i), ["create", "start", "die", "destroy"]);
}

#[tokio::test(start_paused = true)]
async fn auto_remove_waits_for_attached_readers() {
    let rig = Rig::new();
    let i = rig.run("web", super::auto_remove()).await;
    let reader = rig.t.reader(&i);
    rig.p.exit(&i, 0);
    rig.until_status(&i, Status::Exited).await;
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(rig.t.exists(&i), "kept while a reader reads the output");
    drop(reader);
    rig.until("removed", |r| !r.t.exists(&i)).await;
}

#[tokio::test(start_paused = true)]
async fn wait_not_running_answers_at_once_for_a_stopped_container() {
    let rig = Rig::new();
    let i = rig.create("web", super::defaults()).await;
    assert_eq!(
        rig.t
            .wait(&i, WaitCondition::NotRunning)
            .unwrap()
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn wait_next_exit_waits_for_an_exit_after_the_call() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.p.exit(&i, 1);
    rig.until_status(&i, Status::Exited).await;
    let w = rig.t.wait(&i, WaitCondition::NextExit).unwrap();
    let h = tokio::spawn(w);
    // allow-sleep: (paused clock) the time passing is the behaviour under test
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(!h.is_finished(), "the earlier exit does not count");
    rig.t.start(&i).await.unwrap();
    rig.p.exit(&i, 2);
    assert_eq!(h.await.unwrap().unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn wait_not_running_follows_a_running_container_to_its_exit() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    let w = tokio::spawn(rig.t.wait(&i, WaitCondition::NotRunning).unwrap());
    rig.p.exit(&i, 42);
    assert_eq!(w.await.unwrap().unwrap(), 42);
}

#[tokio::test(start_paused = true)]
async fn wait_on_an_unknown_container_is_404() {
    let rig = Rig::new();
    let e = rig.t.wait("nope", WaitCondition::NotRunning).err().unwrap();
    assert_eq!(status_of(e), 404);
}

#[tokio::test(start_paused = true)]
async fn resize_sends_a_frame_to_a_running_container_only() {
    let rig = Rig::new();
    let i = rig.run("web", super::defaults()).await;
    rig.t.resize(&i, 24, 80).await.unwrap();
    assert_eq!(rig.g.frames.lock().len(), 1);
    let j = rig.create("idle", super::defaults()).await;
    assert_eq!(status_of(rig.t.resize(&j, 24, 80).await.unwrap_err()), 409);
}

#[tokio::test(start_paused = true)]
async fn a_volume_held_by_a_running_vm_blocks_a_cold_start() {
    let rig = Rig::new();
    let vol = crate::mounts::VolumeMountRecord {
        name: "data".into(),
        destination: "/data".into(),
        rw: true,
        anonymous: false,
    };
    let a = super::naming_id();
    let mut pa = super::plan(&a, "a1", super::defaults());
    pa.meta.volumes = vec![vol.clone()];
    rig.t.create(pa).await.unwrap();
    rig.t.start(&a).await.unwrap();
    rig.p.exit(&a, 0);
    rig.until_status(&a, Status::Exited).await;
    let b = super::naming_id();
    let mut pb = super::plan(&b, "b1", super::defaults());
    pb.meta.volumes = vec![vol];
    rig.t.create(pb).await.unwrap();
    let e = rig.t.start(&a).await.unwrap_err();
    assert_eq!(status_of(e.clone()), 409);
    assert!(e.to_string().contains("volume data is in use"), "{e}");
    assert_eq!(
        rig.t.active_volume_users("data", None),
        std::slice::from_ref(&b)
    );
    assert_eq!(rig.t.volume_users("data", Some(&b)), [a]);
}
