//! Room session tokens: short-lived, single-use, bound to one event and one seat (a ticket, or the host).
//!
//! The claims JSON in [`super::token`]'s envelope under `room-session:v1:`. Stateless to issue and check, so any
//! gateway node can verify one; single use is enforced at connect by inserting the token id into the shared
//! `used_challenges` table, whose primary key refuses a second use on any node.

use serde::{Deserialize, Serialize};

use super::token::{new_jti, open_for_event, seal, EventClaims, Refused};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Always `room`: these tokens are good for nothing else.
    pub typ: String,
    pub event_id: i64,
    /// The ticket seated; `None` for the host.
    pub ticket_id: Option<i64>,
    /// The host's account, for host tokens.
    pub host: Option<String>,
    /// The wallet (or account) that proved control, shown to the room.
    pub identity: String,
    /// Expiry, unix ms.
    pub exp: i64,
    /// Unique id, spent at first use.
    pub jti: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed session token")]
    Malformed,
    #[error("session token signature is not valid")]
    BadSignature,
    #[error("session token expired")]
    Expired,
    #[error("session token is for another event")]
    WrongEvent,
}

const DOMAIN: &[u8] = b"room-session:v1:";

pub fn issue(
    secret: &[u8],
    event_id: i64,
    ticket_id: Option<i64>,
    host: Option<String>,
    identity: String,
    exp: i64,
) -> (String, SessionClaims) {
    let claims = SessionClaims { typ: "room".into(), event_id, ticket_id, host, identity, exp, jti: new_jti() };
    let payload = serde_json::to_vec(&claims).expect("claims serialise");
    (seal(secret, DOMAIN, &payload), claims)
}

/// Checks signature, expiry and event. Single use is the caller's step (it needs the store).
pub fn verify(secret: &[u8], token: &str, event_id: i64, now: i64) -> Result<SessionClaims, TokenError> {
    open_for_event(secret, DOMAIN, "room", token, 4096, event_id, now).map_err(|e| match e {
        Refused::Malformed => TokenError::Malformed,
        Refused::BadSignature => TokenError::BadSignature,
        Refused::Expired => TokenError::Expired,
        Refused::WrongEvent => TokenError::WrongEvent,
    })
}

impl EventClaims for SessionClaims {
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
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    #[test]
    fn round_trip_and_rejections() {
        let secret = [9u8; 32];
        let (token, claims) = issue(&secret, 7, Some(3), None, "0xabc".into(), 1_000);
        assert_eq!(verify(&secret, &token, 7, 999).unwrap(), claims);
        assert_eq!(verify(&secret, &token, 7, 1_000), Err(TokenError::Expired));
        assert_eq!(verify(&secret, &token, 8, 999), Err(TokenError::WrongEvent));
        assert_eq!(verify(&[1u8; 32], &token, 7, 999), Err(TokenError::BadSignature));
        let (payload, tag) = token.split_once('.').unwrap();
        let mut forged =
            serde_json::from_slice::<serde_json::Value>(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        forged["ticket_id"] = 4.into();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(forged.to_string()));
        assert_eq!(verify(&secret, &forged, 7, 999), Err(TokenError::BadSignature));
        for junk in ["", ".", "abc", "a.b.c", "!!.!!"] {
            assert!(verify(&secret, junk, 7, 999).is_err(), "{junk}");
        }
    }
}
