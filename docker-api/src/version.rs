//! API version prefix (`/v1.50/...`) parsing and negotiation, as dockerd does it.
//!
//! Clients ping first, read the `Api-Version` header and then prefix every request with
//! `min(client max, server max)`. A request without a prefix is served at the server's
//! maximum. A version outside [`MIN_API_VERSION`, `MAX_API_VERSION`] is refused with 400
//! and dockerd's exact wording (clients show it verbatim).

use std::fmt;

use crate::errors::Error;

/// A Docker API version, e.g. 1.50. Compared numerically (1.9 < 1.24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

/// Oldest API version served (the oldest dockerd 28 accepts).
pub const MIN_API_VERSION: ApiVersion = ApiVersion::new(1, 24);
/// Newest API version served; also the default for requests without a prefix.
pub const MAX_API_VERSION: ApiVersion = ApiVersion::new(1, 50);

impl ApiVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        ApiVersion { major, minor }
    }

    /// Parses "1.50". Go's `versions.Compare` is lenient about extra components; we accept
    /// "1.50.0" as 1.50 for the same reason.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = match parts.next() {
            Some(m) => m.parse().ok()?,
            None => 0,
        };
        Some(ApiVersion { major, minor })
    }

    /// At least `major.minor`?
    pub fn at_least(self, major: u16, minor: u16) -> bool {
        self >= ApiVersion::new(major, minor)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Splits an optional `/v{version:[0-9.]+}` prefix off `path`. Returns the raw version
/// text (not yet validated) and the rest of the path. `/v1.50` alone is not a prefix: the
/// gorilla route needs the slash after it, so `/v1.50` is just an unknown path.
pub fn split_version_prefix(path: &str) -> (Option<&str>, &str) {
    let Some(rest) = path.strip_prefix("/v") else {
        return (None, path);
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    if end == 0 || !rest[end..].starts_with('/') {
        return (None, path);
    }
    (Some(&rest[..end]), &rest[end..])
}

/// Validates the version text from the prefix (None = no prefix) and returns the version
/// the request is served at.
pub fn negotiate(raw: Option<&str>) -> Result<ApiVersion, Error> {
    let Some(raw) = raw else {
        return Ok(MAX_API_VERSION);
    };
    let v = ApiVersion::parse(raw)
        .ok_or_else(|| Error::invalid(format!("invalid API version: {raw}")))?;
    if v < MIN_API_VERSION {
        return Err(Error::invalid(format!(
            "client version {raw} is too old. Minimum supported API version is {MIN_API_VERSION}, \
             please upgrade your client to a newer version"
        )));
    }
    if v > MAX_API_VERSION {
        return Err(Error::invalid(format!(
            "client version {raw} is too new. Maximum supported API version is {MAX_API_VERSION}"
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix() {
        assert_eq!(split_version_prefix("/v1.50/info"), (Some("1.50"), "/info"));
        assert_eq!(split_version_prefix("/info"), (None, "/info"));
        assert_eq!(split_version_prefix("/v1.50"), (None, "/v1.50"));
        assert_eq!(split_version_prefix("/volumes"), (None, "/volumes"));
        assert_eq!(split_version_prefix("/v/x"), (None, "/v/x"));
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None).unwrap(), MAX_API_VERSION);
        assert_eq!(negotiate(Some("1.24")).unwrap(), MIN_API_VERSION);
        assert_eq!(negotiate(Some("1.41")).unwrap(), ApiVersion::new(1, 41));
        assert_eq!(
            negotiate(Some("1.52")).unwrap_err().to_string(),
            "client version 1.52 is too new. Maximum supported API version is 1.50"
        );
        assert_eq!(
            negotiate(Some("1.12")).unwrap_err().to_string(),
            "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 24));
    }
}
