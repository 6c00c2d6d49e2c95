//! The seam every chain plugs into: the [`PaymentWatcher`] trait, the [`WatchContext`] a watcher reports
//! through, and the pieces of policy all chains share.
//!
//! A watcher is a small state machine driven one tick at a time by the supervisor: each call to
//! [`PaymentWatcher::poll_once`] reads the chain's head, re-checks the sightings that are not final yet, scans
//! the blocks after its cursor, reports what it found to ticketing and moves the cursor. Everything a watcher
//! must remember across a crash is in the store (its cursor and the unfinished payments), so the supervisor
//! can throw a failed watcher away and build a fresh one: [`PaymentWatcher::resume`] reloads that state.
//!
//! Architecture invariant: a watcher never writes tickets or the ledger. It only reports transfers
//! ([`WatchContext::report`]) and withdraws sightings whose block left the canonical chain
//! ([`WatchContext::orphan`]); ticketing decides what they are worth. Only a report with `is_final: true`
//! can credit a quote, and a watcher sets it only when the chain's [`Finality`] policy says so.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chains::Chain;
use ticketing::cursors::Cursor;
use ticketing::purchases::{PaymentOutcome, PaymentReport, Purchases, QuoteRow};
use ticketing::StoreError;

use crate::metrics::ChainMetrics;

/// One tick of a chain watcher. Implementations keep their in-memory state (recent block hashes, pending
/// sightings) in `self` and their durable state in the store, through the context.
#[async_trait::async_trait]
pub trait PaymentWatcher: Send {
    /// The chain this watcher follows (one watcher per chain, e.g. one per EVM network).
    fn chain(&self) -> Chain;

    /// How long the supervisor waits between ticks when the last one had nothing left to do.
    fn poll_interval(&self) -> Duration;

    /// Reloads durable state before the first tick of every run (at start-up and after each restart):
    /// typically the cursor and the pending sightings ([`WatchContext::cursor`], [`WatchContext::pending`]).
    async fn resume(&mut self, ctx: &WatchContext) -> Result<(), WatchError>;

    /// One tick: read the head, re-check unconfirmed sightings, scan new blocks from the cursor, report to
    /// ticketing, save the cursor. An `Err` makes the supervisor restart the watcher after a back-off; a bad
    /// transaction or response must not be an `Err` (log it, count it with [`ChainMetrics::skipped`], go on).
    async fn poll_once(&mut self, ctx: &WatchContext) -> Result<PollReport, WatchError>;
}

/// What one tick did, for logs, metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub head_height: i64,
    /// The last block scanned after this tick.
    pub cursor_height: i64,
    pub blocks_scanned: u64,
    /// Non-final reports (new sightings and confirmation progress).
    pub reported_pending: u64,
    /// Final reports (ticketing credits these).
    pub reported_final: u64,
    pub orphaned: u64,
    /// Final payments reversed because their block left the chain.
    pub reversed: u64,
    /// Items that could not be understood and were skipped.
    pub skipped: u64,
    /// Blocks the cursor went back because of a reorganisation.
    pub rewound: u64,
    /// More blocks are waiting: the supervisor polls again at once instead of sleeping.
    pub behind: bool,
    /// Transfers of tokens ticketing has no currency for (see `evm::TokenConfig::currency`): seen, followed to
    /// finality, but not reported.
    pub token_transfers: Vec<TokenTransfer>,
}

/// An ERC-20 transfer to a quote's address, in the token's base units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTransfer {
    pub symbol: String,
    pub contract: String,
    pub txid: String,
    pub log_index: i64,
    pub quote_id: Option<String>,
    pub to_address: String,
    pub from_address: Option<String>,
    pub units: u128,
    pub block_height: i64,
    pub block_hash: String,
    pub confirmations: i64,
    pub is_final: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("rpc: {0}")]
    Rpc(String),
    #[error("rpc timed out after {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("configuration: {0}")]
    Config(String),
}

impl WatchError {
    /// The short label metrics and `/readyz` use.
    pub fn code(&self) -> &'static str {
        match self {
            WatchError::Rpc(_) => "rpc",
            WatchError::Timeout(_) => "timeout",
            WatchError::Store(_) => "store",
            WatchError::Config(_) => "config",
        }
    }
}

