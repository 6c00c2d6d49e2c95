//! The access challenge: the text the gateway asks a wallet to sign to prove it owns the wallet that bought a ticket.
//!
//! The server makes a [`Challenge`] (fresh nonce, short validity), stores it, and sends [`Challenge::to_message`] to
//! the client. The wallet shows that text and signs it; the server verifies the signature
//! ([`crate::signature::verify`]), then parses the signed text back with [`Challenge::parse`] and compares it with
//! what it stored ([`Challenge::check_signed`]). The text follows EIP-4361 for EVM chains and Sign-In with Solana
//! for Solana, so those wallets show their sign-in screens; Bitcoin, Hive and Monero get the same layout with an
//! `Event:` line.
//!
//! The seed's older, simpler message `Access event {eventId} at {unixMillis}` is still parsed by
//! [`AccessMessage::parse`], for clients that have not moved to challenges yet.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::distributions::{Alphanumeric, DistString};

use crate::signature::{SignInError, SignInMessage};
use crate::Chain;

/// 22 alphanumeric characters: 22 · log2(62) ≈ 131 bits, over EIP-4361's minimum of 8 characters and our 96 bits.
pub const NONCE_LEN: usize = 22;

/// Why a challenge text was rejected. [`code`](Self::code) is the machine reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("malformed challenge: {0}")]
    Malformed(String),
    #[error("the signed challenge differs from the issued one in `{0}`")]
    Mismatch(&'static str),
    #[error("the challenge has expired")]
    Expired,
    #[error("the challenge is not valid yet")]
    NotYetValid,
}

impl ChallengeError {
    pub const fn code(&self) -> &'static str {
        match self {
            ChallengeError::Malformed(_) => "bad_message",
            ChallengeError::Mismatch(_) => "challenge_mismatch",
            ChallengeError::Expired => "expired",
            ChallengeError::NotYetValid => "not_yet_valid",
        }
    }
}

impl From<SignInError> for ChallengeError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::Expired => ChallengeError::Expired,
            SignInError::NotYetValid => ChallengeError::NotYetValid,
            SignInError::DomainMismatch(_) => ChallengeError::Mismatch("domain"),
            SignInError::NonceMismatch => ChallengeError::Mismatch("nonce"),
            SignInError::Malformed(m) => ChallengeError::Malformed(m),
        }
    }
}

/// The event id of a challenge that proves a wallet to see or erase what is kept about it (no event has it:
/// ids start at 1). Its statement says so instead of naming an event.
pub const WALLET_DATA: i64 = 0;

/// The event id of a challenge that proves a wallet to receive a creator's payouts (no event has it). The
/// gateway binds such a challenge to the creator who asked for it (its nonce's MAC covers the account), so one
/// creator's signed challenge cannot set another's address.
pub const PAYOUT_ADDRESS: i64 = -1;

