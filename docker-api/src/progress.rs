//! JSON-lines progress messages (pull, push, load, import).
//!
//! dockerd writes one `jsonmessage.JSONMessage` per line and the CLI renders them (progress
//! bars on a terminal, "id: status" lines otherwise). The swagger models split this one
//! wire type into per-endpoint structs that miss fields the CLI uses (`id` on push,
//! `stream` on load, `aux`), so this is the one type we define by hand; conversions from
//! the generated structs are provided.

use serde::{Deserialize, Serialize};

use crate::models::{CreateImageInfo, ErrorDetail, ProgressDetail, PushImageInfo};

/// One progress message. Empty fields are omitted, as Go's `omitempty` does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(
        rename = "progressDetail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_detail: Option<JsonProgress>,
    /// Pre-rendered progress bar (deprecated in the API but still shown by old clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(
        rename = "errorDetail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error_detail: Option<JsonError>,
    /// Deprecated duplicate of `errorDetail.message`; clients still read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Out-of-band data, e.g. `{"Tag":..,"Digest":..,"Size":..}` after a push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

/// `progressDetail`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonProgress {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidecounts: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub units: String,
}

/// `errorDetail`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonError {
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub code: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}
fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

impl JsonMessage {
    /// `{"status": status}`.
    pub fn status(status: impl Into<String>) -> Self {
        JsonMessage {
            status: Some(status.into()),
            ..Default::default()
        }
    }

    /// `{"status": status, "id": id}`: a per-layer line.
    pub fn layer(id: impl Into<String>, status: impl Into<String>) -> Self {
        JsonMessage {
            status: Some(status.into()),
            id: Some(id.into()),
            ..Default::default()
        }
    }

    /// A per-layer progress update (`Downloading`/`Extracting` with a byte count).
    pub fn layer_progress(
        id: impl Into<String>,
        status: impl Into<String>,
        current: i64,
        total: i64,
    ) -> Self {
        JsonMessage {
            status: Some(status.into()),
            id: Some(id.into()),
            progress_detail: Some(JsonProgress {
                current,
                total,
                ..Default::default()
            }),
            progress: Some(render_bar(current, total)),
            ..Default::default()
        }
    }

    /// `{"stream": text}` (used by load).
    pub fn stream(text: impl Into<String>) -> Self {
        JsonMessage {
            stream: Some(text.into()),
            ..Default::default()
        }
    }

    /// The in-stream error dockerd writes once headers are gone.
    pub fn error(message: impl Into<String>) -> Self {
        let message = message.into();
        JsonMessage {
            error_detail: Some(JsonError {
                code: 0,
                message: message.clone(),
            }),
            error: Some(message),
            ..Default::default()
        }
    }

    /// One JSON line, newline-terminated.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        v.push(b'\n');
        v
    }
}

/// A textual progress bar like Docker's `JSONProgress.String()` (kept short: the CLI
/// draws its own bar from `progressDetail` on terminals).
fn render_bar(current: i64, total: i64) -> String {
    if total <= 0 {
        return format!("{current}B");
    }
    let width = 50i64;
    let filled = (current.clamp(0, total) * width / total) as usize;
    let mut bar = "=".repeat(filled);
    if (filled as i64) < width {
        bar.push('>');
    }
    format!("[{bar:<50}] {current}B/{total}B")
}

fn from_progress_detail(p: ProgressDetail) -> JsonProgress {
    JsonProgress {
        current: p.current.unwrap_or(0),
        total: p.total.unwrap_or(0),
        ..Default::default()
    }
}

fn from_error_detail(e: ErrorDetail) -> JsonError {
    JsonError {
        code: e.code.unwrap_or(0) as i32,
        message: e.message.unwrap_or_default(),
    }
}

impl From<CreateImageInfo> for JsonMessage {
    fn from(i: CreateImageInfo) -> Self {
        JsonMessage {
            status: i.status,
            id: i.id,
            progress: i.progress,
            progress_detail: i.progress_detail.map(from_progress_detail),
            error: i.error,
            error_detail: i.error_detail.map(from_error_detail),
            ..Default::default()
        }
    }
}

impl From<PushImageInfo> for JsonMessage {
    fn from(i: PushImageInfo) -> Self {
        JsonMessage {
            status: i.status,
            progress: i.progress,
            progress_detail: i.progress_detail.map(from_progress_detail),
            error: i.error,
            error_detail: i.error_detail.map(from_error_detail),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape() {
        let m = JsonMessage::layer_progress("abc", "Downloading", 5, 10);
        let v: serde_json::Value = serde_json::from_slice(&m.to_line()).unwrap();
        assert_eq!(v["progressDetail"]["current"], 5);
        assert_eq!(v["id"], "abc");
        assert!(v.get("stream").is_none());
        let e = JsonMessage::error("boom");
        assert_eq!(
            String::from_utf8(e.to_line()).unwrap(),
            "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\n"
        );
    }
}
