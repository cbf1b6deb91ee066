//! The registry side of a pull, over oci-client: manifests (with the platform choice
//! for lists/indexes), small blobs (configs) and streamed layer blobs.
//!
//! oci-client verifies every blob against its digest while it streams (its
//! `VerifyingStream` fails the last read on a mismatch), and every manifest against the
//! digest it was asked for or the `Docker-Content-Digest` header.
//! One oci-client `Client` is made per operation: it caches credentials per registry
//! host, and the VCH serves several users whose credentials must not mix.

use super::auth::{exchange_identity_token, RegistryAuth};
use super::digest::Digest;
use super::error::{ImageError, Result};
use super::manifest::{media, Descriptor, ImageIndex, ImageManifest, Manifest};
use super::platform::Platform;
use super::reference::Reference;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth as OciAuth;
use std::time::Duration;

/// Installs ring as the process's rustls provider (once). reqwest is built without a
/// provider of its own so that aws-lc is not compiled into the VCH.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Largest manifest or config we accept (dockerd: 4 MiB manifests, 8 MiB configs).
pub const MAX_SMALL_BLOB: i64 = 8 << 20;

pub struct Registry {
    client: oci_client::Client,
    auth: OciAuth,
    host: String,
}

/// A resolved manifest: the image manifest for the chosen platform, and what the
/// reference itself pointed at (an index, or the same manifest).
pub struct Resolved {
    pub manifest: ImageManifest,
    pub manifest_bytes: Vec<u8>,
    pub manifest_digest: Digest,
    /// Digest of what the tag names (the index for multi-platform images): the
    /// RepoDigest, as dockerd records it.
    pub top_digest: Digest,
    /// The index bytes, when the reference named one.
    pub index: Option<(Vec<u8>, ImageIndex)>,
}

fn registry_err(host: &str, e: oci_client::errors::OciDistributionError, what: &str) -> ImageError {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode};
    let detail = format!("{what}: {e}");
    match &e {
        E::AuthenticationFailure(m) => ImageError::Unauthorized(format!("{host}: {m}")),
        E::UnauthorizedError { url } => {
            ImageError::Unauthorized(format!("authentication required for {url}"))
        }
        E::ImageManifestNotFoundError(_) => ImageError::ManifestUnknown(what.to_string()),
        E::RegistryError { envelope, .. } => {
            let code = envelope.errors.first().map(|x| &x.code);
            match code {
                Some(OciErrorCode::ManifestUnknown)
                | Some(OciErrorCode::NameUnknown)
                | Some(OciErrorCode::NotFound)
                | Some(OciErrorCode::BlobUnknown) => ImageError::ManifestUnknown(what.to_string()),
                Some(OciErrorCode::Unauthorized) | Some(OciErrorCode::Denied) => {
                    ImageError::Unauthorized(format!("{host}: {e}"))
                }
                _ => ImageError::Registry {
                    registry: host.to_string(),
                    detail,
                },
            }
        }
        E::ServerError { code: 404, .. } => ImageError::ManifestUnknown(what.to_string()),
        E::ServerError {
            code: 401 | 403, ..
        } => ImageError::Unauthorized(format!("{host}: {e}")),
        E::DigestError(d) => ImageError::DigestMismatch {
            what: what.to_string(),
            expected: String::new(),
            actual: d.to_string(),
        },
        _ => ImageError::Registry {
            registry: host.to_string(),
            detail,
        },
    }
}

/// Whether `host` (`name[:port]`) is on the loopback network, where dockerd treats every
/// registry as insecure (`127.0.0.0/8`, `::1`, `localhost`).
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether the registry at `host` answers plain HTTP as a registry (its `/v2/` carries
/// `Docker-Distribution-API-Version`). dockerd falls back to HTTP for insecure
/// registries; asking first keeps a TLS registry on loopback on HTTPS.
async fn speaks_plain_http(host: &str) -> bool {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return false;
    };
    http.get(format!("http://{host}/v2/"))
        .send()
        .await
        .is_ok_and(|r| r.headers().contains_key("docker-distribution-api-version"))
}

/// `docker login` against `server` (see auth::check_login); plain HTTP for the
/// registries `insecure` lists and loopback ones that speak it.
pub async fn login(server: &str, creds: &RegistryAuth, insecure: &[String]) -> Result<()> {
    let host = super::auth::login_host(server);
    if host.is_empty() {
        return Err(ImageError::InvalidArgument(
            "no registry server address to log in to".into(),
        ));
    }
    let plain = insecure.contains(&host) || (is_loopback(&host) && speaks_plain_http(&host).await);
    let scheme = if plain { "http" } else { "https" };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ImageError::Internal(e.to_string()))?;
    super::auth::check_login(&http, &format!("{scheme}://{host}"), creds).await
}

