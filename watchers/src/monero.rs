//! Monero: one subaddress per quote, watched through monero-wallet-rpc.
//!
//! Monero outputs cannot be read from the chain without the view key, so the watcher does not follow blocks
//! itself: a view-only (or full) platform wallet served by `monero-wallet-rpc` does the scanning, and the watcher
//! asks it for incoming transfers (`get_transfers` with `in` and `pool`). Each XMR quote gets a fresh subaddress
//! of account 0 (`create_address`) when it is made; ticketing stores its minor index as the quote's
//! `derivation_index`, and the watcher matches an incoming transfer to a quote by `subaddr_index.minor`.
//!
//! The wallet reports one incoming entry per transaction and subaddress (the outputs to one subaddress in one
//! transaction are summed), so a report's output index is the subaddress's minor index: unique per
//! (txid, subaddress), as ticketing's idempotency needs.
//!
//! Finality is the unlock policy: received outputs are spendable after 10 confirmations, so a transfer is final
//! at `confirmations >= required` (ticketing's `confirmations_required(Xmr)`, 10 by default) and once its own
//! `unlock_time` is reached (a block height below 500,000,000, a unix time in seconds above). Before that it is
//! reported as pending, from the pool (0 confirmations) on. A transfer locked past the quote's watch window
//! (its unlock estimated at 2 minutes a block) would never be credited in time: it is recorded at once as a
//! refund due with reason `locked` (`Purchases::record_locked`), never dropped. A pool
//! transaction that disappears without being mined (double spend, dropped) is withdrawn with
//! `orphan_payment` once the wallet confirms it no longer knows it.
//!
//! Quote time: ticketing cannot make XMR quotes yet. It needs a source of subaddresses it calls while creating
//! a quote (outside its database transaction), storing the address as `payment_address` and the minor index as
//! `derivation_index`; [`MoneroWalletRpc::create_address`] is that call. A wallet restored from its seed only
//! finds payments to subaddresses within its lookahead (200 past the highest it knows), so after a restore
//! the lookahead must cover the highest `derivation_index` in `quotes`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chains::{Amount, Chain, Currency};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use ticketing::purchases::{PaymentOutcome, PaymentReport, QuoteRow};

use crate::watcher::{with_retry, PaymentWatcher, PollReport, RetryPolicy, WatchContext, WatchError};

/// `[watchers.monero]` in the gateway's configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MoneroConfig {
    /// monero-wallet-rpc's address, e.g. `http://127.0.0.1:18083` (calls go to `/json_rpc`).
    pub wallet_rpc_url: String,
    /// The wallet account whose subaddresses quotes get.
    #[serde(default)]
    pub account_index: u32,
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Ask the wallet to `refresh` before each tick (it refreshes by itself only every 20 s or so).
    #[serde(default = "default_true")]
    pub refresh: bool,
    #[serde(default = "default_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_poll_interval_ms() -> u64 {
    20_000
}
fn default_true() -> bool {
    true
}
fn default_timeout_ms() -> u64 {
    30_000
}

impl MoneroConfig {
    pub fn new(wallet_rpc_url: impl Into<String>) -> Self {
        MoneroConfig {
            wallet_rpc_url: wallet_rpc_url.into(),
            account_index: 0,
            poll_interval_ms: default_poll_interval_ms(),
            refresh: true,
            request_timeout_ms: default_timeout_ms(),
        }
    }
}

/// A subaddress's position in the wallet.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
pub struct SubaddressIndex {
    pub major: u32,
    pub minor: u32,
}

/// One entry of `get_transfers` / `get_transfer_by_txid`, the fields the watcher reads.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct WalletTransfer {
    pub txid: String,
    pub address: String,
    /// Piconero.
    pub amount: u64,
    #[serde(default)]
    pub confirmations: u64,
    /// 0 while in the pool.
    #[serde(default)]
    pub height: u64,
    pub subaddr_index: SubaddressIndex,
    #[serde(default)]
    pub unlock_time: u64,
    /// `in`, `pool`, `out`, `pending`, `failed`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub double_spend_seen: bool,
}

/// `get_transfers`' answer: lists the wallet has no entries for are absent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Transfers {
    #[serde(default, rename = "in")]
    pub incoming: Vec<WalletTransfer>,
    #[serde(default)]
    pub pool: Vec<WalletTransfer>,
    #[serde(default)]
    pub pending: Vec<WalletTransfer>,
}

/// A monero-wallet-rpc client: the calls the watcher, and quote creation, need.
#[derive(Debug, Clone)]
pub struct MoneroWalletRpc {
    http: reqwest::Client,
    url: String,
}

