//! What a running tether tells the VCH unasked, in a `Status` frame
//! ([`crate::channel::Kind::Status`]): the container process's pid in the VM
//! (`State.Pid`) and its health. Sent whole, when either changes and after every `Hello`
//! (a VCH that restarted learns it again), so the VCH keeps no history of its own.

use crate::health::HealthState;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct GuestStatus {
    /// The main process's pid as the VM sees it; 0 before it runs.
    pub pid: i32,
    /// Absent for a container without a health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthState>,
}

impl GuestStatus {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `None` for a payload that is not a status (a torn frame).
    pub fn decode(payload: &[u8]) -> Option<GuestStatus> {
        serde_json::from_slice(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_have_a_pinned_form() {
        let s = GuestStatus {
            pid: 7,
            health: None,
        };
        assert_eq!(s.encode(), br#"{"pid":7}"#);
        let h = GuestStatus {
            pid: 7,
            health: Some(HealthState::default()),
        };
        assert_eq!(GuestStatus::decode(&h.encode()), Some(h));
        assert_eq!(GuestStatus::decode(b"{\"pid\""), None);
    }
}
