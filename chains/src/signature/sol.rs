//! Solana: ed25519 over the raw message bytes (wallet adapters' `signMessage`); the address is the base58 public key.
//!
//! Wallets hand the 64-byte signature back as bytes, which front ends forward as base58 (Phantom's habit), base64 or
//! hex: the encoding is told apart by its alphabet and length. Verification is `verify_strict` (canonical `s`, no
//! small-order keys), so a signature has exactly one accepted form.

use ed25519_dalek::{Signature, VerifyingKey};

use super::encoding::{base58_bytes, base64_bytes, fixed, hex_bytes};
use super::{Scheme, SignatureError, SignatureVerifier, VerifiedSigner};
use crate::Chain;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Solana;

/// Verifies an ed25519 signature (base58, base64 or hex) by a Solana `address`.
pub fn verify_sol(address: &str, message: &[u8], signature: &str) -> Result<VerifiedSigner, SignatureError> {
    Solana.verify(address, message, signature)
}

impl SignatureVerifier for Solana {
    fn chain(&self) -> Chain {
        Chain::Sol
    }

    fn verify_signature(
        &self,
        address: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<VerifiedSigner, SignatureError> {
        let address = address.trim();
        let key_bytes = base58_bytes(address).ok_or_else(|| SignatureError::bad_address("Solana", "not base58"))?;
        let key_bytes: [u8; 32] = key_bytes
            .try_into()
            .map_err(|b: Vec<u8>| SignatureError::bad_address("Solana", format!("{} bytes, expected 32", b.len())))?;
        let key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| SignatureError::bad_address("Solana", "not an ed25519 public key"))?;
        let signature = Signature::from_bytes(&fixed(&decode_signature(signature.trim())?, "ed25519 signature", "64")?);
        key.verify_strict(message, &signature).map_err(|_| SignatureError::InvalidSignature)?;
        Ok(VerifiedSigner {
            chain: Chain::Sol,
            address: address.to_string(),
            public_key: hex::encode(key_bytes),
            scheme: Scheme::Ed25519,
            sign_in: None,
        })
    }
}

/// hex (128 hex digits, optional `0x`), base64 (has `+`, `/` or `=`, or is 86 characters), else base58.
fn decode_signature(s: &str) -> Result<Vec<u8>, SignatureError> {
    if s.is_empty() {
        return Err(SignatureError::BadLength { what: "ed25519 signature", expected: "64", got: 0 });
    }
    let digits = super::encoding::strip_0x(s);
    if digits.len() == 128 && digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        hex_bytes(digits, "ed25519 signature hex")
    } else if s.contains(['+', '/', '=']) {
        base64_bytes(s, "ed25519 signature base64")
    } else {
        // 86 characters is unpadded base64 of 64 bytes, which may happen to contain neither `+` nor `/`.
        base58_bytes(s)
            .or_else(|| if s.len() == 86 { base64_bytes(s, "").ok() } else { None })
            .ok_or(SignatureError::BadEncoding("ed25519 signature (neither base58, base64 nor hex)"))
    }
}
