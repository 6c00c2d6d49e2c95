//! Sign-in messages: EIP-4361 (Sign-In with Ethereum), its Solana twin (Sign-In with Solana) and the same layout
//! for the chains that have no standard of their own:
//!
//! ```text
//! {domain} wants you to sign in with your {Ethereum|Solana|Bitcoin|Hive|Monero} account:
//! {address}
//!
//! {statement, optional}
//!
//! URI: …
//! Version: 1
//! Chain ID: …
//! Event: …             (ours; EVM and Solana messages carry the event in Request ID instead)
//! Nonce: …
//! Issued At: …         (RFC 3339)
//! Expiration Time: …
//! Not Before: …
//! Request ID: …
//! Resources:
//! - …
//! ```
//!
//! Parsing is strict about the header and the field names (an unknown field is an error, so nothing the user saw in
//! the wallet goes unchecked) and lenient about which optional fields are present and about blank lines around the
//! statement.

use chrono::{DateTime, FixedOffset, Utc};

/// Why a sign-in message was rejected. [`code`](Self::code) is the machine reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    #[error("{0}")]
    Malformed(String),
    #[error("domain `{0}` is not the expected one")]
    DomainMismatch(String),
    #[error("nonce does not match the challenge")]
    NonceMismatch,
    #[error("the message has expired")]
    Expired,
    #[error("the message is not valid yet")]
    NotYetValid,
}

impl SignInError {
    pub const fn code(&self) -> &'static str {
        match self {
            SignInError::Malformed(_) => "bad_message",
            SignInError::DomainMismatch(_) => "domain_mismatch",
            SignInError::NonceMismatch => "nonce_mismatch",
            SignInError::Expired => "expired",
            SignInError::NotYetValid => "not_yet_valid",
        }
    }
}

const HEADER_MIDDLE: &str = " wants you to sign in with your ";
const HEADER_END: &str = " account:";

/// A parsed sign-in message. Times keep the offset they were written with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignInMessage {
    pub domain: String,
    /// "Ethereum", "Solana", "Bitcoin", "Hive", "Monero" — the word in the header line.
    pub account_kind: String,
    pub address: String,
    pub statement: Option<String>,
    pub uri: Option<String>,
    pub version: Option<String>,
    pub chain_id: Option<String>,
    pub event: Option<String>,
    pub nonce: Option<String>,
    pub issued_at: Option<DateTime<FixedOffset>>,
    pub expiration_time: Option<DateTime<FixedOffset>>,
    pub not_before: Option<DateTime<FixedOffset>>,
    pub request_id: Option<String>,
    pub resources: Vec<String>,
}

impl SignInMessage {
    /// Whether the first line is a sign-in header (then the message must parse, or be rejected).
    pub fn looks_like(text: &str) -> bool {
        let first = text.split('\n').next().unwrap_or("");
        first.contains(HEADER_MIDDLE) && first.ends_with(HEADER_END)
    }

    pub fn parse(text: &str) -> Result<Self, SignInError> {
        let malformed = |m: String| SignInError::Malformed(m);
        let text = text.strip_suffix('\n').unwrap_or(text);
        let mut lines = text.split('\n').peekable();

        let header = lines.next().unwrap_or("");
        let (domain, kind) = header
            .strip_suffix(HEADER_END)
            .and_then(|h| h.split_once(HEADER_MIDDLE))
            .ok_or_else(|| malformed("first line is not `… wants you to sign in with your … account:`".into()))?;
        if domain.is_empty() || domain.contains(char::is_whitespace) || kind.is_empty() {
            return Err(malformed("empty or malformed domain or account kind".into()));
        }
        let address = lines.next().filter(|a| !a.is_empty() && !a.contains(char::is_whitespace));
        let address = address.ok_or_else(|| malformed("second line must be the address".into()))?;
        let mut message = SignInMessage {
            domain: domain.to_string(),
            account_kind: kind.to_string(),
            address: address.to_string(),
            ..Default::default()
        };

        // Blank line(s), then an optional statement (any line that is not a field), then blank line(s).
        while lines.next_if(|l| l.is_empty()).is_some() {}
        if let Some(line) = lines.next_if(|l| field(l).is_none()) {
            message.statement = Some(line.to_string());
            while lines.next_if(|l| l.is_empty()).is_some() {}
        }

        while let Some(line) = lines.next() {
            let (key, value) = field(line).ok_or_else(|| malformed(format!("unexpected line `{line}`")))?;
            let time = |v: &str| {
                DateTime::parse_from_rfc3339(v).map_err(|_| malformed(format!("{key}: `{v}` is not an RFC 3339 time")))
            };
            let slot_taken = match key {
                "URI" => message.uri.replace(value.to_string()).is_some(),
                "Version" => message.version.replace(value.to_string()).is_some(),
                "Chain ID" => message.chain_id.replace(value.to_string()).is_some(),
                "Event" => message.event.replace(value.to_string()).is_some(),
                "Nonce" => message.nonce.replace(value.to_string()).is_some(),
                "Issued At" => message.issued_at.replace(time(value)?).is_some(),
                "Expiration Time" => message.expiration_time.replace(time(value)?).is_some(),
                "Not Before" => message.not_before.replace(time(value)?).is_some(),
                "Request ID" => message.request_id.replace(value.to_string()).is_some(),
                "Resources" => {
                    while let Some(item) = lines.next_if(|l| l.starts_with("- ")) {
                        message.resources.push(item[2..].to_string());
                    }
                    false
                }
                _ => return Err(malformed(format!("unknown field `{key}`"))),
            };
            if slot_taken {
                return Err(malformed(format!("field `{key}` appears twice")));
            }
        }
        Ok(message)
    }

