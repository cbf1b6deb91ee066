//! TLS trust for vCenter connections: a pinned certificate thumbprint (what `govc` and
//! the vSphere UI show), a CA bundle, or explicitly insecure. The pinned check runs in
//! the handshake, so a wrong thumbprint is refused before any credentials are sent.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha1::Digest as _;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub enum TlsTrust {
    /// SHA-1 (20 bytes) or SHA-256 (32 bytes) of the server certificate, hex with or
    /// without colons.
    Thumbprint(String),
    /// PEM bundle of trusted CA certificates.
    CaPem(Vec<u8>),
    /// No verification at all. Only for explicitly insecure set-ups.
    Insecure,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("thumbprint '{0}' is not 20 or 32 hex bytes")]
    BadThumbprint(String),
    #[error("CA bundle: {0}")]
    BadCa(String),
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// Parses `AB:CD:..` or `abcd..` into raw bytes.
pub fn parse_thumbprint(s: &str) -> Result<Vec<u8>, TlsConfigError> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if !(hex.len() == 40 || hex.len() == 64) {
        return Err(TlsConfigError::BadThumbprint(s.into()));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| TlsConfigError::BadThumbprint(s.into()))
}

#[derive(Debug)]
struct Verifier {
    /// None: accept any certificate (TlsTrust::Insecure).
    pinned: Option<Vec<u8>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = &self.pinned else {
            return Ok(ServerCertVerified::assertion());
        };
        let got: Vec<u8> = if pin.len() == 20 {
            sha1::Sha1::digest(end_entity.as_ref()).to_vec()
        } else {
            sha2::Sha256::digest(end_entity.as_ref()).to_vec()
        };
        if &got == pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate thumbprint {} does not match the pinned one",
                got.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls client configuration implementing `trust`.
pub fn client_config(trust: &TlsTrust) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let cfg = match trust {
        TlsTrust::CaPem(pem) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| TlsConfigError::BadCa(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| TlsConfigError::BadCa(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(TlsConfigError::BadCa("no certificate in the bundle".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsTrust::Thumbprint(t) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                pinned: Some(parse_thumbprint(t)?),
                provider,
            }))
            .with_no_client_auth(),
        TlsTrust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                pinned: None,
                provider,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_parse_with_or_without_colons() {
        let sha1 = format!("{}CD", "AB:".repeat(19));
        assert_eq!(parse_thumbprint(&sha1).unwrap().len(), 20);
        assert_eq!(parse_thumbprint(&"ab".repeat(32)).unwrap().len(), 32);
        assert!(parse_thumbprint("AB:CD").is_err());
        assert!(parse_thumbprint(&"zz".repeat(20)).is_err());
    }

    #[test]
    fn empty_ca_bundle_is_an_error() {
        assert!(matches!(
            client_config(&TlsTrust::CaPem(b"nothing".to_vec())),
            Err(TlsConfigError::BadCa(_))
        ));
    }
}
