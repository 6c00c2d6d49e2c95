//! Hive: HIVE and HBD transfers to the platform account, matched by memo.
//!
//! Every Hive quote is paid to the one platform account with a memo naming event, wallet and quote
//! (`event:{id}:wallet:{account}:quote:{quote id}`), so the watcher follows that account's history rather than
//! blocks: `account_history_api.get_account_history` filtered to transfer operations, irreversible only. Its
//! cursor is the history sequence number of the last operation handled (saved as the cursor's height, with
//! the operation's block number in the hash column), so a restart resumes exactly after it.
//!
//! Hive has deterministic finality: an operation in a block at or below `last_irreversible_block_num` can never
//! be undone, and only such operations are reported, always as final. The node is asked not to return
//! reversible operations at all; the watcher checks the block numbers anyway and stops before the first
//! operation above the irreversible block, to read it again on a later tick.
//!
//! Which transfers are skipped, and why:
//! - outgoing ones (our own payouts and refunds) and anything that is not a HIVE or HBD amount;
//! - a transfer whose memo is not of the form above (`malformed_memo`). It is counted and logged, not refunded:
//!   the account also receives transfers that are not ticket payments (exchange withdrawals, top-ups by the
//!   operator, encrypted `#` memos), and a refund would send back money that was never meant as a purchase. An
//!   operator reads these from the log and settles them by hand.
//!
//! A well-formed memo is always reported: ticketing answers a memo naming an unknown event or quote with a
//! refund due, and a wrong currency or amount with its own outcome.

use std::time::Duration;

use chains::{Amount, Chain, Currency};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use ticketing::purchases::{parse_memo, PaymentOutcome, PaymentReport};

use crate::watcher::{with_retry, PaymentWatcher, PollReport, RetryPolicy, WatchContext, WatchError};

/// Bit of `transfer_operation` (operation id 2) in `operation_filter_low`.
pub const TRANSFER_OPERATION_FILTER: u64 = 1 << 2;
/// Hive's asset identifiers in the NAI form of amounts.
pub const NAI_HIVE: &str = "@@000000021";
pub const NAI_HBD: &str = "@@000000013";

/// `[watchers.hive]` in the gateway's configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HiveConfig {
    /// An API node (`https://api.hive.blog`, `https://api.openhive.network`, or one's own hived).
    pub rpc_url: String,
    /// The platform account buyers pay (ticketing's `PaymentSettings::hive_account`).
    pub account: String,
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// History entries per request (hived allows up to 1000).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Where to start when no cursor was ever saved: the history sequence number of the first operation to
    /// handle. Default 0 (the whole history; reports are idempotent, so this is only slow once).
    #[serde(default)]
    pub start_sequence: i64,
    #[serde(default = "default_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_poll_interval_ms() -> u64 {
    3_000
}
fn default_page_size() -> u32 {
    1000
}
fn default_timeout_ms() -> u64 {
    15_000
}

impl HiveConfig {
    pub fn new(rpc_url: impl Into<String>, account: impl Into<String>) -> Self {
        HiveConfig {
            rpc_url: rpc_url.into(),
            account: account.into(),
            poll_interval_ms: default_poll_interval_ms(),
            page_size: default_page_size(),
            start_sequence: 0,
            request_timeout_ms: default_timeout_ms(),
        }
    }
}

/// A minimal Hive JSON-RPC (appbase) client.
#[derive(Debug, Clone)]
pub struct HiveRpc {
    http: reqwest::Client,
    url: String,
}

/// One entry of an account's history: its sequence number and the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub sequence: i64,
    pub trx_id: String,
    pub block: i64,
    pub op_in_trx: i64,
    /// `None` for operations other than `transfer`.
    pub transfer: Option<TransferOp>,
}

/// A `transfer_operation`'s fields, amount still as the node sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferOp {
    pub from: String,
    pub to: String,
    pub amount: Value,
    pub memo: String,
}