/// Quote-time subaddresses for ticketing: account 0's next subaddress, labelled with the quote id.
#[async_trait::async_trait]
impl ticketing::purchases::SubaddressSource for MoneroWalletRpc {
    async fn allocate(&self, label: &str) -> Result<(String, u32), String> {
        self.create_address(0, label).await.map_err(|e| e.to_string())
    }
}

impl MoneroWalletRpc {
    /// `base_url` is the server's root (`http://127.0.0.1:18083`); calls go to `{base_url}/json_rpc`.
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder().timeout(timeout).build().expect("reqwest client with rustls");
        MoneroWalletRpc { http, url: format!("{}/json_rpc", base_url.trim_end_matches('/')) }
    }

    pub async fn call(&self, method: &str, params: Value) -> Result<Value, WatchError> {
        crate::jsonrpc::call(&self.http, &self.url, json!("0"), method, params).await
    }

    /// A fresh subaddress of `account` labelled `label` (the quote id): its address and minor index.
    pub async fn create_address(&self, account: u32, label: &str) -> Result<(String, u32), WatchError> {
        let r = self.call("create_address", json!({ "account_index": account, "label": label })).await?;
        let address = r
            .get("address")
            .and_then(Value::as_str)
            .ok_or_else(|| WatchError::Rpc("create_address: no address".into()))?;
        let index = r
            .get("address_index")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| WatchError::Rpc("create_address: no address_index".into()))?;
        Ok((address.to_owned(), index))
    }

    /// Incoming transfers of `account` (mined above `min_height`, plus the pool) and outgoing pending ones.
    pub async fn get_transfers(&self, account: u32, min_height: u64) -> Result<Transfers, WatchError> {
        let r = self
            .call(
                "get_transfers",
                json!({
                    "in": true, "pending": true, "pool": true, "account_index": account,
                    "filter_by_height": min_height > 0, "min_height": min_height,
                }),
            )
            .await?;
        serde_json::from_value(r).map_err(|e| WatchError::Rpc(format!("get_transfers: {e}")))
    }

    /// Every entry the wallet has for `txid` in `account`; empty when it does not know the transaction.
    pub async fn get_transfers_by_txid(&self, account: u32, txid: &str) -> Result<Vec<WalletTransfer>, WatchError> {
        match self.call("get_transfer_by_txid", json!({ "txid": txid, "account_index": account })).await {
            Ok(r) => {
                let list = r
                    .get("transfers")
                    .cloned()
                    .unwrap_or_else(|| json!([r.get("transfer").cloned().unwrap_or(Value::Null)]));
                let list: Vec<Value> = serde_json::from_value(list).unwrap_or_default();
                Ok(list.into_iter().filter_map(|t| serde_json::from_value(t).ok()).collect())
            }
            // WALLET_RPC_ERROR_CODE_WRONG_TXID (-8): "Transaction not found."
            Err(WatchError::Rpc(msg)) if msg.contains("\"code\":-8") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The wallet's height (the chain height it has scanned to).
    pub async fn get_height(&self) -> Result<u64, WatchError> {
        let r = self.call("get_height", json!({})).await?;
        r.get("height").and_then(Value::as_u64).ok_or_else(|| WatchError::Rpc("get_height: no height".into()))
    }

    /// Makes the wallet scan new blocks now.
    pub async fn refresh(&self) -> Result<(), WatchError> {
        self.call("refresh", json!({})).await.map(drop)
    }
}

/// What one pass did: every report with ticketing's outcome, and the transfers skipped, by reason.
#[derive(Debug, Default, Clone)]
pub struct MoneroPass {
    pub reported: Vec<(PaymentReport, Option<PaymentOutcome>)>,
    pub skipped: BTreeMap<&'static str, u64>,
    pub orphaned: u64,
    pub wallet_height: u64,
}

/// Watches the platform wallet's incoming transfers to quote subaddresses.
pub struct MoneroWatcher {
    rpc: MoneroWalletRpc,
    config: MoneroConfig,
    retry: RetryPolicy,
    /// Transfers mined at or below this height were all reported final: later passes ask only above it.
    final_height: u64,
    /// Sightings reported but not final yet, (txid, minor index): re-checked until final or gone.
    pending: HashSet<(String, i64)>,
}

impl MoneroWatcher {
    pub fn new(config: MoneroConfig) -> Self {
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let rpc = MoneroWalletRpc::new(&config.wallet_rpc_url, timeout);
        MoneroWatcher {
            rpc,
            config,
            retry: RetryPolicy { timeout, ..RetryPolicy::default() },
            final_height: 0,
            pending: HashSet::new(),
        }
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn rpc(&self) -> &MoneroWalletRpc {
        &self.rpc
    }

    pub async fn scan(&mut self, ctx: &WatchContext) -> Result<MoneroPass, WatchError> {
        let mut pass = MoneroPass::default();
        let (rpc, account) = (&self.rpc, self.config.account_index);
        if self.config.refresh {
            with_retry(ctx.metrics(), &self.retry, "refresh", || rpc.refresh()).await?;
        }
        let height = with_retry(ctx.metrics(), &self.retry, "get_height", || rpc.get_height()).await?;
        pass.wallet_height = height;
        ctx.metrics().set_head(height as i64);
        // Quotes are read after the wallet: a transfer the wallet knows was sent after its quote existed.
        let quotes: HashMap<i64, QuoteRow> =
            ctx.watched_quotes().await?.into_iter().filter_map(|q| Some((q.derivation_index?, q))).collect();
        let window_ms = ctx.purchases().settings().watch_window_ms;
        let required =
            u64::try_from(ctx.purchases().settings().confirmations_required(Chain::Xmr).max(1)).unwrap_or(10);
        let min_height = self.final_height;
        let transfers =
            with_retry(ctx.metrics(), &self.retry, "get_transfers", || rpc.get_transfers(account, min_height)).await?;

        let mut present: HashSet<(String, i64)> = HashSet::new();
        let mut all_final_below = height.saturating_sub(required);
        for t in transfers.incoming.iter().chain(&transfers.pool) {
            let key = (t.txid.clone(), i64::from(t.subaddr_index.minor));
            present.insert(key.clone());
            let skip = |pass: &mut MoneroPass, reason: &'static str| {
                tracing::info!(chain = "xmr", txid = %t.txid, minor = t.subaddr_index.minor, reason, "transfer skipped");
                ctx.metrics().skipped.inc();
                *pass.skipped.entry(reason).or_default() += 1;
            };
            if t.subaddr_index.major != account || t.subaddr_index.minor == 0 {
                // The primary address is never a quote's: change and the operator's own deposits land there.
                skip(&mut pass, "not_a_quote_address");
                continue;
            }
            if t.double_spend_seen {
                skip(&mut pass, "double_spend_seen");
                continue;
            }
            let confirmations = if t.kind == "pool" || t.height == 0 { 0 } else { t.confirmations };
            let unlock = Unlock::of(t.unlock_time, height, ctx.now());
            let is_final = confirmations >= required && unlock == Unlock::Reached;
            let quote = quotes.get(&i64::from(t.subaddr_index.minor));
            // Confirmed as deeply as the policy asks, but locked until after its quote's window: decided now.
            let locked_past_window = confirmations >= required
                && match (unlock, quote) {
                    (Unlock::At(at), Some(q)) => at > q.expires_at.saturating_add(window_ms),
                    _ => false,
                };
            if !is_final && !locked_past_window && t.height > 0 {
                all_final_below = all_final_below.min(t.height - 1);
            }
            if quote.is_some_and(|q| q.payment_address != t.address) {
                skip(&mut pass, "address_mismatch");
                continue;
            }
            ctx.metrics().payments_seen.inc();
            let report = PaymentReport {
                chain: Chain::Xmr,
                txid: t.txid.clone(),
                output_index: i64::from(t.subaddr_index.minor),
                // A closed quote (late payment, second payment) is found by ticketing from the address.
                quote_id: quote.map(|q| q.id.clone()),
                memo: None,
                amount: Amount::new(Currency::Xmr, u128::from(t.amount)),
                to_address: t.address.clone(),
                from_address: None,
                block_height: (t.height > 0).then_some(t.height as i64),
                block_hash: None,
                confirmations: confirmations as i64,
                is_final,
            };
            if locked_past_window {
                tracing::warn!(chain = "xmr", txid = %t.txid, unlock_time = t.unlock_time, "transfer locked past the watch window: refund due");
                let outcome = ctx.purchases().record_locked(&report, ctx.now()).await.map_err(WatchError::Store)?;
                self.pending.remove(&key);
                pass.reported.push((report, Some(outcome)));
                continue;
            }
            let outcome = ctx.report(report.clone()).await?;
            if is_final {
                self.pending.remove(&key);
            } else {
                self.pending.insert(key);
            }
            pass.reported.push((report, outcome));
        }

        // A sighting the wallet no longer lists: mined below the filter (then it is in `incoming` next time we
        // look without it), or gone from the pool. Ask the wallet about it before withdrawing it.
        let missing: Vec<(String, i64)> = self.pending.iter().filter(|k| !present.contains(*k)).cloned().collect();
        for (txid, minor) in missing {
            let known = with_retry(ctx.metrics(), &self.retry, "get_transfer_by_txid", || {
                rpc.get_transfers_by_txid(account, &txid)
            })
            .await?;
            if !known
                .iter()
                .any(|t| i64::from(t.subaddr_index.minor) == minor && matches!(t.kind.as_str(), "in" | "pool"))
            {
                if ctx.orphan(&txid, minor).await? {
                    pass.orphaned += 1;
                }
                self.pending.remove(&(txid, minor));
            }
        }
        self.final_height = self.final_height.max(all_final_below);
        ctx.save_cursor(self.final_height as i64, "").await?;
        Ok(pass)
    }
}

/// Where a transfer's own `unlock_time` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unlock {
    /// No lock, or its height or time is reached.
    Reached,
    /// Locked until about this unix time (ms).
    At(i64),
}

