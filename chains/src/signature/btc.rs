//! Bitcoin message signatures: BIP-137 ("Bitcoin Signed Message", what most wallets still produce) and BIP-322
//! "simple" (a witness stack, what segwit/taproot-native wallets produce).
//!
//! The two are told apart by shape: a BIP-137 signature is exactly 65 bytes (header ‖ r ‖ s); anything else is read
//! as a consensus-encoded witness. BIP-137's header says how the key was serialised and which address type the
//! signer meant (27–30 uncompressed P2PKH, 31–34 compressed P2PKH, 35–38 P2SH-P2WPKH, 39–42 P2WPKH), but Electrum
//! signs for segwit addresses with 31–34, so the header only decides compressed or not: a compressed key may own the
//! P2PKH, P2WPKH or P2SH-P2WPKH address; an uncompressed one only the P2PKH address.

use std::str::FromStr;

use bitcoin::address::{NetworkUnchecked, ParseError};
use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::blockdata::opcodes::OP_0;
use bitcoin::hashes::{sha256, sha256d, Hash, HashEngine};
use bitcoin::key::CompressedPublicKey;
use bitcoin::secp256k1::{ecdsa, schnorr, Message, XOnlyPublicKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Address, AddressType, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    Witness,
};
use serde::{Deserialize, Serialize};

use super::encoding::{base64_bytes, fixed};
use super::{secp, Scheme, SignatureError, SignatureVerifier, VerifiedSigner};
use crate::Chain;

/// Which network's addresses to accept. Mainnet unless configured otherwise.
///
/// Spelt `mainnet` (or `bitcoin`), `testnet`, `signet`, `regtest`; the serde form is the one parser, used by the
/// configuration file and, through `FromStr`, the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BtcNetwork {
    #[default]
    #[serde(alias = "bitcoin")]
    Mainnet,
    Testnet,
    Signet,
    Regtest,
}

impl FromStr for BtcNetwork {
    type Err = serde::de::value::Error;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        BtcNetwork::deserialize(serde::de::IntoDeserializer::into_deserializer(name))
    }
}

impl BtcNetwork {
    fn network(self) -> Network {
        match self {
            BtcNetwork::Mainnet => Network::Bitcoin,
            BtcNetwork::Testnet => Network::Testnet,
            BtcNetwork::Signet => Network::Signet,
            BtcNetwork::Regtest => Network::Regtest,
        }
    }
}

/// The Bitcoin verifier for one network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bitcoin {
    pub network: BtcNetwork,
}

/// Verifies a BIP-137 or BIP-322 simple signature (base64) by `address` on `network`.
pub fn verify_btc(
    network: BtcNetwork,
    address: &str,
    message: &[u8],
    signature: &str,
) -> Result<VerifiedSigner, SignatureError> {
    Bitcoin { network }.verify(address, message, signature)
}

impl SignatureVerifier for Bitcoin {
    fn chain(&self) -> Chain {
        Chain::Btc
    }

