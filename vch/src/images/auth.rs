//! Registry credentials from Docker's `X-Registry-Auth` header: base64url-encoded JSON
//! `{username, password, auth, serveraddress, identitytoken, registrytoken}`.
//!
//! `registrytoken` is a bearer token used as is. `identitytoken` is an OAuth2 refresh
//! token (what `docker login` stores for registries that hand them out); it is exchanged
//! for an access token at the registry's token endpoint, like dockerd does.

use super::error::{ImageError, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64("user:password"), as the CLI's config.json stores it.
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub serveraddress: String,
    #[serde(default)]
    pub identitytoken: String,
    #[serde(default)]
    pub registrytoken: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("serveraddress", &self.serveraddress)
            .finish_non_exhaustive()
    }
}

/// The credentials the API layer decoded (`X-Registry-Auth`, `POST /auth`).
impl From<docker_api::options::RegistryAuth> for RegistryAuth {
    fn from(a: docker_api::options::RegistryAuth) -> Self {
        RegistryAuth {
            username: a.config.username.unwrap_or_default(),
            password: a.config.password.unwrap_or_default(),
            auth: a.auth.unwrap_or_default(),
            email: a.config.email.unwrap_or_default(),
            serveraddress: a.config.serveraddress.unwrap_or_default(),
            identitytoken: a.identity_token.unwrap_or_default(),
            registrytoken: a.registry_token.unwrap_or_default(),
        }
    }
}

impl RegistryAuth {
    /// Decodes an `X-Registry-Auth` value. Empty, `{}` or all-empty values mean
    /// anonymous (None). The CLI sends base64url; older clients sent standard base64.
    pub fn from_header(value: &str) -> Result<Option<RegistryAuth>> {
        let v = value.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let engines = [
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
        ];
        let json = engines
            .iter()
            .find_map(|e| e.decode(v).ok())
            .ok_or_else(|| ImageError::InvalidArgument("X-Registry-Auth is not base64".into()))?;
        let mut a: RegistryAuth = serde_json::from_slice(&json).map_err(|e| {
            ImageError::InvalidArgument(format!("X-Registry-Auth is not valid JSON: {e}"))
        })?;
        a = a.normalized();
        if a.username.is_empty()
            && a.password.is_empty()
            && a.identitytoken.is_empty()
            && a.registrytoken.is_empty()
        {
            return Ok(None);
        }
        Ok(Some(a))
    }

    /// Fills `username`/`password` from `auth` (base64 `user:password`) when only that
    /// is given, as the CLI's config.json stores credentials.
    pub fn normalized(mut self) -> RegistryAuth {
        if self.username.is_empty() && self.password.is_empty() && !self.auth.is_empty() {
            if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(self.auth.trim()) {
                let s = String::from_utf8_lossy(&raw).into_owned();
                if let Some((u, p)) = s.split_once(':') {
                    self.username = u.to_string();
                    self.password = p.to_string();
                }
            }
        }
        self
    }

    /// The header value for these credentials (tests, and re-sending to a registry).
    pub fn to_header(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }
}

/// A `WWW-Authenticate: Bearer realm="..",service=".."` challenge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    pub realm: String,
    pub service: Option<String>,
}

/// Parses the Bearer challenge of a `WWW-Authenticate` header (None for Basic etc.).
pub fn parse_bearer_challenge(h: &str) -> Option<BearerChallenge> {
    let rest = h.trim();
    let params = rest
        .strip_prefix("Bearer ")
        .or_else(|| rest.strip_prefix("bearer "))?;
    let mut c = BearerChallenge::default();
    let mut s = params;
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        match key.as_str() {
            "realm" => c.realm = value.to_string(),
            "service" => c.service = Some(value.to_string()),
            _ => {}
        }
        s = next.trim_start_matches([',', ' ']);
    }
    (!c.realm.is_empty()).then_some(c)
}

/// The registry host of a `docker login` server address (`host[:port]`, with or without
/// a scheme or a path such as Docker Hub's `https://index.docker.io/v1/`).
pub fn login_host(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.split('/').next().unwrap_or_default().to_string()
}

