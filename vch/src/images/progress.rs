//! Pull/load/import progress, as the events dockerd streams to the CLI
//! (`jsonmessage.JSONMessage` lines). [`ProgressEvent::to_message`] renders the exact
//! message, so the route only has to write one JSON object per line.

use docker_api::{JsonMessage, JsonProgress};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressEvent {
    /// `{"status":"Pulling from library/busybox","id":"latest"}`
    PullingFrom {
        repository: String,
        id: String,
    },
    /// Per layer; `layer` is the 12-hex short blob digest.
    PullingFsLayer {
        layer: String,
    },
    Waiting {
        layer: String,
    },
    AlreadyExists {
        layer: String,
    },
    Downloading {
        layer: String,
        current: u64,
        total: u64,
    },
    /// A download failed on the network and is tried again.
    Retrying {
        layer: String,
        attempt: u32,
        error: String,
    },
    VerifyingChecksum {
        layer: String,
    },
    DownloadComplete {
        layer: String,
    },
    /// Writing the layer disk to the datastore (`current`/`total` bytes).
    Extracting {
        layer: String,
        current: u64,
        total: u64,
    },
    PullComplete {
        layer: String,
    },
    /// `{"status":"Digest: sha256:..."}`
    Digest {
        digest: String,
    },
    /// `{"status":"Status: Downloaded newer image for busybox:latest"}` and friends.
    Status {
        message: String,
    },
    /// `{"stream":"Loaded image: busybox:latest\n"}` (docker load).
    Stream {
        message: String,
    },
    /// A push step of a layer: `Preparing`, `Pushing`, `Pushed`, `Layer already exists`,
    /// `Mounted from library/busybox`.
    LayerStatus {
        layer: String,
        status: String,
    },
}

impl ProgressEvent {
    /// The `id` field (a layer's short digest, or a tag).
    pub fn id(&self) -> Option<&str> {
        use ProgressEvent::*;
        match self {
            PullingFrom { id, .. } => Some(id),
            PullingFsLayer { layer }
            | Waiting { layer }
            | AlreadyExists { layer }
            | Downloading { layer, .. }
            | Retrying { layer, .. }
            | VerifyingChecksum { layer }
            | DownloadComplete { layer }
            | Extracting { layer, .. }
            | PullComplete { layer }
            | LayerStatus { layer, .. } => Some(layer),
            Digest { .. } | Status { .. } | Stream { .. } => None,
        }
    }

    /// The `status` text.
    pub fn status(&self) -> String {
        use ProgressEvent::*;
        match self {
            PullingFrom { repository, .. } => format!("Pulling from {repository}"),
            PullingFsLayer { .. } => "Pulling fs layer".into(),
            Waiting { .. } => "Waiting".into(),
            AlreadyExists { .. } => "Already exists".into(),
            Downloading { .. } => "Downloading".into(),
            Retrying { attempt, .. } => format!(
                "Retrying in {attempt} second{}",
                if *attempt == 1 { "" } else { "s" }
            ),
            VerifyingChecksum { .. } => "Verifying Checksum".into(),
            DownloadComplete { .. } => "Download complete".into(),
            Extracting { .. } => "Extracting".into(),
            PullComplete { .. } => "Pull complete".into(),
            Digest { digest } => format!("Digest: {digest}"),
            Status { message } => message.clone(),
            Stream { message } => message.clone(),
            LayerStatus { status, .. } => status.clone(),
        }
    }

    /// The message dockerd would send for this event.
    pub fn to_message(&self) -> JsonMessage {
        use ProgressEvent::*;
        match self {
            Stream { message } => JsonMessage {
                stream: Some(format!("{message}\n")),
                ..Default::default()
            },
            Downloading {
                layer,
                current,
                total,
            }
            | Extracting {
                layer,
                current,
                total,
            } => JsonMessage {
                status: Some(self.status()),
                id: Some(layer.clone()),
                progress_detail: Some(JsonProgress {
                    current: *current as i64,
                    total: *total as i64,
                    ..Default::default()
                }),
                progress: Some(progress_bar(*current, *total)),
                ..Default::default()
            },
            _ => JsonMessage {
                status: Some(self.status()),
                id: self.id().map(str::to_string),
                ..Default::default()
            },
        }
    }
}

/// dockerd's pre-rendered bar: `[=====>      ]  1.2MB/3.4MB`.
fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    if total == 0 {
        return human(current);
    }
    let filled = (current.min(total) * WIDTH / total) as usize;
    let mut bar = "=".repeat(filled);
    if filled < WIDTH as usize {
        bar.push('>');
        bar.push_str(&" ".repeat(WIDTH as usize - filled - 1));
    }
    format!("[{bar}] {:>8}/{}", human(current), human(total))
}

/// Decimal units like Docker's go-units HumanSize.
pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{:.4}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .chars()
            .take(5)
            .collect::<String>()
            .trim_end_matches('.')
            .to_string()
            + units[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_of(e: &ProgressEvent) -> serde_json::Value {
        serde_json::to_value(e.to_message()).unwrap()
    }

    #[test]
    fn renders_docker_messages() {
        let e = ProgressEvent::PullingFrom {
            repository: "library/busybox".into(),
            id: "latest".into(),
        };
        assert_eq!(
            json_of(&e),
            json!({"status":"Pulling from library/busybox","id":"latest"})
        );
        let d = json_of(&ProgressEvent::Downloading {
            layer: "abc".into(),
            current: 1_200_000,
            total: 3_400_000,
        });
        assert_eq!(d["progressDetail"]["current"], 1_200_000);
        assert!(
            d["progress"].as_str().unwrap().ends_with("1.2MB/3.4MB"),
            "{d}"
        );
        assert_eq!(
            json_of(&ProgressEvent::Stream {
                message: "Loaded image: busybox:latest".into()
            }),
            json!({"stream":"Loaded image: busybox:latest\n"})
        );
        assert_eq!(human(999), "999B");
        assert_eq!(human(2_500_000), "2.5MB");
    }
}
