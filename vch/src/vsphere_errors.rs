//! vSphere client errors as Docker API errors (see translator::error, which owns the
//! classification). A vCenter that cannot
//! be reached (connection refused, TLS, timeout, a session that cannot be re-established)
//! is a 503 that says so: the VCH is fine, what it stands on is away. SOAP faults keep
//! the status that fits what they mean; anything else is a 500.

use docker_api::Error;
use vsphere_client::Error as VsError;

pub use crate::translator::error::unreachable;
use crate::translator::error::PlatformError;

/// `url`: the vCenter the VCH talks to, named in the 503's message. The classes and the
/// statuses live in translator::error; this is the entry for callers that hold a raw
/// vSphere error (image store, volumes).
pub fn to_docker(url: &str, e: VsError) -> Error {
    crate::translator::error::to_docker(PlatformError::from_vsphere(url, e).into())
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
