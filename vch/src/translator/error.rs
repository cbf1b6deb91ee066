//! The translator's errors, and the ONE place they become Docker API errors (status and
//! wording). vSphere's own errors are classified once, where they enter
//! ([`PlatformError::from_vsphere`]): the translator decides on classes (vCenter away, VM
//! gone, wrong power state), never on fault strings, and users get a status that says
//! what happened (503 when vCenter is away, 404 when a VM is gone, 409 for conflicts).

use vsphere_client::Error as VsError;

/// What went wrong on the vSphere side, by class. The text is what the user reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// vCenter itself cannot be reached (network, TLS, timeout, lost session).
    #[error("{0}")]
    Unreachable(String),
    /// The VM (or file) is gone.
    #[error("{0}")]
    NotFound(String),
    /// The VM is not in the power state the operation needs.
    #[error("{0}")]
    InvalidPowerState(String),
    /// Another task holds the VM, or its state does not allow the change.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    NoPermission(String),
    /// vSphere refused the request's content (or the translator built an impossible one).
    #[error("{0}")]
    Invalid(String),
    /// The VM is on but its monitor does not answer (a hung VM): a power cycle cures it.
    #[error("{0}")]
    NotAnswering(String),
    #[error("{0}")]
    Other(String),
}

impl PlatformError {
    /// Classifies a vSphere client error; `url` names the vCenter in the 503's message.
    pub fn from_vsphere(url: &str, e: VsError) -> PlatformError {
        if let Some(why) = unreachable(&e) {
            let who = match url {
                "" => "vCenter".to_string(),
                u => format!("vCenter {u}"),
            };
            return PlatformError::Unreachable(format!("{who} is unreachable: {why}"));
        }
        match e {
            VsError::Fault(f) => {
                let text = format!("vSphere: {f}");
                match f.ty.as_str() {
                    "InvalidPowerState" => PlatformError::InvalidPowerState(text),
                    "InvalidState" | "TaskInProgress" | "ConcurrentAccess" => {
                        PlatformError::Busy(text)
                    }
                    "ManagedObjectNotFound" | "FileNotFound" => PlatformError::NotFound(text),
                    "NoPermission" => PlatformError::NoPermission(text),
                    "InvalidArgument" => PlatformError::Invalid(text),
                    // The simulator's runtime (and a hung ESXi VM) says the parent's monitor
                    // gave no reply.
                    _ if f.msg.contains("not answering") => PlatformError::NotAnswering(text),
                    _ => PlatformError::Other(VsError::Fault(f).to_string()),
                }
            }
            other => PlatformError::Other(other.to_string()),
        }
    }
}

/// Why vCenter itself is away, if that is what the error means (as opposed to a fault
/// it answered with).
pub fn unreachable(e: &VsError) -> Option<String> {
    match e {
        VsError::Transport { msg, .. } => Some(msg.clone()),
        VsError::Timeout(d) => Some(format!("no answer within {} s", d.as_secs())),
        VsError::Tls(t) => Some(format!("TLS: {t}")),
        VsError::Http { status, body, .. } if matches!(status, 502..=504) => {
            Some(format!("HTTP {status}: {body}"))
        }
        // The session is gone and logging in again failed.
        VsError::Fault(f) if f.is("NotAuthenticated") || f.is("InvalidLogin") => Some(format!(
            "the session was lost and cannot be re-established ({f})"
        )),
        _ => None,
    }
}

