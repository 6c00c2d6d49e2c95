//! Recording the transaction that paid a payout or refund (`gateway admin settle`, `POST /api/admin/ledger/{id}/settle`).
//!
//! Before anything is written: the txid must have its chain's format, and where a watcher runs for the chain
//! here (a `[watchers]` section), the transaction must exist and pay the entry's recorded address at least the
//! entry's amount in its currency (`watchers::lookup`). A transfer that pays several entries to one address (a
//! batch line) settles each of them with the same txid. Chains no watcher follows here (and Monero, which is not
//! looked up) are settled on the format check alone, and the answer says so.

use chains::{Chain, Currency};
use serde::Serialize;
use ticketing::payouts::SettleError;
use ticketing::purchases::LedgerRow;
use watchers::lookup::{TransferCheck, TransferLookup};

/// Why a settlement was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    #[error("`{txid}` is not a {chain} transaction id: {expected}")]
    InvalidTxid { chain: Chain, txid: String, expected: &'static str },
    #[error("the {chain} node does not know transaction {txid} (or it failed)")]
    TransactionNotFound { chain: Chain, txid: String },
    #[error("transaction {txid} pays nothing in {currency} to {address}")]
    PaysElsewhere { txid: String, currency: Currency, address: String },
    #[error("transaction {txid} pays {paid} {currency} to {address}, less than the {owed} owed")]
    PaysTooLittle { txid: String, currency: Currency, address: String, paid: String, owed: String },
    #[error("the {chain} node did not answer: {detail}")]
    NodeUnavailable { chain: Chain, detail: String },
    #[error(transparent)]
    Ledger(#[from] SettleError),
}

impl SettlementError {
    pub fn code(&self) -> &'static str {
        match self {
            SettlementError::InvalidTxid { .. } => "invalid_txid",
            SettlementError::TransactionNotFound { .. } => "transaction_not_found",
            SettlementError::PaysElsewhere { .. } => "transaction_pays_elsewhere",
            SettlementError::PaysTooLittle { .. } => "transaction_pays_too_little",
            SettlementError::NodeUnavailable { .. } => "chain_unavailable",
            SettlementError::Ledger(err) => err.code(),
        }
    }
}

/// A settled entry and how its transaction was checked.
#[derive(Debug, Serialize)]
pub struct Settled {
    #[serde(flatten)]
    pub entry: LedgerRow,
    /// `on_chain` (a watcher's node confirmed the transfer) or `format_only` (no watcher for the chain here).
    pub checked: &'static str,
}

/// The txid as the chain writes it (lower-case hex; EVM with `0x`), or why it is not one.
pub fn canonical_txid(chain: Chain, txid: &str) -> Result<String, SettlementError> {
    let txid = txid.trim();
    let invalid = |expected| SettlementError::InvalidTxid { chain, txid: txid.chars().take(128).collect(), expected };
    let hex_of = |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit());
    match chain {
        Chain::Btc | Chain::Xmr if hex_of(txid, 64) => Ok(txid.to_ascii_lowercase()),
        Chain::Btc | Chain::Xmr => Err(invalid("64 hex digits")),
        Chain::Eth | Chain::Pol | Chain::Bnb => match txid.strip_prefix("0x") {
            Some(hex) if hex_of(hex, 64) => Ok(format!("0x{}", hex.to_ascii_lowercase())),
            _ => Err(invalid("0x and 64 hex digits")),
        },
        Chain::Hive if hex_of(txid, 40) => Ok(txid.to_ascii_lowercase()),
        Chain::Hive => Err(invalid("40 hex digits")),
        Chain::Sol => match bitcoin::base58::decode(txid) {
            Ok(bytes) if bytes.len() == 64 => Ok(txid.to_owned()),
            _ => Err(invalid("a base58 signature of 64 bytes")),
        },
    }
}

/// Checks `txid` against entry `entry_id`'s destination and records it. `lookup`: the nodes of the watchers
/// configured here (none: format only).
pub async fn settle(
    store: &ticketing::Store,
    lookup: Option<&TransferLookup>,
    entry_id: i64,
    txid: &str,
    actor: &str,
    now: i64,
) -> Result<Settled, SettlementError> {
    let destination = store.settlement_destination(entry_id, now).await?;
    let txid = canonical_txid(destination.chain, txid)?;
    let currency = destination.amount.currency;
    let checked = match lookup {
        Some(lookup) => lookup
            .check(currency, &txid, &destination.address)
            .await
            .map_err(|e| SettlementError::NodeUnavailable { chain: destination.chain, detail: e.to_string() })?,
        None => None,
    };
    match &checked {
        None => {}
        Some(TransferCheck::NotFound) => {
            return Err(SettlementError::TransactionNotFound { chain: destination.chain, txid });
        }
        Some(TransferCheck::PaysElsewhere) => {
            return Err(SettlementError::PaysElsewhere { txid, currency, address: destination.address });
        }
        Some(TransferCheck::Pays(paid)) if paid.units < destination.amount.units => {
            return Err(SettlementError::PaysTooLittle {
                txid,
                currency,
                address: destination.address,
                paid: paid.to_string(),
                owed: destination.amount.to_string(),
            });
        }
        Some(TransferCheck::Pays(_)) => {}
    }
    let entry = store.settle_entry(entry_id, &txid, &destination.address, actor, now).await?;
    tracing::info!(entry_id, chain = %destination.chain, txid, checked = checked.is_some(), "ledger entry settled");
    Ok(Settled { entry, checked: if checked.is_some() { "on_chain" } else { "format_only" } })
}

/// The transaction lookup for the watchers configured in `settings` (none when no section is).
pub fn lookup_for(settings: &crate::configuration::Settings) -> anyhow::Result<Option<TransferLookup>> {
    let config = crate::startup::watchers_config(settings)?;
    let lookup = TransferLookup::new(&config)?;
    Ok(Chain::ALL.iter().any(|c| lookup.watches(*c)).then_some(lookup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txids_have_their_chains_format() {
        let btc = "AB".repeat(32);
        assert_eq!(canonical_txid(Chain::Btc, &format!(" {btc} ")).unwrap(), "ab".repeat(32));
        assert_eq!(
            canonical_txid(Chain::Eth, &format!("0x{}", "Cd".repeat(32))).unwrap(),
            format!("0x{}", "cd".repeat(32))
        );
        assert_eq!(canonical_txid(Chain::Hive, &"0f".repeat(20)).unwrap(), "0f".repeat(20));
        let sol = bitcoin::base58::encode(&[7u8; 64]);
        assert_eq!(canonical_txid(Chain::Sol, &sol).unwrap(), sol);
        for (chain, bad) in [
            (Chain::Btc, "ab".repeat(31)),
            (Chain::Btc, format!("0x{}", "ab".repeat(32))),
            (Chain::Xmr, "zz".repeat(32)),
            (Chain::Pol, "ab".repeat(32)),
            (Chain::Hive, "ab".repeat(32)),
            (Chain::Sol, bitcoin::base58::encode(&[7u8; 32])),
            (Chain::Sol, "0OIl".into()),
            (Chain::Bnb, "0xé".into()),
        ] {
            let err = canonical_txid(chain, &bad).unwrap_err();
            assert_eq!(err.code(), "invalid_txid", "{chain} {bad}");
        }
    }
}