impl Registry {
    /// A client for the registry of `r`. `insecure` lists `host:port`s spoken to over
    /// plain HTTP (`--insecure-registry`); a loopback registry that speaks plain HTTP
    /// is insecure without being listed, as with dockerd.
    pub async fn connect(
        r: &Reference,
        creds: Option<&RegistryAuth>,
        insecure: &[String],
    ) -> Result<Registry> {
        install_crypto_provider();
        let host = r.domain().to_string();
        let mut insecure = insecure.to_vec();
        if !insecure.contains(&host) && is_loopback(&host) && speaks_plain_http(&host).await {
            insecure.push(host.clone());
        }
        let plain_http = insecure.iter().any(|h| h == &host);
        let config = ClientConfig {
            protocol: if insecure.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(insecure.clone())
            },
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(30)),
            // A stalled transfer fails rather than hanging the pull forever.
            read_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        };
        let client = oci_client::Client::try_from(config).map_err(|e| ImageError::Registry {
            registry: host.clone(),
            detail: format!("cannot build the HTTP client: {e}"),
        })?;
        let creds = creds.cloned().map(RegistryAuth::normalized);
        let auth = match creds.as_ref() {
            None => OciAuth::Anonymous,
            Some(a) if !a.registrytoken.is_empty() => OciAuth::Bearer(a.registrytoken.clone()),
            Some(a) if !a.identitytoken.is_empty() => {
                let http = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| ImageError::Internal(e.to_string()))?;
                let scheme = if plain_http { "http" } else { "https" };
                let base = format!("{scheme}://{}", r.registry_host());
                let tok = exchange_identity_token(&http, &base, r.path(), &a.identitytoken).await?;
                OciAuth::Bearer(tok)
            }
            Some(a) => OciAuth::Basic(a.username.clone(), a.password.clone()),
        };
        Ok(Registry { client, auth, host })
    }

    fn oci_ref(r: &Reference) -> oci_client::Reference {
        match (r.digest(), r.tag()) {
            (Some(d), _) => oci_client::Reference::with_digest(
                r.domain().to_string(),
                r.path().to_string(),
                d.to_string(),
            ),
            (None, t) => oci_client::Reference::with_tag(
                r.domain().to_string(),
                r.path().to_string(),
                t.unwrap_or("latest").to_string(),
            ),
        }
    }

    /// Fetches the raw manifest `r` names and its digest (verified against a digest
    /// reference).
    pub async fn manifest_raw(&self, r: &Reference) -> Result<(Vec<u8>, Digest)> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(&Self::oci_ref(r), &self.auth, media::ACCEPTED_MANIFESTS)
            .await
            .map_err(|e| registry_err(&self.host, e, &r.familiar()))?;
        if bytes.len() as i64 > MAX_SMALL_BLOB {
            return Err(ImageError::invalid("manifest", "larger than 8 MiB"));
        }
        let digest = Digest::parse(&digest)?;
        if let Some(want) = r.digest() {
            want.verify(&format!("manifest {}", r.familiar()), &bytes)?;
        }
        Ok((bytes.to_vec(), digest))
    }

    /// Resolves `r` to the image manifest for `platform`.
    pub async fn resolve(&self, r: &Reference, platform: &Platform) -> Result<Resolved> {
        let (bytes, top_digest) = self.manifest_raw(r).await?;
        match Manifest::parse(&bytes, None)? {
            Manifest::Image(m) => Ok(Resolved {
                manifest: *m,
                manifest_bytes: bytes,
                manifest_digest: top_digest.clone(),
                top_digest,
                index: None,
            }),
            Manifest::Index(idx) => {
                let entry = idx.select(platform)?.clone();
                let child = r.with_digest(entry.digest.clone());
                let (mbytes, mdigest) = self.manifest_raw(&child).await?;
                match Manifest::parse(&mbytes, Some(&entry.media_type))? {
                    Manifest::Image(m) => Ok(Resolved {
                        manifest: *m,
                        manifest_bytes: mbytes,
                        manifest_digest: mdigest,
                        top_digest,
                        index: Some((bytes, idx)),
                    }),
                    Manifest::Index(_) => Err(ImageError::invalid(
                        "image index",
                        format!("entry {} for {platform} is another index", entry.digest),
                    )),
                }
            }
        }
    }

    fn oci_desc(d: &Descriptor) -> oci_client::manifest::OciDescriptor {
        oci_client::manifest::OciDescriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.to_string(),
            size: d.size,
            urls: d.urls.clone(),
            annotations: None,
            ..Default::default()
        }
    }

    /// A small blob (config), verified.
    pub async fn blob_bytes(&self, r: &Reference, d: &Descriptor) -> Result<Vec<u8>> {
        if d.size > MAX_SMALL_BLOB {
            return Err(ImageError::invalid(
                "image config",
                format!("{} is {} bytes, more than 8 MiB", d.digest, d.size),
            ));
        }
        let mut out = Vec::with_capacity(d.size.max(0) as usize);
        self.client
            .pull_blob(&Self::oci_ref(r), &Self::oci_desc(d), &mut out)
            .await
            .map_err(|e| registry_err(&self.host, e, &format!("blob {}", d.digest)))?;
        d.digest.verify(&format!("blob {}", d.digest), &out)?;
        Ok(out)
    }

    /// A layer blob as a stream, verified by oci-client at its end, and cut off if the
    /// registry sends more than the descriptor's size.
    pub async fn blob_stream(
        &self,
        r: &Reference,
        d: &Descriptor,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        let s = self
            .client
            .pull_blob_stream(&Self::oci_ref(r), &Self::oci_desc(d))
            .await
            .map_err(|e| registry_err(&self.host, e, &format!("layer {}", d.digest)))?;
        let limit = d.size.max(0) as u64;
        let mut seen = 0u64;
        let digest = d.digest.clone();
        let s = s.stream.map(move |chunk| {
            let c = chunk?;
            seen += c.len() as u64;
            if seen > limit {
                return Err(std::io::Error::other(format!(
                    "registry sent more than the {limit} bytes of layer {digest}"
                )));
            }
            Ok(c)
        });
        Ok(s)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    // ---- push (`docker push`) ----------------------------------------------------------

    /// Authenticates for pushing to `r`'s repository (a token with push scope, or Basic
    /// credentials kept for the requests that follow).
    pub async fn authorize_push(&self, r: &Reference) -> Result<()> {
        self.client
            .auth(
                &Self::oci_ref(r),
                &self.auth,
                oci_client::RegistryOperation::Push,
            )
            .await
            .map(|_| ())
            .map_err(|e| registry_err(&self.host, e, &r.familiar()))
    }

    /// Whether `r`'s repository already has the blob.
    pub async fn has_blob(&self, r: &Reference, digest: &Digest) -> Result<bool> {
        self.client
            .blob_exists(&Self::oci_ref(r), &digest.to_string())
            .await
            .map_err(|e| registry_err(&self.host, e, &format!("blob {digest}")))
    }

    /// Cross-repository mount of a blob from `from` (a repository path on the same
    /// registry); false when the registry would not (it then starts an upload instead).
    pub async fn mount_blob(&self, r: &Reference, from: &Reference, digest: &Digest) -> bool {
        self.client
            .mount_blob(&Self::oci_ref(r), &Self::oci_ref(from), &digest.to_string())
            .await
            .is_ok()
    }

    /// Uploads a blob from a file, verified by the registry against `digest`.
    pub async fn push_blob_file(
        &self,
        r: &Reference,
        path: &std::path::Path,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let f = tokio::fs::File::open(path).await?;
        let s = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20).map(|c| {
            c.map_err(|e| {
                oci_client::errors::OciDistributionError::GenericError(Some(e.to_string()))
            })
        });
        self.client
            .push_blob_stream(&Self::oci_ref(r), s, &digest.to_string(), Some(size))
            .await
            .map(|_| ())
            .map_err(|e| registry_err(&self.host, e, &format!("blob {digest}")))
    }

    /// Uploads a small blob (a config).
    pub async fn push_blob_bytes(
        &self,
        r: &Reference,
        data: Vec<u8>,
        digest: &Digest,
    ) -> Result<()> {
        self.client
            .push_blob(&Self::oci_ref(r), data, &digest.to_string())
            .await
            .map(|_| ())
            .map_err(|e| registry_err(&self.host, e, &format!("blob {digest}")))
    }

    /// Puts the manifest under `r`'s tag.
    pub async fn push_manifest(
        &self,
        r: &Reference,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<()> {
        let ct = reqwest::header::HeaderValue::from_str(media_type)
            .map_err(|e| ImageError::Internal(e.to_string()))?;
        self.client
            .push_manifest_raw(&Self::oci_ref(r), body, ct)
            .await
            .map(|_| ())
            .map_err(|e| registry_err(&self.host, e, &r.familiar()))
    }
}

/// True when an I/O error came out of oci-client's digest verification.
pub fn is_digest_error(e: &std::io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<oci_client::errors::DigestError>())
        .map(|d| d.to_string())
}

#[cfg(test)]
mod loopback_tests {
    use super::is_loopback;

    #[test]
    fn loopback_registries_are_the_ones_dockerd_trusts_over_http() {
        for h in [
            "127.0.0.1:5000",
            "127.9.8.7",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "10.0.0.1:5000",
            "registry.example:5000",
            "docker.io",
            "[fe80::1]:5000",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
