//! `docker exec`: instances are made on running containers only, run once, record their
//! exit before their output ends, and resize only while running.

use super::super::fakes::Rig;
use super::super::Error;
use crate::channel::SessionEvent;
use container_vm::channel::{ExecRequest, Kind};
use futures_util::StreamExt;

fn status_of(e: Error) -> u16 {
    crate::translator::error::to_docker(e).status().as_u16()
}

fn req(cmd: &[&str]) -> ExecRequest {
    ExecRequest {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn an_exec_runs_once_and_its_exit_is_known_when_its_output_ends() {
    let rig = Rig::new();
    let c = rig.run("web", super::defaults()).await;
    let x = rig.t.exec_create("web", req(&["ls", "-l", "/"])).unwrap();
    let before = rig.t.exec_inspect(&x).unwrap();
    assert_eq!(
        (before.container.as_str(), before.running, before.exit),
        (c.as_str(), false, None)
    );

    let started = rig.t.exec_start(&x, Some([24, 80])).await.unwrap();
    assert!(rig.t.exec_inspect(&x).unwrap().running);
    let events: Vec<SessionEvent> = started.output.collect().await;
    assert!(matches!(&events[0], SessionEvent::Out { stderr: false, data } if data == "ls -l /\n"));
    let after = rig.t.exec_inspect(&x).unwrap();
    assert_eq!((after.running, after.exit), (false, Some(2)));

    // dockerd refuses a second start of the same instance.
    let again = rig.t.exec_start(&x, None).await.err().unwrap();
    assert_eq!(status_of(again), 409);
}

#[tokio::test(start_paused = true)]
async fn exec_needs_a_running_container_and_a_command() {
    let rig = Rig::new();
    rig.create("idle", super::defaults()).await;
    assert_eq!(
        status_of(rig.t.exec_create("idle", req(&["true"])).unwrap_err()),
        409
    );
    assert_eq!(
        status_of(rig.t.exec_create("nobody", req(&["true"])).unwrap_err()),
        404
    );
    rig.run("web", super::defaults()).await;
    let e = rig.t.exec_create("web", req(&[])).unwrap_err();
    assert_eq!(status_of(e), 400);
    assert_eq!(status_of(rig.t.exec_inspect("nope").unwrap_err()), 404);
}

#[tokio::test(start_paused = true)]
async fn resize_reaches_the_session_only_while_it_runs() {
    let rig = Rig::new();
    let c = rig.run("web", super::defaults()).await;
    let x = rig.t.exec_create(&c, req(&["sh"])).unwrap();
    assert_eq!(status_of(rig.t.exec_resize(&x, 30, 100).unwrap_err()), 409);
    let started = rig.t.exec_start(&x, None).await.unwrap();
    rig.t.exec_resize(&x, 30, 100).unwrap();
    let frames = rig.g.frames.lock().clone();
    assert!(frames
        .iter()
        .any(|(id, f)| id == &c && f.kind == Kind::Resize && f.session == started.session));
    let _ = started.output.collect::<Vec<_>>().await;
    assert_eq!(status_of(rig.t.exec_resize(&x, 30, 100).unwrap_err()), 409);
}