impl HiveRpc {
    pub fn new(url: impl Into<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder().timeout(timeout).build().expect("reqwest client with rustls");
        HiveRpc { http, url: url.into() }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, WatchError> {
        crate::jsonrpc::call(&self.http, &self.url, json!(1), method, params).await
    }

    /// `last_irreversible_block_num` and `head_block_number`.
    pub async fn irreversible_and_head(&self) -> Result<(i64, i64), WatchError> {
        let props = self.call("database_api.get_dynamic_global_properties", json!({})).await?;
        let field = |name: &str| {
            props
                .get(name)
                .and_then(Value::as_i64)
                .ok_or_else(|| WatchError::Rpc(format!("get_dynamic_global_properties: no {name}")))
        };
        Ok((field("last_irreversible_block_num")?, field("head_block_number")?))
    }

    /// Up to `limit` transfer operations of `account` with sequence numbers at or below `start` (`-1`: the
    /// newest), oldest first, irreversible blocks only.
    pub async fn transfer_history(
        &self,
        account: &str,
        start: i64,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, WatchError> {
        let result = self
            .call(
                "account_history_api.get_account_history",
                json!({
                    "account": account,
                    "start": start,
                    "limit": limit,
                    "operation_filter_low": TRANSFER_OPERATION_FILTER,
                    "include_reversible": false,
                }),
            )
            .await?;
        let history = result
            .get("history")
            .and_then(Value::as_array)
            .ok_or_else(|| WatchError::Rpc("get_account_history: no history".into()))?;
        let mut entries = history
            .iter()
            .map(read_history_entry)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| WatchError::Rpc(format!("get_account_history: {why}")))?;
        entries.sort_by_key(|e| e.sequence);
        Ok(entries)
    }
}

/// Reads `[sequence, {trx_id, block, op_in_trx, op}]`. The operation comes as `{type, value}` from appbase
/// APIs and as `[name, value]` from `condenser_api`; both are accepted.
pub fn read_history_entry(entry: &Value) -> Result<HistoryEntry, String> {
    let pair = entry.as_array().filter(|a| a.len() == 2).ok_or("history entry is not a pair")?;
    let sequence = pair[0].as_i64().ok_or("sequence is not a number")?;
    let item = &pair[1];
    let text =
        |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned).ok_or(format!("no {name}"));
    let trx_id = text(item, "trx_id")?;
    let block = item.get("block").and_then(Value::as_i64).ok_or("no block")?;
    let op_in_trx = item.get("op_in_trx").and_then(Value::as_i64).unwrap_or(0);
    let op = item.get("op").ok_or("no op")?;
    let (name, value) = match op {
        Value::Object(o) => (o.get("type").and_then(Value::as_str).unwrap_or(""), o.get("value")),
        Value::Array(a) if a.len() == 2 => (a[0].as_str().unwrap_or(""), a.get(1)),
        _ => return Err("malformed op".into()),
    };
    let transfer = match (name, value) {
        ("transfer_operation" | "transfer", Some(v)) => Some(TransferOp {
            from: text(v, "from")?,
            to: text(v, "to")?,
            amount: v.get("amount").cloned().ok_or("transfer without amount")?,
            memo: v.get("memo").and_then(Value::as_str).unwrap_or("").to_owned(),
        }),
        _ => None,
    };
    Ok(HistoryEntry { sequence, trx_id, block, op_in_trx, transfer })
}

/// A Hive amount in either wire form: legacy `"25.000 HIVE"` / `"10.000 HBD"`, or NAI
/// `{"amount":"25000","precision":3,"nai":"@@000000021"}`. Exactly three decimals; other assets are `None`.
pub fn parse_hive_amount(amount: &Value) -> Option<Amount> {
    match amount {
        Value::String(s) => {
            let (number, symbol) = s.trim().split_once(' ')?;
            let currency = match symbol.trim() {
                "HIVE" => Currency::Hive,
                "HBD" => Currency::Hbd,
                _ => return None,
            };
            let (int, frac) = number.split_once('.')?;
            if frac.len() != 3 || int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
                return None;
            }
            Amount::parse(currency, number).ok()
        }
        Value::Object(o) => {
            let currency = match o.get("nai").and_then(Value::as_str)? {
                NAI_HIVE => Currency::Hive,
                NAI_HBD => Currency::Hbd,
                _ => return None,
            };
            if o.get("precision").and_then(Value::as_u64)? != 3 {
                return None;
            }
            let units = o.get("amount").and_then(Value::as_str)?;
            if units.is_empty() || !units.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(Amount::new(currency, units.parse().ok()?))
        }
        _ => None,
    }
}

/// Where the watcher is in the account's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HiveCursor {
    /// The last history sequence number handled; `-1` before the first.
    pub sequence: i64,
    /// Its block number (informational).
    pub block: i64,
}

