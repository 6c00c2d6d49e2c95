//! Ethereum, Polygon and BNB: one implementation over JSON-RPC, configured per network.
//!
//! Native payments are found by scanning every block's transactions (`eth_getBlockByNumber` with full
//! transactions, batched) for a `to` among the open quotes' addresses; ERC-20 payments through the tokens'
//! `Transfer` logs (`eth_getLogs` over the same range, matched by block hash so a reorg between the two calls is
//! noticed). A native payment is output 0 of its transaction; a token transfer is output `1 + logIndex`.
//!
//! Not seen: ETH sent by a contract (an internal transfer, e.g. from a multisig wallet) — that needs
//! trace APIs most nodes do not serve. Quotes are paid from the buyer's own wallet, which is an account.

pub mod rpc;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chains::{Amount, Chain, Currency};
use serde::{Deserialize, Serialize};
use ticketing::purchases::PaymentReport;

use crate::follow::{BlockSource, ChainFollower, FollowConfig, QuoteAddresses, ScannedBlock};
use crate::metrics::ChainMetrics;
use crate::watcher::{Finality, PaymentWatcher, PollReport, RetryPolicy, TokenTransfer, WatchContext, WatchError};
use rpc::{EvmRpc, Transfer};

/// One EVM network's watcher.
///
/// Defaults: Ethereum follows the node's `finalized` tag (12 confirmations where the node has none),
/// Polygon PoS needs 128 confirmations, BNB Smart Chain 15.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvmWatcherConfig {
    /// `eth`, `pol` or `bnb`; the native currency is the chain's (ETH, POL, BNB).
    pub chain: Chain,
    pub rpc_url: String,
    /// Checked against `eth_chainId` at start; a mismatch stops the watcher (wrong node).
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// Confirmations that make a payment final (the block itself counts as one).
    #[serde(default)]
    pub confirmations: Option<u32>,
    /// Follow the node's `finalized` block tag (default: true on Ethereum, false elsewhere).
    #[serde(default)]
    pub use_finalized_tag: Option<bool>,
    /// ERC-20 tokens to watch (`Transfer` logs to quote addresses).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    #[serde(default = "defaults::evm_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Where to start when there is no cursor yet (default: the reorganisation depth below the head).
    #[serde(default)]
    pub start_height: Option<i64>,
    /// Blocks fetched per JSON-RPC batch.
    #[serde(default = "defaults::evm_batch_blocks")]
    pub batch_blocks: u64,
    /// Blocks scanned per tick at most (the next tick follows at once while behind).
    #[serde(default = "defaults::evm_max_blocks_per_tick")]
    pub max_blocks_per_tick: u64,
    /// How far back the watcher looks for a common ancestor after a reorg it cannot trace block by block.
    #[serde(default = "defaults::reorg_depth")]
    pub max_reorg_depth: u64,
    #[serde(default = "defaults::rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
    #[serde(default = "defaults::rpc_attempts")]
    pub rpc_attempts: u32,
}

/// An ERC-20 token accepted on this network.
///
/// The gateway adds every token of `payments.tokens` on this network here (with its currency), so a contract
/// is normally configured once; a token listed only here is watched as configured.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// `USDC`, `USDT`, …
    pub symbol: String,
    /// The token contract's address.
    pub contract: String,
    pub decimals: u32,
    /// The ticketing currency this token is credited as (`"USDC.ETH"`): a token currency of this network, with
    /// the same decimals. Its `Transfer`s to a quote's address are reported like native payments (output
    /// `1 + logIndex`), and ticketing credits them to a quote in that currency (a quote in another currency gets
    /// a `wrong_currency` refund). Without one, transfers are found, followed to finality, logged and counted
    /// in the poll report's `token_transfers`, but not reported.
    #[serde(default)]
    pub currency: Option<Currency>,
}

impl EvmWatcherConfig {
    pub fn new(chain: Chain, rpc_url: impl Into<String>) -> Self {
        EvmWatcherConfig {
            chain,
            rpc_url: rpc_url.into(),
            chain_id: None,
            confirmations: None,
            use_finalized_tag: None,
            tokens: Vec::new(),
            poll_interval_ms: defaults::evm_poll_interval_ms(),
            start_height: None,
            batch_blocks: defaults::evm_batch_blocks(),
            max_blocks_per_tick: defaults::evm_max_blocks_per_tick(),
            max_reorg_depth: defaults::reorg_depth(),
            rpc_timeout_ms: defaults::rpc_timeout_ms(),
            rpc_attempts: defaults::rpc_attempts(),
        }
    }

