//! What is due to creators, batched per chain, in the forms an operator sends it with (`gateway admin payouts
//! --format …`, `GET /api/admin/payouts/export`):
//!
//! - **CSV** for every chain: one line per (currency, address), the entries it settles and the creators paid;
//! - **Bitcoin**: one unsigned PSBT (BIP-174) paying every due BTC payout from the platform's account
//!   (`payments.btc_xpub`, origin `payments.btc_key_origin`), spending the buyers' payments the account received
//!   that the Bitcoin watcher's node says are unspent (`chains::psbt`), ready to sign in the wallet holding the seed;
//! - **Hive**: the `transfer` operations from the platform account (`payments.hive_account`), as Hive Keychain's
//!   `requestBroadcast` and `condenser_api.broadcast_transaction` take them.
//!
//! Held payouts (no payout address) are never in a batch; each batch lists them by entry id. After sending, the
//! operator settles each entry with the transaction id (`gateway admin settle`), which `crate::payments::settlement` checks.

use chains::derive::BtcAccount;
use chains::psbt::{Coin, PsbtError};
use chains::{Amount, Chain, Currency};
use serde::Serialize;
use serde_json::{json, Value};
use ticketing::payouts::{batches, PayoutBatch};
use ticketing::{Store, StoreError};
use watchers::lookup::TransferLookup;

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Every payout (due now, or all) with its address and hold, as JSON.
    Json,
    /// The batches per chain, as JSON.
    Batches,
    Csv,
    Psbt,
    Hive,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Format::Json),
            "batches" => Ok(Format::Batches),
            "csv" => Ok(Format::Csv),
            "psbt" => Ok(Format::Psbt),
            "hive" => Ok(Format::Hive),
            other => Err(format!("`{other}` is not json, batches, csv, psbt or hive")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no Bitcoin payout is due (held ones need their creator's address)")]
    NothingDue,
    #[error("payments.btc_xpub is not set: the platform has no Bitcoin account to pay from")]
    NoBtcAccount,
    #[error("a PSBT spends the account's coins, and only the Bitcoin watcher's node knows which are unspent: configure [watchers.btc]")]
    BtcWatcherRequired,
    #[error("payments.btc_key_origin: {0}")]
    BadOrigin(PsbtError),
    #[error(transparent)]
    Psbt(#[from] PsbtError),
    #[error("the Bitcoin node did not answer: {0}")]
    Node(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ExportError {
    pub fn code(&self) -> &'static str {
        match self {
            ExportError::NothingDue => "nothing_due",
            ExportError::NoBtcAccount => "payment_method_unavailable",
            ExportError::BtcWatcherRequired => "btc_watcher_required",
            ExportError::BadOrigin(_) => "bad_configuration",
            ExportError::Psbt(PsbtError::InsufficientFunds { .. }) => "insufficient_funds",
            ExportError::Psbt(_) => "psbt_unbuildable",
            ExportError::Node(_) => "chain_unavailable",
            ExportError::Store(_) => "store_unavailable",
        }
    }
}

/// The due payouts, batched per chain.
pub async fn due_batches(store: &Store, now: i64) -> Result<Vec<PayoutBatch>, StoreError> {
    let payouts = store.payouts(true, now).await?;
    batches(&payouts, now)
}

/// CSV of the batches (of one chain, or all): `chain,currency,address,amount,amount_units,creators,entries`.
pub fn csv(batches: &[PayoutBatch], chain: Option<Chain>) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut write = |record: &[String]| out.write_record(record).expect("writing to a Vec cannot fail");
    write(&["chain", "currency", "address", "amount", "amount_units", "creators", "entries"].map(String::from));
    for batch in batches.iter().filter(|b| chain.is_none_or(|c| c == b.chain)) {
        for line in &batch.lines {
            let entries: Vec<String> = line.entries.iter().map(i64::to_string).collect();
            write(&[
                batch.chain.to_string(),
                line.currency.to_string(),
                line.address.clone(),
                line.amount.to_string(),
                line.amount.units.to_string(),
                line.creators.join(" "),
                entries.join(" "),
            ]);
        }
    }
    String::from_utf8(out.into_inner().expect("a Vec writer flushes")).expect("CSV of UTF-8 fields is UTF-8")
}

/// Hive's fixed three-decimal amount text: `80.000 HIVE`.
fn hive_amount(amount: Amount) -> String {
    format!("{}.{:03} {}", amount.units / 1000, amount.units % 1000, amount.currency)
}

/// The Hive batch as `transfer` operations from `from`.
pub fn hive_transfers(batches: &[PayoutBatch], from: &str) -> Value {
    let ops: Vec<Value> = batches
        .iter()
        .filter(|b| b.chain == Chain::Hive)
        .flat_map(|b| &b.lines)
        .map(|line| {
            let entries: Vec<String> = line.entries.iter().map(i64::to_string).collect();
            json!(["transfer", {
                "from": from,
                "to": line.address,
                "amount": hive_amount(line.amount),
                "memo": format!("dlux payout: ledger entries {}", entries.join(" ")),
            }])
        })
        .collect();
    Value::Array(ops)
}

/// The Bitcoin batch: the PSBT and what it does.
#[derive(Debug, Serialize)]
pub struct BtcBatch {
    /// Base64, as wallets import it.
    pub psbt: String,
    pub inputs: usize,
    pub inputs_sats: u64,
    pub outputs_sats: u64,
    pub fee_sats: u64,
    pub fee_rate: u64,
    pub vsize: u64,
    pub change_address: Option<String>,
    pub change_sats: Option<u64>,
    /// The ledger entries the transaction pays: settle each with its txid once broadcast.
    pub entries: Vec<i64>,
    /// Held BTC payouts (no payout address), not in the transaction.
    pub held: Vec<i64>,
}

/// Builds the Bitcoin batch's PSBT from the platform's account, spending coins the watcher's node says are unspent.
pub async fn btc_psbt(
    store: &Store,
    account: Option<&BtcAccount>,
    origin: Option<&str>,
    lookup: Option<&TransferLookup>,
    batches: &[PayoutBatch],
    fee_rate: u64,
) -> Result<BtcBatch, ExportError> {
    let account = account.ok_or(ExportError::NoBtcAccount)?;
    let origin = origin.map(chains::psbt::parse_origin).transpose().map_err(ExportError::BadOrigin)?;
    let batch = batches.iter().find(|b| b.chain == Chain::Btc);
    let held = batch.map(|b| b.held.clone()).unwrap_or_default();
    let lines: Vec<_> =
        batch.map(|b| b.lines.iter().filter(|l| l.currency == Currency::Btc).collect()).unwrap_or_default();
    if lines.is_empty() {
        return Err(ExportError::NothingDue);
    }
    let lookup = lookup.ok_or(ExportError::BtcWatcherRequired)?;
    let mut coins = Vec::new();
    for coin in store.btc_received_coins().await? {
        let vout = u32::try_from(coin.output_index).map_err(|_| StoreError::Corrupt("output index".into()))?;
        match lookup.btc_spent(&coin.txid, vout).await.map_err(|e| ExportError::Node(e.to_string()))? {
            Some(false) => {}
            Some(true) => continue,
            None => return Err(ExportError::BtcWatcherRequired),
        }
        coins.push(Coin {
            txid: coin.txid,
            vout,
            sats: coin.amount_units.parse().map_err(|_| StoreError::Corrupt("payment amount".into()))?,
            index: u32::try_from(coin.derivation_index).map_err(|_| StoreError::Corrupt("derivation index".into()))?,
        });
    }
    let outputs: Vec<(String, u64)> = lines
        .iter()
        .map(|l| {
            Ok((
                l.address.clone(),
                u64::try_from(l.amount.units).map_err(|_| StoreError::Corrupt("payout amount".into()))?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    let change_index = store.next_btc_change_index().await?;
    let built = chains::psbt::payout_psbt(account, origin.as_ref(), &coins, &outputs, fee_rate, change_index)?;
    Ok(BtcBatch {
        psbt: chains::psbt::to_base64(&built.psbt),
        inputs: built.psbt.inputs.len(),
        inputs_sats: built.inputs_sats,
        outputs_sats: built.outputs_sats,
        fee_sats: built.fee_sats,
        fee_rate,
        vsize: built.vsize,
        change_address: built.change.as_ref().map(|(a, _)| a.clone()),
        change_sats: built.change.map(|(_, s)| s),
        entries: lines.iter().flat_map(|l| l.entries.iter().copied()).collect(),
        held,
    })
}

/// An export, ready to print or serve.
#[derive(Debug)]
pub struct Rendered {
    pub content_type: &'static str,
    pub body: String,
}

/// What an operator asked to export.
#[derive(Debug, Clone, Copy)]
pub struct ExportRequest {
    pub format: Format,
    /// Narrows CSV to one chain.
    pub chain: Option<Chain>,
    /// The PSBT's fee rate, sat/vB (default `payments.btc_payout_fee_rate`).
    pub fee_rate: Option<u64>,
    /// Every payout rather than those due now ([`Format::Json`] only).
    pub all: bool,
}

/// Renders the request's format of what is due now.
pub async fn render(
    store: &Store,
    settings: &crate::configuration::Settings,
    btc_account: Option<&BtcAccount>,
    request: ExportRequest,
    now: i64,
) -> Result<Rendered, ExportError> {
    let ExportRequest { format, chain, fee_rate, all } = request;
    let json = |value: &dyn erased::Json| Rendered { content_type: "application/json", body: value.pretty() };
    Ok(match format {
        Format::Json => json(&store.payouts(!all, now).await?),
        Format::Batches => json(&due_batches(store, now).await?),
        Format::Csv => {
            Rendered { content_type: "text/csv; charset=utf-8", body: csv(&due_batches(store, now).await?, chain) }
        }
        Format::Hive => json(&hive_transfers(&due_batches(store, now).await?, &settings.payments.hive_account)),
        Format::Psbt => {
            let lookup =
                crate::payments::settlement::lookup_for(settings).map_err(|e| ExportError::Node(e.to_string()))?;
            let batches = due_batches(store, now).await?;
            let fee_rate = fee_rate.unwrap_or(settings.payments.btc_payout_fee_rate);
            let origin = settings.payments.btc_key_origin.as_deref();
            json(&btc_psbt(store, btc_account, origin, lookup.as_ref(), &batches, fee_rate).await?)
        }
    })
}

mod erased {
    /// Any serialisable value, pretty-printed (JSON of our own types cannot fail).
    pub trait Json {
        fn pretty(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn pretty(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_default()
        }
    }
}

/// `gateway admin addresses --chain C`: the derivation report, with the account's output descriptor for Bitcoin.
#[derive(Debug, Serialize)]
pub struct AddressesReport {
    #[serde(flatten)]
    pub derivation: ticketing::purchases::derivation::DerivationReport,
    /// The gap limit to set in a wallet restored from the seed (`largest_unpaid_run` never exceeds `max_gap`).
    pub wallet_gap_limit: u32,
    /// Bitcoin: the account's receiving addresses (`/0/*`) as an output descriptor.
    pub descriptor: Option<String>,
    /// Bitcoin: its change addresses (`/1/*`), where payout batches send their change.
    pub change_descriptor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AddressesError {
    #[error("{0} quotes have no derived addresses (only btc, eth, pol and bnb do)")]
    NotDerived(Chain),
    #[error("payments.btc_key_origin: {0}")]
    BadOrigin(PsbtError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn addresses(
    store: &Store,
    settings: &crate::configuration::Settings,
    payments: &ticketing::purchases::PaymentSettings,
    chain: Chain,
) -> Result<AddressesReport, AddressesError> {
    if !(chain == Chain::Btc || chain.is_evm()) {
        return Err(AddressesError::NotDerived(chain));
    }
    let derivation = store.derivation_report(chain, payments.address_reuse).await?;
    let origin = match settings.payments.btc_key_origin.as_deref().map(chains::psbt::parse_origin).transpose() {
        Ok(origin) => origin.map(|o| chains::psbt::origin_text(&o)),
        Err(err) => return Err(AddressesError::BadOrigin(err)),
    };
    let origin = origin.as_deref();
    let (descriptor, change_descriptor) = match (chain, &payments.btc) {
        (Chain::Btc, Some(account)) => (Some(account.descriptor(origin, 0)), Some(account.descriptor(origin, 1))),
        _ => (None, None),
    };
    Ok(AddressesReport {
        wallet_gap_limit: payments.address_reuse.max_gap + 1,
        derivation,
        descriptor,
        change_descriptor,
    })
}