/// What one pass did: every report with ticketing's outcome, and the transfers skipped, by reason.
#[derive(Debug, Default, Clone)]
pub struct HivePass {
    pub reported: Vec<(PaymentReport, Option<PaymentOutcome>)>,
    pub skipped: std::collections::BTreeMap<&'static str, u64>,
    /// History entries above the irreversible block, left for a later pass.
    pub waiting_reversible: u64,
    pub pages: u64,
    pub last_irreversible: i64,
}

/// Follows the platform account's transfer history.
pub struct HiveWatcher {
    rpc: HiveRpc,
    config: HiveConfig,
    retry: RetryPolicy,
    cursor: HiveCursor,
}

impl HiveWatcher {
    pub fn new(config: HiveConfig) -> Self {
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let rpc = HiveRpc::new(&config.rpc_url, timeout);
        let cursor = HiveCursor { sequence: config.start_sequence - 1, block: 0 };
        HiveWatcher { rpc, config, retry: RetryPolicy { timeout, ..RetryPolicy::default() }, cursor }
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn cursor(&self) -> HiveCursor {
        self.cursor
    }

    /// Reads the transfers after the cursor, newest page first back to the cursor (the only direction hived
    /// pages in), then handles them oldest first up to the irreversible block, saving the cursor as it goes.
    pub async fn scan(&mut self, ctx: &WatchContext) -> Result<HivePass, WatchError> {
        let mut pass = HivePass::default();
        let rpc = &self.rpc;
        let (irreversible, head) =
            with_retry(ctx.metrics(), &self.retry, "get_dynamic_global_properties", || rpc.irreversible_and_head())
                .await?;
        ctx.metrics().set_head(head);
        pass.last_irreversible = irreversible;

        let account = self.config.account.as_str();
        let page_size = self.config.page_size.clamp(1, 1000);
        let mut fresh: Vec<HistoryEntry> = Vec::new();
        let mut start: i64 = -1;
        loop {
            // hived refuses a page that would reach below sequence 0.
            let limit =
                if start < 0 { page_size } else { page_size.min(u32::try_from(start + 1).unwrap_or(page_size)) };
            let page = with_retry(ctx.metrics(), &self.retry, "get_account_history", || {
                rpc.transfer_history(account, start, limit)
            })
            .await?;
            pass.pages += 1;
            let Some(oldest) = page.first().map(|e| e.sequence) else { break };
            let full = page.len() as u32 >= limit;
            fresh.extend(
                page.into_iter().filter(|e| e.sequence > self.cursor.sequence && (start < 0 || e.sequence <= start)),
            );
            if oldest <= self.cursor.sequence + 1 || !full || oldest == 0 {
                break;
            }
            start = oldest - 1;
        }
        fresh.sort_by_key(|e| e.sequence);
        fresh.dedup_by_key(|e| e.sequence);

        for entry in fresh {
            if entry.block > irreversible {
                // Everything after it is at least as new: all of it waits for the next pass.
                pass.waiting_reversible += 1;
                break;
            }
            self.handle(ctx, &entry, &mut pass).await?;
            self.cursor = HiveCursor { sequence: entry.sequence, block: entry.block };
            ctx.save_cursor(entry.sequence, &entry.block.to_string()).await?;
        }
        Ok(pass)
    }

    async fn handle(&self, ctx: &WatchContext, entry: &HistoryEntry, pass: &mut HivePass) -> Result<(), WatchError> {
        let skip = |pass: &mut HivePass, reason: &'static str| {
            tracing::info!(chain = "hive", trx = %entry.trx_id, sequence = entry.sequence, reason, "transfer skipped");
            ctx.metrics().skipped.inc();
            *pass.skipped.entry(reason).or_default() += 1;
        };
        let Some(transfer) = &entry.transfer else { return Ok(()) };
        if transfer.to != self.config.account {
            return Ok(()); // our own outgoing transfer: not a payment, nothing to count
        }
        let Some(amount) = parse_hive_amount(&transfer.amount) else {
            skip(pass, "bad_amount");
            return Ok(());
        };
        if parse_memo(&transfer.memo).is_none() {
            skip(pass, "malformed_memo");
            return Ok(());
        }
        ctx.metrics().payments_seen.inc();
        let report = PaymentReport {
            chain: Chain::Hive,
            txid: entry.trx_id.clone(),
            output_index: entry.op_in_trx,
            quote_id: None,
            memo: Some(transfer.memo.clone()),
            amount,
            to_address: transfer.to.clone(),
            from_address: Some(transfer.from.clone()),
            block_height: Some(entry.block),
            block_hash: None,
            confirmations: 1,
            is_final: true,
        };
        let outcome = ctx.report(report.clone()).await?;
        tracing::info!(chain = "hive", trx = %entry.trx_id, from = %transfer.from, ?outcome, "transfer reported");
        pass.reported.push((report, outcome));
        Ok(())
    }
}

