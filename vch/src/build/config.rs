//! The instructions that only change an image's config (ENV, LABEL, CMD, ENTRYPOINT,
//! SHELL, EXPOSE, VOLUME, WORKDIR, USER, STOPSIGNAL, HEALTHCHECK, ONBUILD), applied as
//! dockerd applies them, for `docker build` and for the `--change` of commit and import.

use super::dockerfile::{Cmd, Flags, Instr};
use super::words::{self, Vars};
use crate::images::manifest::ContainerConfig;
use docker_api::models::HealthConfig;
use std::collections::BTreeMap;

/// dockerd's default SHELL.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// A command's argv: the exec form as written, the shell form run by the SHELL.
pub fn argv(cmd: &Cmd, shell: Option<&Vec<String>>) -> Vec<String> {
    match cmd {
        Cmd::Exec(v) => v.clone(),
        Cmd::Shell(s) => {
            let mut v: Vec<String> = match shell.filter(|s| !s.is_empty()) {
                Some(sh) => sh.clone(),
                None => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
            };
            v.push(s.clone());
            v
        }
    }
}

/// Applies one config-only instruction. Others are not config changes: an error.
pub fn apply(
    c: &mut ContainerConfig,
    instr: &Instr,
    vars: &dyn Vars,
    escape: char,
) -> Result<(), String> {
    let word = |s: &str| words::word(s, vars, escape);
    match instr {
        Instr::Env(args) => {
            let env = c.env.get_or_insert_with(Vec::new);
            for (k, v) in words::key_values(args, vars, escape)? {
                env.retain(|e| e.split('=').next() != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
        }
        Instr::Label(args) => {
            let labels = c.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in words::key_values(args, vars, escape)? {
                labels.insert(k, v);
            }
        }
        Instr::Cmd(cmd) => c.cmd = Some(argv(cmd, c.shell.as_ref())),
        Instr::Entrypoint(cmd) => {
            c.entrypoint = match cmd {
                // `ENTRYPOINT []` clears it.
                Cmd::Exec(v) if v.is_empty() => None,
                _ => Some(argv(cmd, c.shell.as_ref())),
            }
        }
        Instr::Shell(sh) => {
            if sh.is_empty() {
                return Err("SHELL requires the command to be a JSON array".into());
            }
            c.shell = Some(sh.clone());
        }
        Instr::Expose(ports) => {
            let exposed = c.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in ports {
                for p in word(p)?.split_whitespace() {
                    for port in expose_ports(p)? {
                        exposed.insert(port, serde_json::json!({}));
                    }
                }
            }
        }
        Instr::Volume(vols) => {
            let volumes = c.volumes.get_or_insert_with(BTreeMap::new);
            for v in vols {
                let v = word(v)?;
                if v.trim().is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                volumes.insert(v, serde_json::json!({}));
            }
        }
        Instr::Workdir(dir) => {
            let dir = word(dir)?;
            c.working_dir = Some(workdir(c.working_dir.as_deref(), &dir));
        }
        Instr::User(u) => c.user = Some(word(u)?),
        Instr::Stopsignal(s) => c.stop_signal = Some(word(s)?),
        Instr::Healthcheck(flags, cmd) => c.healthcheck = Some(healthcheck(flags, cmd.as_ref())?),
        Instr::Onbuild(trigger) => {
            let upper = trigger.trim_start().to_ascii_uppercase();
            if ["ONBUILD", "FROM", "MAINTAINER"]
                .iter()
                .any(|k| upper.starts_with(k))
            {
                return Err(format!("{trigger:?} isn't allowed as an ONBUILD trigger"));
            }
            c.on_build
                .get_or_insert_with(Vec::new)
                .push(trigger.clone());
        }
        _ => return Err("not a config instruction".into()),
    }
    Ok(())
}

/// `WORKDIR`: relative paths are relative to the previous one.
pub fn workdir(current: Option<&str>, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{}/{dir}", current.filter(|c| !c.is_empty()).unwrap_or("/"))
    };
    format!("/{}", super::ignore::clean(&joined))
}

/// `EXPOSE 80`, `80/udp`, `8000-8002/tcp`.
fn expose_ports(p: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!("invalid proto: {proto}"));
    }
    let bad = || format!("invalid containerPort: {ports}");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let n = ports.parse::<u16>().map_err(|_| bad())?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}

