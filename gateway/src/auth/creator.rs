//! Creator authentication: a Hive account proves itself by signing a server-issued challenge with its posting
//! (or active) key, and gets a short-lived session token.
//!
//! The flow:
//! 1. `GET /api/creators/login/challenge?account=alice` issues a challenge: a sign-in text with a random nonce,
//!    valid for five minutes, kept in `creator_login_challenges`.
//! 2. The creator signs the exact text (Hive Keychain `signBuffer`) and either
//!    - `POST /api/creators/login` with `{account, message, signature}` → a session token, used as
//!      `Authorization: Bearer <token>` for an hour; or
//!    - sends the seed's header form `Authorization: Bearer <signature>:<account>` on the request itself, where
//!      `<signature>` is the 130-hex-digit Hive signature over the newest unexpired challenge fetched for
//!      `<account>`. That form authorises one request: the challenge is consumed like a login.
//!
//! A challenge is accepted once: on use its nonce goes into `used_challenges` (kind `nonce`) in the same
//! transaction that deletes it, so a replayed signature finds nothing to match.
//!
//! A session token is compact JSON claims `{"sub":account,"iat":ms,"exp":ms,"typ":"creator"}` in
//! [`super::token`]'s envelope under `creator-session:v1:` (so no room or resume token passes for one). Nothing about sessions is stored: a token is
//! good until it expires.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use chains::signature::{verify_hive_account, SignatureError};
use serde::{Deserialize, Serialize};
use ticketing::creator_login::{NewChallenge, StoredChallenge};
use ticketing::creators::{AccountName, Creator};

use super::token::{seal, unseal};
use crate::auth::bearer;
use crate::error::ApiError;
use crate::state::AppState;

pub const CHALLENGE_TTL_MS: i64 = 5 * 60 * 1000;
pub const SESSION_TTL_MS: i64 = 60 * 60 * 1000;
/// How many open challenges an account keeps per asker (client address), newest first; an asker's older ones
/// are dropped when it is issued a new one. Another asker's requests never drop them.
pub const OPEN_CHALLENGES_PER_ASKER: i64 = 5;
/// How many of an account's newest open challenges the header form tries.
const HEADER_FORM_CANDIDATES: i64 = 20;

/// The domain tag of creator session tokens in the shared envelope.
const SESSION_DOMAIN: &[u8] = b"creator-session:v1:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    typ: String,
}

/// Signs a session token for `account`, valid from `now` for [`SESSION_TTL_MS`]. Returns the token and its expiry.
pub fn issue_session(secret: &[u8], account: &AccountName, now: i64) -> (String, i64) {
    let claims = Claims { sub: account.to_string(), iat: now, exp: now + SESSION_TTL_MS, typ: "creator".into() };
    let payload = serde_json::to_vec(&claims).expect("claims serialise");
    (seal(secret, SESSION_DOMAIN, &payload), claims.exp)
}

/// Checks a session token's MAC and expiry.
pub fn verify_session(secret: &[u8], token: &str, now: i64) -> Result<AccountName, ApiError> {
    let invalid = || ApiError::unauthorized("invalid_token", "the session token is not valid");
    let payload = unseal(secret, SESSION_DOMAIN, token, 1024).map_err(|_| invalid())?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| invalid())?;
    if claims.typ != "creator" {
        return Err(invalid());
    }
    if now >= claims.exp {
        return Err(ApiError::unauthorized("token_expired", "the session token has expired; sign in again"));
    }
    AccountName::parse(&claims.sub).map_err(|_| invalid())
}

/// A challenge as issued to the client.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedChallenge {
    pub account: String,
    /// The exact text to sign.
    pub message: String,
    pub nonce: String,
    pub expires_at: String,
}

use crate::http::time::rfc3339;

