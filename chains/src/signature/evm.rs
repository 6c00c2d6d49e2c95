//! EVM chains (Ethereum, Polygon, BNB Chain): EIP-191 `personal_sign`, one implementation for all three.
//!
//! The wallet signs keccak256("\x19Ethereum Signed Message:\n" ‖ len(message) ‖ message); the signer is whoever's
//! key recovers from (r, s, v). Wallets and libraries disagree on v: 27/28 (the common form), 0/1 (raw recovery id,
//! e.g. Ledger) and the EIP-155 form `chainId * 2 + 35 + id` that some wallets carry over from transactions — for
//! chain ids above 110 (Polygon's 137) v no longer fits in a byte, so v is read as a big-endian integer of 1 to 8
//! bytes after r ‖ s. The chain id inside v is not checked: for a personal message it protects nothing.

use bitcoin::secp256k1::PublicKey;
use tiny_keccak::{Hasher, Keccak};

use super::encoding::{hex_bytes, strip_0x};
use super::{secp, Scheme, SignatureError, SignatureVerifier, VerifiedSigner};
use crate::Chain;

/// The EVM verifier; `chain` only labels the result (ETH, POL and BNB sign alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evm {
    pub chain: Chain,
}

/// Verifies an EIP-191 `personal_sign` signature (hex, 65+ bytes) by an EVM `address`.
pub fn verify_evm(
    chain: Chain,
    address: &str,
    message: &[u8],
    signature: &str,
) -> Result<VerifiedSigner, SignatureError> {
    Evm { chain }.verify(address, message, signature)
}

impl SignatureVerifier for Evm {
    fn chain(&self) -> Chain {
        self.chain
    }

    fn verify_signature(
        &self,
        address: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<VerifiedSigner, SignatureError> {
        if !self.chain.is_evm() {
            return Err(SignatureError::Unsupported(format!("{} is not an EVM chain", self.chain)));
        }
        let expected = parse_address(address)?;
        let (rs, recovery_id) = parse_signature(signature)?;
        let key = secp::recover(personal_message_hash(message), &rs, recovery_id)?;
        if address_of(&key) != expected {
            return Err(SignatureError::WrongSigner);
        }
        Ok(VerifiedSigner {
            chain: self.chain,
            address: eip55_checksum(&expected),
            public_key: hex::encode(key.serialize()),
            scheme: Scheme::Eip191,
            sign_in: None,
        })
    }

    fn same_address(&self, a: &str, b: &str) -> bool {
        strip_0x(a).eq_ignore_ascii_case(strip_0x(b))
    }
}

pub(crate) fn keccak256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Keccak::v256();
    for part in parts {
        hasher.update(part);
    }
    let mut out = [0u8; 32];
    hasher.finalize(&mut out);
    out
}

/// EIP-191 version 0x45: the hash `personal_sign` signs.
fn personal_message_hash(message: &[u8]) -> [u8; 32] {
    let len = message.len().to_string();
    keccak256(&[b"\x19Ethereum Signed Message:\n", len.as_bytes(), message])
}

/// r ‖ s and the recovery id from any of the v forms.
fn parse_signature(signature: &str) -> Result<([u8; 64], u8), SignatureError> {
    let bytes = hex_bytes(signature, "EVM signature hex")?;
    if !(65..=72).contains(&bytes.len()) {
        return Err(SignatureError::BadLength { what: "EVM signature", expected: "65", got: bytes.len() });
    }
    let mut rs = [0u8; 64];
    rs.copy_from_slice(&bytes[..64]);
    let v = bytes[64..].iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
    let recovery_id = match v {
        0 | 1 => v as u8,
        27 | 28 => (v - 27) as u8,
        35.. => ((v - 35) % 2) as u8,
        _ => return Err(SignatureError::BadHeader(format!("v = {v}"))),
    };
    Ok((rs, recovery_id))
}

/// Parses `0x` + 40 hex digits. All-lowercase and all-uppercase addresses carry no checksum; a mixed-case one must
/// be valid EIP-55.
fn parse_address(address: &str) -> Result<[u8; 20], SignatureError> {
    let digits = strip_0x(address.trim());
    if digits.len() != 40 {
        return Err(SignatureError::bad_address("EVM", format!("{} hex digits, expected 40", digits.len())));
    }
    let bytes: [u8; 20] = hex::decode(digits)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SignatureError::bad_address("EVM", "not hex"))?;
    let has_lower = digits.bytes().any(|c| c.is_ascii_lowercase());
    let has_upper = digits.bytes().any(|c| c.is_ascii_uppercase());
    if has_lower && has_upper && eip55_checksum(&bytes)[2..] != *digits {
        return Err(SignatureError::BadChecksum("EIP-55"));
    }
    Ok(bytes)
}

/// The EIP-55 mixed-case spelling of an address (`0x…`).
pub fn eip55_checksum(address: &[u8; 20]) -> String {
    let lower = hex::encode(address);
    let hash = keccak256(&[lower.as_bytes()]);
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0f;
        out.push(if nibble >= 8 { c.to_ascii_uppercase() } else { c });
    }
    out
}

fn address_of(key: &PublicKey) -> [u8; 20] {
    let hash = keccak256(&[&key.serialize_uncompressed()[1..]]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip55_reference_addresses() {
        // From the EIP-55 specification.
        for a in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let bytes: [u8; 20] = hex::decode(&a[2..]).unwrap().try_into().unwrap();
            assert_eq!(eip55_checksum(&bytes), a);
            assert!(parse_address(a).is_ok());
        }
    }

    #[test]
    fn v_forms() {
        let sig = |v: &str| format!("0x{}{}", "11".repeat(64), v);
        assert_eq!(parse_signature(&sig("1b")).unwrap().1, 0);
        assert_eq!(parse_signature(&sig("1c")).unwrap().1, 1);
        assert_eq!(parse_signature(&sig("01")).unwrap().1, 1);
        assert_eq!(parse_signature(&sig("25")).unwrap().1, 0); // chain 1
        assert_eq!(parse_signature(&sig("0136")).unwrap().1, 1); // chain 137: v = 310
        assert_eq!(parse_signature(&sig("1d")).unwrap_err().code(), "bad_header");
    }
}
