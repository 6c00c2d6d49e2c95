//! EVM wallets with real secp256k1 keys, signing EIP-191 `personal_sign` messages as MetaMask does.

use bitcoin::secp256k1::{All, Message, Secp256k1, SecretKey};
use tiny_keccak::{Hasher, Keccak};

/// One signing and verification context for the whole run (building one costs more than a signature).
pub static SECP: std::sync::LazyLock<Secp256k1<All>> = std::sync::LazyLock::new(Secp256k1::new);

fn keccak(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut hasher = Keccak::v256();
    hasher.update(data);
    hasher.finalize(&mut out);
    out
}

pub struct EvmWallet {
    key: SecretKey,
    /// Lower-case hex, as tickets store it.
    pub address: String,
}

impl EvmWallet {
    /// The `index`-th wallet of a run: a key derived from the index and the run's salt, never zero.
    pub fn derive(secp: &Secp256k1<All>, salt: u64, index: u64) -> EvmWallet {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&salt.to_be_bytes());
        seed[8..16].copy_from_slice(&index.to_be_bytes());
        seed[31] = 1;
        let key = SecretKey::from_slice(&keccak(&seed))
            .expect("a keccak digest is a valid key with overwhelming probability");
        let public = key.public_key(secp).serialize_uncompressed();
        let address = format!("0x{}", hex_lower(&keccak(&public[1..])[12..]));
        EvmWallet { key, address }
    }

    /// EIP-191 `personal_sign`: 65 bytes `r‖s‖v` in hex with v = 27/28.
    pub fn sign(&self, secp: &Secp256k1<All>, message: &str) -> String {
        let prefixed = format!("\x19Ethereum Signed Message:\n{}{message}", message.len());
        let digest = Message::from_digest(keccak(prefixed.as_bytes()));
        let (id, bytes) = secp.sign_ecdsa_recoverable(&digest, &self.key).serialize_compact();
        format!("0x{}{:02x}", hex_lower(&bytes), 27 + id.to_i32())
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
