//! One Bitcoin transaction paying a batch of payouts, as an unsigned PSBT (BIP-174) for the platform's wallet.
//!
//! The gateway holds only the account's public key ([`BtcAccount`]), and the coins it owns are the payments buyers
//! sent to its per-quote addresses (`0/i`). So the PSBT spends those outputs, pays every payout address, and
//! sends the change to the account's internal chain (`1/i`). Each input carries what a signer needs without
//! asking a node: the output it spends (`witness_utxo`, so segwit accounts only: a legacy P2PKH account would
//! need each whole previous transaction), the redeem script for P2SH-P2WPKH, and the key's BIP-32 origin
//! (`[fingerprint/84'/0'/0']/0/i` when the account's origin is configured, else the account key's own
//! fingerprint and the path below it). The change output carries its origin too, so the signing wallet shows it
//! as its own. The account key itself is in the global `xpub` map.
//!
//! Fees: `fee_rate` sat/vB times the transaction's virtual size, estimated per script type (inputs 68 vB for
//! P2WPKH and 91 vB for P2SH-P2WPKH, each output its serialised size, 11 vB of overhead); a change below the
//! dust limit is left to the fee. Coins are taken largest first until the outputs and the fee are covered.
//! Every amount is whole satoshis (u64); nothing here is a float.

use std::collections::BTreeMap;
use std::str::FromStr;

use bitcoin::bip32::{ChildNumber, DerivationPath, Fingerprint, KeySource};
use bitcoin::psbt::Psbt;
use bitcoin::transaction::Version;
use bitcoin::{absolute, Address, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};

use crate::derive::{BtcAccount, BtcScript};

/// A coin the account owns: a buyer's payment to receiving address `0/index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    pub txid: String,
    pub vout: u32,
    pub sats: u64,
    pub index: u32,
}

/// What the batch transaction does.
#[derive(Debug, Clone)]
pub struct PayoutTransaction {
    pub psbt: Psbt,
    pub inputs_sats: u64,
    pub outputs_sats: u64,
    pub fee_sats: u64,
    /// `None` when the change was below the dust limit (it went to the fee).
    pub change: Option<(String, u64)>,
    pub vsize: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PsbtError {
    #[error("nothing to pay")]
    NothingToPay,
    #[error("`{0}` is not a Bitcoin address on this network")]
    BadAddress(String),
    #[error("payout of {0} sat to {1} is below the dust limit")]
    Dust(u64, String),
    #[error("the coins hold {have} sat, the payouts and fee need {need} sat")]
    InsufficientFunds { have: u64, need: u64 },
    #[error(
        "a legacy (P2PKH) account cannot be spent from a PSBT without the previous transactions; use a zpub or ypub"
    )]
    LegacyAccount,
    #[error("coin {0}: {1}")]
    BadCoin(String, String),
    #[error("key origin `{0}`: expected `[fingerprint/path]`, e.g. [d34db33f/84'/0'/0']")]
    BadOrigin(String),
    #[error("derivation: {0}")]
    Derivation(String),
}

/// The PSBT as wallets import it: base64 of its BIP-174 serialisation.
pub fn to_base64(psbt: &Psbt) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(psbt.serialize())
}

/// The origin as descriptors write it: `[d34db33f/84'/0'/0']`.
pub fn origin_text(origin: &KeySource) -> String {
    format!("[{}/{}]", origin.0, origin.1)
}

/// Reads [`to_base64`]'s text back.
pub fn from_base64(text: &str) -> Result<Psbt, PsbtError> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| PsbtError::Derivation(e.to_string()))?;
    Psbt::deserialize(&bytes).map_err(|e| PsbtError::Derivation(e.to_string()))
}

/// The account key's origin: the master key's fingerprint and the account's path (`[d34db33f/84'/0'/0']`; the
/// brackets may be left out, as an environment variable must, and `h` may stand for `'`).
pub fn parse_origin(text: &str) -> Result<KeySource, PsbtError> {
    let bad = || PsbtError::BadOrigin(text.to_owned());
    let trimmed = text.trim();
    let inner = match trimmed.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']').ok_or_else(bad)?,
        None => trimmed,
    };
    let (fingerprint, path) = inner.split_once('/').ok_or_else(bad)?;
    let fingerprint = Fingerprint::from_str(fingerprint).map_err(|_| bad())?;
    let path = DerivationPath::from_str(&format!("m/{}", path.replace('h', "'"))).map_err(|_| bad())?;
    Ok((fingerprint, path))
}

