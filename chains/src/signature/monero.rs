//! Monero message signatures, as `monero-wallet-cli sign` and the wallet RPC `sign` make them.
//!
//! A signature is Monero's `crypto::generate_signature`: a Schnorr proof (c, r) over ed25519 with
//! `c = H(hash ‖ P ‖ r·G + c·P)`, H being keccak-256 reduced mod ℓ. What is hashed depends on the version:
//! - `SigV1…` (legacy, still verified by 0.18 wallets): keccak-256(message);
//! - `SigV2…`: keccak-256("MoneroMessageSignature\0" ‖ spend key ‖ view key ‖ mode ‖ varint(len) ‖ message), which
//!   binds the signature to the address and to the key used (mode 0 = spend, 1 = view).
//!
//! The wallet's own `verify` accepts a signature by the address's spend key *or* its view key. A view key is given
//! to auditors and payment processors, so a view-key signature proves nothing about who controls the funds: it is
//! recognised and rejected as [`SignatureError::ViewKeySignature`].
//!
//! References: `wallet2::sign`/`wallet2::verify` (src/wallet/wallet2.cpp) and `generate_signature`/
//! `check_signature` (src/crypto/crypto.cpp) in monero-project/monero.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use serde::{Deserialize, Serialize};

use super::evm::keccak256;
use super::{monero_base58, Scheme, SignatureError, SignatureVerifier, VerifiedSigner};
use crate::Chain;

/// Which network's address prefixes to accept. Regtest uses mainnet addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MoneroNetwork {
    #[default]
    Mainnet,
    Stagenet,
    Testnet,
}

/// The configuration's spelling (`mainnet`, `stagenet`, `testnet`), the one parser for the configuration file
/// and the command line.
impl std::str::FromStr for MoneroNetwork {
    type Err = serde::de::value::Error;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        MoneroNetwork::deserialize(serde::de::IntoDeserializer::into_deserializer(name))
    }
}

impl MoneroNetwork {
    /// Base58 varint tags: (standard, integrated, subaddress), from cryptonote_config.h.
    const fn prefixes(self) -> [u64; 3] {
        match self {
            MoneroNetwork::Mainnet => [18, 19, 42],
            MoneroNetwork::Testnet => [53, 54, 63],
            MoneroNetwork::Stagenet => [24, 25, 36],
        }
    }
}

/// A decoded Monero address: its two public keys (a subaddress's, for subaddresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoneroAddress {
    pub network: MoneroNetwork,
    pub spend_key: [u8; 32],
    pub view_key: [u8; 32],
    pub is_subaddress: bool,
    /// The payment id of an integrated address.
    pub payment_id: Option<[u8; 8]>,
}

impl MoneroAddress {
    /// Decodes and checks an address of any network.
    pub fn parse(address: &str) -> Result<Self, SignatureError> {
        let raw = monero_base58::decode(address.trim())
            .ok_or_else(|| SignatureError::bad_address("Monero", "not Monero base58"))?;
        let bad_length = || SignatureError::bad_address("Monero", format!("{} bytes", raw.len()));
        if raw.len() < 1 + 64 + 4 {
            return Err(bad_length());
        }
        let (body, checksum) = raw.split_at(raw.len() - 4);
        if keccak256(&[body])[..4] != *checksum {
            return Err(SignatureError::BadChecksum("Monero"));
        }
        let (tag, rest) = read_varint(body).ok_or_else(bad_length)?;
        let (network, kind) = [MoneroNetwork::Mainnet, MoneroNetwork::Stagenet, MoneroNetwork::Testnet]
            .into_iter()
            .find_map(|n| n.prefixes().iter().position(|&p| p == tag).map(|kind| (n, kind)))
            .ok_or_else(|| SignatureError::bad_address("Monero", format!("unknown address prefix {tag}")))?;
        let payment_id = match (kind, rest.len()) {
            (0 | 2, 64) => None,
            (1, 72) => Some(rest[64..].try_into().map_err(|_| bad_length())?),
            _ => return Err(bad_length()),
        };
        let key = |i: usize| -> [u8; 32] { rest[32 * i..32 * (i + 1)].try_into().unwrap_or([0; 32]) };
        Ok(MoneroAddress { network, spend_key: key(0), view_key: key(1), is_subaddress: kind == 2, payment_id })
    }
}

/// The Monero verifier for one network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Monero {
    pub network: MoneroNetwork,
}

