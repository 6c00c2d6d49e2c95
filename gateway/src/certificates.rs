//! Completion certificates: a JSON statement "this wallet attended this event for this long", signed with an
//! ed25519 key derived from the server secret, so anyone can check it against `GET /api/certificates/key`.
//!
//! The signature covers the certificate's canonical form: the [`Certificate`] struct serialised by serde_json
//! (fixed field order, no whitespace). Verification parses the submitted certificate strictly (unknown fields
//! are refused), serialises it again and checks the signature over those bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "ed25519";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// Always `dlux-attendance-certificate/1`.
    pub kind: String,
    pub event_id: i64,
    pub event_title: String,
    pub creator: String,
    pub chain: String,
    pub wallet: String,
    pub ticket_id: i64,
    /// Total time in the room over every session of the ticket.
    pub duration_secs: i64,
    /// The creator's minimum for a certificate.
    pub min_certificate_secs: i64,
    /// RFC 3339.
    pub event_start: String,
    pub event_end: String,
    pub issued_at: String,
}

pub const KIND: &str = "dlux-attendance-certificate/1";

/// A certificate with its detached signature (base64 of the 64 signature bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCertificate {
    pub certificate: Certificate,
    pub algorithm: String,
    pub signature: String,
    /// Base64 of the 32-byte public key that signed it.
    pub public_key: String,
}

/// The gateway's certificate key: `SHA-256("dlux-certificate-key:" ‖ secret)` as the ed25519 seed.
#[derive(Clone)]
pub struct CertificateKey {
    signing: SigningKey,
}

impl std::fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateKey").field("public", &self.public_base64()).finish_non_exhaustive()
    }
}

/// Why a submitted certificate does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("unsupported algorithm")]
    Algorithm,
    #[error("signed by another key")]
    WrongKey,
    #[error("the signature is not valid base64 of 64 bytes")]
    MalformedSignature,
    #[error("the signature does not match the certificate")]
    BadSignature,
}

impl VerifyError {
    pub fn code(self) -> &'static str {
        match self {
            VerifyError::Algorithm => "unsupported_algorithm",
            VerifyError::WrongKey => "wrong_key",
            VerifyError::MalformedSignature => "malformed_signature",
            VerifyError::BadSignature => "bad_signature",
        }
    }
}

fn canonical(certificate: &Certificate) -> Vec<u8> {
    serde_json::to_vec(certificate).unwrap_or_default()
}

impl CertificateKey {
    pub fn derive(secret: &[u8]) -> Self {
        let seed: [u8; 32] = Sha256::digest([b"dlux-certificate-key:".as_slice(), secret].concat()).into();
        CertificateKey { signing: SigningKey::from_bytes(&seed) }
    }

    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.public().as_bytes())
    }

    pub fn sign(&self, certificate: Certificate) -> SignedCertificate {
        let signature = self.signing.sign(&canonical(&certificate));
        SignedCertificate {
            certificate,
            algorithm: ALGORITHM.into(),
            signature: STANDARD.encode(signature.to_bytes()),
            public_key: self.public_base64(),
        }
    }

    pub fn verify(&self, signed: &SignedCertificate) -> Result<(), VerifyError> {
        if signed.algorithm != ALGORITHM {
            return Err(VerifyError::Algorithm);
        }
        if signed.public_key != self.public_base64() {
            return Err(VerifyError::WrongKey);
        }
        let bytes = STANDARD.decode(&signed.signature).map_err(|_| VerifyError::MalformedSignature)?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| VerifyError::MalformedSignature)?;
        self.public()
            .verify(&canonical(&signed.certificate), &Signature::from_bytes(&bytes))
            .map_err(|_| VerifyError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Certificate {
        Certificate {
            kind: KIND.into(),
            event_id: 7,
            event_title: "Talk".into(),
            creator: "alice".into(),
            chain: "hive".into(),
            wallet: "bob".into(),
            ticket_id: 3,
            duration_secs: 900,
            min_certificate_secs: 600,
            event_start: "2026-11-25T10:00:00Z".into(),
            event_end: "2026-11-25T11:00:00Z".into(),
            issued_at: "2026-11-25T11:05:00Z".into(),
        }
    }

    #[test]
    fn signs_and_refuses_tampering_and_other_keys() {
        let key = CertificateKey::derive(&[1; 32]);
        let signed = key.sign(sample());
        assert_eq!(key.verify(&signed), Ok(()));
        let mut longer = signed.clone();
        longer.certificate.duration_secs = 9000;
        assert_eq!(key.verify(&longer), Err(VerifyError::BadSignature));
        let other = CertificateKey::derive(&[2; 32]);
        assert_eq!(other.verify(&signed), Err(VerifyError::WrongKey));
        let mut forged = other.sign(sample());
        forged.public_key = key.public_base64();
        assert_eq!(key.verify(&forged), Err(VerifyError::BadSignature));
        assert_eq!(CertificateKey::derive(&[1; 32]).public_base64(), key.public_base64(), "stable across restarts");
    }
}
