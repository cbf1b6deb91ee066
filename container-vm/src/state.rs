//! The states a tether reports in `guestinfo.vch.state` ([`crate::guestinfo::STATE_KEY`]).

use std::fmt;
use std::str::FromStr;

/// A container VM's state as its tether sees it. The wire strings are fixed (see
/// [`ContainerState::as_str`]): VMs and VCHs of different builds read each other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerState {
    /// A parked instant clone waiting for `Start` on the control channel.
    Created,
    /// The container's process runs.
    Running,
    /// The process ended (or never started: see the error key).
    Exited,
    /// A template VM whose scratch disk is ready: it may be cloned.
    TemplateReady,
}

impl ContainerState {
    pub const ALL: [ContainerState; 4] = [
        ContainerState::Created,
        ContainerState::Running,
        ContainerState::Exited,
        ContainerState::TemplateReady,
    ];

    /// The value written to `guestinfo.vch.state`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Exited => "exited",
            ContainerState::TemplateReady => "template-ready",
        }
    }

    /// The state a guestinfo value names; `None` for anything else (absent, or written
    /// by a newer tether).
    pub fn parse(value: &str) -> Option<ContainerState> {
        ContainerState::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown state string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown container state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for ContainerState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ContainerState::parse(s).ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_are_pinned_and_round_trip() {
        let wire: Vec<&str> = ContainerState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(wire, ["created", "running", "exited", "template-ready"]);
        for s in ContainerState::ALL {
            assert_eq!(s.to_string().parse::<ContainerState>(), Ok(s));
        }
        assert_eq!(ContainerState::parse("paused"), None);
        assert!("".parse::<ContainerState>().is_err());
    }
}