    /// Checks the fields a server must check against the challenge it issued: domain, nonce and validity period.
    pub fn check(&self, domain: &str, nonce: &str, now: DateTime<Utc>) -> Result<(), SignInError> {
        if self.domain != domain {
            return Err(SignInError::DomainMismatch(self.domain.clone()));
        }
        if self.nonce.as_deref() != Some(nonce) {
            return Err(SignInError::NonceMismatch);
        }
        if self.expiration_time.is_some_and(|t| now >= t) {
            return Err(SignInError::Expired);
        }
        if self.not_before.is_some_and(|t| now < t)
            || self.issued_at.is_some_and(|t| now < t - chrono::Duration::minutes(5))
        {
            return Err(SignInError::NotYetValid);
        }
        Ok(())
    }
}

/// `Key: value` for the known field names (and `Resources:` with no value).
fn field(line: &str) -> Option<(&str, &str)> {
    const KNOWN: [&str; 9] =
        ["URI", "Version", "Chain ID", "Event", "Nonce", "Issued At", "Expiration Time", "Not Before", "Request ID"];
    if line == "Resources:" {
        return Some(("Resources", ""));
    }
    line.split_once(": ").filter(|(key, _)| KNOWN.contains(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIWE: &str = "service.org wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ServiceOrg Terms of Service: https://service.org/tos

URI: https://service.org/login
Version: 1
Chain ID: 1
Nonce: 32891757
Issued At: 2021-09-30T16:25:24.000Z
Resources:
- ipfs://Qme7ss3ARVgxv6rXqVPiikMJ8u2NLgmgszg13pYrDKEoiu
- https://example.com/my-web2-claim.json";

    #[test]
    fn parses_the_eip4361_example() {
        let m = SignInMessage::parse(SIWE).unwrap();
        assert_eq!(m.domain, "service.org");
        assert_eq!(m.account_kind, "Ethereum");
        assert_eq!(m.address, "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2");
        assert_eq!(m.statement.as_deref(), Some("I accept the ServiceOrg Terms of Service: https://service.org/tos"));
        assert_eq!(m.nonce.as_deref(), Some("32891757"));
        assert_eq!(m.chain_id.as_deref(), Some("1"));
        assert_eq!(m.resources.len(), 2);
        assert_eq!(m.issued_at.unwrap().to_rfc3339(), "2021-09-30T16:25:24+00:00");
    }

    #[test]
    fn statement_is_optional() {
        let text = "example.com wants you to sign in with your Solana account:\nAbc\n\n\nNonce: 123\n";
        let m = SignInMessage::parse(text).unwrap();
        assert_eq!((m.statement, m.nonce.as_deref()), (None, Some("123")));
    }

    #[test]
    fn rejects_unknown_and_duplicate_fields_and_bad_times() {
        let base = "a.com wants you to sign in with your Ethereum account:\n0xabc\n\n";
        assert!(SignInMessage::parse(&format!("{base}Nonce: 1\nNonce: 2")).is_err());
        assert!(SignInMessage::parse(&format!("{base}Nonce: 1\nColour: red")).is_err());
        assert!(SignInMessage::parse(&format!("{base}Issued At: yesterday")).is_err());
        assert!(SignInMessage::parse(&format!("{base}Nonce: 1\ntrailing junk")).is_err());
        assert!(SignInMessage::parse("hello").is_err());
    }

    #[test]
    fn check_domain_nonce_and_times() {
        let m = SignInMessage::parse(
            "a.com wants you to sign in with your Ethereum account:\n0xabc\n\nNonce: n1\nIssued At: 2026-01-01T00:00:00Z\nExpiration Time: 2026-01-01T00:05:00Z",
        )
        .unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(m.check("a.com", "n1", at("2026-01-01T00:01:00Z")), Ok(()));
        assert_eq!(m.check("b.com", "n1", at("2026-01-01T00:01:00Z")).unwrap_err().code(), "domain_mismatch");
        assert_eq!(m.check("a.com", "n2", at("2026-01-01T00:01:00Z")).unwrap_err().code(), "nonce_mismatch");
        assert_eq!(m.check("a.com", "n1", at("2026-01-01T00:05:00Z")).unwrap_err().code(), "expired");
        assert_eq!(m.check("a.com", "n1", at("2025-12-31T23:00:00Z")).unwrap_err().code(), "not_yet_valid");
    }
}
