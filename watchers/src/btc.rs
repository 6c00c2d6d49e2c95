//! Bitcoin over an Esplora-compatible REST API (Blockstream's esplora, mempool.space, electrs' HTTP API).
//!
//! Each quote has its own address (derived by ticketing), so every output paying an open quote's address is
//! a payment: a transaction paying one quote in two outputs makes two reports (output index = vout). Blocks
//! are read by height (`/block-height/{h}`, then `/block/{hash}` and its transaction pages), checked to
//! extend the previous block, and followed by the shared [`ChainFollower`]. With `watch_mempool`, each open
//! quote's address is also asked for unconfirmed transactions: the quote shows `seen` early, and a sighting
//! whose transaction the node no longer knows (replaced by fee, RBF, or dropped) is orphaned, while the
//! replacement is reported as a new payment. Nothing is credited before `confirmations` blocks (never fewer
//! than one).

use std::sync::Arc;
use std::time::Duration;

use chains::{Amount, Chain, Currency};
use futures_util::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ticketing::purchases::PaymentReport;

use crate::follow::{BlockSource, ChainFollower, FollowConfig, QuoteAddresses, ScannedBlock, TxStatus};
use crate::metrics::ChainMetrics;
use crate::watcher::{with_retry, Finality, PaymentWatcher, PollReport, RetryPolicy, WatchContext, WatchError};

/// Esplora returns a block's transactions 25 at a time.
const PAGE: u64 = 25;
/// Concurrent requests for transaction pages and mempool addresses.
const CONCURRENCY: usize = 8;

/// The Bitcoin watcher. Default: 2 confirmations; never fewer than 1 (no 0-conf credit).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BtcWatcherConfig {
    /// Esplora API base, e.g. `https://blockstream.info/api`.
    pub esplora_url: String,
    #[serde(default = "defaults::btc_confirmations")]
    pub confirmations: u32,
    #[serde(default = "defaults::btc_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Also look at each open quote's address for unconfirmed transactions (shows `seen` early and notices
    /// replaced ones).
    #[serde(default = "defaults::yes")]
    pub watch_mempool: bool,
    /// Where to start when there is no cursor yet (default: `reorg_depth` blocks below the tip).
    #[serde(default)]
    pub start_height: Option<i64>,
    #[serde(default = "defaults::btc_max_blocks_per_tick")]
    pub max_blocks_per_tick: u64,
    #[serde(default = "defaults::btc_reorg_depth")]
    pub max_reorg_depth: u64,
    #[serde(default = "crate::evm::defaults::rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
    #[serde(default = "crate::evm::defaults::rpc_attempts")]
    pub rpc_attempts: u32,
}

pub(crate) mod defaults {
    pub fn btc_confirmations() -> u32 {
        2
    }
    pub fn btc_poll_interval_ms() -> u64 {
        15_000
    }
    pub fn yes() -> bool {
        true
    }
    pub fn btc_max_blocks_per_tick() -> u64 {
        20
    }
    pub fn btc_reorg_depth() -> u64 {
        20
    }
}

impl BtcWatcherConfig {
    pub fn new(esplora_url: impl Into<String>) -> Self {
        BtcWatcherConfig {
            esplora_url: esplora_url.into(),
            confirmations: defaults::btc_confirmations(),
            poll_interval_ms: defaults::btc_poll_interval_ms(),
            watch_mempool: true,
            start_height: None,
            max_blocks_per_tick: defaults::btc_max_blocks_per_tick(),
            max_reorg_depth: defaults::btc_reorg_depth(),
            rpc_timeout_ms: crate::evm::defaults::rpc_timeout_ms(),
            rpc_attempts: crate::evm::defaults::rpc_attempts(),
        }
    }

    pub fn finality(&self) -> Finality {
        Finality::Confirmations(self.confirmations.max(1))
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            timeout: Duration::from_millis(self.rpc_timeout_ms),
            attempts: self.rpc_attempts.max(1),
            ..RetryPolicy::default()
        }
    }
}

/// Watches Bitcoin: a [`ChainFollower`] over [`EsploraSource`].
pub struct BtcWatcher {
    config: BtcWatcherConfig,
    follower: ChainFollower,
    source: Option<EsploraSource>,
}

impl BtcWatcher {
    pub fn new(config: BtcWatcherConfig) -> Result<Self, WatchError> {
        if !config.esplora_url.starts_with("http://") && !config.esplora_url.starts_with("https://") {
            return Err(WatchError::Config(format!("esplora_url must be http(s): {}", config.esplora_url)));
        }
        let follower = ChainFollower::new(FollowConfig {
            start_height: config.start_height,
            max_blocks_per_tick: config.max_blocks_per_tick,
            max_reorg_depth: config.max_reorg_depth,
        });
        Ok(BtcWatcher { config, follower, source: None })
    }

    pub fn follower(&self) -> &ChainFollower {
        &self.follower
    }
}

