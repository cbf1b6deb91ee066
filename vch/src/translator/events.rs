//! `docker events`: container events fanned out to live subscribers, the recent past
//! kept for `--since`, and the filters (`type`, `event`, `container`).

use docker_api::models::EventMessage;
use docker_api::Filters;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::VecDeque;

/// Events kept for `docker events --since`.
pub const HISTORY: usize = 1000;

pub struct EventBus {
    live: tokio::sync::broadcast::Sender<EventMessage>,
    log: Mutex<VecDeque<EventMessage>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

/// An event of `typ` as Docker reports it: the actor's id and attributes, now.
fn event(
    typ: docker_api::models::EventMessageTypeEnum,
    id: &str,
    action: &str,
    attrs: std::collections::HashMap<String, String>,
) -> EventMessage {
    let t = chrono::Utc::now();
    EventMessage {
        typ: Some(typ),
        action: Some(action.to_string()),
        actor: Some(docker_api::models::EventActor {
            id: Some(id.to_string()),
            attributes: Some(attrs),
        }),
        scope: Some(docker_api::models::EventMessageScopeEnum::LOCAL),
        time: Some(t.timestamp()),
        time_nano: Some(t.timestamp_nanos_opt().unwrap_or(0)),
    }
}

/// One container event as Docker reports it.
pub fn container_event(
    id: &str,
    name: &str,
    image: &str,
    action: &str,
    extra: &[(&str, String)],
) -> EventMessage {
    let mut attrs = std::collections::HashMap::new();
    attrs.insert("name".to_string(), name.to_string());
    attrs.insert("image".to_string(), image.to_string());
    for (k, v) in extra {
        attrs.insert(k.to_string(), v.clone());
    }
    event(
        docker_api::models::EventMessageTypeEnum::CONTAINER,
        id,
        action,
        attrs,
    )
}

/// A network event (`create`, `destroy`, `connect`, `disconnect`); connect and
/// disconnect name the container, as dockerd's do.
pub fn network_event(id: &str, name: &str, action: &str, container: Option<&str>) -> EventMessage {
    let mut attrs = std::collections::HashMap::new();
    attrs.insert("name".to_string(), name.to_string());
    attrs.insert("type".to_string(), "bridge".to_string());
    if let Some(c) = container {
        attrs.insert("container".to_string(), c.to_string());
    }
    event(
        docker_api::models::EventMessageTypeEnum::NETWORK,
        id,
        action,
        attrs,
    )
}

/// Whether an event passes `docker events --filter`.
pub fn matches(f: &Filters, e: &EventMessage) -> bool {
    let ty = e.typ.map(|t| t.to_string()).unwrap_or_default();
    let action = e.action.clone().unwrap_or_default();
    let actor = e.actor.clone().unwrap_or_default();
    let id = actor.id.unwrap_or_default();
    let name = actor
        .attributes
        .and_then(|a| a.get("name").cloned())
        .unwrap_or_default();
    let any = |key: &str, ok: &dyn Fn(&str) -> bool| {
        let vs = f.get(key);
        vs.is_empty() || vs.iter().any(|v| ok(v))
    };
    let is_network = ty == "network";
    any("type", &|v| v == ty)
        && any("event", &|v| v == action)
        && any("container", &|v| {
            !is_network && (v == name || id.starts_with(v))
        })
        && any("network", &|v| {
            is_network && (v == name || id.starts_with(v))
        })
}

impl EventBus {
    pub fn new() -> EventBus {
        EventBus {
            live: tokio::sync::broadcast::channel(256).0,
            log: Mutex::new(VecDeque::new()),
        }
    }

    pub fn publish(
        &self,
        id: &str,
        name: &str,
        image: &str,
        action: &str,
        extra: &[(&str, String)],
    ) {
        self.publish_message(container_event(id, name, image, action, extra));
    }

    pub fn publish_message(&self, ev: EventMessage) {
        let mut log = self.log.lock();
        log.push_back(ev.clone());
        while log.len() > HISTORY {
            log.pop_front();
        }
        drop(log);
        let _ = self.live.send(ev);
    }

    /// The recent events (oldest first).
    pub fn recent(&self) -> Vec<EventMessage> {
        self.log.lock().iter().cloned().collect()
    }

    /// Events from `since` on (the recent past first), then live ones, filtered.
    pub fn subscribe(
        &self,
        filters: Filters,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> BoxStream<'static, EventMessage> {
        let rx = self.live.subscribe();
        let past: Vec<EventMessage> = match since {
            Some(s) => self
                .log
                .lock()
                .iter()
                .filter(|e| e.time_nano.unwrap_or(0) >= s.timestamp_nanos_opt().unwrap_or(0))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let f2 = filters.clone();
        let live = futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Some((e, rx)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        })
        .filter(move |e| futures_util::future::ready(matches(&f2, e)));
        futures_util::stream::iter(past.into_iter().filter(move |e| matches(&filters, e)))
            .chain(live)
            .boxed()
    }
}
