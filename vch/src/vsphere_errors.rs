//! The one mapping from vSphere client errors to Docker API errors. A vCenter that cannot
//! be reached (connection refused, TLS, timeout, a session that cannot be re-established)
//! is a 503 that says so: the VCH is fine, what it stands on is away. SOAP faults keep
//! the status that fits what they mean; anything else is a 500.

use docker_api::Error;
use vsphere_client::Error as VsError;

/// `url`: the vCenter the VCH talks to, named in the 503's message.
pub fn to_docker(url: &str, e: VsError) -> Error {
    if let Some(why) = unreachable(&e) {
        let who = match url {
            "" => "vCenter".to_string(),
            u => format!("vCenter {u}"),
        };
        return Error::Unavailable(format!("{who} is unreachable: {why}"));
    }
    match e {
        VsError::Fault(f) => match f.ty.as_str() {
            "InvalidPowerState" | "InvalidState" | "TaskInProgress" | "ConcurrentAccess" => {
                Error::Conflict(format!("vSphere: {f}"))
            }
            "ManagedObjectNotFound" | "FileNotFound" => Error::NotFound(format!("vSphere: {f}")),
            "NoPermission" => Error::Forbidden(format!("vSphere: {f}")),
            "InvalidArgument" => Error::invalid(format!("vSphere: {f}")),
            _ => Error::internal(VsError::Fault(f)),
        },
        other => Error::internal(other),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(ty: &str) -> VsError {
        VsError::Fault(vsphere_client::error::Fault {
            ty: ty.into(),
            msg: "m".into(),
            detail: vsphere_client::value::DataObject::new(ty),
        })
    }

    #[test]
    fn network_and_session_faults_are_503_naming_vcenter() {
        let e = to_docker(
            "https://vc:443/sdk",
            VsError::Transport {
                url: "https://vc:443/sdk".into(),
                msg: "connection refused".into(),
            },
        );
        assert_eq!(e.status().as_u16(), 503);
        assert_eq!(
            e.to_string(),
            "vCenter https://vc:443/sdk is unreachable: connection refused"
        );
        for e in [
            VsError::Timeout(std::time::Duration::from_secs(120)),
            fault("NotAuthenticated"),
        ] {
            assert!(unreachable(&e).is_some());
            assert_eq!(to_docker("u", e).status().as_u16(), 503);
        }
    }

    #[test]
    fn soap_faults_keep_their_meaning() {
        let status = |ty| to_docker("u", fault(ty)).status().as_u16();
        assert_eq!(status("InvalidPowerState"), 409);
        assert_eq!(status("ManagedObjectNotFound"), 404);
        assert_eq!(status("NoPermission"), 403);
        assert_eq!(status("SystemError"), 500);
        assert!(unreachable(&fault("SystemError")).is_none());
        assert_eq!(
            to_docker("u", VsError::Decode("x".into()))
                .status()
                .as_u16(),
            500
        );
    }
}