    fn verify_signature(
        &self,
        address: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<VerifiedSigner, SignatureError> {
        let address = parse_address(address.trim(), self.network)?;
        let raw = base64_bytes(signature.trim(), "Bitcoin signature base64")?;
        let (public_key, scheme) = match raw.len() {
            0 => {
                return Err(SignatureError::BadLength {
                    what: "Bitcoin signature",
                    expected: "65 or a witness",
                    got: 0,
                })
            }
            65 => (verify_bip137(&address, message, &raw)?, Scheme::Bip137),
            _ => (verify_bip322_simple(&address, message, &raw)?, Scheme::Bip322Simple),
        };
        Ok(VerifiedSigner { chain: Chain::Btc, address: address.to_string(), public_key, scheme, sign_in: None })
    }

    fn same_address(&self, a: &str, b: &str) -> bool {
        // bech32 is case-insensitive (wallets may show it upper case); base58 is case-sensitive.
        let is_bech32 = |s: &str| {
            let s = s.to_ascii_lowercase();
            ["bc1", "tb1", "bcrt1"].iter().any(|hrp| s.starts_with(hrp))
        };
        if is_bech32(a) && is_bech32(b) {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    }
}

fn parse_address(address: &str, network: BtcNetwork) -> Result<Address, SignatureError> {
    let unchecked = Address::<NetworkUnchecked>::from_str(address).map_err(|e| address_error(address, e))?;
    unchecked
        .require_network(network.network())
        .map_err(|_| SignatureError::bad_address("Bitcoin", format!("not a {network:?} address")))
}

/// Tells a mistyped address (right alphabet and shape, wrong checksum) from one that is not an address at all.
fn address_error(address: &str, error: ParseError) -> SignatureError {
    use bitcoin::bech32::primitives::decode::UncheckedHrpstring;
    use bitcoin::bech32::{Bech32, Bech32m};
    let bad_base58_checksum = matches!(&error, ParseError::Base58(bitcoin::base58::Error::IncorrectChecksum(_)));
    // A bech32 string that fails its checksum is reported by the parser as a base58 error (it falls back to base58),
    // so look at the string itself.
    let bad_bech32_checksum = UncheckedHrpstring::new(address)
        .map(|s| {
            let hrp = s.hrp().to_lowercase();
            ["bc", "tb", "bcrt"].contains(&hrp.as_str())
                && !s.has_valid_checksum::<Bech32>()
                && !s.has_valid_checksum::<Bech32m>()
        })
        .unwrap_or(false);
    if bad_base58_checksum || bad_bech32_checksum {
        SignatureError::BadChecksum("Bitcoin")
    } else {
        SignatureError::bad_address("Bitcoin", error.to_string())
    }
}

/// The digest BIP-137 signs: sha256d(varstr("Bitcoin Signed Message:\n") ‖ varstr(message)).
fn signed_message_hash(message: &[u8]) -> [u8; 32] {
    const PREFIX: &[u8] = b"\x18Bitcoin Signed Message:\n";
    let mut engine = sha256d::Hash::engine();
    engine.input(PREFIX);
    engine.input(&compact_size(message.len() as u64));
    engine.input(message);
    sha256d::Hash::from_engine(engine).to_byte_array()
}

fn compact_size(n: u64) -> Vec<u8> {
    match n {
        0..=0xfc => vec![n as u8],
        0xfd..=0xffff => [&[0xfd][..], &(n as u16).to_le_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[0xfe][..], &(n as u32).to_le_bytes()].concat(),
        _ => [&[0xff][..], &n.to_le_bytes()].concat(),
    }
}

fn verify_bip137(address: &Address, message: &[u8], raw: &[u8]) -> Result<String, SignatureError> {
    let header = raw[0];
    if !(27..=42).contains(&header) {
        return Err(SignatureError::BadHeader(format!("BIP-137 header {header}")));
    }
    let compressed = header >= 31;
    let rs: [u8; 64] = fixed(&raw[1..], "BIP-137 signature", "64")?;
    let key = secp::recover(signed_message_hash(message), &rs, (header - 27) % 4)?;
    let key = bitcoin::PublicKey { compressed, inner: key };

    let script = address.script_pubkey();
    let owns = if compressed {
        let wpkh = CompressedPublicKey(key.inner).wpubkey_hash();
        let p2wpkh = ScriptBuf::new_p2wpkh(&wpkh);
        script == ScriptBuf::new_p2pkh(&key.pubkey_hash())
            || script == p2wpkh
            || script == ScriptBuf::new_p2sh(&p2wpkh.script_hash())
    } else {
        script == ScriptBuf::new_p2pkh(&key.pubkey_hash())
    };
    if !owns {
        return Err(SignatureError::WrongSigner);
    }
    Ok(key.to_string())
}

/// BIP-322's message digest: the tagged hash "BIP0322-signed-message".
fn bip322_message_hash(message: &[u8]) -> [u8; 32] {
    let tag = sha256::Hash::hash(b"BIP0322-signed-message");
    let mut engine = sha256::Hash::engine();
    engine.input(tag.as_byte_array());
    engine.input(tag.as_byte_array());
    engine.input(message);
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// The virtual `to_sign` transaction of BIP-322, spending the virtual `to_spend` output locked to `script_pubkey`.
fn bip322_to_sign(script_pubkey: &ScriptBuf, message: &[u8]) -> Transaction {
    let to_spend = Transaction {
        version: Version(0),
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: Txid::all_zeros(), vout: 0xffff_ffff },
            script_sig: bitcoin::script::Builder::new()
                .push_opcode(OP_0)
                .push_slice(bip322_message_hash(message))
                .into_script(),
            sequence: Sequence(0),
            witness: Witness::new(),
        }],
        output: vec![TxOut { value: Amount::ZERO, script_pubkey: script_pubkey.clone() }],
    };
    Transaction {
        version: Version(0),
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: to_spend.compute_txid(), vout: 0 },
            script_sig: ScriptBuf::new(),
            sequence: Sequence(0),
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: bitcoin::script::Builder::new().push_opcode(OP_RETURN).into_script(),
        }],
    }
}

