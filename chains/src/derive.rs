//! Fresh receiving addresses per quote, derived from the platform's extended public keys.
//!
//! The gateway holds only public keys: a BIP-84/49/44 account key for Bitcoin and a BIP-44 account key
//! (`m/44'/60'/0'`) for the EVM chains. Quote `i` receives at the external chain's child `0/i`. Solana
//! payments go to one account and are told apart by a random Solana Pay `reference` key.

use std::str::FromStr;

use bitcoin::bip32::{ChildNumber, Xpub};
use bitcoin::secp256k1::{self, Secp256k1};
use bitcoin::{base58, Address, CompressedPublicKey, Network};
use rand::RngCore;
use tiny_keccak::{Hasher, Keccak};

use crate::signature::{eip55_checksum, BtcNetwork};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeriveError {
    #[error("not an extended public key: {0}")]
    BadKey(String),
    #[error("derivation index {0} is out of range")]
    BadIndex(u32),
}

/// The script type a Bitcoin account key pays to, from its SLIP-132 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BtcScript {
    /// zpub/vpub, BIP-84
    P2wpkh,
    /// ypub/upub, BIP-49
    P2shP2wpkh,
    /// xpub/tpub, BIP-44
    P2pkh,
}

/// A Bitcoin account key, ready to derive receiving addresses.
#[derive(Debug, Clone)]
pub struct BtcAccount {
    xpub: Xpub,
    script: BtcScript,
    network: Network,
}

const XPUB: [u8; 4] = [0x04, 0x88, 0xB2, 0x1E];
const TPUB: [u8; 4] = [0x04, 0x35, 0x87, 0xCF];

impl BtcAccount {
    /// Parses an xpub/ypub/zpub (or tpub/upub/vpub for test networks).
    pub fn parse(key: &str, network: BtcNetwork) -> Result<Self, DeriveError> {
        let bad = || DeriveError::BadKey(key.chars().take(8).collect());
        let mut data = base58::decode_check(key.trim()).map_err(|_| bad())?;
        if data.len() != 78 {
            return Err(bad());
        }
        let (script, mainnet) = match key.get(..4) {
            Some("zpub") => (BtcScript::P2wpkh, true),
            Some("ypub") => (BtcScript::P2shP2wpkh, true),
            Some("xpub") => (BtcScript::P2pkh, true),
            Some("vpub") => (BtcScript::P2wpkh, false),
            Some("upub") => (BtcScript::P2shP2wpkh, false),
            Some("tpub") => (BtcScript::P2pkh, false),
            _ => return Err(bad()),
        };
        let network = match network {
            BtcNetwork::Mainnet => Network::Bitcoin,
            BtcNetwork::Testnet => Network::Testnet,
            BtcNetwork::Signet => Network::Signet,
            BtcNetwork::Regtest => Network::Regtest,
        };
        if mainnet != (network == Network::Bitcoin) {
            return Err(DeriveError::BadKey(format!("{} key for the wrong network", &key[..4])));
        }
        data[..4].copy_from_slice(if mainnet { &XPUB } else { &TPUB });
        let xpub = Xpub::decode(&data).map_err(|_| bad())?;
        Ok(BtcAccount { xpub, script, network })
    }

    /// Forces the script type (e.g. a BIP-84 account exported with an `xpub` prefix).
    pub fn with_script(mut self, script: BtcScript) -> Self {
        self.script = script;
        self
    }

    /// The receiving address `0/index`.
    pub fn address(&self, index: u32) -> Result<String, DeriveError> {
        Ok(self.address_at(0, index)?.to_string())
    }

    /// The change address `1/index` (the internal chain), where a payout transaction's change goes.
    pub fn change_address_checked(&self, index: u32) -> Result<Address, DeriveError> {
        self.address_at(1, index)
    }

    /// The output script of `branch/index`.
    pub fn address_script(&self, branch: u32, index: u32) -> Result<bitcoin::ScriptBuf, DeriveError> {
        Ok(self.address_at(branch, index)?.script_pubkey())
    }

    /// The public key at `branch/index` below the account.
    pub fn child_key(&self, branch: u32, index: u32) -> Result<secp256k1::PublicKey, DeriveError> {
        child_at(&self.xpub, branch, index)
    }

    pub fn script(&self) -> BtcScript {
        self.script
    }

    pub fn network(&self) -> Network {
        self.network
    }

    pub fn xpub(&self) -> &Xpub {
        &self.xpub
    }

