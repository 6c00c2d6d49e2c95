//! Resume tokens: what a dropped attendee reconnects with instead of a new signature (issue 26).
//!
//! `base64url(claims JSON) "." base64url(HMAC-SHA256(secret, "room-resume:v1:" claims))`, like the session
//! token but under its own domain tag, so neither can stand for the other. A token names the event, the seat
//! (the ticket, or the host), and the client id of the session it continues. It is good once: its id is spent
//! in the shared `used_challenges` table at use, and every resume hands out the next token. Its expiry bounds
//! it in time (the event's end at the latest); the real limit is the room's: a seat that is no longer held —
//! the resume window passed, a kick, a ban, a newer join — cannot be resumed, whatever the token says.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeClaims {
    /// Always `resume`.
    pub typ: String,
    pub event_id: i64,
    /// The seat: the ticket id, or `host:<account>`.
    pub seat_key: String,
    /// The session's client id.
    pub client_id: String,
    /// Expiry, unix ms.
    pub exp: i64,
    /// Unique id, spent at use.
    pub jti: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResumeTokenError {
    #[error("malformed resume token")]
    Malformed,
    #[error("resume token signature is not valid")]
    BadSignature,
    #[error("resume token expired")]
    Expired,
    #[error("resume token is for another event")]
    WrongEvent,
}

impl ResumeTokenError {
    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            ResumeTokenError::Malformed => "malformed",
            ResumeTokenError::BadSignature => "bad_signature",
            ResumeTokenError::Expired => "expired",
            ResumeTokenError::WrongEvent => "wrong_event",
        }
    }
}

const DOMAIN: &[u8] = b"room-resume:v1:";

pub fn issue(secret: &[u8], event_id: i64, seat_key: &str, client_id: &str, exp: i64) -> String {
    let claims = ResumeClaims {
        typ: "resume".into(),
        event_id,
        seat_key: seat_key.into(),
        client_id: client_id.into(),
        exp,
        jti: super::token::new_jti(),
    };
    let payload = serde_json::to_vec(&claims).expect("claims serialise");
    super::token::seal(secret, DOMAIN, &payload)
}

/// Checks signature, expiry and event. Single use is the caller's step (it needs the store).
pub fn verify(secret: &[u8], token: &str, event_id: i64, now: i64) -> Result<ResumeClaims, ResumeTokenError> {
    use super::token::Refused;
    super::token::open_for_event(secret, DOMAIN, "resume", token, 2048, event_id, now).map_err(|e| match e {
        Refused::Malformed => ResumeTokenError::Malformed,
        Refused::BadSignature => ResumeTokenError::BadSignature,
        Refused::Expired => ResumeTokenError::Expired,
        Refused::WrongEvent => ResumeTokenError::WrongEvent,
    })
}

impl super::token::EventClaims for ResumeClaims {
    fn typ(&self) -> &str {
        &self.typ
    }
    fn exp(&self) -> i64 {
        self.exp
    }
    fn event_id(&self) -> i64 {
        self.event_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let secret = [9u8; 32];
        let token = issue(&secret, 7, "3", "abc", 1_000);
        let claims = verify(&secret, &token, 7, 999).unwrap();
        assert_eq!((claims.seat_key.as_str(), claims.client_id.as_str()), ("3", "abc"));
        assert_eq!(verify(&secret, &token, 7, 1_000), Err(ResumeTokenError::Expired));
        assert_eq!(verify(&secret, &token, 8, 999), Err(ResumeTokenError::WrongEvent));
        assert_eq!(verify(&[1u8; 32], &token, 7, 999), Err(ResumeTokenError::BadSignature));
        // Each token is unique, even for the same seat and session.
        assert_ne!(issue(&secret, 7, "3", "abc", 1_000), token);
        // A session token (another domain tag) is not a resume token, even with the same secret.
        let (session, _) = crate::auth::session_token::issue(&secret, 7, Some(3), None, "w".into(), 1_000);
        assert_eq!(verify(&secret, &session, 7, 999), Err(ResumeTokenError::BadSignature));
        for junk in ["", ".", "abc", "a.b.c", "!!.!!"] {
            assert!(verify(&secret, junk, 7, 999).is_err(), "{junk}");
        }
    }
}
