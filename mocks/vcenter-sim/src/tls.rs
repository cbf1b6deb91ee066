//! The simulator's self-signed certificate: generated once (rcgen), kept in the data
//! directory so thumbprints stay stable across restarts, and served with rustls.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use sha1::Digest as _;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate file {0}: {1}")]
    Io(String, std::io::Error),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("certificate in {0} is unreadable: {1}")]
    Parse(String, String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

pub struct Identity {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    pub cert_pem: String,
}

/// `AB:CD:...` (uppercase, colon separated), the form vSphere and govc print.
pub fn format_thumbprint(digest: &[u8]) -> String {
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Identity {
    pub fn sha1_thumbprint(&self) -> String {
        format_thumbprint(&sha1::Sha1::digest(&self.cert_der))
    }
    pub fn sha256_thumbprint(&self) -> String {
        format_thumbprint(&sha2::Sha256::digest(&self.cert_der))
    }

    /// Loads `sim.crt`/`sim.key` from `dir`, creating them on first start.
    pub fn load_or_create(dir: &Path) -> Result<Identity, TlsError> {
        let crt = dir.join("sim.crt");
        let key = dir.join("sim.key");
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |e| TlsError::Io(p, e)
        };
        if !crt.exists() || !key.exists() {
            let mut params = rcgen::CertificateParams::new(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ])?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "vcenter-sim");
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, "VCH vcenter-sim");
            let kp = rcgen::KeyPair::generate()?;
            let cert = params.self_signed(&kp)?;
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            // Key first, certificate last: a half-written pair is regenerated next start.
            // The key is 0600 from its first byte.
            crate::private::write_private(&key, kp.serialize_pem().as_bytes()).map_err(io(&key))?;
            std::fs::write(&crt, cert.pem()).map_err(io(&crt))?;
        }
        // A key written by an older version may be world-readable.
        std::fs::set_permissions(
            &key,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .map_err(io(&key))?;
        let cert_pem = std::fs::read_to_string(&crt).map_err(io(&crt))?;
        let key_pem = std::fs::read_to_string(&key).map_err(io(&key))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::Parse(crt.display().to_string(), e.to_string()))?
            .to_vec();
        let key_der = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| TlsError::Parse(key.display().to_string(), e.to_string()))?
            .secret_pkcs8_der()
            .to_vec();
        Ok(Identity {
            cert_der,
            key_der,
            cert_pem,
        })
    }

    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(
                    self.cert_der.clone(),
                )],
                rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into()),
            )?;
        Ok(Arc::new(cfg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_stable_across_loads() {
        let dir = std::env::temp_dir().join(format!("sim-tls-{}", uuid::Uuid::new_v4()));
        let a = Identity::load_or_create(&dir).unwrap();
        let b = Identity::load_or_create(&dir).unwrap();
        assert_eq!(a.sha256_thumbprint(), b.sha256_thumbprint());
        assert_eq!(a.sha1_thumbprint().len(), 20 * 3 - 1);
        a.server_config().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
