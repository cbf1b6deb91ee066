//! `POST /build`: the classic builder's API (what `DOCKER_BUILDKIT=0 docker build` and
//! docker-py's `images.build` send).

use hyper::Response;
use std::collections::BTreeMap;

use crate::errors::{Error, Result};
use crate::http::{Body, Ctx};
use crate::options::BuildOptions;
use crate::streaming;

/// Parameters this route reads itself; every other one is passed on in
/// `BuildOptions::other` unless it carries its default.
const READ_HERE: &[&str] = &[
    "dockerfile",
    "t",
    "q",
    "nocache",
    "pull",
    "rm",
    "forcerm",
    "buildargs",
    "labels",
    "target",
    "networkmode",
    "platform",
    "extrahosts",
    // Client bookkeeping with no effect on the result.
    "session",
    "buildid",
];

pub async fn build(ctx: &mut Ctx) -> Result<Response<Body>> {
    let opts = options(ctx)?;
    let context = ctx.body_stream();
    let progress = ctx.app.backend.build(opts, context).await?;
    streaming::progress(progress, &ctx.app.closing).await
}

fn options(ctx: &Ctx) -> Result<BuildOptions> {
    let q = &ctx.query;
    Ok(BuildOptions {
        dockerfile: q.string("dockerfile"),
        tags: q.all("t").into_iter().filter(|t| !t.is_empty()).collect(),
        quiet: q.bool("q"),
        no_cache: q.bool("nocache"),
        pull: q.bool("pull"),
        remove: q.bool_or("rm", true),
        force_remove: q.bool("forcerm"),
        build_args: json_param(q.get("buildargs"), "buildargs")?,
        labels: json_param(q.get("labels"), "labels")?,
        target: q.string("target"),
        network_mode: q.string("networkmode"),
        platform: q.string("platform"),
        extra_hosts: q
            .all("extrahosts")
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect(),
        other: q
            .pairs()
            .filter(|(k, v)| !READ_HERE.contains(k) && !is_default(k, v))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        registry_config: ctx.registry_config()?,
    })
}

/// A JSON object parameter (`buildargs`, `labels`); empty or `null` is none.
fn json_param<T: serde::de::DeserializeOwned>(
    raw: Option<&str>,
    name: &str,
) -> Result<BTreeMap<String, T>> {
    match raw.map(str::trim) {
        None | Some("") | Some("null") => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| Error::invalid(format!("invalid value for parameter {name}: {e}"))),
    }
}

/// What the CLI sends for an option the user did not give.
fn is_default(key: &str, value: &str) -> bool {
    let v = value.trim();
    matches!(v, "" | "0" | "false" | "null" | "[]" | "{}")
        || (key == "version" && v == "1")
        || (key == "isolation" && v == "default")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_the_cli_sends_are_not_passed_on() {
        for (k, v) in [
            ("memory", "0"),
            ("ulimits", "null"),
            ("cachefrom", "[]"),
            ("version", "1"),
            ("cpusetcpus", ""),
            ("isolation", "default"),
        ] {
            assert!(is_default(k, v), "{k}={v}");
        }
        for (k, v) in [("memory", "1048576"), ("squash", "1"), ("version", "2")] {
            assert!(!is_default(k, v), "{k}={v}");
        }
    }

    #[test]
    fn build_args_may_be_null() {
        let m: BTreeMap<String, Option<String>> =
            json_param(Some(r#"{"A":"1","B":null}"#), "buildargs").unwrap();
        assert_eq!(m["A"].as_deref(), Some("1"));
        assert_eq!(m["B"], None);
        assert!(json_param::<String>(Some("{oops"), "labels").is_err());
    }
}
