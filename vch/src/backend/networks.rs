//! The built-in networks (`bridge`, `none`) as Docker shows them.

use super::{filter_map, internal, VchBackend};
use crate::containers::TetherSpec;
use crate::network::Mode;
use docker_api::models::*;
use docker_api::{Error, Filters, Result};

pub(super) async fn network_list(b: &VchBackend, filters: Filters) -> Result<Vec<Network>> {
    let f = filter_map(&filters);
    let mut out = Vec::new();
    for mode in [Mode::Bridge, Mode::None] {
        let n = describe_network(b, mode);
        let keep = f.iter().all(|(k, vals)| match k.as_str() {
            "name" => vals.iter().any(|v| mode.name().contains(v.as_str())),
            "id" => vals
                .iter()
                .any(|v| n["Id"].as_str().is_some_and(|i| i.starts_with(v.as_str()))),
            "driver" => vals.iter().any(|v| n["Driver"] == v.as_str()),
            "type" => vals.iter().any(|v| v == "builtin"),
            "scope" => vals.iter().any(|v| v == "local"),
            _ => true,
        });
        if keep {
            out.push(serde_json::from_value(n).map_err(internal)?);
        }
    }
    Ok(out)
}

pub(super) async fn network_inspect(
    b: &VchBackend,
    id: &str,
    _verbose: bool,
    _scope: Option<String>,
) -> Result<Network> {
    let mode = b
        .inner
        .bridge
        .lookup(id)
        .ok_or_else(|| Error::NoSuchNetwork(id.to_string()))?;
    serde_json::from_value(describe_network(b, mode)).map_err(internal)
}

/// `docker network inspect` of a built-in network with its containers.
pub(super) fn describe_network(b: &VchBackend, mode: Mode) -> serde_json::Value {
    let cs = b.tr().all();
    let members: Vec<(String, String, &TetherSpec)> = cs
        .iter()
        .map(|c| (c.meta.id.clone(), c.meta.name.clone(), &c.spec))
        .collect();
    b.inner.bridge.describe(mode, &members)
}
