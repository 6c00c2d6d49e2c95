//! Checks a REST-API username before the relay will honour it.
//!
//! STUN long-term auth never sends the password: the client proves it knows the key
//! `MD5(username:realm:password)` through MESSAGE-INTEGRITY. So the relay derives the password
//! from the username (HMAC with the shared secret) and lets the integrity check decide whether
//! the client holds it. A credential therefore fails for one of four reasons, each a metric label
//! and each answered with 401 Unauthorized.

use std::net::SocketAddr;
use std::time::SystemTime;

use crate::credentials::{self, RestUsername};
use crate::sessions::SessionRegistry;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// The expiry in the username has passed.
    Expired,
    /// The MESSAGE-INTEGRITY does not match the key derived from our secret.
    Forged,
    /// Well-formed and unexpired, but the session is not (or no longer) registered.
    UnknownSession,
    /// The username is not `<expiry>:<session-id>`.
    Malformed,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 4] = [Self::Expired, Self::Forged, Self::UnknownSession, Self::Malformed];

    /// The metric label and log reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Forged => "forged",
            Self::UnknownSession => "unknown_session",
            Self::Malformed => "malformed",
        }
    }
}

#[derive(Clone)]
pub struct Authenticator {
    secret: String,
    realm: String,
    sessions: SessionRegistry,
}

impl Authenticator {
    pub fn new(secret: String, realm: String, sessions: SessionRegistry) -> Self {
        Authenticator { secret, realm, sessions }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Everything but the integrity check: format, expiry, session. On success returns the
    /// long-term key the request's MESSAGE-INTEGRITY must have been made with.
    pub fn check(&self, username: &str, now: SystemTime) -> Result<Vec<u8>, AuthFailure> {
        let parsed = RestUsername::parse(username).ok_or(AuthFailure::Malformed)?;
        if parsed.expiry_unix < credentials::unix_secs(now) {
            return Err(AuthFailure::Expired);
        }
        if !self.sessions.is_active(&parsed.session_id) {
            return Err(AuthFailure::UnknownSession);
        }
        Ok(self.key(username))
    }

    /// `MD5(username ":" realm ":" password)`, the STUN long-term credential key.
    pub fn key(&self, username: &str) -> Vec<u8> {
        let password = credentials::password(&self.secret, username);
        turn::auth::generate_auth_key(username, &self.realm, &password)
    }
}

/// The upstream server asks this for the key of every authenticated request. The gatekeeper has
/// already refused bad credentials with 401 (and counted them); this is the second line, for a
/// session revoked between the two checks (the upstream server then answers 400).
impl turn::auth::AuthHandler for Authenticator {
    fn auth_handle(&self, username: &str, _realm: &str, _src_addr: SocketAddr) -> Result<Vec<u8>, turn::Error> {
        self.check(username, SystemTime::now()).map_err(|failure| turn::Error::Other(failure.reason().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::credentials::{issue, SessionId};

    #[test]
    fn classifies_each_failure() {
        let sessions = SessionRegistry::new();
        let auth = Authenticator::new("s3cret".into(), "vr.example".into(), sessions.clone());
        let now = SystemTime::now();
        let id = SessionId::parse("abc").unwrap();
        let fresh = issue("s3cret", &id, Duration::from_secs(600), now, vec![]);
        let stale = issue("s3cret", &id, Duration::from_secs(600), now - Duration::from_secs(3600), vec![]);

        assert_eq!(auth.check(&fresh.username, now), Err(AuthFailure::UnknownSession));
        sessions.register(id.clone());
        assert!(auth.check(&fresh.username, now).is_ok());
        assert_eq!(auth.check(&stale.username, now), Err(AuthFailure::Expired));
        assert_eq!(auth.check("alice", now), Err(AuthFailure::Malformed));
        sessions.revoke(&id);
        assert_eq!(auth.check(&fresh.username, now), Err(AuthFailure::UnknownSession));
    }
}
