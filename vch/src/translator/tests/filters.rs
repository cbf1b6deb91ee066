//! `docker ps`: which containers, in which order.

use super::super::filters::{select, Query};
use super::{id, meta, spec};
use crate::containers::{Container, FinalState, Status};
use docker_api::models::ContainerStateStatusEnum;
use docker_api::Filters;
use vsphere_client::MoRef;

fn c(prefix: &str, name: &str, created_s: u32, status: Status, exit: Option<i64>) -> Container {
    let i = id(prefix);
    let mut m = meta(&i, name, super::defaults());
    m.created = format!("2026-01-01T00:00:{created_s:02}Z");
    m.config.labels = Some(
        [
            ("tier".to_string(), name.to_string()),
            ("team".into(), "a".into()),
        ]
        .into(),
    );
    if name == "db" {
        m.image = "postgres:16".into();
        m.image_id = "sha256:dbdbdb00".into();
        m.volumes = vec![crate::mounts::VolumeMountRecord {
            name: "pgdata".into(),
            destination: "/var/lib/postgresql".into(),
            rw: true,
            anonymous: false,
        }];
    }
    let mut spec = spec(&i);
    if name == "db" {
        // One NIC from before user networks (no id: the default bridge), one on a user net.
        spec.interfaces = vec![
            container_vm::spec::Interface::default(),
            container_vm::spec::Interface {
                network: "appnet-id".into(),
                ..Default::default()
            },
        ];
    }
    if name == "web" {
        spec.interfaces = vec![container_vm::spec::Interface {
            network: "appnet-id".into(),
            ..Default::default()
        }];
    }
    Container {
        meta: m,
        spec,
        vm: MoRef::new("VirtualMachine", &i),
        vm_name: name.into(),
        status,
        started_at: None,
        finished: exit.map(|code| FinalState {
            exit_code: code,
            ..Default::default()
        }),
        parked: false,
        watched: false,
        interrupted: false,
        reported: Default::default(),
    }
}

fn all() -> Vec<Container> {
    vec![
        c("a1", "web", 1, Status::Running, None),
        c("b2", "db", 2, Status::Exited, Some(0)),
        c("c3", "cache", 3, Status::Exited, Some(137)),
        c("d4", "job", 4, Status::Created, None),
        c("e5", "api", 5, Status::Paused, None),
    ]
}

fn names(q: Query) -> Vec<String> {
    select(all(), &q)
        .unwrap()
        .into_iter()
        .map(|c| c.meta.name)
        .collect()
}

fn with(pairs: &[(&str, &str)]) -> Query {
    Query {
        all: true,
        limit: None,
        filters: Filters::from_pairs(pairs.iter().copied()),
        default_network: "bridge-id".into(),
        published: [(super::id("a1"), vec![(80, 8080, "tcp")])].into(),
        restarting: [super::id("c3")].into(),
    }
}

#[test]
fn without_all_only_running_newest_first() {
    assert_eq!(names(Query::default()), ["web"]);
    assert_eq!(
        names(with(&[])),
        ["api", "job", "cache", "db", "web"],
        "newest first"
    );
}

