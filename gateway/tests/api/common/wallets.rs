//! Wallets with real keys, signing as the chains' own wallets do.
#![allow(dead_code)]

use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use ed25519_dalek::Signer as _;
use tiny_keccak::{Hasher, Keccak};

pub fn keccak(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut hasher = Keccak::v256();
    hasher.update(data);
    hasher.finalize(&mut out);
    out
}

pub struct EvmWallet(pub SecretKey);

impl EvmWallet {
    pub fn new(seed: u8) -> Self {
        EvmWallet(SecretKey::from_slice(&[seed; 32]).unwrap())
    }

    /// Lower-case hex, as tickets store it.
    pub fn address(&self) -> String {
        let public = self.0.public_key(&Secp256k1::new()).serialize_uncompressed();
        format!("0x{}", hex::encode(&keccak(&public[1..])[12..]))
    }

    /// EIP-191 `personal_sign`.
    pub fn sign(&self, message: &str) -> String {
        let prefixed = format!("\x19Ethereum Signed Message:\n{}{message}", message.len());
        let digest = Message::from_digest(keccak(prefixed.as_bytes()));
        let (id, bytes) = Secp256k1::new().sign_ecdsa_recoverable(&digest, &self.0).serialize_compact();
        format!("0x{}{:02x}", hex::encode(bytes), 27 + id.to_i32())
    }
}

pub struct SolWallet(pub ed25519_dalek::SigningKey);

impl SolWallet {
    pub fn new(seed: u8) -> Self {
        SolWallet(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    pub fn address(&self) -> String {
        bitcoin::base58::encode(self.0.verifying_key().as_bytes())
    }

    pub fn sign(&self, message: &str) -> String {
        bitcoin::base58::encode(&self.0.sign(message.as_bytes()).to_bytes())
    }
}

/// A compressed-key P2PKH Bitcoin wallet signing BIP-137 messages.
pub struct BtcWallet(pub SecretKey);

impl BtcWallet {
    pub fn new(seed: u8) -> Self {
        BtcWallet(SecretKey::from_slice(&[seed; 32]).unwrap())
    }

    pub fn address(&self) -> String {
        let public = bitcoin::PublicKey::new(self.0.public_key(&Secp256k1::new()));
        bitcoin::Address::p2pkh(public, bitcoin::Network::Bitcoin).to_string()
    }

    pub fn sign(&self, message: &str) -> String {
        use base64::Engine as _;
        use bitcoin::hashes::Hash as _;
        let digest = Message::from_digest(bitcoin::sign_message::signed_msg_hash(message).to_byte_array());
        let (id, bytes) = Secp256k1::new().sign_ecdsa_recoverable(&digest, &self.0).serialize_compact();
        let mut signature = vec![27 + 4 + id.to_i32() as u8];
        signature.extend_from_slice(&bytes);
        base64::engine::general_purpose::STANDARD.encode(signature)
    }
}