/// `docker login`: checks the credentials against the registry at `base_url`
/// (`scheme://host`) as dockerd does: `GET /v2/`; a Basic challenge is answered with
/// the credentials, a Bearer one at its token endpoint. Ok: the registry accepts them.
pub async fn check_login(
    http: &reqwest::Client,
    base_url: &str,
    creds: &RegistryAuth,
) -> Result<()> {
    let reg_err = |detail: String| ImageError::Registry {
        registry: base_url.to_string(),
        detail,
    };
    let v2 = format!("{base_url}/v2/");
    let resp = http
        .get(&v2)
        .send()
        .await
        .map_err(|e| reg_err(e.to_string()))?;
    if resp.status().is_success() {
        return Ok(());
    }
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(reg_err(format!("GET /v2/: HTTP {}", resp.status())));
    }
    let creds = creds.clone().normalized();
    let refused = || ImageError::Unauthorized("incorrect username or password".into());
    let challenge = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .and_then(parse_bearer_challenge);
    let resp = match challenge {
        // Basic: the same request with the credentials.
        None => http
            .get(&v2)
            .basic_auth(&creds.username, Some(&creds.password)),
        Some(c) => {
            let mut url = reqwest::Url::parse(&c.realm).map_err(|e| reg_err(e.to_string()))?;
            url.query_pairs_mut()
                .append_pair("account", &creds.username);
            if let Some(svc) = &c.service {
                url.query_pairs_mut().append_pair("service", svc);
            }
            http.get(url)
                .basic_auth(&creds.username, Some(&creds.password))
        }
    }
    .send()
    .await
    .map_err(|e| reg_err(e.to_string()))?;
    match resp.status() {
        s if s.is_success() => Ok(()),
        reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => Err(refused()),
        s => Err(reg_err(format!("login: HTTP {s}"))),
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    token: String,
}

/// Exchanges an identity (refresh) token for an access token scoped to pulling
/// `repository`: `GET /v2/` for the challenge, then the OAuth2 `refresh_token` grant.
pub async fn exchange_identity_token(
    http: &reqwest::Client,
    base_url: &str,
    repository: &str,
    identity_token: &str,
) -> Result<String> {
    let registry = base_url.to_string();
    let reg_err = |detail: String| ImageError::Registry {
        registry: registry.clone(),
        detail,
    };
    let resp = http
        .get(format!("{base_url}/v2/"))
        .send()
        .await
        .map_err(|e| reg_err(e.to_string()))?;
    let challenge = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .and_then(parse_bearer_challenge)
        .ok_or_else(|| {
            ImageError::Unauthorized(format!(
                "{base_url} does not use token authentication; an identity token cannot be used"
            ))
        })?;
    let scope = format!("repository:{repository}:pull");
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", identity_token),
        ("client_id", "vch"),
        ("scope", scope.as_str()),
    ];
    if let Some(s) = &challenge.service {
        form.push(("service", s.as_str()));
    }
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let resp = http
        .post(&challenge.realm)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| reg_err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(ImageError::Unauthorized(format!(
            "token endpoint {} refused the identity token: HTTP {}",
            challenge.realm,
            resp.status()
        )));
    }
    let t: TokenResponse = resp
        .json()
        .await
        .map_err(|e| reg_err(format!("bad token response: {e}")))?;
    let tok = if t.access_token.is_empty() {
        t.token
    } else {
        t.access_token
    };
    if tok.is_empty() {
        return Err(ImageError::Unauthorized(
            "token endpoint returned no token".into(),
        ));
    }
    Ok(tok)
}

fn urlencode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_x_registry_auth() {
        let a = RegistryAuth {
            username: "u".into(),
            password: "p+/=".into(),
            serveraddress: "127.0.0.1:5000".into(),
            ..Default::default()
        };
        let h = a.to_header();
        assert_eq!(RegistryAuth::from_header(&h).unwrap().unwrap(), a);
        assert_eq!(RegistryAuth::from_header("").unwrap(), None);
        let empty = base64::engine::general_purpose::URL_SAFE.encode("{}");
        assert_eq!(RegistryAuth::from_header(&empty).unwrap(), None);
        let legacy = base64::engine::general_purpose::STANDARD
            .encode(r#"{"auth":"dTpwdw==","serveraddress":"x"}"#);
        let l = RegistryAuth::from_header(&legacy).unwrap().unwrap();
        assert_eq!((l.username.as_str(), l.password.as_str()), ("u", "pw"));
        assert!(RegistryAuth::from_header("!!!").is_err());
        assert!(!format!("{a:?}").contains("p+/="));
    }

    #[test]
    fn parses_challenges() {
        let c = parse_bearer_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="x""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://auth.docker.io/token");
        assert_eq!(c.service.as_deref(), Some("registry.docker.io"));
        assert!(parse_bearer_challenge(r#"Basic realm="x""#).is_none());
    }
}