/// When a sighting is final. Bitcoin, Polygon and BNB count blocks; Ethereum can follow the node's
/// `finalized` tag (consensus finality, about two epochs), falling back to counting where the node has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finality {
    /// Final once it has this many confirmations (the block itself counts as one). Never below 1.
    Confirmations(u32),
    /// Final once its block is at or below the node's `finalized` block; `fallback` confirmations when the
    /// node does not know the tag.
    FinalizedTag { fallback: u32 },
}

impl Finality {
    /// Confirmations of a block at `height` when the head is at `head`: the block itself counts as one.
    pub fn confirmations(height: i64, head: i64) -> i64 {
        (head - height + 1).max(0)
    }

    /// The highest final height, given the head and (for the tag policy) the node's finalized height.
    pub fn final_height(self, head: i64, finalized_tag: Option<i64>) -> i64 {
        let by_count = |n: u32| head - i64::from(n.max(1)) + 1;
        match self {
            Finality::Confirmations(n) => by_count(n),
            Finality::FinalizedTag { fallback } => match finalized_tag {
                Some(h) => h.min(head),
                None => by_count(fallback),
            },
        }
    }
}

/// How a watcher gets the time ("now" for ticketing, in unix ms). Tests pin it.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What a watcher reports through: ticketing, the store, its metrics and the clock. Cheap to clone.
#[derive(Clone)]
pub struct WatchContext {
    chain: Chain,
    purchases: Purchases,
    metrics: Arc<ChainMetrics>,
    clock: Clock,
}