fn healthcheck(flags: &Flags, cmd: Option<&Cmd>) -> Result<HealthConfig, String> {
    let Some(cmd) = cmd else {
        return Ok(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
    };
    let mut h = HealthConfig {
        test: Some(match cmd {
            Cmd::Exec(v) => std::iter::once("CMD".to_string())
                .chain(v.iter().cloned())
                .collect(),
            Cmd::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
        }),
        ..Default::default()
    };
    for (name, value) in flags {
        let v = value.as_deref().unwrap_or_default();
        let duration = || {
            go_duration_ns(v).ok_or_else(|| format!("HEALTHCHECK --{name}: invalid duration {v:?}"))
        };
        match name.as_str() {
            "interval" => h.interval = Some(duration()?),
            "timeout" => h.timeout = Some(duration()?),
            "start-period" => h.start_period = Some(duration()?),
            "start-interval" => h.start_interval = Some(duration()?),
            "retries" => {
                h.retries = Some(
                    v.parse::<i64>()
                        .map_err(|_| format!("HEALTHCHECK --retries: invalid number {v:?}"))?,
                )
            }
            other => return Err(format!("HEALTHCHECK: unknown flag --{other}")),
        }
    }
    Ok(h)
}

/// A Go duration ("1m30s", "500ms", "2h") in nanoseconds.
pub fn go_duration_ns(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Some(total as i64)
}

/// `docker commit --change` / `docker import --change`: one Dockerfile line.
pub fn apply_change(c: &mut ContainerConfig, change: &str) -> Result<(), String> {
    let (keyword, rest) = change
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    if keyword.eq_ignore_ascii_case("ONBUILD") {
        return apply(
            c,
            &Instr::Onbuild(rest.trim().to_string()),
            &|_: &str| None,
            '\\',
        );
    }
    let step = super::dockerfile::trigger(change)
        .map_err(|_| format!("{change:?} is not a valid change command"))?;
    if matches!(
        step.instr,
        Instr::Run(..) | Instr::Copy { .. } | Instr::Arg(_) | Instr::Shell(_)
    ) {
        let name = change.split_whitespace().next().unwrap_or_default();
        return Err(format!(
            "{} is not a valid change command",
            name.to_uppercase()
        ));
    }
    let env: BTreeMap<String, String> = c
        .env
        .iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    apply(c, &step.instr, &|n: &str| env.get(n).cloned(), '\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_vars(_: &str) -> Option<String> {
        None
    }

    fn applied(lines: &[&str]) -> ContainerConfig {
        let mut c = ContainerConfig::default();
        for l in lines {
            apply_change(&mut c, l).unwrap();
        }
        c
    }

    #[test]
    fn config_instructions() {
        let c = applied(&[
            "ENV A=1 B=\"x y\"",
            "ENV C $A-z",
            "LABEL version=2 \"com.example\"=yes",
            "CMD echo hi",
            "EXPOSE 80 53/udp 8000-8001",
            "VOLUME [\"/data\"]",
            "WORKDIR /srv",
            "WORKDIR app",
            "USER nobody",
            "STOPSIGNAL SIGINT",
            "HEALTHCHECK --interval=5s --retries=2 CMD true",
            "ONBUILD RUN echo triggered",
        ]);
        assert_eq!(c.env.unwrap(), ["A=1", "B=x y", "C=1-z"]);
        assert_eq!(c.labels.unwrap()["com.example"], "yes");
        assert_eq!(c.cmd.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv/app"));
        assert_eq!(c.user.as_deref(), Some("nobody"));
        let h = c.healthcheck.unwrap();
        assert_eq!(h.test.unwrap(), ["CMD-SHELL", "true"]);
        assert_eq!((h.interval, h.retries), (Some(5_000_000_000), Some(2)));
        assert_eq!(c.on_build.unwrap(), ["RUN echo triggered"]);
        let mut c = ContainerConfig::default();
        assert!(apply_change(&mut c, "RUN echo")
            .unwrap_err()
            .contains("not a valid change"));
        assert!(apply_change(&mut c, "EXPOSE 99999").is_err());
        let mut c = ContainerConfig {
            shell: Some(vec!["/bin/bash".into(), "-lc".into()]),
            ..Default::default()
        };
        apply(
            &mut c,
            &Instr::Entrypoint(Cmd::Shell("run".into())),
            &no_vars,
            '\\',
        )
        .unwrap();
        assert_eq!(c.entrypoint.unwrap(), ["/bin/bash", "-lc", "run"]);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration_ns("500ms"), Some(500_000_000));
        assert_eq!(go_duration_ns("1.5h"), Some(5_400_000_000_000));
        assert_eq!(go_duration_ns("5"), None);
        assert_eq!(go_duration_ns("x"), None);
    }
}