/// An access challenge for one wallet and one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The host the user is signing in to (`tickets.example.com`), checked by wallets against the page's origin.
    pub domain: String,
    pub uri: String,
    pub event_id: i64,
    pub chain: Chain,
    pub wallet: String,
    pub nonce: String,
    /// Millisecond precision: what the text can carry.
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Challenge {
    /// A fresh challenge valid from `now` for `ttl`, with a random nonce.
    pub fn new(
        domain: impl Into<String>,
        uri: impl Into<String>,
        event_id: i64,
        chain: Chain,
        wallet: impl Into<String>,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Self {
        let issued_at = truncate_to_millis(now);
        Challenge {
            domain: domain.into(),
            uri: uri.into(),
            event_id,
            chain,
            wallet: wallet.into(),
            nonce: new_nonce(),
            issued_at,
            expires_at: issued_at + ttl,
        }
    }

    /// The text to sign.
    pub fn to_message(&self) -> String {
        let mut text = String::new();
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        let statement = match self.event_id {
            WALLET_DATA => "Sign in to see or erase the data kept about this wallet.".to_owned(),
            PAYOUT_ADDRESS => "Sign to receive your creator payouts at this wallet.".to_owned(),
            id => format!("Sign in to access event {id}."),
        };
        let _ = write!(
            text,
            "{} wants you to sign in with your {} account:\n{}\n\n{statement}\n\nURI: {}\n",
            self.domain,
            account_kind(self.chain),
            self.wallet,
            self.uri
        );
        match evm_chain_id(self.chain).or(if self.chain == Chain::Sol { Some("mainnet") } else { None }) {
            // EIP-4361 / SIWS: fixed field set; the event travels as the request id.
            Some(chain_id) => {
                let _ = write!(
                    text,
                    "Version: 1\nChain ID: {chain_id}\nNonce: {}\nIssued At: {}\nExpiration Time: {}\nRequest ID: {}",
                    self.nonce,
                    time(&self.issued_at),
                    time(&self.expires_at),
                    self.event_id
                );
            }
            None => {
                let _ = write!(
                    text,
                    "Event: {}\nNonce: {}\nIssued At: {}\nExpiration Time: {}",
                    self.event_id,
                    self.nonce,
                    time(&self.issued_at),
                    time(&self.expires_at)
                );
            }
        }
        text
    }

    /// Parses a challenge text back into its fields. Every field must be there; the chain comes from the account
    /// kind (and, for EVM, the chain id).
    pub fn parse(text: &str) -> Result<Self, ChallengeError> {
        let m = SignInMessage::parse(text)?;
        let missing = |field: &str| ChallengeError::Malformed(format!("missing `{field}`"));
        let chain = match (m.account_kind.as_str(), m.chain_id.as_deref()) {
            ("Ethereum", Some("1")) => Chain::Eth,
            ("Ethereum", Some("137")) => Chain::Pol,
            ("Ethereum", Some("56")) => Chain::Bnb,
            ("Solana", _) => Chain::Sol,
            ("Bitcoin", None) => Chain::Btc,
            ("Hive", None) => Chain::Hive,
            ("Monero", None) => Chain::Xmr,
            (kind, chain_id) => {
                return Err(ChallengeError::Malformed(format!("unsupported account `{kind}` / chain id {chain_id:?}")))
            }
        };
        let event = m.event.as_deref().or(m.request_id.as_deref()).ok_or_else(|| missing("Event"))?;
        let event_id =
            event.parse().map_err(|_| ChallengeError::Malformed(format!("event id `{event}` is not a number")))?;
        let nonce = m.nonce.ok_or_else(|| missing("Nonce"))?;
        if nonce.len() < NONCE_LEN || !nonce.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ChallengeError::Malformed("nonce is not alphanumeric or too short".into()));
        }
        Ok(Challenge {
            domain: m.domain,
            uri: m.uri.ok_or_else(|| missing("URI"))?,
            event_id,
            chain,
            wallet: m.address,
            nonce,
            issued_at: m.issued_at.ok_or_else(|| missing("Issued At"))?.with_timezone(&Utc),
            expires_at: m.expiration_time.ok_or_else(|| missing("Expiration Time"))?.with_timezone(&Utc),
        })
    }

    /// Checks a signed text against this (issued, stored) challenge at time `now`: same fields, still valid.
    /// The wallet is compared case-insensitively (EVM hex, bech32).
    pub fn check_signed(&self, signed_text: &str, now: DateTime<Utc>) -> Result<(), ChallengeError> {
        let signed = Challenge::parse(signed_text)?;
        let mismatch = [
            ("domain", signed.domain == self.domain),
            ("uri", signed.uri == self.uri),
            ("event", signed.event_id == self.event_id),
            ("chain", signed.chain == self.chain),
            ("wallet", signed.wallet.eq_ignore_ascii_case(&self.wallet)),
            ("nonce", signed.nonce == self.nonce),
            ("issued_at", signed.issued_at == self.issued_at),
            ("expires_at", signed.expires_at == self.expires_at),
        ]
        .into_iter()
        .find(|(_, same)| !same);
        if let Some((field, _)) = mismatch {
            return Err(ChallengeError::Mismatch(field));
        }
        self.check_time(now)
    }

    /// Whether `now` is inside [issued_at − 5 min clock skew, expires_at).
    pub fn check_time(&self, now: DateTime<Utc>) -> Result<(), ChallengeError> {
        if now >= self.expires_at {
            return Err(ChallengeError::Expired);
        }
        if now < self.issued_at - chrono::Duration::minutes(5) {
            return Err(ChallengeError::NotYetValid);
        }
        Ok(())
    }
}

/// A random alphanumeric nonce of [`NONCE_LEN`] characters from the OS-seeded thread RNG.
pub fn new_nonce() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), NONCE_LEN)
}

fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// The word wallets expect in the header line.
fn account_kind(chain: Chain) -> &'static str {
    match chain {
        Chain::Eth | Chain::Pol | Chain::Bnb => "Ethereum",
        Chain::Sol => "Solana",
        Chain::Btc => "Bitcoin",
        Chain::Hive => "Hive",
        Chain::Xmr => "Monero",
    }
}

fn evm_chain_id(chain: Chain) -> Option<&'static str> {
    match chain {
        Chain::Eth => Some("1"),
        Chain::Pol => Some("137"),
        Chain::Bnb => Some("56"),
        _ => None,
    }
}

/// The seed's simple access message: `Access event {eventId} at {unixMillis}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessMessage {
    pub event_id: i64,
    pub at: DateTime<Utc>,
}

impl AccessMessage {
    pub fn parse(text: &str) -> Result<Self, ChallengeError> {
        let malformed = || ChallengeError::Malformed("expected `Access event {eventId} at {unixMillis}`".into());
        let rest = text.strip_prefix("Access event ").ok_or_else(malformed)?;
        let (event, millis) = rest.split_once(" at ").ok_or_else(malformed)?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        if !digits(event) || !digits(millis) {
            return Err(malformed());
        }
        let event_id = event.parse().map_err(|_| malformed())?;
        let at = millis.parse().ok().and_then(DateTime::from_timestamp_millis).ok_or_else(malformed)?;
        Ok(AccessMessage { event_id, at })
    }

    pub fn to_message(&self) -> String {
        format!("Access event {} at {}", self.event_id, self.at.timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_long_random_alphanumeric() {
        let (a, b) = (new_nonce(), new_nonce());
        assert_eq!(a.len(), NONCE_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        // ≥ 96 bits of entropy.
        assert!(NONCE_LEN as f64 * 62f64.log2() >= 96.0);
    }
}
