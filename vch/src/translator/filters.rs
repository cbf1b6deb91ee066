//! `docker ps`: which containers, in which order. Newest first; `--all`/`--limit`; and
//! the filters dockerd applies (`id`, `name`, `label`, `status`, `ancestor`, `exited`,
//! `before`, `since`, `volume`, `network`). A status or exit-code filter implies
//! `--all`, as with dockerd (`docker ps -f status=exited` lists exited containers).

use super::error::{Error, Result};
use crate::containers::{Container, Status};
use docker_api::Filters;

const STATES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// What `docker ps` asked for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub all: bool,
    pub limit: Option<usize>,
    pub filters: Filters,
    /// The default bridge's network id: interfaces of specs written before user networks
    /// existed carry no network id and are on it. The backend turns `network` filter
    /// values (names, ids, prefixes) into ids, `none` stays `none`.
    pub default_network: String,
    /// Published ports by container id: (container port, host port, protocol), for the
    /// `publish` and `expose` filters (the router knows them, the translator does not).
    pub published: std::collections::HashMap<String, Vec<(u16, u16, &'static str)>>,
    /// Containers whose restart policy has a start pending (`status=restarting`).
    pub restarting: std::collections::HashSet<String>,
}

/// `80`, `80/tcp`, `8000-8080/udp` against a port and protocol (tcp when not given).
fn port_matches(want: &str, port: u16, proto: &str) -> bool {
    let (range, p) = want.split_once('/').unwrap_or((want, "tcp"));
    if !p.eq_ignore_ascii_case(proto) {
        return false;
    }
    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
    matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if (lo..=hi).contains(&port))
}