fn verify_bip322_simple(address: &Address, message: &[u8], raw: &[u8]) -> Result<String, SignatureError> {
    let witness: Witness =
        bitcoin::consensus::deserialize(raw).map_err(|_| SignatureError::BadEncoding("BIP-322 witness"))?;
    let script_pubkey = address.script_pubkey();
    let to_sign = bip322_to_sign(&script_pubkey, message);
    let mut cache = SighashCache::new(&to_sign);
    match address.address_type() {
        Some(AddressType::P2wpkh) => {
            let [signature, key] = witness_items::<2>(&witness)?;
            let key =
                CompressedPublicKey::from_slice(key).map_err(|_| SignatureError::BadEncoding("witness public key"))?;
            if ScriptBuf::new_p2wpkh(&key.wpubkey_hash()) != script_pubkey {
                return Err(SignatureError::WrongSigner);
            }
            let (&sighash_type, der) =
                signature.split_last().ok_or(SignatureError::BadEncoding("witness signature"))?;
            if sighash_type != EcdsaSighashType::All as u8 {
                return Err(SignatureError::BadHeader(format!("sighash type {sighash_type:#04x}")));
            }
            let mut signature =
                ecdsa::Signature::from_der(der).map_err(|_| SignatureError::BadEncoding("DER signature"))?;
            signature.normalize_s();
            let sighash = cache
                .p2wpkh_signature_hash(0, &script_pubkey, Amount::ZERO, EcdsaSighashType::All)
                .map_err(|_| SignatureError::InvalidSignature)?;
            secp::context()
                .verify_ecdsa(&Message::from_digest(sighash.to_byte_array()), &signature, &key.0)
                .map_err(|_| SignatureError::InvalidSignature)?;
            Ok(key.to_string())
        }
        Some(AddressType::P2tr) => {
            let [signature] = witness_items::<1>(&witness)?;
            let sighash_type = match signature.len() {
                64 => TapSighashType::Default,
                65 if signature[64] == TapSighashType::All as u8 => TapSighashType::All,
                65 => return Err(SignatureError::BadHeader(format!("sighash type {:#04x}", signature[64]))),
                n => return Err(SignatureError::BadLength { what: "Schnorr signature", expected: "64 or 65", got: n }),
            };
            let signature = schnorr::Signature::from_slice(&signature[..64])
                .map_err(|_| SignatureError::BadEncoding("Schnorr signature"))?;
            // A P2TR scriptPubKey is OP_1 PUSH32 <output key>.
            let output_key = XOnlyPublicKey::from_slice(&script_pubkey.as_bytes()[2..])
                .map_err(|_| SignatureError::bad_address("Bitcoin", "taproot output key is not on the curve"))?;
            let prevouts = [TxOut { value: Amount::ZERO, script_pubkey: script_pubkey.clone() }];
            let sighash = cache
                .taproot_key_spend_signature_hash(0, &Prevouts::All(&prevouts), sighash_type)
                .map_err(|_| SignatureError::InvalidSignature)?;
            secp::context()
                .verify_schnorr(&signature, &Message::from_digest(sighash.to_byte_array()), &output_key)
                .map_err(|_| SignatureError::InvalidSignature)?;
            Ok(output_key.to_string())
        }
        _ => Err(SignatureError::Unsupported(format!(
            "BIP-322 simple signatures are verified for P2WPKH and P2TR addresses only, not {}",
            address.address_type().map_or_else(|| "this address type".to_string(), |t| t.to_string())
        ))),
    }
}

