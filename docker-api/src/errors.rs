//! The one error type of the front end and its mapping to Docker's HTTP errors.
//!
//! Backends return [`Error`]; handlers return it too. [`Error::status`] is the only place
//! that decides the HTTP status, so that the status and the wording stay those of dockerd
//! (clients such as the docker CLI and docker-py branch on the status code and sometimes
//! match on the message text).

use hyper::StatusCode;

/// Result type used throughout the crate and by [`crate::Backend`] implementations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A typed error. The `Display` text is what the client sees in `{"message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 404 "No such container: X" (the docker CLI matches this text).
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// 404 "No such image: X"; `docker run` pulls the image when it sees this.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// 404 "No such exec instance: X".
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// 404 "network X not found".
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// 404 "get X: no such volume".
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    /// Any other 404, with the message given verbatim.
    #[error("{0}")]
    NotFound(String),
    /// 409, message verbatim. See [`Error::name_conflict`].
    #[error("{0}")]
    Conflict(String),
    /// 400, message verbatim: bad parameters, malformed bodies.
    #[error("{0}")]
    InvalidParameter(String),
    /// 304 with an empty body: dockerd's answer to starting a running container or
    /// stopping a stopped one.
    #[error("{0}")]
    NotModified(String),
    /// 401.
    #[error("{0}")]
    Unauthorized(String),
    /// 413: a buffered request body above the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 408: the client stopped sending a request body it announced.
    #[error("{0}")]
    RequestTimeout(String),
    /// 429: one client holds too many connections (see `limits.rs`).
    #[error("{0}")]
    TooManyRequests(String),
    /// 501 "<feature> is not supported by this VCH".
    #[error("{0} is not supported by this VCH")]
    NotImplemented(String),
    /// 501 with dockerd's own wording (e.g. "configured logging driver does not
    /// support reading").
    #[error("{0}")]
    NotSupported(String),
    /// 503: the backend is there but cannot serve right now (vCenter unreachable...).
    #[error("{0}")]
    Unavailable(String),
    /// 500, message verbatim.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status dockerd uses for this kind of error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NoSuchContainer(_)
            | Error::NoSuchImage(_)
            | Error::NoSuchExec(_)
            | Error::NoSuchNetwork(_)
            | Error::NoSuchVolume(_)
            | Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            Error::NotModified(_) => StatusCode::NOT_MODIFIED,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::NotImplemented(_) | Error::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `NotImplemented(feature)`: answered as 501 naming the feature.
    pub fn not_implemented(feature: impl Into<String>) -> Self {
        Error::NotImplemented(feature.into())
    }

    /// 400 with the given message.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidParameter(msg.into())
    }

    /// 500 with the given message.
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        Error::Internal(msg.to_string())
    }

    /// dockerd's 409 for `docker create --name x` when `x` is taken. `name` may be given
    /// with or without the leading slash.
    pub fn name_conflict(name: &str, existing_id: &str) -> Self {
        let name = name.trim_start_matches('/');
        Error::Conflict(format!(
            "Conflict. The container name \"/{name}\" is already in use by container \"{existing_id}\". \
             You have to remove (or rename) that container to be able to reuse that name."
        ))
    }

    /// dockerd's 409 for operations that need a running container.
    pub fn not_running(id: &str) -> Self {
        Error::Conflict(format!("Container {id} is not running"))
    }

    /// The `{"message": ...}` body (with Go's trailing newline).
    pub fn to_json_body(&self) -> Vec<u8> {
        let mut body = serde_json::to_vec(&serde_json::json!({ "message": self.to_string() }))
            .unwrap_or_else(|_| b"{\"message\":\"internal error\"}".to_vec());
        body.push(b'\n');
        body
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_wording() {
        let e = Error::NoSuchContainer("abc".into());
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.to_string(), "No such container: abc");
        assert_eq!(
            Error::not_implemented("swarm").to_string(),
            "swarm is not supported by this VCH"
        );
        let c = Error::name_conflict("/web", "0123");
        assert_eq!(c.status(), StatusCode::CONFLICT);
        assert_eq!(
            c.to_string(),
            "Conflict. The container name \"/web\" is already in use by container \"0123\". You have to remove (or rename) that container to be able to reuse that name."
        );
        assert_eq!(
            Error::invalid("x").to_json_body(),
            b"{\"message\":\"x\"}\n".to_vec()
        );
    }
}