/// The ports a container exposes: its config's (image's included) and what it publishes.
fn exposed(c: &Container, published: &[(u16, u16, &'static str)]) -> Vec<(u16, String)> {
    let mut v: Vec<(u16, String)> = c
        .meta
        .config
        .exposed_ports
        .as_ref()
        .map(|m| {
            m.iter()
                .filter_map(|k| {
                    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                    Some((p.parse().ok()?, proto.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.extend(
        published
            .iter()
            .map(|(p, _, proto)| (*p, proto.to_string())),
    );
    v
}

fn on_network(c: &Container, want: &str, default_network: &str) -> bool {
    if want == "none" {
        return c.spec.interfaces.is_empty();
    }
    c.spec.interfaces.iter().any(|i| {
        let id = if i.network.is_empty() {
            default_network
        } else {
            i.network.as_str()
        };
        id == want
    })
}

/// dockerd's name filter is a regular expression on the name with its slash; the
/// anchors (`^`, `$`) and plain substrings are what people write.
fn name_matches(pattern: &str, name: &str) -> bool {
    let full = format!("/{name}");
    let (start, p) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let (end, p) = match p.strip_suffix('$') {
        Some(p) => (true, p),
        None => (false, p),
    };
    let candidates = [name, full.as_str()];
    candidates.iter().any(|n| match (start, end) {
        (true, true) => *n == p,
        (true, false) => n.starts_with(p),
        (false, true) => n.ends_with(p),
        (false, false) => n.contains(p),
    })
}

fn label_matches(c: &Container, want: &str) -> bool {
    let labels = c.meta.config.labels.as_ref();
    let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    match want.split_once('=') {
        Some((k, v)) => get(k) == Some(v),
        None => labels.is_some_and(|l| l.contains_key(want)),
    }
}

/// The image as named at create, with or without `:latest`, or its ID (prefix, with or
/// without `sha256:`).
fn ancestor_matches(c: &Container, want: &str) -> bool {
    let base = |s: &str| s.strip_suffix(":latest").unwrap_or(s).to_string();
    if base(&c.meta.image) == base(want) {
        return true;
    }
    let id = c.meta.image_id.trim_start_matches("sha256:");
    let w = want.trim_start_matches("sha256:");
    w.len() >= 4 && id.starts_with(w)
}

/// The container a `before`/`since` filter names (id, prefix or name).
fn reference<'a>(cs: &'a [Container], key: &str) -> Result<&'a Container> {
    let key = key.trim_start_matches('/');
    cs.iter()
        .find(|c| c.meta.id == key || c.meta.name == key)
        .or_else(|| {
            let mut m = cs.iter().filter(|c| c.meta.id.starts_with(key));
            match (m.next(), m.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        })
        .ok_or_else(|| Error::NoSuchContainer(key.to_string()))
}

/// Selects and orders the containers `docker ps` shows.
pub fn select(mut cs: Vec<Container>, q: &Query) -> Result<Vec<Container>> {
    let f = &q.filters;
    for s in f.get("status") {
        if !STATES.contains(&s) {
            return Err(Error::Invalid(format!("invalid filter 'status={s}'")));
        }
    }
    // No container of this VCH is a swarm task; the values are still checked like
    // dockerd checks them.
    for h in f.get("health") {
        if !["starting", "healthy", "unhealthy", "none"].contains(&h) {
            return Err(Error::Invalid(format!(
                "Unrecognised filter value for health: {h}"
            )));
        }
    }
    for t in f.get("is-task") {
        if !["true", "false", "1", "0"].contains(&t) {
            return Err(Error::Invalid(format!("invalid filter 'is-task={t}'")));
        }
    }
    let mut exited = Vec::new();
    for e in f.get("exited") {
        exited.push(
            e.parse::<i64>()
                .map_err(|_| Error::Invalid(format!("invalid filter 'exited={e}'")))?,
        );
    }
    cs.sort_by(|a, b| {
        b.meta
            .created
            .cmp(&a.meta.created)
            .then_with(|| a.meta.id.cmp(&b.meta.id))
    });
    let before: Vec<String> = f
        .get("before")
        .iter()
        .map(|k| reference(&cs, k).map(|c| c.meta.created.clone()))
        .collect::<Result<_>>()?;
    let since: Vec<String> = f
        .get("since")
        .iter()
        .map(|k| reference(&cs, k).map(|c| c.meta.created.clone()))
        .collect::<Result<_>>()?;
    let all = q.all || q.limit.is_some() || !f.get("status").is_empty() || !exited.is_empty();
    let any = |key: &str, ok: &dyn Fn(&str) -> bool| {
        let vs = f.get(key);
        vs.is_empty() || vs.iter().any(|v| ok(v))
    };
    let mut out = Vec::new();
    for c in cs {
        let keep = (all || c.status == Status::Running)
            && any("id", &|v| c.meta.id.starts_with(v))
            && any("name", &|v| name_matches(v, &c.meta.name))
            && f.get("label").iter().all(|l| label_matches(&c, l))
            && any("status", &|v| {
                v == super::render::state_of(&c, q.restarting.contains(&c.meta.id))
            })
            && any("ancestor", &|v| ancestor_matches(&c, v))
            && any("volume", &|v| {
                c.meta
                    .volumes
                    .iter()
                    .any(|m| m.name == v || m.destination == v)
            })
            && any("network", &|v| on_network(&c, v, &q.default_network))
            && any("health", &|v| {
                v == super::health::filter_name(c.reported.health.as_ref())
            })
            && any("is-task", &|v| matches!(v, "false" | "0"))
            && any("isolation", &|v| v == "default")
            && any("publish", &|v| {
                let ports = q
                    .published
                    .get(&c.meta.id)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                ports
                    .iter()
                    .any(|(_, host, proto)| port_matches(v, *host, proto))
            })
            && any("expose", &|v| {
                let ports = q
                    .published
                    .get(&c.meta.id)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                exposed(&c, ports)
                    .iter()
                    .any(|(p, proto)| port_matches(v, *p, proto))
            })
            && (exited.is_empty()
                || (c.status == Status::Exited
                    && exited.contains(&c.finished.as_ref().map(|f| f.exit_code).unwrap_or(0))))
            && before.iter().all(|t| c.meta.created < *t)
            && since.iter().all(|t| c.meta.created > *t);
        if keep {
            out.push(c);
            if q.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
    }
    Ok(out)
}
