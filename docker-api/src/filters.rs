//! The `filters` query parameter: a JSON object mapping a filter name to its values.
//!
//! Current clients send the map-of-bool form `{"label":{"a=b":true}}`; clients older than
//! API 1.22 send the legacy list form `{"label":["a=b"]}`. Both parse to the same
//! [`Filters`]. Each endpoint accepts a fixed set of names and rejects the others with
//! 400 "invalid filter 'x'", like dockerd, so that typos are not silently ignored.

use std::collections::{BTreeMap, BTreeSet};

use crate::errors::Error;

/// Parsed filters: name -> set of values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    fields: BTreeMap<String, BTreeSet<String>>,
}

impl Filters {
    /// Parses the raw (already URL-decoded) `filters` value. Empty means no filters.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        if raw.trim().is_empty() {
            return Ok(Filters::default());
        }
        // Map-of-bool form first; fall back to the legacy list form like dockerd does.
        let modern: Result<BTreeMap<String, BTreeMap<String, bool>>, _> = serde_json::from_str(raw);
        let fields = match modern {
            Ok(map) => map
                .into_iter()
                .map(|(k, vs)| {
                    (
                        k,
                        vs.into_iter()
                            .filter(|(_, on)| *on)
                            .map(|(v, _)| v)
                            .collect(),
                    )
                })
                .collect(),
            Err(e) => {
                let legacy: BTreeMap<String, Vec<String>> = serde_json::from_str(raw)
                    .map_err(|_| Error::invalid(format!("invalid filters: {e}")))?;
                legacy
                    .into_iter()
                    .map(|(k, vs)| (k, vs.into_iter().collect()))
                    .collect()
            }
        };
        Ok(Filters { fields })
    }

    /// Builds filters from (name, value) pairs; handy for backends and tests.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut f = Filters::default();
        for (k, v) in pairs {
            f.add(k, v);
        }
        f
    }

    /// Adds one value.
    pub fn add(&mut self, name: &str, value: &str) {
        self.fields
            .entry(name.to_string())
            .or_default()
            .insert(value.to_string());
    }

    /// Rejects any filter name not in `accepted` with dockerd's "invalid filter 'x'".
    pub fn validate(&self, accepted: &[&str]) -> Result<(), Error> {
        match self.fields.keys().find(|k| !accepted.contains(&k.as_str())) {
            Some(bad) => Err(Error::invalid(format!("invalid filter '{bad}'"))),
            None => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The filter names present.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// Is the filter `name` given at all?
    pub fn contains(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    /// The values of filter `name` (empty when absent).
    pub fn get(&self, name: &str) -> Vec<&str> {
        self.fields
            .get(name)
            .map(|vs| vs.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// True when `name` is absent or one of its values equals `value` (dockerd's
    /// `ExactMatch`: an absent filter matches everything).
    pub fn exact_match(&self, name: &str, value: &str) -> bool {
        match self.fields.get(name) {
            None => true,
            Some(vs) => vs.contains(value),
        }
    }

    /// dockerd's `MatchKVList` for `label` filters: every `key` or `key=value` given must
    /// be satisfied by `labels`. An absent filter matches everything.
    pub fn match_labels<'a, I>(&self, name: &str, labels: I) -> bool
    where
        I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    {
        let Some(wanted) = self.fields.get(name) else {
            return true;
        };
        wanted.iter().all(|w| {
            let (k, v) = match w.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (w.as_str(), None),
            };
            labels
                .clone()
                .into_iter()
                .any(|(lk, lv)| lk == k && v.is_none_or(|v| v == lv))
        })
    }

    /// Serializes back to the map-of-bool JSON form.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<&str, BTreeMap<&str, bool>> = self
            .fields
            .iter()
            .map(|(k, vs)| (k.as_str(), vs.iter().map(|v| (v.as_str(), true)).collect()))
            .collect();
        serde_json::to_string(&map).unwrap_or_default()
    }
}

/// An `until`/`since` time as dockerd reads it (`timetypes.GetTimestamp`): unix seconds
/// (with a fraction), RFC 3339, or a Go duration before `now` (`10m`, `1h30m`, `90s`).
pub fn parse_until(
    v: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    let bad = || Error::invalid(format!("invalid value for filter 'until': {v:?}"));
    if let Ok(secs) = v.parse::<f64>() {
        return chrono::DateTime::from_timestamp(secs.trunc() as i64, 0).ok_or_else(bad);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    go_duration(v).map(|d| now - d).ok_or_else(bad)
}

/// A Go duration string (`1h30m`, `45s`, `1.5h`, `300ms`).
fn go_duration(v: &str) -> Option<chrono::TimeDelta> {
    let mut rest = v.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total_ms = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let ms = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_ms += n * ms;
    }
    Some(chrono::TimeDelta::milliseconds(total_ms as i64))
}

/// Filter names dockerd accepts, per endpoint.
pub mod accepted {
    pub const CONTAINER_LIST: &[&str] = &[
        "ancestor",
        "before",
        "exited",
        "expose",
        "health",
        "id",
        "isolation",
        "is-task",
        "label",
        "name",
        "network",
        "publish",
        "since",
        "status",
        "volume",
    ];
    pub const CONTAINER_PRUNE: &[&str] = &["label", "label!", "until"];
    pub const IMAGE_LIST: &[&str] = &["before", "dangling", "label", "reference", "since", "until"];
    pub const IMAGE_PRUNE: &[&str] = &["dangling", "label", "label!", "until"];
    pub const IMAGE_SEARCH: &[&str] = &["is-automated", "is-official", "stars"];
    pub const NETWORK_LIST: &[&str] =
        &["dangling", "driver", "id", "label", "name", "scope", "type"];
    pub const NETWORK_PRUNE: &[&str] = &["label", "label!", "until"];
    pub const VOLUME_LIST: &[&str] = &["dangling", "driver", "label", "name"];
    pub const VOLUME_PRUNE: &[&str] = &["all", "label", "label!"];
    pub const EVENTS: &[&str] = &[
        "config",
        "container",
        "daemon",
        "event",
        "image",
        "label",
        "network",
        "node",
        "plugin",
        "scope",
        "secret",
        "service",
        "type",
        "volume",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_reads_timestamps_dates_and_durations_as_dockerd() {
        let now: chrono::DateTime<chrono::Utc> = "2026-01-01T12:00:00Z".parse().unwrap();
        let at = |v: &str| parse_until(v, now).map(|t| t.to_rfc3339());
        assert_eq!(at("1767225600").unwrap(), "2026-01-01T00:00:00+00:00");
        assert_eq!(at("1767225600.5").unwrap(), "2026-01-01T00:00:00+00:00");
        assert_eq!(
            at("2026-01-01T11:00:00Z").unwrap(),
            "2026-01-01T11:00:00+00:00"
        );
        assert_eq!(at("10m").unwrap(), "2026-01-01T11:50:00+00:00");
        assert_eq!(at("1h30m").unwrap(), "2026-01-01T10:30:00+00:00");
        assert_eq!(at("1.5h").unwrap(), "2026-01-01T10:30:00+00:00");
        for bad in ["", "yesterday", "10x", "h"] {
            let e = at(bad).unwrap_err();
            assert_eq!(e.status().as_u16(), 400, "{bad}");
            assert!(e.to_string().contains("until"), "{e}");
        }
    }

    #[test]
    fn both_forms() {
        let modern =
            Filters::parse(r#"{"label":{"a=b":true,"off":false},"name":{"web":true}}"#).unwrap();
        let legacy = Filters::parse(r#"{"label":["a=b"],"name":["web"]}"#).unwrap();
        assert_eq!(modern, legacy);
        assert_eq!(modern.get("label"), vec!["a=b"]);
        assert!(Filters::parse("").unwrap().is_empty());
        assert!(Filters::parse("[1]").is_err());
        assert_eq!(
            Filters::parse(r#"{"x":{"y":true}}"#)
                .unwrap()
                .validate(&["name"])
                .unwrap_err()
                .to_string(),
            "invalid filter 'x'"
        );
    }

    #[test]
    fn labels() {
        let f = Filters::parse(r#"{"label":{"a=b":true,"c":true}}"#).unwrap();
        assert!(f.match_labels("label", [("a", "b"), ("c", "z")]));
        assert!(!f.match_labels("label", [("a", "x"), ("c", "z")]));
        assert!(!f.match_labels("label", [("a", "b")]));
        assert!(Filters::default().match_labels("label", [("q", "r")]));
        assert_eq!(f.to_json(), r#"{"label":{"a=b":true,"c":true}}"#);
    }
}