    /// The effective finality policy.
    pub fn finality(&self) -> Finality {
        let confirmations = self.confirmations.unwrap_or(match self.chain {
            Chain::Pol => 128,
            Chain::Bnb => 15,
            _ => 12,
        });
        if self.use_finalized_tag.unwrap_or(self.chain == Chain::Eth) {
            Finality::FinalizedTag { fallback: confirmations }
        } else {
            Finality::Confirmations(confirmations)
        }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            timeout: Duration::from_millis(self.rpc_timeout_ms),
            attempts: self.rpc_attempts.max(1),
            ..RetryPolicy::default()
        }
    }
}

pub(crate) mod defaults {
    pub fn evm_poll_interval_ms() -> u64 {
        3_000
    }
    pub fn evm_batch_blocks() -> u64 {
        25
    }
    pub fn evm_max_blocks_per_tick() -> u64 {
        500
    }
    pub fn reorg_depth() -> u64 {
        256
    }
    pub fn rpc_timeout_ms() -> u64 {
        10_000
    }
    pub fn rpc_attempts() -> u32 {
        4
    }
}

/// Watches one EVM network: a [`ChainFollower`] over [`EvmSource`].
pub struct EvmWatcher {
    config: EvmWatcherConfig,
    follower: ChainFollower,
    source: Option<EvmSource>,
}

impl EvmWatcher {
    pub fn new(config: EvmWatcherConfig) -> Result<Self, WatchError> {
        if !config.chain.is_evm() {
            return Err(WatchError::Config(format!("{} is not an EVM chain", config.chain)));
        }
        for token in &config.tokens {
            if !is_address(&token.contract) {
                return Err(WatchError::Config(format!(
                    "token {}: bad contract address {}",
                    token.symbol, token.contract
                )));
            }
            if let Some(currency) = token.currency {
                if !currency.is_token() || currency.chain() != Some(config.chain) {
                    return Err(WatchError::Config(format!(
                        "token {}: {currency} is not a token currency of {}",
                        token.symbol, config.chain
                    )));
                }
                if currency.decimals() != token.decimals {
                    return Err(WatchError::Config(format!("token {}: currency and decimals disagree", token.symbol)));
                }
            }
        }
        let follower = ChainFollower::new(FollowConfig {
            start_height: config.start_height,
            max_blocks_per_tick: config.max_blocks_per_tick,
            max_reorg_depth: config.max_reorg_depth,
        });
        Ok(EvmWatcher { config, follower, source: None })
    }

    pub fn follower(&self) -> &ChainFollower {
        &self.follower
    }
}

#[async_trait::async_trait]
impl PaymentWatcher for EvmWatcher {
    fn chain(&self) -> Chain {
        self.config.chain
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_interval_ms)
    }

    async fn resume(&mut self, ctx: &WatchContext) -> Result<(), WatchError> {
        let source = EvmSource::new(&self.config, ctx.metrics().clone())?;
        if let Some(expected) = self.config.chain_id {
            let actual = source.rpc.chain_id().await?;
            if actual != expected {
                return Err(WatchError::Config(format!(
                    "{} node reports chain id {actual}, expected {expected}",
                    self.config.chain
                )));
            }
        }
        self.follower.resume(ctx).await?;
        self.source = Some(source);
        Ok(())
    }

    async fn poll_once(&mut self, ctx: &WatchContext) -> Result<PollReport, WatchError> {
        let source = self.source.as_ref().ok_or_else(|| WatchError::Config("poll before resume".into()))?;
        self.follower.poll(source, ctx).await
    }
}

/// Reads one EVM network for the follower.
pub struct EvmSource {
    chain: Chain,
    native: Currency,
    finality: Finality,
    batch_blocks: u64,
    rpc: EvmRpc,
    /// Token contract (lower-case) → token.
    tokens: HashMap<String, TokenConfig>,
    contracts: Vec<String>,
    metrics: Arc<ChainMetrics>,
}

impl EvmSource {
    pub fn new(config: &EvmWatcherConfig, metrics: Arc<ChainMetrics>) -> Result<Self, WatchError> {
        let native = match config.chain {
            Chain::Eth => Currency::Eth,
            Chain::Pol => Currency::Pol,
            Chain::Bnb => Currency::Bnb,
            other => return Err(WatchError::Config(format!("{other} is not an EVM chain"))),
        };
        let tokens: HashMap<String, TokenConfig> =
            config.tokens.iter().map(|t| (t.contract.to_ascii_lowercase(), t.clone())).collect();
        Ok(EvmSource {
            chain: config.chain,
            native,
            finality: config.finality(),
            batch_blocks: config.batch_blocks,
            rpc: EvmRpc::new(&config.rpc_url, config.retry_policy(), metrics.clone())?,
            contracts: tokens.keys().cloned().collect(),
            tokens,
            metrics,
        })
    }

    pub fn rpc(&self) -> &EvmRpc {
        &self.rpc
    }

    fn skip(&self, what: &str, reason: &str) {
        self.metrics.skipped.inc();
        tracing::warn!(chain = %self.chain, what, reason, "skipped");
    }
}