/// The host part of the public URL: what the sign-in text names as the domain.
fn domain(public_url: &str) -> &str {
    let rest = public_url.split_once("://").map_or(public_url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// Issues and stores a fresh challenge for `account`, asked for by `requester` (the client address), pruning
/// expired challenges and the asker's own surplus. Callers rate-limit askers first.
pub async fn issue_challenge(
    state: &AppState,
    account: &AccountName,
    requester: &str,
    now: i64,
) -> Result<IssuedChallenge, ApiError> {
    let nonce = chains::challenge::new_nonce();
    let expires_at = now + CHALLENGE_TTL_MS;
    let message = format!(
        "{} wants you to sign in with your Hive account:\n{}\n\nSign in to manage your events.\n\nURI: {}\nNonce: {}\nIssued At: {}\nExpiration Time: {}",
        domain(&state.public_url),
        account,
        state.public_url,
        nonce,
        rfc3339(now),
        rfc3339(expires_at),
    );
    // Issuing needs no authentication, so storage is bounded (see `ticketing::creator_login`); askers are
    // rate-limited per address before they get here.
    let challenge = NewChallenge { nonce: &nonce, account: account.as_str(), message: &message, requester, expires_at };
    state.store.creator_challenges().issue(&challenge, OPEN_CHALLENGES_PER_ASKER, now).await?;
    Ok(IssuedChallenge { account: account.to_string(), message, nonce, expires_at: rfc3339(expires_at) })
}

fn signature_error(e: SignatureError) -> ApiError {
    match e {
        SignatureError::KeySourceUnavailable(_) => {
            ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "hive_unavailable", e.to_string())
        }
        other => ApiError::unauthorized(other.code(), other.to_string()),
    }
}

/// Verifies a signed challenge for `account` (by its message) and consumes it. Returns the account on success.
pub async fn login_with_message(
    state: &AppState,
    account: &AccountName,
    message: &str,
    signature: &str,
    now: i64,
) -> Result<(), ApiError> {
    let nonce = message
        .lines()
        .find_map(|l| l.strip_prefix("Nonce: "))
        .ok_or_else(|| ApiError::unauthorized("unknown_challenge", "the message is not a challenge issued here"))?;
    let challenges = state.store.creator_challenges();
    if challenges.is_used(&challenge_key(nonce)).await? {
        return Err(ApiError::unauthorized("challenge_used", "this challenge has already been used; fetch a new one"));
    }
    let Some(stored) = challenges.by_nonce(nonce).await? else {
        return Err(ApiError::unauthorized("unknown_challenge", "the message is not a challenge issued here"));
    };
    if stored.account != account.as_str() || stored.message != message {
        return Err(ApiError::unauthorized("challenge_mismatch", "the message differs from the challenge issued"));
    }
    if now >= stored.expires_at {
        return Err(ApiError::unauthorized("challenge_expired", "the challenge has expired; fetch a new one"));
    }
    verify_hive_account(account.as_str(), message.as_bytes(), signature, &*state.hive_keys)
        .await
        .map_err(signature_error)?;
    consume(state, &stored, now).await
}

/// The header form: tries the account's newest open challenges, whoever asked for them, against the signature.
/// Askers are rate-limited, so the few an attacker can add cost a few signature checks, and the POST form (by
/// nonce) is not affected at all.
async fn login_with_header(state: &AppState, account: &AccountName, signature: &str, now: i64) -> Result<(), ApiError> {
    let rows = state.store.creator_challenges().open_for(account.as_str(), now, HEADER_FORM_CANDIDATES).await?;
    let mut last = ApiError::unauthorized("no_open_challenge", "fetch a challenge and sign it first");
    for stored in rows {
        match verify_hive_account(account.as_str(), stored.message.as_bytes(), signature, &*state.hive_keys).await {
            Ok(_) => return consume(state, &stored, now).await,
            Err(e @ SignatureError::KeySourceUnavailable(_)) => return Err(signature_error(e)),
            Err(e) => last = signature_error(e),
        }
    }
    Err(last)
}

fn challenge_key(nonce: &str) -> String {
    format!("creator-login:{nonce}")
}

/// Marks the challenge used and deletes it, atomically; a concurrent second use loses the insert race.
async fn consume(state: &AppState, challenge: &StoredChallenge, now: i64) -> Result<(), ApiError> {
    if !state.store.creator_challenges().consume(&challenge_key(&challenge.nonce), challenge, now).await? {
        return Err(ApiError::unauthorized("challenge_used", "this challenge has already been used; fetch a new one"));
    }
    Ok(())
}

/// A request made by a signed-in creator (either header form, see the module docs).
#[derive(Debug, Clone)]
pub struct CreatorSession {
    pub account: AccountName,
}

impl FromRequestParts<AppState> for CreatorSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state, &parts.headers).await
    }
}

/// Authenticates a creator from the `Authorization` header (either form, see the module docs).
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<CreatorSession, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::unauthorized("missing_token", "send Authorization: Bearer <session token> (see /api/creators/login)")
    })?;
    let now = ticketing::now_ms();
    if let Some((signature, account)) = token.split_once(':') {
        if signature.len() == 130 && signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            let account =
                AccountName::parse(account).map_err(|e| ApiError::unauthorized("invalid_account", e.to_string()))?;
            login_with_header(state, &account, signature, now).await?;
            state.store.ensure_creator(&account).await?;
            return Ok(CreatorSession { account });
        }
    }
    let account = verify_session(state.secret.bytes(), token, now)?;
    Ok(CreatorSession { account })
}

impl CreatorSession {
    /// The creator, if their tier in force allows creating and editing events; 403 `subscription_required` if not.
    pub async fn require_event_tier(&self, state: &AppState, now: i64) -> Result<Creator, ApiError> {
        let creator = state.store.creator(&self.account).await?;
        match creator {
            Some(c) if c.effective_tier(now).may_create_events() => Ok(c),
            _ => Err(ApiError::forbidden(
                "subscription_required",
                "creating and editing events needs an active premium or pro subscription",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    #[test]
    fn session_tokens_round_trip_and_refuse_tampering() {
        let secret = [7u8; 32];
        let alice = AccountName::parse("alice").unwrap();
        let (token, exp) = issue_session(&secret, &alice, 1_000);
        assert_eq!(exp, 1_000 + SESSION_TTL_MS);
        assert_eq!(verify_session(&secret, &token, 2_000).unwrap(), alice);
        assert_eq!(verify_session(&secret, &token, exp).unwrap_err().code, "token_expired");
        assert_eq!(verify_session(&[8u8; 32], &token, 2_000).unwrap_err().code, "invalid_token");
        let (payload, tag) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory","iat":0,"exp":99999999999999,"typ":"creator"}"#);
        assert_eq!(verify_session(&secret, &format!("{forged}.{tag}"), 2_000).unwrap_err().code, "invalid_token");
        assert_eq!(verify_session(&secret, payload, 2_000).unwrap_err().code, "invalid_token");
        // A room session token, signed with the same secret, is no creator session.
        let (room, _) =
            crate::auth::session_token::issue(&secret, 1, None, Some("alice".into()), "alice".into(), 9_999);
        assert_eq!(verify_session(&secret, &room, 2_000).unwrap_err().code, "invalid_token");
    }

    #[test]
    fn domain_is_the_host() {
        assert_eq!(domain("https://presence.dlux.io"), "presence.dlux.io");
        assert_eq!(domain("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
    }
}
