//! The one signed-token envelope: `base64url(payload) "." base64url(HMAC-SHA256(secret, domain ‖ payload))`.
//!
//! Every token the gateway signs with its secret goes through here (room session, resume, creator session), each
//! under its own domain tag (`kind:v1:`), so a token of one kind never verifies as another, whatever its payload
//! says. Stateless to issue and check, so any node verifies any node's tokens; single use, where a kind needs it,
//! is the caller's step against the store.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// `payload` signed under `domain`.
pub(crate) fn seal(secret: &[u8], domain: &[u8], payload: &[u8]) -> String {
    let tag = mac(secret, domain, payload).finalize().into_bytes();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(tag))
}

/// Why [`unseal`] refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsealed {
    Malformed,
    BadSignature,
}

/// The payload of a token [`seal`]ed under `domain`, if its signature holds (encoded payloads longer than
/// `max_payload` are refused unread).
pub(crate) fn unseal(secret: &[u8], domain: &[u8], token: &str, max_payload: usize) -> Result<Vec<u8>, Unsealed> {
    let (payload, tag) = token.split_once('.').ok_or(Unsealed::Malformed)?;
    if payload.len() > max_payload || tag.len() > 128 {
        return Err(Unsealed::Malformed);
    }
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| Unsealed::Malformed)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Unsealed::Malformed)?;
    mac(secret, domain, &payload).verify_slice(&tag).map_err(|_| Unsealed::BadSignature)?;
    Ok(payload)
}

/// Why [`open_for_event`] refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Malformed,
    BadSignature,
    Expired,
    WrongEvent,
}

/// The claims of a token good for one event until an expiry (room sessions, resumes).
pub(crate) trait EventClaims: serde::de::DeserializeOwned {
    /// The claims' `typ`, which must be the kind's own.
    fn typ(&self) -> &str;
    fn exp(&self) -> i64;
    fn event_id(&self) -> i64;
}

/// Checks a room token: its envelope under `domain`, its claims' type (`typ`), its expiry against `now` and its
/// event. Single use is the caller's step (it needs the store).
pub(crate) fn open_for_event<C: EventClaims>(
    secret: &[u8],
    domain: &[u8],
    typ: &str,
    token: &str,
    max_payload: usize,
    event_id: i64,
    now: i64,
) -> Result<C, Refused> {
    let payload = unseal(secret, domain, token, max_payload).map_err(|e| match e {
        Unsealed::Malformed => Refused::Malformed,
        Unsealed::BadSignature => Refused::BadSignature,
    })?;
    let claims: C = serde_json::from_slice(&payload).map_err(|_| Refused::Malformed)?;
    if claims.typ() != typ {
        return Err(Refused::Malformed);
    }
    if claims.exp() <= now {
        return Err(Refused::Expired);
    }
    if claims.event_id() != event_id {
        return Err(Refused::WrongEvent);
    }
    Ok(claims)
}

/// A fresh token id (128 random bits, hex), spent at first use.
pub(crate) fn new_jti() -> String {
    let mut jti = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut jti);
    hex::encode(jti)
}

fn mac(secret: &[u8], domain: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(domain);
    mac.update(payload);
    mac
}