#[async_trait::async_trait]
impl BlockSource for EvmSource {
    async fn head(&self) -> Result<i64, WatchError> {
        self.rpc.block_number().await
    }

    async fn final_height(&self, head: i64) -> Result<i64, WatchError> {
        let tag = match self.finality {
            Finality::FinalizedTag { .. } => self.rpc.finalized_height().await,
            Finality::Confirmations(_) => None,
        };
        Ok(self.finality.final_height(head, tag))
    }

    async fn block_hashes(&self, heights: &[i64]) -> Result<Vec<Option<String>>, WatchError> {
        let mut out = Vec::with_capacity(heights.len());
        for chunk in heights.chunks(100) {
            out.extend(self.rpc.blocks(chunk, false).await?.into_iter().map(|b| b.map(|b| b.hash)));
        }
        Ok(out)
    }

    fn batch_blocks(&self) -> u64 {
        self.batch_blocks
    }

    async fn scan(&self, from: i64, to: i64, quotes: &QuoteAddresses) -> Result<Vec<ScannedBlock>, WatchError> {
        let heights: Vec<i64> = (from..=to).collect();
        let blocks = self.rpc.blocks(&heights, true).await?;
        let logs = if self.contracts.is_empty() {
            Vec::new()
        } else {
            self.rpc.transfer_logs(&self.contracts, from, to).await?
        };
        let mut scanned = Vec::with_capacity(blocks.len());
        for (height, block) in heights.iter().zip(blocks) {
            // Above the head (the node went back since we read it): stop here.
            let Some(block) = block.filter(|b| b.number == *height) else { break };
            let mut out = ScannedBlock {
                height: block.number,
                hash: block.hash.clone(),
                parent_hash: block.parent_hash.clone(),
                payments: Vec::new(),
                token_transfers: Vec::new(),
                skipped: 0,
            };
            for tx in &block.transactions {
                match Transfer::from_tx(tx) {
                    Ok(Some(t)) => {
                        if let Some(quote) = quotes.get(&t.to) {
                            out.payments.push(self.native_report(t, quote));
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        self.skip("transaction", &reason);
                        out.skipped += 1;
                    }
                }
            }
            scanned.push(out);
        }
        // Logs from a block we did not get (or a different version of it) mean the chain moved between the two
        // calls: keep only the blocks before it.
        let mut keep = scanned.len();
        for log in &logs {
            let index = usize::try_from(log.block_number - from).ok().filter(|i| *i < scanned.len());
            let matches = index.is_some_and(|i| scanned[i].hash.eq_ignore_ascii_case(&log.block_hash));
            if log.removed || !matches {
                keep = keep.min(index.unwrap_or(0));
            }
        }
        scanned.truncate(keep);
        for log in logs {
            let Some(block) = usize::try_from(log.block_number - from).ok().and_then(|i| scanned.get_mut(i)) else {
                continue;
            };
            let transfer = match log.as_transfer() {
                Ok(t) => t,
                Err(reason) => {
                    self.skip("log", &reason);
                    block.skipped += 1;
                    continue;
                }
            };
            let (Some(quote), Some(token)) = (quotes.get(&transfer.to), self.tokens.get(&transfer.contract)) else {
                continue;
            };
            match token.currency {
                Some(currency) => block.payments.push(PaymentReport {
                    chain: self.chain,
                    txid: log.transaction_hash.to_ascii_lowercase(),
                    output_index: 1 + log.log_index,
                    quote_id: Some(quote.clone()),
                    memo: None,
                    amount: Amount::new(currency, transfer.units),
                    to_address: transfer.to,
                    from_address: Some(transfer.from),
                    block_height: None,
                    block_hash: None,
                    confirmations: 0,
                    is_final: false,
                }),
                None => block.token_transfers.push(TokenTransfer {
                    symbol: token.symbol.clone(),
                    contract: transfer.contract,
                    txid: log.transaction_hash.to_ascii_lowercase(),
                    log_index: log.log_index,
                    quote_id: Some(quote.clone()),
                    to_address: transfer.to,
                    from_address: Some(transfer.from),
                    units: transfer.units,
                    block_height: log.block_number,
                    block_hash: log.block_hash.clone(),
                    confirmations: 0,
                    is_final: false,
                }),
            }
        }
        Ok(scanned)
    }
}

impl EvmSource {
    fn native_report(&self, t: Transfer, quote: &str) -> PaymentReport {
        PaymentReport {
            chain: self.chain,
            txid: t.hash.to_ascii_lowercase(),
            output_index: 0,
            quote_id: Some(quote.to_owned()),
            memo: None,
            amount: Amount::new(self.native, t.value),
            to_address: t.to,
            from_address: t.from,
            block_height: None,
            block_hash: None,
            confirmations: 0,
            is_final: false,
        }
    }
}

fn is_address(text: &str) -> bool {
    text.strip_prefix("0x").is_some_and(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}
