//! Hive: compact secp256k1 signatures over sha256(message), as Hive Keychain's `signBuffer` (dhive's
//! `PrivateKey::sign`) makes them: 65 bytes in hex, header = recovery id + 31 (27–30 accepted too, the
//! uncompressed-key convention older tools use).
//!
//! The signer is named either by a public key (`STM` + base58(key ‖ ripemd160(key)[..4])) or by an account name. An
//! account has several keys; only its **posting** and **active** keys count here: the owner key should never be
//! typed into a web page and the memo key is for encryption only. Account keys live on chain, so that path is
//! asynchronous and goes through a [`HiveKeySource`].
//!
//! Graphene-era tools required "canonical" low-S signatures; others did not, so a high `s` is normalised (to `n - s`
//! with the recovery id flipped — the same signer) rather than rejected.

use bitcoin::hashes::{ripemd160, sha256, Hash};
use bitcoin::secp256k1::PublicKey;

use super::encoding::{base58_bytes, hex_bytes};
use super::hive_keys::HiveKeySource;
use super::{attach_sign_in, secp, Scheme, SignatureError, SignatureVerifier, VerifiedSigner};
use crate::Chain;

/// Public-key prefixes: mainnet and testnet.
const KEY_PREFIXES: [&str; 2] = ["STM", "TST"];

/// The Hive verifier for signers named by public key. Account names go through [`verify_hive_account`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hive;

/// Verifies a Hive signature (hex) by the public key `public_key` (`STM…`). Account names need
/// [`verify_hive_account`] (or [`super::verify`] with a key source).
pub fn verify_hive(public_key: &str, message: &[u8], signature: &str) -> Result<VerifiedSigner, SignatureError> {
    Hive.verify(public_key, message, signature)
}

impl SignatureVerifier for Hive {
    fn chain(&self) -> Chain {
        Chain::Hive
    }

    fn verify_signature(
        &self,
        address: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<VerifiedSigner, SignatureError> {
        let address = address.trim();
        if !is_public_key_like(address) {
            validate_account_name(address)?;
            return Err(SignatureError::Unsupported("a Hive account name needs a key source to verify against".into()));
        }
        let (prefix, expected) = parse_public_key(address)?;
        let key = recover(message, signature)?;
        if key != expected {
            return Err(SignatureError::WrongSigner);
        }
        let key = hive_public_key_string(prefix, &key);
        Ok(VerifiedSigner {
            chain: Chain::Hive,
            address: key.clone(),
            public_key: key,
            scheme: Scheme::HiveCompact,
            sign_in: None,
        })
    }
}

/// Verifies a Hive signature by the account `account`: the recovered key must be one of its posting or active keys.
pub async fn verify_hive_account(
    account: &str,
    message: &[u8],
    signature: &str,
    keys: &dyn HiveKeySource,
) -> Result<VerifiedSigner, SignatureError> {
    let account = account.trim();
    validate_account_name(account)?;
    // Recover first: a malformed signature should not cost an API round trip.
    let key = recover(message, signature)?;
    let account_keys =
        keys.account_keys(account).await?.ok_or_else(|| SignatureError::UnknownAccount(account.into()))?;
    let matched = account_keys
        .posting
        .iter()
        .chain(&account_keys.active)
        .find(|k| parse_public_key(k).is_ok_and(|(_, k)| k == key))
        .ok_or(SignatureError::WrongSigner)?;
    let signer = VerifiedSigner {
        chain: Chain::Hive,
        address: account.to_string(),
        public_key: matched.clone(),
        scheme: Scheme::HiveCompact,
        sign_in: None,
    };
    attach_sign_in(&Hive, signer, message)
}

/// Whether `s` is meant as a public key rather than an account name (account names are lowercase).
pub(crate) fn is_public_key_like(s: &str) -> bool {
    let s = s.trim();
    KEY_PREFIXES.iter().any(|p| s.starts_with(p))
}

fn recover(message: &[u8], signature: &str) -> Result<PublicKey, SignatureError> {
    let raw = hex_bytes(signature.trim(), "Hive signature hex")?;
    let raw: [u8; 65] = raw.try_into().map_err(|r: Vec<u8>| SignatureError::BadLength {
        what: "Hive signature",
        expected: "65",
        got: r.len(),
    })?;
    let header = raw[0];
    if !(27..=34).contains(&header) {
        return Err(SignatureError::BadHeader(format!("Hive signature header {header}")));
    }
    let mut recovery_id = (header - 27) % 4;
    let mut rs = [0u8; 64];
    rs.copy_from_slice(&raw[1..]);
    secp::normalize_s(&mut rs, &mut recovery_id);
    secp::recover(sha256::Hash::hash(message).to_byte_array(), &rs, recovery_id)
}

/// `STM…` → (prefix, key), checking the RIPEMD-160 checksum.
fn parse_public_key(s: &str) -> Result<(&'static str, PublicKey), SignatureError> {
    let prefix = KEY_PREFIXES
        .into_iter()
        .find(|p| s.starts_with(p))
        .ok_or_else(|| SignatureError::bad_address("Hive", "public key without STM prefix"))?;
    let raw = base58_bytes(&s[prefix.len()..])
        .ok_or_else(|| SignatureError::bad_address("Hive", "public key is not base58"))?;
    if raw.len() != 37 {
        return Err(SignatureError::bad_address("Hive", format!("public key has {} bytes, expected 37", raw.len())));
    }
    let (key, checksum) = raw.split_at(33);
    if ripemd160::Hash::hash(key).as_byte_array()[..4] != *checksum {
        return Err(SignatureError::BadChecksum("Hive public key"));
    }
    let key = PublicKey::from_slice(key).map_err(|_| SignatureError::bad_address("Hive", "not a secp256k1 point"))?;
    Ok((prefix, key))
}

/// The `STM…` spelling of a key.
pub fn hive_public_key_string(prefix: &str, key: &PublicKey) -> String {
    let key = key.serialize();
    let checksum = ripemd160::Hash::hash(&key);
    let mut raw = key.to_vec();
    raw.extend_from_slice(&checksum.as_byte_array()[..4]);
    format!("{prefix}{}", bitcoin::base58::encode(&raw))
}

/// A Hive account name, by the chain's rule ([`crate::hive_account`]).
fn validate_account_name(name: &str) -> Result<(), SignatureError> {
    if crate::hive_account::is_valid_account_name(name) {
        Ok(())
    } else {
        Err(SignatureError::bad_address("Hive", format!("`{name}` is neither an account name nor a public key")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        for ok in ["alice", "alice.tickets", "bob-42", "abc", "a1b2c3d4e5f6g7h8", "ab--cd"] {
            assert!(validate_account_name(ok).is_ok(), "{ok}");
        }
        for bad in ["al", "Alice", "alice.", "ab.cde", "-bob", "bob-", "1bob", "toolongaccountname"] {
            assert!(validate_account_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_key_round_trip() {
        // The well-known key of Hive's "initminer" test account.
        let s = "STM6LLegbAgLAy28EHrffBVuANFWcFgmqRMW13wBmTExqFE9SCkg4";
        let (prefix, key) = parse_public_key(s).unwrap();
        assert_eq!(hive_public_key_string(prefix, &key), s);
    }
}
