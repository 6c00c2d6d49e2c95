//! coturn's "TURN REST API" credentials (`use-auth-secret` / `static-auth-secret`).
//!
//! The gateway and the relay share one secret and nothing else: the username carries its own
//! expiry and the session it was issued to, and the password is an HMAC of the username, so the
//! relay can check a credential without a database round trip — and coturn, or any relay that
//! speaks this scheme, accepts the same credentials.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::prelude::BASE64_STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

/// Separator between expiry and session id, coturn's default (`-C` / `rest-api-separator`).
pub const SEPARATOR: char = ':';

/// A gateway session id as it appears in a TURN username. Parsed once at the edge: it must be
/// non-empty, at most 128 printable ASCII characters, and must not contain the separator.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.is_empty() || s.len() > 128 {
            return Err(format!("session id must be 1..=128 characters, got {}", s.len()));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) || s.contains(SEPARATOR) {
            return Err(format!("session id {s:?} must be printable ASCII without '{SEPARATOR}'"));
        }
        Ok(SessionId(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a client needs to use the relay; serialises to the shape of a WebRTC `RTCIceServer`
/// (`urls`, `username`, `credential`) plus the `ttl` in seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TurnCredentials {
    pub username: String,
    pub credential: String,
    /// Seconds the credential stays valid from issue.
    pub ttl: u64,
    pub urls: Vec<String>,
}

/// Issues a credential for `session_id`, valid for `ttl` from `now`.
pub fn issue(
    secret: &str,
    session_id: &SessionId,
    ttl: Duration,
    now: SystemTime,
    urls: Vec<String>,
) -> TurnCredentials {
    let expiry = unix_secs(now) + ttl.as_secs();
    let username = format!("{expiry}{SEPARATOR}{session_id}");
    let credential = password(secret, &username);
    TurnCredentials { username, credential, ttl: ttl.as_secs(), urls }
}

/// `base64(HMAC-SHA1(secret, username))`.
pub fn password(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    BASE64_STANDARD.encode(mac.finalize().into_bytes())
}

/// A username split into its parts; says nothing yet about whether it is expired or known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestUsername {
    pub expiry_unix: u64,
    pub session_id: SessionId,
}

impl RestUsername {
    pub fn parse(username: &str) -> Option<Self> {
        let (expiry, session) = username.split_once(SEPARATOR)?;
        let expiry_unix = expiry.parse().ok()?;
        let session_id = SessionId::parse(session).ok()?;
        Some(RestUsername { expiry_unix, session_id })
    }
}

pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_coturn_rest_api_reference() {
        // `echo -n "1700000000:alice" | openssl dgst -binary -sha1 -hmac secret | base64`
        assert_eq!(password("secret", "1700000000:alice"), "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
    }

    #[test]
    fn issue_puts_expiry_and_session_in_username() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let id = SessionId::parse("s-1").unwrap();
        let c = issue("k", &id, Duration::from_secs(600), now, vec!["turn:x:3478".into()]);
        assert_eq!(c.username, "1600:s-1");
        assert_eq!(c.credential, password("k", "1600:s-1"));
        assert_eq!(c.ttl, 600);
        let parsed = RestUsername::parse(&c.username).unwrap();
        assert_eq!(parsed, RestUsername { expiry_unix: 1600, session_id: id });
    }

    #[test]
    fn session_ids_with_separator_or_blanks_are_rejected() {
        assert!(SessionId::parse("a:b").is_err());
        assert!(SessionId::parse("").is_err());
        assert!(SessionId::parse("a b").is_err());
        assert!(RestUsername::parse("notanumber:abc").is_none());
        assert!(RestUsername::parse("12345").is_none());
    }
}
