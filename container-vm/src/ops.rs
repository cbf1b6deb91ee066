//! Container operations the VCH asks of the guest over the control channel: `docker top`,
//! `docker stats`, `docker cp` and `docker export`.
//!
//! The VCH sends a `Request` frame with an [`OpsRequest`]; the tether answers one `Reply`
//! frame ([`Reply`]). A request that streams out (`get`, `export`) follows its successful
//! `Reply` with `Data` frames ([`CHUNK`] bytes at most) and one `Done`; a request that
//! streams in (`put`) gets `Data` frames from the VCH (an empty one ends the tar, at most
//! [`PUT_WINDOW`] unacknowledged), acknowledges each with `Credit`, and sends its `Reply`
//! once the tar is extracted. See docs/container-vm.md.

use serde::{Deserialize, Serialize};

/// What the VCH asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpsRequest {
    /// `ps -ef`-style process table.
    Top,
    /// One stats sample ([`Sample`]).
    Stats,
    /// lstat of a path (`HEAD /archive`), answered with a [`PathStat`].
    Stat { path: String },
    /// A tar of a path (`GET /archive`): the [`PathStat`] as the reply, then the tar.
    Get { path: String },
    /// A tar of the whole root filesystem.
    Export,
    /// The container's changes to its image (`docker diff`): `[{"Path", "Kind"}]` with
    /// Docker's kinds (0 modified, 1 added, 2 deleted).
    Changes,
    /// The changes as an image layer tar (`docker commit`), deletions as `.wh.` whiteouts:
    /// a null reply, then the tar. `pause`: the container's processes are stopped
    /// meanwhile.
    Layer {
        #[serde(default)]
        pause: bool,
    },
    /// Extract the tar that follows into the directory `path` (`PUT /archive`).
    Put {
        path: String,
        #[serde(default)]
        no_overwrite_dir_non_dir: bool,
    },
    /// The VM's interfaces changed while it runs (`docker network connect/disconnect`):
    /// configure the ones in this list (NICs found by MAC; hot-added ones may still be
    /// appearing). Removed NICs are gone with their device.
    Interfaces {
        interfaces: Vec<crate::spec::Interface>,
    },
}

/// Why a request failed, so the VCH can pick the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    Invalid,
    Internal,
}

/// The answer: `ok` with a value, or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ok(serde_json::Value),
    Error { kind: ErrorKind, message: String },
}

impl Reply {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
        Reply::Error {
            kind,
            message: message.into(),
        }
    }
}

/// How many `Data` frames the VCH may have in flight towards a `put` (64 KiB each).
pub const PUT_WINDOW: u32 = 16;
/// The size of the `Data` frames the tether sends.
pub const CHUNK: usize = 64 * 1024;

/// One `docker stats` sample of the guest. CPU time includes processes already gone: a
/// parent's `cutime`/`cstime` hold what the children it reaped used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Cumulative CPU time of the container's processes, ns.
    pub cpu_ns: u64,
    /// Memory the container's processes use (their proportional set size), bytes.
    pub memory_bytes: u64,
    /// The container's processes (the tether not counted).
    pub pids: u64,
    /// CLOCK_MONOTONIC when sampled, ns: the VCH turns it into elapsed vCPU time.
    pub clock_ns: u64,
    /// RFC 3339 time of the sample.
    pub read: String,
}

/// The stat of a path, as dockerd puts it in `X-Docker-Container-Path-Stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits (directory = 1<<31, symlink = 1<<27, plus permissions).
    pub mode: u32,
    /// RFC 3339.
    pub mtime: String,
    /// Absolute path a symlink resolves to, else empty.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// The guest's process table (`docker top`): `ps -ef`'s column titles and one row of
/// cells per process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTable {
    #[serde(rename = "Titles")]
    pub titles: Vec<String>,
    #[serde(rename = "Processes")]
    pub processes: Vec<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn process_tables_travel_as_dockers_top_answer() {
        round_trip(
            &ProcessTable {
                titles: vec!["PID".into(), "CMD".into()],
                processes: vec![vec!["1".into(), "sleep 9".into()]],
            },
            json!({"Titles": ["PID", "CMD"], "Processes": [["1", "sleep 9"]]}),
        );
    }

    fn round_trip<T: Serialize + for<'a> Deserialize<'a> + PartialEq + std::fmt::Debug>(
        v: &T,
        wire: serde_json::Value,
    ) {
        assert_eq!(serde_json::to_value(v).unwrap(), wire);
        assert_eq!(&serde_json::from_value::<T>(wire).unwrap(), v);
    }

    #[test]
    fn requests_have_pinned_json_forms() {
        round_trip(&OpsRequest::Top, json!({"op": "top"}));
        round_trip(&OpsRequest::Export, json!({"op": "export"}));
        round_trip(
            &OpsRequest::Stat {
                path: "/etc".into(),
            },
            json!({"op": "stat", "path": "/etc"}),
        );
        round_trip(
            &OpsRequest::Put {
                path: "/tmp".into(),
                no_overwrite_dir_non_dir: true,
            },
            json!({"op": "put", "path": "/tmp", "no_overwrite_dir_non_dir": true}),
        );
        // Older VCHs sent no flag.
        let r: OpsRequest = serde_json::from_value(json!({"op": "put", "path": "/"})).unwrap();
        assert!(matches!(
            r,
            OpsRequest::Put {
                no_overwrite_dir_non_dir: false,
                ..
            }
        ));
    }

    #[test]
    fn replies_have_pinned_json_forms() {
        round_trip(&Reply::Ok(json!(null)), json!({"ok": null}));
        round_trip(
            &Reply::error(ErrorKind::NotFound, "no such file"),
            json!({"error": {"kind": "not_found", "message": "no such file"}}),
        );
    }

    #[test]
    fn samples_and_path_stats_round_trip() {
        round_trip(
            &Sample {
                cpu_ns: 1,
                memory_bytes: 2,
                pids: 3,
                clock_ns: 4,
                read: "2024-01-01T00:00:00Z".into(),
            },
            json!({"cpu_ns": 1, "memory_bytes": 2, "pids": 3, "clock_ns": 4, "read": "2024-01-01T00:00:00Z"}),
        );
        round_trip(
            &PathStat {
                name: "sh".into(),
                size: 7,
                mode: (1 << 27) | 0o777,
                mtime: "2024-01-01T00:00:00Z".into(),
                link_target: "/bin/busybox".into(),
            },
            json!({"name": "sh", "size": 7, "mode": 134218239, "mtime": "2024-01-01T00:00:00Z", "linkTarget": "/bin/busybox"}),
        );
    }
}