impl WatchContext {
    pub fn new(chain: Chain, purchases: Purchases, metrics: Arc<ChainMetrics>) -> Self {
        WatchContext { chain, purchases, metrics, clock: Arc::new(ticketing::now_ms) }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn chain(&self) -> Chain {
        self.chain
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    pub fn metrics(&self) -> &Arc<ChainMetrics> {
        &self.metrics
    }

    pub fn purchases(&self) -> &Purchases {
        &self.purchases
    }

    /// The open quotes of this chain.
    pub async fn open_quotes(&self) -> Result<Vec<QuoteRow>, WatchError> {
        Ok(self.purchases.open_quotes(self.chain).await?)
    }

    /// The quotes to look for: open ones and those closed within the watch window, from the store (so a
    /// restarted process or watcher task watches exactly what the one before it did).
    pub async fn watched_quotes(&self) -> Result<Vec<QuoteRow>, WatchError> {
        Ok(self.purchases.watched_quotes(self.chain, self.now()).await?)
    }

    /// Watched quotes ([`WatchContext::watched_quotes`]) by payment address (lower-cased for EVM chains, as
    /// ticketing stores them). Per-quote addresses are unique per chain, so each maps to one quote.
    ///
    /// Read it *after* reading the chain head: a payment in a block at or below that head was made after its
    /// quote existed, so its address is in the map.
    pub async fn quotes_by_address(&self) -> Result<HashMap<String, String>, WatchError> {
        let evm = self.chain.is_evm();
        Ok(self
            .watched_quotes()
            .await?
            .into_iter()
            .map(|q| (if evm { q.payment_address.to_ascii_lowercase() } else { q.payment_address }, q.id))
            .collect())
    }

    pub async fn cursor(&self) -> Result<Option<Cursor>, WatchError> {
        Ok(self.purchases.store().watcher_cursor(self.chain).await?)
    }

    pub async fn save_cursor(&self, height: i64, block_hash: &str) -> Result<(), WatchError> {
        self.purchases.store().save_watcher_cursor(self.chain, height, block_hash, self.now()).await?;
        self.metrics.set_cursor(height);
        Ok(())
    }

    /// The payments reported earlier but not final yet (to re-check after a restart).
    pub async fn pending(&self) -> Result<Vec<PaymentReport>, WatchError> {
        Ok(self.purchases.store().pending_payments(self.chain).await?)
    }

    /// Reports a transfer. `Ok(None)` means ticketing refused this one report for a reason of its own (logged
    /// and counted, the watcher goes on); a store failure is an `Err` (the tick fails and is retried).
    pub async fn report(&self, report: PaymentReport) -> Result<Option<PaymentOutcome>, WatchError> {
        Ok(self.report_batch(std::slice::from_ref(&report)).await?.pop().flatten())
    }

    /// Reports several transfers (a block's) in order, in as few store transactions as ticketing needs: one
    /// outcome per report, as [`WatchContext::report`] gives for each.
    pub async fn report_batch(&self, reports: &[PaymentReport]) -> Result<Vec<Option<PaymentOutcome>>, WatchError> {
        let results = self.purchases.report_payments(reports, self.now()).await.map_err(WatchError::Store)?;
        Ok(reports
            .iter()
            .zip(results)
            .map(|(PaymentReport { txid, output_index: index, is_final, .. }, result)| match result {
                Ok(outcome) => {
                    if *is_final {
                        if outcome != PaymentOutcome::AlreadyProcessed {
                            self.metrics.payments_confirmed.inc();
                        }
                    } else if matches!(outcome, PaymentOutcome::Pending { .. }) {
                        self.metrics.payments_pending_reports.inc();
                    }
                    tracing::debug!(chain = %self.chain, %txid, index, is_final, ?outcome, "payment reported");
                    Some(outcome)
                }
                Err(err) => {
                    self.metrics.skipped.inc();
                    tracing::warn!(chain = %self.chain, %txid, index, code = err.code(), error = %err, "payment report refused");
                    None
                }
            })
            .collect())
    }

    /// Final payments in blocks at or above `min_height`, to re-check against the canonical chain.
    pub async fn final_payments_since(
        &self,
        min_height: i64,
    ) -> Result<Vec<ticketing::purchases::FinalPayment>, WatchError> {
        Ok(self.purchases.final_payments_since(self.chain, min_height).await?)
    }

    /// Reverses a final payment whose block left the canonical chain (see `ticketing::purchases::Reversal`).
    pub async fn reverse(&self, txid: &str, output_index: i64) -> Result<bool, WatchError> {
        let reversal = self.purchases.reverse_payment(self.chain, txid, output_index, self.now()).await?;
        if let Some(r) = &reversal {
            self.metrics.payments_reversed.inc();
            tracing::warn!(chain = %self.chain, txid, output_index, event_id = ?r.event_id, ticket_id = ?r.ticket_id,
                cancelled = r.cancelled_entries.len(), settled = r.settled_entries.len(), "final payment reversed: its block left the chain");
        }
        Ok(reversal.is_some())
    }

    /// Withdraws a sighting whose block is no longer canonical (or whose transaction was replaced).
    pub async fn orphan(&self, txid: &str, output_index: i64) -> Result<bool, WatchError> {
        let orphaned = self.purchases.orphan_payment(self.chain, txid, output_index, self.now()).await?;
        if orphaned {
            self.metrics.payments_orphaned.inc();
            tracing::info!(chain = %self.chain, txid, output_index, "payment orphaned");
        }
        Ok(orphaned)
    }
}

/// Retries `op` with exponential back-off and a per-attempt timeout. Counts every failed attempt as an RPC
/// error. Used by every chain's client so a flaky node costs latency, not a restart.
pub async fn with_retry<T, F, Fut>(
    metrics: &ChainMetrics,
    policy: &RetryPolicy,
    what: &str,
    mut op: F,
) -> Result<T, WatchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, WatchError>>,
{
    let mut delay = policy.initial_backoff;
    let mut attempt = 1;
    loop {
        let result = match tokio::time::timeout(policy.timeout, op()).await {
            Ok(result) => result,
            Err(_) => Err(WatchError::Timeout(policy.timeout)),
        };
        match result {
            Ok(value) => return Ok(value),
            Err(err) => {
                metrics.rpc_errors.inc();
                if attempt >= policy.attempts || !retryable(&err) {
                    return Err(err);
                }
                tracing::debug!(what, attempt, error = %err, "rpc call failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.max_backoff);
                attempt += 1;
            }
        }
    }
}

fn retryable(err: &WatchError) -> bool {
    matches!(err, WatchError::Rpc(_) | WatchError::Timeout(_))
}

/// Timeouts and retries for RPC calls.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub timeout: Duration,
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(10),
            attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_heights() {
        assert_eq!(Finality::confirmations(100, 100), 1);
        assert_eq!(Finality::confirmations(101, 100), 0);
        assert_eq!(Finality::Confirmations(2).final_height(100, None), 99);
        assert_eq!(Finality::Confirmations(0).final_height(100, None), 100, "never 0-conf");
        assert_eq!(Finality::FinalizedTag { fallback: 12 }.final_height(100, Some(40)), 40);
        assert_eq!(Finality::FinalizedTag { fallback: 12 }.final_height(100, None), 89);
    }
}
