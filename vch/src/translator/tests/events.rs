use super::super::events::{container_event, matches, EventBus};
use docker_api::Filters;
use futures_util::StreamExt;

#[test]
fn events_carry_name_image_and_extras() {
    let e = container_event("abc", "web", "busybox", "die", &[("exitCode", "3".into())]);
    let a = e.actor.unwrap();
    assert_eq!(a.id.as_deref(), Some("abc"));
    let attrs = a.attributes.unwrap();
    assert_eq!(attrs["name"], "web");
    assert_eq!(attrs["image"], "busybox");
    assert_eq!(attrs["exitCode"], "3");
    assert_eq!(e.action.as_deref(), Some("die"));
    assert!(e.time_nano.unwrap() > 0);
}

#[test]
fn filters_by_type_event_and_container_name_or_id_prefix() {
    let e = container_event("abcdef", "web", "busybox", "start", &[]);
    assert!(matches(&Filters::default(), &e));
    assert!(matches(&Filters::from_pairs([("type", "container")]), &e));
    assert!(!matches(&Filters::from_pairs([("type", "image")]), &e));
    assert!(matches(
        &Filters::from_pairs([("event", "start"), ("event", "die")]),
        &e
    ));
    assert!(!matches(&Filters::from_pairs([("event", "die")]), &e));
    assert!(matches(&Filters::from_pairs([("container", "web")]), &e));
    assert!(matches(&Filters::from_pairs([("container", "abc")]), &e));
    assert!(!matches(&Filters::from_pairs([("container", "db")]), &e));
}

#[tokio::test]
async fn since_replays_the_past_then_goes_live() {
    let bus = EventBus::new();
    let t0 = chrono::Utc::now() - chrono::Duration::seconds(1);
    bus.publish("a", "one", "img", "create", &[]);
    bus.publish("b", "two", "img", "create", &[]);
    let mut s = bus.subscribe(Filters::from_pairs([("container", "one")]), Some(t0));
    assert_eq!(s.next().await.unwrap().action.as_deref(), Some("create"));
    bus.publish("b", "two", "img", "start", &[]);
    bus.publish("a", "one", "img", "start", &[]);
    assert_eq!(s.next().await.unwrap().action.as_deref(), Some("start"));
}

#[test]
fn history_is_bounded() {
    let bus = EventBus::new();
    for n in 0..(super::super::events::HISTORY + 10) {
        bus.publish(&n.to_string(), "x", "img", "create", &[]);
    }
    let r = bus.recent();
    assert_eq!(r.len(), super::super::events::HISTORY);
    assert_eq!(r[0].actor.as_ref().unwrap().id.as_deref(), Some("10"));
}