/// Verifies a `SigV1…`/`SigV2…` signature by the spend key of `address` on `network`.
pub fn verify_xmr(
    network: MoneroNetwork,
    address: &str,
    message: &[u8],
    signature: &str,
) -> Result<VerifiedSigner, SignatureError> {
    Monero { network }.verify(address, message, signature)
}

impl SignatureVerifier for Monero {
    fn chain(&self) -> Chain {
        Chain::Xmr
    }

    fn verify_signature(
        &self,
        address: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<VerifiedSigner, SignatureError> {
        let parsed = MoneroAddress::parse(address)?;
        if parsed.network != self.network {
            return Err(SignatureError::bad_address(
                "Monero",
                format!("a {:?} address, expected {:?}", parsed.network, self.network),
            ));
        }
        // Taken exactly as monero-wallet-rpc's `verify` takes it: no surrounding whitespace.
        let (scheme, encoded) = if let Some(rest) = signature.strip_prefix("SigV2") {
            (Scheme::MoneroV2, rest)
        } else if let Some(rest) = signature.strip_prefix("SigV1") {
            (Scheme::MoneroV1, rest)
        } else {
            let head: String = signature.chars().take(5).collect();
            return Err(SignatureError::BadHeader(format!("Monero signature prefix `{head}`")));
        };
        let raw = monero_base58::decode(encoded).ok_or(SignatureError::BadEncoding("Monero signature base58"))?;
        let raw: [u8; 64] = raw.try_into().map_err(|r: Vec<u8>| SignatureError::BadLength {
            what: "Monero signature",
            expected: "64",
            got: r.len(),
        })?;

        let hash = |mode: u8| match scheme {
            Scheme::MoneroV2 => message_hash_v2(message, &parsed.spend_key, &parsed.view_key, mode),
            _ => keccak256(&[message]),
        };
        let spend_point = decompress(&parsed.spend_key)?;
        if check_signature(&hash(0), &parsed.spend_key, &spend_point, &raw) {
            return Ok(VerifiedSigner {
                chain: Chain::Xmr,
                address: address.trim().to_string(),
                public_key: hex::encode(parsed.spend_key),
                scheme,
                sign_in: None,
            });
        }
        // Only to give the precise reason: a view-key signature is a well-formed signature that proves too little.
        let view_point = decompress(&parsed.view_key)?;
        if check_signature(&hash(1), &parsed.view_key, &view_point, &raw) {
            return Err(SignatureError::ViewKeySignature);
        }
        Err(SignatureError::InvalidSignature)
    }
}

fn decompress(key: &[u8; 32]) -> Result<EdwardsPoint, SignatureError> {
    CompressedEdwardsY(*key)
        .decompress()
        .ok_or_else(|| SignatureError::bad_address("Monero", "public key is not a curve point"))
}

/// `get_message_hash` of wallet2.cpp (SigV2).
fn message_hash_v2(message: &[u8], spend_key: &[u8; 32], view_key: &[u8; 32], mode: u8) -> [u8; 32] {
    let mut len = Vec::with_capacity(10);
    let mut n = message.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            len.push(byte);
            break;
        }
        len.push(byte | 0x80);
    }
    keccak256(&[b"MoneroMessageSignature\0", spend_key, view_key, &[mode], &len, message])
}

/// `crypto::check_signature`: (c, r) is valid iff c == H(hash ‖ P ‖ c·P + r·G), with c, r canonical and c ≠ 0.
fn check_signature(hash: &[u8; 32], key_bytes: &[u8; 32], key: &EdwardsPoint, signature: &[u8; 64]) -> bool {
    let scalar = |b: &[u8]| -> Option<Scalar> { Option::from(Scalar::from_canonical_bytes(b.try_into().ok()?)) };
    let (Some(c), Some(r)) = (scalar(&signature[..32]), scalar(&signature[32..])) else { return false };
    if c == Scalar::ZERO {
        return false;
    }
    let commitment = EdwardsPoint::vartime_double_scalar_mul_basepoint(&c, key, &r).compress();
    if commitment == CompressedEdwardsY::identity() {
        return false;
    }
    let expected = Scalar::from_bytes_mod_order(keccak256(&[hash, key_bytes, commitment.as_bytes()]));
    expected == c
}

fn read_varint(data: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in data.iter().enumerate().take(9) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}