/// Builds the batch transaction paying `outputs` (address, sat) from `coins`, change to `1/change_index`.
pub fn payout_psbt(
    account: &BtcAccount,
    origin: Option<&KeySource>,
    coins: &[Coin],
    outputs: &[(String, u64)],
    fee_rate: u64,
    change_index: u32,
) -> Result<PayoutTransaction, PsbtError> {
    if outputs.is_empty() {
        return Err(PsbtError::NothingToPay);
    }
    let input_vbytes = match account.script() {
        BtcScript::P2wpkh => 68,
        BtcScript::P2shP2wpkh => 91,
        BtcScript::P2pkh => return Err(PsbtError::LegacyAccount),
    };
    let network = account.network();
    let mut tx_outputs = Vec::with_capacity(outputs.len() + 1);
    for (address, sats) in outputs {
        let script = Address::from_str(address)
            .ok()
            .and_then(|a| a.require_network(network).ok())
            .ok_or_else(|| PsbtError::BadAddress(address.clone()))?
            .script_pubkey();
        let value = Amount::from_sat(*sats);
        if value < script.minimal_non_dust() {
            return Err(PsbtError::Dust(*sats, address.clone()));
        }
        tx_outputs.push(TxOut { value, script_pubkey: script });
    }
    let outputs_sats: u64 = outputs.iter().map(|(_, s)| *s).sum();
    let change_script = account.change_address_checked(change_index)?.script_pubkey();
    let output_vbytes = |script: &ScriptBuf| 8 + 1 + script.len() as u64;
    let base = 11 + tx_outputs.iter().map(|o| output_vbytes(&o.script_pubkey)).sum::<u64>();

    // Largest coins first, until the payouts and the fee (with a change output) are covered.
    let mut sorted: Vec<&Coin> = coins.iter().collect();
    sorted.sort_by(|a, b| b.sats.cmp(&a.sats).then(a.txid.cmp(&b.txid)).then(a.vout.cmp(&b.vout)));
    let mut chosen = Vec::new();
    let mut inputs_sats = 0u64;
    let mut covered = false;
    for coin in sorted {
        chosen.push(coin);
        inputs_sats += coin.sats;
        // Enough without a change output (any change then goes to the fee, or pays for its own output).
        let vsize = base + input_vbytes * chosen.len() as u64;
        if inputs_sats >= outputs_sats + fee_rate * vsize {
            covered = true;
            break;
        }
    }
    if !covered {
        let vsize = base + input_vbytes * chosen.len().max(1) as u64;
        return Err(PsbtError::InsufficientFunds { have: inputs_sats, need: outputs_sats + fee_rate * vsize });
    }
    let with_change = base + output_vbytes(&change_script) + input_vbytes * chosen.len() as u64;
    let change_sats = inputs_sats.saturating_sub(outputs_sats + fee_rate * with_change);
    let change_dust = change_script.minimal_non_dust().to_sat();
    let (change, vsize) = if change_sats >= change_dust {
        tx_outputs.push(TxOut { value: Amount::from_sat(change_sats), script_pubkey: change_script.clone() });
        (Some((account.change_address_checked(change_index)?.to_string(), change_sats)), with_change)
    } else {
        (None, base + input_vbytes * chosen.len() as u64)
    };
    let fee_sats = inputs_sats - outputs_sats - change.as_ref().map_or(0, |(_, s)| *s);

    let mut inputs = Vec::with_capacity(chosen.len());
    for coin in &chosen {
        let txid = Txid::from_str(&coin.txid).map_err(|e| PsbtError::BadCoin(coin.txid.clone(), e.to_string()))?;
        inputs.push(TxIn {
            previous_output: OutPoint { txid, vout: coin.vout },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        });
    }
    let unsigned =
        Transaction { version: Version::TWO, lock_time: absolute::LockTime::ZERO, input: inputs, output: tx_outputs };
    let mut psbt = Psbt::from_unsigned_tx(unsigned).map_err(|e| PsbtError::Derivation(e.to_string()))?;

    let account_origin: KeySource = match origin {
        Some(origin) => origin.clone(),
        None => (account.xpub().fingerprint(), DerivationPath::master()),
    };
    psbt.xpub.insert(*account.xpub(), account_origin.clone());
    let key_source = |branch: u32, index: u32| -> Result<KeySource, PsbtError> {
        let step = |n| ChildNumber::from_normal_idx(n).map_err(|e| PsbtError::Derivation(e.to_string()));
        Ok((account_origin.0, account_origin.1.extend([step(branch)?, step(index)?])))
    };
    for (slot, coin) in psbt.inputs.iter_mut().zip(&chosen) {
        let key = account.child_key(0, coin.index)?;
        let script = account.address_script(0, coin.index)?;
        slot.witness_utxo = Some(TxOut { value: Amount::from_sat(coin.sats), script_pubkey: script });
        if account.script() == BtcScript::P2shP2wpkh {
            slot.redeem_script = Some(ScriptBuf::new_p2wpkh(&bitcoin::CompressedPublicKey(key).wpubkey_hash()));
        }
        slot.bip32_derivation = BTreeMap::from([(key, key_source(0, coin.index)?)]);
    }
    if change.is_some() {
        if let Some(last) = psbt.outputs.last_mut() {
            let key = account.child_key(1, change_index)?;
            if account.script() == BtcScript::P2shP2wpkh {
                last.redeem_script = Some(ScriptBuf::new_p2wpkh(&bitcoin::CompressedPublicKey(key).wpubkey_hash()));
            }
            last.bip32_derivation = BTreeMap::from([(key, key_source(1, change_index)?)]);
        }
    }
    Ok(PayoutTransaction { psbt, inputs_sats, outputs_sats, fee_sats, change, vsize })
}

impl From<crate::derive::DeriveError> for PsbtError {
    fn from(e: crate::derive::DeriveError) -> Self {
        PsbtError::Derivation(e.to_string())
    }
}