/// The translator's errors. Each says what the user did not get, by class.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// Another container has the name.
    #[error("the container name \"/{name}\" is already in use by container \"{id}\"")]
    NameConflict { name: String, id: String },
    /// The request cannot be honoured as given (400).
    #[error("{0}")]
    Invalid(String),
    /// The container's state does not allow it (409).
    #[error("{0}")]
    Conflict(String),
    /// The container is not running (409, dockerd's wording).
    #[error("container {0} is not running")]
    NotRunning(String),
    /// Nothing to do (304).
    #[error("{0}")]
    NotModified(String),
    /// The VCH cannot serve it now (503): the template VM is not ready.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// An error a shared module (network, security) already phrased for Docker clients.
    #[error(transparent)]
    Docker(#[from] docker_api::Error),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The one mapping from translator errors to Docker API errors.
pub fn to_docker(e: Error) -> docker_api::Error {
    use docker_api::Error as D;
    match e {
        Error::NoSuchContainer(id) => D::NoSuchContainer(id),
        Error::NoSuchExec(id) => D::NoSuchExec(id),
        Error::NameConflict { name, id } => D::name_conflict(&name, &id),
        Error::Invalid(m) => D::invalid(m),
        Error::Conflict(m) => D::Conflict(m),
        Error::NotRunning(id) => D::not_running(&id),
        Error::NotModified(m) => D::NotModified(m),
        Error::Unavailable(m) => D::Unavailable(m),
        Error::Platform(p) => match p {
            PlatformError::Unreachable(m) => D::Unavailable(m),
            PlatformError::NotFound(m) => D::NotFound(m),
            PlatformError::InvalidPowerState(m) | PlatformError::Busy(m) => D::Conflict(m),
            PlatformError::NoPermission(m) => D::Forbidden(m),
            PlatformError::Invalid(m) => D::invalid(m),
            PlatformError::NotAnswering(m) | PlatformError::Other(m) => D::internal(m),
        },
        Error::Docker(d) => d,
        Error::Internal(m) => D::internal(m),
    }
}

impl From<Error> for docker_api::Error {
    fn from(e: Error) -> Self {
        to_docker(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(ty: &str, msg: &str) -> VsError {
        VsError::Fault(vsphere_client::error::Fault {
            ty: ty.into(),
            msg: msg.into(),
            detail: vsphere_client::value::DataObject::new(ty),
        })
    }

    fn status(e: Error) -> u16 {
        to_docker(e).status().as_u16()
    }

    #[test]
    fn unreachable_vcenter_is_503_naming_it() {
        let e = PlatformError::from_vsphere(
            "https://vc:443/sdk",
            VsError::Transport {
                url: "https://vc:443/sdk".into(),
                msg: "connection refused".into(),
            },
        );
        let d = to_docker(e.into());
        assert_eq!(d.status().as_u16(), 503);
        assert_eq!(
            d.to_string(),
            "vCenter https://vc:443/sdk is unreachable: connection refused"
        );
        let anon =
            PlatformError::from_vsphere("", VsError::Timeout(std::time::Duration::from_secs(120)));
        assert_eq!(
            anon,
            PlatformError::Unreachable("vCenter is unreachable: no answer within 120 s".into())
        );
    }

    #[test]
    fn lost_sessions_and_gateway_errors_are_unreachable() {
        for e in [
            fault("NotAuthenticated", "m"),
            fault("InvalidLogin", "m"),
            VsError::Http {
                status: 503,
                body: "down".into(),
                url: "u".into(),
            },
        ] {
            assert!(unreachable(&e).is_some(), "{e}");
            assert!(matches!(
                PlatformError::from_vsphere("u", e),
                PlatformError::Unreachable(_)
            ));
        }
    }

    #[test]
    fn faults_are_classified_by_meaning() {
        let class = |ty, msg| PlatformError::from_vsphere("u", fault(ty, msg));
        assert!(matches!(
            class("InvalidPowerState", "m"),
            PlatformError::InvalidPowerState(_)
        ));
        assert!(matches!(
            class("TaskInProgress", "m"),
            PlatformError::Busy(_)
        ));
        assert!(matches!(
            class("ManagedObjectNotFound", "m"),
            PlatformError::NotFound(_)
        ));
        assert!(matches!(
            class("FileNotFound", "m"),
            PlatformError::NotFound(_)
        ));
        assert!(matches!(
            class("NoPermission", "m"),
            PlatformError::NoPermission(_)
        ));
        assert!(matches!(
            class("InvalidArgument", "m"),
            PlatformError::Invalid(_)
        ));
        assert!(matches!(
            class("SystemError", "the VM is not answering"),
            PlatformError::NotAnswering(_)
        ));
        assert!(matches!(
            class("SystemError", "boom"),
            PlatformError::Other(_)
        ));
        assert!(matches!(
            PlatformError::from_vsphere("u", VsError::Decode("x".into())),
            PlatformError::Other(_)
        ));
    }

    #[test]
    fn platform_classes_map_to_docker_statuses() {
        let p = |e: PlatformError| status(Error::Platform(e));
        assert_eq!(p(PlatformError::Unreachable("x".into())), 503);
        assert_eq!(p(PlatformError::NotFound("x".into())), 404);
        assert_eq!(p(PlatformError::InvalidPowerState("x".into())), 409);
        assert_eq!(p(PlatformError::Busy("x".into())), 409);
        assert_eq!(p(PlatformError::NoPermission("x".into())), 403);
        assert_eq!(p(PlatformError::Invalid("x".into())), 400);
        assert_eq!(p(PlatformError::NotAnswering("x".into())), 500);
        assert_eq!(p(PlatformError::Other("x".into())), 500);
    }

    #[test]
    fn translator_errors_map_to_docker_statuses_and_wording() {
        assert_eq!(status(Error::NoSuchContainer("x".into())), 404);
        assert_eq!(status(Error::NoSuchExec("x".into())), 404);
        assert_eq!(status(Error::Invalid("x".into())), 400);
        assert_eq!(status(Error::Conflict("x".into())), 409);
        assert_eq!(status(Error::NotRunning("abc".into())), 409);
        assert_eq!(status(Error::NotModified("x".into())), 304);
        assert_eq!(status(Error::Unavailable("x".into())), 503);
        assert_eq!(status(Error::Internal("x".into())), 500);
        let c = to_docker(Error::NameConflict {
            name: "web".into(),
            id: "abc".into(),
        });
        assert_eq!(c.status().as_u16(), 409);
        assert!(c.to_string().contains("\"/web\""), "{c}");
        assert_eq!(
            to_docker(Error::NotRunning("abc".into())),
            docker_api::Error::not_running("abc")
        );
    }
}