#[test]
fn limit_implies_all_and_cuts() {
    let q = Query {
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(names(q), ["api", "job"]);
}

#[test]
fn id_prefix_and_name_filters() {
    assert_eq!(names(with(&[("id", "b2")])), ["db"]);
    assert_eq!(names(with(&[("id", "a1"), ("id", "c3")])), ["cache", "web"]);
    assert_eq!(names(with(&[("name", "ca")])), ["cache"]);
    assert_eq!(names(with(&[("name", "^/web$")])), ["web"]);
    assert_eq!(names(with(&[("name", "^we")])), ["web"]);
    assert!(names(with(&[("name", "^eb")])).is_empty());
}

#[test]
fn status_filter_implies_all_and_is_validated() {
    let q = Query {
        filters: Filters::from_pairs([("status", "exited")]),
        ..Default::default()
    };
    assert_eq!(names(q), ["cache", "db"]);
    assert_eq!(names(with(&[("status", "created")])), ["job"]);
    assert_eq!(names(with(&[("status", "paused")])), ["api"]);
    let bad = select(all(), &with(&[("status", "sleeping")])).unwrap_err();
    assert_eq!(
        crate::translator::error::to_docker(bad).status().as_u16(),
        400
    );
}

#[test]
fn exited_filter_matches_exit_codes_of_exited_containers() {
    assert_eq!(names(with(&[("exited", "137")])), ["cache"]);
    assert_eq!(names(with(&[("exited", "0")])), ["db"]);
    assert!(select(all(), &with(&[("exited", "x")])).is_err());
}

#[test]
fn label_filters_by_key_or_key_value_all_must_hold() {
    assert_eq!(names(with(&[("label", "tier=db")])), ["db"]);
    assert_eq!(names(with(&[("label", "team")])).len(), 5);
    assert!(names(with(&[("label", "tier=db"), ("label", "team=b")])).is_empty());
    assert!(names(with(&[("label", "nope")])).is_empty());
}

#[test]
fn ancestor_by_name_with_or_without_latest_or_by_id() {
    assert_eq!(names(with(&[("ancestor", "postgres:16")])), ["db"]);
    assert_eq!(names(with(&[("ancestor", "busybox:latest")])).len(), 4);
    assert_eq!(names(with(&[("ancestor", "dbdb")])), ["db"]);
    assert_eq!(names(with(&[("ancestor", "sha256:dbdbdb")])), ["db"]);
    assert!(names(with(&[("ancestor", "alpine")])).is_empty());
}

#[test]
fn before_and_since_by_name_or_id() {
    assert_eq!(names(with(&[("before", "cache")])), ["db", "web"]);
    assert_eq!(names(with(&[("since", "job")])), ["api"]);
    assert_eq!(
        names(with(&[("since", "a1"), ("before", "e5")])),
        ["job", "cache", "db"]
    );
    let missing = select(all(), &with(&[("before", "nope")])).unwrap_err();
    assert_eq!(
        crate::translator::error::to_docker(missing)
            .status()
            .as_u16(),
        404
    );
}

#[test]
fn volume_and_network_filters() {
    assert_eq!(names(with(&[("volume", "pgdata")])), ["db"]);
    assert_eq!(names(with(&[("volume", "/var/lib/postgresql")])), ["db"]);
    assert_eq!(
        names(with(&[("network", "none")])),
        ["api", "job", "cache"],
        "no NIC: network none"
    );
    assert_eq!(names(with(&[("network", "bridge-id")])), ["db"]);
    assert_eq!(names(with(&[("network", "appnet-id")])), ["db", "web"]);
    assert!(names(with(&[("network", "other-id")])).is_empty());
}

#[test]
fn a_container_in_its_restart_back_off_is_restarting() {
    assert_eq!(names(with(&[("status", "restarting")])), ["cache"]);
    assert_eq!(names(with(&[("status", "exited")])), ["db"]);
    let cs = all();
    let cache = &cs[2];
    assert_eq!(
        super::super::render::status_text(cache, true, chrono::Utc::now()),
        "Restarting (137)"
    );
    let s = super::super::render::state(cache, true);
    assert_eq!(
        (s.status, s.restarting),
        (Some(ContainerStateStatusEnum::RESTARTING), Some(true))
    );
    // Only an exited container can be between two runs.
    let web = &cs[0];
    assert_eq!(
        super::super::render::state(web, true).restarting,
        Some(false)
    );
}

#[test]
fn publish_and_expose_filters() {
    assert_eq!(names(with(&[("publish", "8080")])), ["web"]);
    assert_eq!(names(with(&[("publish", "8000-8100/tcp")])), ["web"]);
    assert!(names(with(&[("publish", "8080/udp")])).is_empty());
    assert!(names(with(&[("publish", "80")])).is_empty());
    assert_eq!(names(with(&[("expose", "80")])), ["web"]);
}

#[test]
fn health_task_and_isolation_filters() {
    assert_eq!(names(with(&[("health", "none")])).len(), 5);
    assert!(names(with(&[("health", "healthy")])).is_empty());
    assert!(names(with(&[("is-task", "true")])).is_empty());
    assert_eq!(names(with(&[("is-task", "false")])).len(), 5);
    assert_eq!(names(with(&[("isolation", "default")])).len(), 5);
    assert!(select(all(), &with(&[("health", "bogus")])).is_err());
    assert!(select(all(), &with(&[("is-task", "maybe")])).is_err());
}

#[test]
fn render_shows_docker_states_and_status_texts() {
    use super::super::render::*;
    let cs = all();
    let texts: Vec<String> = cs
        .iter()
        .map(|c| status_text(c, false, chrono::Utc::now()))
        .collect();
    assert_eq!(
        texts,
        ["Up", "Exited (0)", "Exited (137)", "Created", "Up (Paused)"]
    );
    let s = state(&cs[4], false);
    assert_eq!(
        (s.status, s.running, s.paused),
        (
            Some(ContainerStateStatusEnum::PAUSED),
            Some(true),
            Some(true)
        )
    );
    let s = state(&cs[3], false);
    assert_eq!(s.started_at.as_deref(), Some("0001-01-01T00:00:00Z"));
    assert_eq!(s.finished_at.as_deref(), Some("0001-01-01T00:00:00Z"));
    assert_eq!(created_unix(&cs[0]), 1767225601);
    assert_eq!(command(&cs[0]), "sh -c true");
}

#[test]
fn status_texts_say_how_long_as_dockerd_does() {
    use super::super::render::*;
    let now: chrono::DateTime<chrono::Utc> = "2026-01-01T12:00:00Z".parse().unwrap();
    let mut cs = all();
    cs[0].started_at = Some("2026-01-01T11:59:55Z".into());
    assert_eq!(status_text(&cs[0], false, now), "Up 5 seconds");
    cs[4].started_at = Some("2026-01-01T09:00:00Z".into());
    assert_eq!(status_text(&cs[4], false, now), "Up 3 hours (Paused)");
    cs[1].finished.as_mut().unwrap().finished_at = "2026-01-01T11:59:00Z".into();
    assert_eq!(
        status_text(&cs[1], false, now),
        "Exited (0) About a minute ago"
    );
    cs[2].finished.as_mut().unwrap().finished_at = "2026-01-01T11:30:00Z".into();
    assert_eq!(
        status_text(&cs[2], true, now),
        "Restarting (137) 30 minutes ago"
    );
}

#[test]
fn human_durations_follow_go_units() {
    use super::super::render::human_duration;
    let s = chrono::TimeDelta::seconds;
    let cases = [
        (0, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3599, "59 minutes"),
        (3600, "About an hour"),
        (5399, "About an hour"),
        (5400, "2 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (14 * 86400, "2 weeks"),
        (60 * 86400, "2 months"),
        (2 * 365 * 86400, "2 years"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(s(secs)), want, "{secs} s");
    }
}