impl Unlock {
    /// Monero's rule: below 500,000,000 `unlock_time` is a block height, above a unix time in seconds. Blocks
    /// come every two minutes on average.
    fn of(unlock_time: u64, height: u64, now_ms: i64) -> Unlock {
        const HEIGHT_LIMIT: u64 = 500_000_000;
        const BLOCK_MS: i64 = 120_000;
        if unlock_time == 0 {
            return Unlock::Reached;
        }
        if unlock_time < HEIGHT_LIMIT {
            if height >= unlock_time {
                return Unlock::Reached;
            }
            let blocks = i64::try_from(unlock_time - height).unwrap_or(i64::MAX);
            return Unlock::At(now_ms.saturating_add(blocks.saturating_mul(BLOCK_MS)));
        }
        let at = i64::try_from(unlock_time).unwrap_or(i64::MAX).saturating_mul(1000);
        if at <= now_ms {
            Unlock::Reached
        } else {
            Unlock::At(at)
        }
    }
}

#[async_trait::async_trait]
impl PaymentWatcher for MoneroWatcher {
    fn chain(&self) -> Chain {
        Chain::Xmr
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_interval_ms)
    }

    /// Reloads the height below which everything was final, and the sightings still pending.
    async fn resume(&mut self, ctx: &WatchContext) -> Result<(), WatchError> {
        self.final_height = ctx.cursor().await?.map(|c| u64::try_from(c.height).unwrap_or(0)).unwrap_or(0);
        self.pending = ctx.pending().await?.into_iter().map(|r| (r.txid, r.output_index)).collect();
        Ok(())
    }

    async fn poll_once(&mut self, ctx: &WatchContext) -> Result<PollReport, WatchError> {
        let pass = self.scan(ctx).await?;
        let finals = pass.reported.iter().filter(|(r, _)| r.is_final).count() as u64;
        Ok(PollReport {
            head_height: pass.wallet_height as i64,
            cursor_height: self.final_height as i64,
            reported_final: finals,
            reported_pending: pass.reported.len() as u64 - finals,
            orphaned: pass.orphaned,
            skipped: pass.skipped.values().sum(),
            ..PollReport::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlock_times_are_heights_or_unix_seconds() {
        assert_eq!(Unlock::of(0, 100, 5), Unlock::Reached);
        assert_eq!(Unlock::of(100, 100, 5), Unlock::Reached);
        assert_eq!(Unlock::of(110, 100, 5), Unlock::At(5 + 10 * 120_000));
        assert_eq!(Unlock::of(1_700_000_000, 100, 1_700_000_000_000), Unlock::Reached);
        assert_eq!(Unlock::of(1_700_000_001, 100, 1_700_000_000_000), Unlock::At(1_700_000_001_000));
        assert_eq!(Unlock::of(u64::MAX, 0, 0), Unlock::At(i64::MAX));
    }

    #[test]
    fn reads_wallet_rpc_transfers() {
        // Shape of monero-wallet-rpc 0.18's get_transfers answer (fields the watcher ignores trimmed).
        let answer = json!({
            "in": [{"address": "8Bx", "amount": 500000000000u64, "amounts": [500000000000u64], "confirmations": 12,
                "double_spend_seen": false, "fee": 30620000, "height": 91, "locked": false, "note": "",
                "payment_id": "0000000000000000", "subaddr_index": {"major": 0, "minor": 3}, "subaddr_indices": [{"major": 0, "minor": 3}],
                "suggested_confirmations_threshold": 1, "timestamp": 1700000000, "txid": "ab", "type": "in", "unlock_time": 0}],
            "pool": [{"address": "8By", "amount": 1, "double_spend_seen": false, "fee": 1, "height": 0, "subaddr_index": {"major": 0, "minor": 4},
                "timestamp": 1700000000, "txid": "cd", "type": "pool", "unlock_time": 0}]
        });
        let t: Transfers = serde_json::from_value(answer).unwrap();
        assert_eq!(t.incoming[0].subaddr_index, SubaddressIndex { major: 0, minor: 3 });
        assert_eq!(t.incoming[0].confirmations, 12);
        assert_eq!(t.pool[0].confirmations, 0);
        assert!(t.pending.is_empty());
    }
}