fn witness_items<const N: usize>(witness: &Witness) -> Result<[&[u8]; N], SignatureError> {
    let items: Vec<&[u8]> = witness.iter().collect();
    items.try_into().map_err(|items: Vec<&[u8]>| SignatureError::BadLength {
        what: "BIP-322 witness stack",
        expected: if N == 1 { "1 item" } else { "2 items" },
        got: items.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_from_their_configuration_names() {
        assert_eq!("mainnet".parse::<BtcNetwork>().unwrap(), BtcNetwork::Mainnet);
        assert_eq!("bitcoin".parse::<BtcNetwork>().unwrap(), BtcNetwork::Mainnet);
        assert_eq!("regtest".parse::<BtcNetwork>().unwrap(), BtcNetwork::Regtest);
        assert_eq!("signet".parse::<BtcNetwork>().unwrap(), BtcNetwork::Signet);
        assert!("Mainnet".parse::<BtcNetwork>().is_err());
        assert_eq!(
            "stagenet".parse::<super::super::monero::MoneroNetwork>().unwrap(),
            super::super::monero::MoneroNetwork::Stagenet
        );
        assert!("regtest".parse::<super::super::monero::MoneroNetwork>().is_err());
    }

    #[test]
    fn bip322_message_hash_matches_spec() {
        // Test vectors from BIP-322.
        assert_eq!(
            hex::encode(bip322_message_hash(b"")),
            "c90c269c4f8fcbe6880f72a721ddfbf1914268a794cbb21cfafee13770ae19f1"
        );
        assert_eq!(
            hex::encode(bip322_message_hash(b"Hello World")),
            "f0eb03b1a75ac6d9847f55c624a99169b5dccba2a31f5b23bea77ba270de0a7a"
        );
    }

    #[test]
    fn bip322_spec_vectors() {
        // From BIP-322: P2WPKH, message "" and "Hello World".
        let address = "bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l";
        let ok = [
            (&b""[..], "AkcwRAIgM2gBAQqvZX15ZiysmKmQpDrG83avLIT492QBzLnQIxYCIBaTpOaD20qRlEylyxFSeEA2ba9YOixpX8z46TSDtS40ASECx/EgAxlkQpQ9hYjgGu6EBCPMVPwVIVJqO4XCsMvViHI="),
            (&b"Hello World"[..], "AkcwRAIgZRfIY3p7/DoVTty6YZbWS71bc5Vct9p9Fia83eRmw2QCICK/ENGfwLtptFluMGs2KsqoNSk89pO7F29zJLUx9a/sASECx/EgAxlkQpQ9hYjgGu6EBCPMVPwVIVJqO4XCsMvViHI="),
        ];
        for (message, signature) in ok {
            let signer = verify_btc(BtcNetwork::Mainnet, address, message, signature).unwrap();
            assert_eq!(signer.scheme, Scheme::Bip322Simple);
        }
        let err = verify_btc(BtcNetwork::Mainnet, address, b"Hello World!", ok[1].1).unwrap_err();
        assert_eq!(err.code(), "invalid_signature");
    }

    #[test]
    fn compact_size_boundaries() {
        assert_eq!(compact_size(0xfc), vec![0xfc]);
        assert_eq!(compact_size(0xfd), vec![0xfd, 0xfd, 0x00]);
        assert_eq!(compact_size(0x1_0000), vec![0xfe, 0, 0, 1, 0]);
    }
}