#[async_trait::async_trait]
impl PaymentWatcher for HiveWatcher {
    fn chain(&self) -> Chain {
        Chain::Hive
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_interval_ms)
    }

    /// Reloads the history cursor. Every Hive report is final, so there are no pending sightings to re-check.
    async fn resume(&mut self, ctx: &WatchContext) -> Result<(), WatchError> {
        let quoted = &ctx.purchases().settings().hive_account;
        if *quoted != self.config.account {
            return Err(WatchError::Config(format!(
                "watchers.hive.account is `{}` but quotes tell buyers to pay `{quoted}`",
                self.config.account
            )));
        }
        if let Some(saved) = ctx.cursor().await? {
            self.cursor = HiveCursor { sequence: saved.height, block: saved.block_hash.parse().unwrap_or(0) };
            ctx.metrics().set_cursor(saved.height);
        }
        Ok(())
    }

    async fn poll_once(&mut self, ctx: &WatchContext) -> Result<PollReport, WatchError> {
        let pass = self.scan(ctx).await?;
        Ok(PollReport {
            head_height: pass.last_irreversible,
            cursor_height: self.cursor.sequence,
            reported_final: pass.reported.len() as u64,
            skipped: pass.skipped.values().sum(),
            ..PollReport::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_both_forms() {
        assert_eq!(parse_hive_amount(&json!("25.000 HIVE")), Some(Amount::new(Currency::Hive, 25_000)));
        assert_eq!(parse_hive_amount(&json!("10.005 HBD")), Some(Amount::new(Currency::Hbd, 10_005)));
        assert_eq!(
            parse_hive_amount(&json!({"amount": "25000", "precision": 3, "nai": "@@000000021"})),
            Some(Amount::new(Currency::Hive, 25_000))
        );
        assert_eq!(
            parse_hive_amount(&json!({"amount": "1", "precision": 3, "nai": "@@000000013"})),
            Some(Amount::new(Currency::Hbd, 1))
        );
        for bad in [
            json!("25 HIVE"),
            json!("25.0000 HIVE"),
            json!("25.000 STEEM"),
            json!("-1.000 HIVE"),
            json!("1.000"),
            json!({"amount": "1000", "precision": 6, "nai": "@@000000037"}),
            json!({"amount": "1000", "precision": 2, "nai": "@@000000021"}),
            json!({"amount": "-5", "precision": 3, "nai": "@@000000021"}),
            json!(25),
        ] {
            assert_eq!(parse_hive_amount(&bad), None, "{bad}");
        }
    }

    #[test]
    fn history_entries_in_both_op_forms() {
        let appbase = json!([7, {"trx_id": "ab", "block": 9, "trx_in_block": 0, "op_in_trx": 1, "virtual_op": false,
            "timestamp": "2024-01-01T00:00:00", "op": {"type": "transfer_operation", "value": {"from": "a", "to": "b",
            "amount": "1.000 HIVE", "memo": "m"}}}]);
        let condenser = json!([7, {"trx_id": "ab", "block": 9, "trx_in_block": 0, "op_in_trx": 1, "virtual_op": 0,
            "timestamp": "2024-01-01T00:00:00", "op": ["transfer", {"from": "a", "to": "b", "amount": "1.000 HIVE", "memo": "m"}]}]);
        assert_eq!(read_history_entry(&appbase).unwrap(), read_history_entry(&condenser).unwrap());
        let vote =
            json!([8, {"trx_id": "cd", "block": 9, "op_in_trx": 0, "op": {"type": "vote_operation", "value": {}}}]);
        assert_eq!(read_history_entry(&vote).unwrap().transfer, None);
    }
}