#[async_trait::async_trait]
impl PaymentWatcher for BtcWatcher {
    fn chain(&self) -> Chain {
        Chain::Btc
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_interval_ms)
    }

    async fn resume(&mut self, ctx: &WatchContext) -> Result<(), WatchError> {
        let source = EsploraSource::new(&self.config, ctx.metrics().clone())?;
        self.follower.resume(ctx).await?;
        self.source = Some(source);
        Ok(())
    }

    async fn poll_once(&mut self, ctx: &WatchContext) -> Result<PollReport, WatchError> {
        let source = self.source.as_ref().ok_or_else(|| WatchError::Config("poll before resume".into()))?;
        self.follower.poll(source, ctx).await
    }
}

/// Reads Bitcoin from an Esplora API for the follower.
pub struct EsploraSource {
    http: reqwest::Client,
    base: String,
    finality: Finality,
    watch_mempool: bool,
    policy: RetryPolicy,
    metrics: Arc<ChainMetrics>,
}

#[derive(Debug, Deserialize)]
struct BlockInfo {
    id: String,
    height: i64,
    #[serde(default)]
    previousblockhash: Option<String>,
    tx_count: u64,
}

#[derive(Debug, Deserialize)]
struct Status {
    confirmed: bool,
    #[serde(default)]
    block_height: Option<i64>,
    #[serde(default)]
    block_hash: Option<String>,
}

impl EsploraSource {
    pub fn new(config: &BtcWatcherConfig, metrics: Arc<ChainMetrics>) -> Result<Self, WatchError> {
        let policy = config.retry_policy();
        let http = reqwest::Client::builder()
            .timeout(policy.timeout)
            .build()
            .map_err(|e| WatchError::Config(format!("http client: {e}")))?;
        Ok(EsploraSource {
            http,
            base: config.esplora_url.trim_end_matches('/').to_owned(),
            finality: config.finality(),
            watch_mempool: config.watch_mempool,
            policy,
            metrics,
        })
    }