    /// The account's receiving (`branch` 0) or change (1) addresses as an output descriptor, e.g.
    /// `wpkh([d34db33f/84'/0'/0']xpub…/0/*)`; without a known origin the key stands alone. The checksum is the
    /// wallet's to add (Bitcoin Core's `getdescriptorinfo`).
    pub fn descriptor(&self, origin: Option<&str>, branch: u32) -> String {
        let key = format!("{}{}/{branch}/*", origin.unwrap_or_default(), self.xpub);
        match self.script {
            BtcScript::P2wpkh => format!("wpkh({key})"),
            BtcScript::P2shP2wpkh => format!("sh(wpkh({key}))"),
            BtcScript::P2pkh => format!("pkh({key})"),
        }
    }

    fn address_at(&self, branch: u32, index: u32) -> Result<Address, DeriveError> {
        let compressed = CompressedPublicKey(child_at(&self.xpub, branch, index)?);
        Ok(match self.script {
            BtcScript::P2wpkh => Address::p2wpkh(&compressed, self.network),
            BtcScript::P2shP2wpkh => Address::p2shwpkh(&compressed, self.network),
            BtcScript::P2pkh => Address::p2pkh(compressed, self.network),
        })
    }
}

/// An EVM account key (`m/44'/60'/0'`): receiving addresses are `0/index`, EIP-55 checksummed.
#[derive(Debug, Clone)]
pub struct EvmAccount {
    xpub: Xpub,
}

impl EvmAccount {
    pub fn parse(key: &str) -> Result<Self, DeriveError> {
        let xpub = Xpub::from_str(key.trim()).map_err(|_| DeriveError::BadKey(key.chars().take(8).collect()))?;
        Ok(EvmAccount { xpub })
    }

    pub fn address(&self, index: u32) -> Result<String, DeriveError> {
        let key = child(&self.xpub, index)?;
        let uncompressed = key.serialize_uncompressed();
        let mut hash = [0u8; 32];
        let mut keccak = Keccak::v256();
        keccak.update(&uncompressed[1..]);
        keccak.finalize(&mut hash);
        let mut address = [0u8; 20];
        address.copy_from_slice(&hash[12..]);
        Ok(eip55_checksum(&address))
    }
}

fn child(xpub: &Xpub, index: u32) -> Result<secp256k1::PublicKey, DeriveError> {
    child_at(xpub, 0, index)
}

fn child_at(xpub: &Xpub, branch: u32, index: u32) -> Result<secp256k1::PublicKey, DeriveError> {
    let secp = Secp256k1::verification_only();
    let path = [
        ChildNumber::from_normal_idx(branch).map_err(|_| DeriveError::BadIndex(branch))?,
        ChildNumber::from_normal_idx(index).map_err(|_| DeriveError::BadIndex(index))?,
    ];
    xpub.derive_pub(&secp, &path).map(|k| k.public_key).map_err(|_| DeriveError::BadIndex(index))
}

/// A fresh Solana Pay reference: 32 random bytes, base58 like a public key.
pub fn solana_reference() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base58::encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // BIP-84's test vector: mnemonic "abandon abandon … about", account 0.
    const BIP84_ZPUB: &str = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";

    #[test]
    fn bip84_receiving_addresses() {
        let account = BtcAccount::parse(BIP84_ZPUB, BtcNetwork::Mainnet).unwrap();
        assert_eq!(account.address(0).unwrap(), "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu");
        assert_eq!(account.address(1).unwrap(), "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g");
        assert!(BtcAccount::parse(BIP84_ZPUB, BtcNetwork::Testnet).is_err());
        assert!(BtcAccount::parse("zpub123", BtcNetwork::Mainnet).is_err());
    }

    #[test]
    fn evm_addresses_follow_bip44() {
        // m/44'/60'/0' of the "abandon … about" mnemonic; 0/0 is the well-known first MetaMask account.
        let seed = hex::decode("5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4").unwrap();
        let secp = Secp256k1::new();
        let master = bitcoin::bip32::Xpriv::new_master(Network::Bitcoin, &seed).unwrap();
        let path = bitcoin::bip32::DerivationPath::from_str("m/44'/60'/0'").unwrap();
        let xpub = Xpub::from_priv(&secp, &master.derive_priv(&secp, &path).unwrap()).to_string();
        let account = EvmAccount::parse(&xpub).unwrap();
        assert_eq!(account.address(0).unwrap(), "0x9858EfFD232B4033E47d90003D41EC34EcaEda94");
    }

    #[test]
    fn references_are_unique_32_byte_keys() {
        let (a, b) = (solana_reference(), solana_reference());
        assert_ne!(a, b);
        assert_eq!(base58::decode(&a).unwrap().len(), 32);
    }
}
