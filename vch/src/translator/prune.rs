//! `docker container prune`: which containers go (every one not running, paused or
//! being removed, created before `until`, with the `label` and without the `label!`
//! filters' labels), as dockerd chooses them.

use super::error::Result;
use super::Translator;
use crate::containers::{Container, Status};
use chrono::{DateTime, Utc};
use docker_api::filters::parse_until;
use docker_api::Filters;

/// The containers `filters` (validated names: `until`, `label`, `label!`) prune at `now`.
pub fn candidates(
    cs: Vec<Container>,
    filters: &Filters,
    now: DateTime<Utc>,
) -> Result<Vec<Container>> {
    let until = filters
        .get("until")
        .into_iter()
        .map(|u| parse_until(u, now))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let keep_out = !filters.get("label!").is_empty();
    Ok(cs
        .into_iter()
        .filter(|c| matches!(c.status, Status::Created | Status::Exited))
        .filter(|c| {
            let created = DateTime::parse_from_rfc3339(&c.meta.created).ok();
            until.iter().all(|u| created.is_some_and(|t| t < *u))
        })
        .filter(|c| {
            let labels = c.meta.config.labels.clone().unwrap_or_default();
            let kv = labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            filters.match_labels("label", kv.clone())
                && !(keep_out && filters.match_labels("label!", kv))
        })
        .collect())
}

impl Translator {
    /// Removes what [`candidates`] chooses; the ids removed. A container that changed
    /// meanwhile (started again) stays, as with dockerd.
    pub async fn prune_containers(&self, filters: &Filters) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for c in candidates(self.all(), filters, Utc::now())? {
            if self.remove(&c.meta.id, false, false).await.is_ok() {
                removed.push(c.meta.id);
            }
        }
        Ok(removed)
    }
}