    /// GET `path`; `None` on 404 (unknown block, height or transaction).
    async fn get_text(&self, path: &str) -> Result<Option<String>, WatchError> {
        let url = format!("{}{path}", self.base);
        with_retry(&self.metrics, &self.policy, path, || async {
            let response = self.http.get(&url).send().await.map_err(|e| WatchError::Rpc(format!("GET {path}: {e}")))?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !response.status().is_success() {
                return Err(WatchError::Rpc(format!("GET {path}: HTTP {}", response.status())));
            }
            Ok(Some(response.text().await.map_err(|e| WatchError::Rpc(format!("GET {path}: {e}")))?))
        })
        .await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, WatchError> {
        match self.get_text(path).await? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| WatchError::Rpc(format!("GET {path}: unexpected answer: {e}"))),
        }
    }

    /// The outputs of `tx` (Esplora JSON) paying a quote, as reports without a block. `Err` for a malformed
    /// transaction.
    fn payments_in(tx: &Value, quotes: &QuoteAddresses) -> Result<Vec<PaymentReport>, String> {
        let txid = tx.get("txid").and_then(Value::as_str).ok_or("transaction without txid")?;
        let outputs = tx.get("vout").and_then(Value::as_array).ok_or_else(|| format!("{txid}: no vout"))?;
        let from = tx
            .get("vin")
            .and_then(Value::as_array)
            .and_then(|vin| vin.first())
            .and_then(|input| input.pointer("/prevout/scriptpubkey_address"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut found = Vec::new();
        for (index, output) in outputs.iter().enumerate() {
            let Some(address) = output.get("scriptpubkey_address").and_then(Value::as_str) else { continue };
            let Some(quote) = quotes.get(address) else { continue };
            let sats =
                output.get("value").and_then(Value::as_u64).ok_or_else(|| format!("{txid}:{index}: bad value"))?;
            found.push(PaymentReport {
                chain: Chain::Btc,
                txid: txid.to_owned(),
                output_index: index as i64,
                quote_id: Some(quote.clone()),
                memo: None,
                amount: Amount::new(Currency::Btc, u128::from(sats)),
                to_address: address.to_owned(),
                from_address: from.clone(),
                block_height: None,
                block_hash: None,
                confirmations: 0,
                is_final: false,
            });
        }
        Ok(found)
    }

    fn skip(&self, reason: &str) {
        self.metrics.skipped.inc();
        tracing::warn!(chain = "btc", reason, "skipped");
    }

    async fn scan_block(&self, height: i64, quotes: &QuoteAddresses) -> Result<Option<ScannedBlock>, WatchError> {
        let Some(hash) = self.get_text(&format!("/block-height/{height}")).await? else { return Ok(None) };
        let hash = hash.trim().to_owned();
        let Some(info) = self.get_json::<BlockInfo>(&format!("/block/{hash}")).await? else { return Ok(None) };
        if info.height != height || info.id != hash {
            return Err(WatchError::Rpc(format!("block {hash} is not at height {height}")));
        }
        let pages: Vec<Vec<Value>> = futures_util::stream::iter((0..info.tx_count).step_by(PAGE as usize))
            .map(|start| {
                let path = if start == 0 { format!("/block/{hash}/txs") } else { format!("/block/{hash}/txs/{start}") };
                async move { self.get_json::<Vec<Value>>(&path).await.map(Option::unwrap_or_default) }
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut block = ScannedBlock {
            height,
            hash: hash.clone(),
            parent_hash: info.previousblockhash.unwrap_or_default(),
            payments: Vec::new(),
            token_transfers: Vec::new(),
            skipped: 0,
        };
        for tx in pages.iter().flatten() {
            match Self::payments_in(tx, quotes) {
                Ok(found) => block.payments.extend(found),
                Err(reason) => {
                    self.skip(&reason);
                    block.skipped += 1;
                }
            }
        }
        Ok(Some(block))
    }
}

#[async_trait::async_trait]
impl BlockSource for EsploraSource {
    async fn head(&self) -> Result<i64, WatchError> {
        let text = self.get_text("/blocks/tip/height").await?.ok_or_else(|| WatchError::Rpc("no tip".into()))?;
        text.trim().parse().map_err(|_| WatchError::Rpc(format!("bad tip height {text:?}")))
    }

    async fn final_height(&self, head: i64) -> Result<i64, WatchError> {
        Ok(self.finality.final_height(head, None))
    }

    async fn block_hashes(&self, heights: &[i64]) -> Result<Vec<Option<String>>, WatchError> {
        futures_util::stream::iter(heights.iter().copied())
            .map(
                |h| async move { Ok(self.get_text(&format!("/block-height/{h}")).await?.map(|s| s.trim().to_owned())) },
            )
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }

    fn batch_blocks(&self) -> u64 {
        1
    }

    async fn scan(&self, from: i64, to: i64, quotes: &QuoteAddresses) -> Result<Vec<ScannedBlock>, WatchError> {
        let mut blocks = Vec::new();
        for height in from..=to {
            match self.scan_block(height, quotes).await? {
                Some(block) => blocks.push(block),
                None => break,
            }
        }
        Ok(blocks)
    }

    async fn unconfirmed(&self, quotes: &QuoteAddresses) -> Result<Vec<PaymentReport>, WatchError> {
        if !self.watch_mempool {
            return Ok(Vec::new());
        }
        let addresses: Vec<String> = quotes.keys().cloned().collect();
        let per_address: Vec<Vec<Value>> = futures_util::stream::iter(addresses)
            .map(|address: String| async move {
                self.get_json::<Vec<Value>>(&format!("/address/{address}/txs")).await.map(Option::unwrap_or_default)
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for tx in per_address.iter().flatten() {
            if tx.pointer("/status/confirmed").and_then(Value::as_bool) != Some(false) {
                continue;
            }
            match Self::payments_in(tx, quotes) {
                Ok(payments) => {
                    found.extend(payments.into_iter().filter(|p| seen.insert((p.txid.clone(), p.output_index))))
                }
                Err(reason) => self.skip(&reason),
            }
        }
        Ok(found)
    }

    async fn tx_status(&self, txid: &str) -> Result<TxStatus, WatchError> {
        Ok(match self.get_json::<Status>(&format!("/tx/{txid}/status")).await? {
            None => TxStatus::Missing,
            Some(Status { confirmed: false, .. }) => TxStatus::Unconfirmed,
            Some(Status { confirmed: true, block_height, block_hash }) => match (block_height, block_hash) {
                (Some(height), Some(hash)) => TxStatus::Confirmed { height, hash },
                _ => TxStatus::Unconfirmed,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_zero_conf() {
        let mut config = BtcWatcherConfig::new("http://127.0.0.1:1");
        assert_eq!(config.finality(), Finality::Confirmations(2));
        config.confirmations = 0;
        assert_eq!(config.finality(), Finality::Confirmations(1));
    }

    #[test]
    fn outputs_paying_quotes() {
        let quotes: QuoteAddresses = [("bc1qa".to_string(), "q_1".to_string())].into();
        let tx = serde_json::json!({
            "txid": "ab", "vin": [{ "prevout": { "scriptpubkey_address": "bc1qpayer", "value": 9 } }],
            "vout": [{ "scriptpubkey_address": "bc1qa", "value": 5 }, { "scriptpubkey_address": "bc1qchange", "value": 3 },
                     { "scriptpubkey_address": "bc1qa", "value": 7 }, { "scriptpubkey": "6a" }]
        });
        let found = EsploraSource::payments_in(&tx, &quotes).unwrap();
        let got: Vec<(i64, u128)> = found.iter().map(|p| (p.output_index, p.amount.units)).collect();
        assert_eq!(got, vec![(0, 5), (2, 7)]);
        assert_eq!(found[0].from_address.as_deref(), Some("bc1qpayer"));
        let bad = serde_json::json!({ "txid": "ab", "vout": [{ "scriptpubkey_address": "bc1qa", "value": -1 }] });
        assert!(EsploraSource::payments_in(&bad, &quotes).is_err());
    }
}
