//! `gateway admin rescan --chain C --from <height|time>`: finds payments the watchers no longer looked for.
//!
//! A watcher looks for the open quotes and those closed within the watch window (`Purchases::watched_quotes`).
//! A payment to an older quote's address is not seen by it. A rescan reads the chain's *final* blocks from a
//! given height (or from about a given time) to the final head, looking for every quote of the chain created
//! since then, and reports what it finds to ticketing exactly as the watcher would: a late payment gets its
//! ticket if a seat is free at today's price, otherwise its refund. It is idempotent — ticketing's
//! (chain, txid, output) key makes a second rescan report `AlreadyProcessed` — and it never moves the chain
//! watcher's own cursor.
//!
//! Chains: Bitcoin and the EVM networks (the block followers, from a height); Solana (its watcher asks the node
//! per quote reference, and only finalized transactions: a rescan asks about every quote made since the time,
//! or every quote of the chain for a height). Hive and Monero need none: Hive transfers are matched by memo and
//! Monero's by subaddress, whatever the quote's age.

use std::sync::Arc;

use chains::Chain;
use ticketing::purchases::Purchases;

use crate::btc::EsploraSource;
use crate::evm::EvmSource;
use crate::follow::{BlockSource, ChainFollower, FollowConfig, QuoteAddresses, ScannedBlock, TxStatus};
use crate::metrics::ChainMetrics;
use crate::watcher::{WatchContext, WatchError};
use crate::WatchersConfig;

/// Where a rescan starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescanFrom {
    Height(i64),
    /// A unix time (ms): the start height is estimated from the chain's block time, generously (half as many
    /// blocks again, and 10 more), and only quotes created since this time are looked for.
    Time(i64),
}

impl std::str::FromStr for RescanFrom {
    type Err = String;

    /// A block height (digits), or a time: RFC 3339 (`2026-01-31T12:00:00Z`) or a date (`2026-01-31`, UTC).
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().map(RescanFrom::Height).map_err(|e| format!("height `{text}`: {e}"));
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
            return Ok(RescanFrom::Time(t.timestamp_millis()));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            let t = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).ok_or("bad date")?;
            return Ok(RescanFrom::Time(t));
        }
        Err(format!("`{text}` is neither a block height nor a time (RFC 3339 or YYYY-MM-DD)"))
    }
}

/// What a rescan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RescanReport {
    pub chain: String,
    pub from_height: i64,
    /// The last final block read.
    pub to_height: i64,
    pub quotes: usize,
    pub blocks_scanned: u64,
    /// Final payments reported to ticketing (including ones it already knew: `AlreadyProcessed`).
    pub reported: u64,
}

/// Average block time, for [`RescanFrom::Time`].
fn block_ms(chain: Chain) -> i64 {
    match chain {
        Chain::Btc => 600_000,
        Chain::Eth => 12_000,
        Chain::Pol => 2_000,
        Chain::Bnb => 3_000,
        _ => 1_000,
    }
}

/// Reads a chain only up to its final height: everything a rescan reports is final, and nothing is left
/// pending for a watcher that does not look for it.
struct FinalOnly<'a>(&'a dyn BlockSource);

#[async_trait::async_trait]
impl BlockSource for FinalOnly<'_> {
    async fn head(&self) -> Result<i64, WatchError> {
        let head = self.0.head().await?;
        Ok(self.0.final_height(head).await?.min(head))
    }

    async fn final_height(&self, head: i64) -> Result<i64, WatchError> {
        Ok(head)
    }

    async fn block_hashes(&self, heights: &[i64]) -> Result<Vec<Option<String>>, WatchError> {
        self.0.block_hashes(heights).await
    }

    fn batch_blocks(&self) -> u64 {
        self.0.batch_blocks()
    }

    async fn scan(&self, from: i64, to: i64, quotes: &QuoteAddresses) -> Result<Vec<ScannedBlock>, WatchError> {
        self.0.scan(from, to, quotes).await
    }

    async fn tx_status(&self, _txid: &str) -> Result<TxStatus, WatchError> {
        Ok(TxStatus::Unconfirmed)
    }
}

/// Rescans `chain` with its `[watchers]` section from `config` (see the module documentation).
pub async fn rescan(
    config: &WatchersConfig,
    chain: Chain,
    from: RescanFrom,
    purchases: Purchases,
) -> Result<RescanReport, WatchError> {
    let metrics = Arc::new(ChainMetrics::default());
    let (source, reorg_depth): (Box<dyn BlockSource>, u64) = if chain == Chain::Btc {
        let btc = config.btc.as_ref().ok_or_else(|| WatchError::Config("no [watchers.btc] section".into()))?;
        (Box::new(EsploraSource::new(btc, metrics.clone())?), btc.max_reorg_depth)
    } else if chain.is_evm() {
        let evm = config
            .evm
            .iter()
            .find(|c| c.chain == chain)
            .ok_or_else(|| WatchError::Config(format!("no [[watchers.evm]] section for {chain}")))?;
        (Box::new(EvmSource::new(evm, metrics.clone())?), evm.max_reorg_depth)
    } else if chain == Chain::Sol {
        let sol = config.solana.as_ref().ok_or_else(|| WatchError::Config("no [watchers.solana] section".into()))?;
        return rescan_solana(crate::solana::SolanaWatcher::new(sol.clone()), from, purchases).await;
    } else {
        return Err(WatchError::Config(format!(
            "{chain} needs no rescan: Hive and Monero payments are matched whatever the quote's age"
        )));
    };
    rescan_with(source.as_ref(), chain, from, reorg_depth, purchases).await
}

/// [`rescan`] over a given source (tests use the Esplora test server through it).
pub async fn rescan_with(
    source: &dyn BlockSource,
    chain: Chain,
    from: RescanFrom,
    max_reorg_depth: u64,
    purchases: Purchases,
) -> Result<RescanReport, WatchError> {
    let ctx = WatchContext::new(chain, purchases.clone(), Arc::new(ChainMetrics::default()));
    let source = FinalOnly(source);
    let head = source.head().await?;
    let (from_height, since) = match from {
        RescanFrom::Height(h) => (h.max(0), None),
        RescanFrom::Time(t) => {
            let blocks = (ctx.now() - t).max(0) / block_ms(chain);
            ((head - blocks - blocks / 2 - 10).max(0), Some(t))
        }
    };
    let quotes = purchases.quotes_since(chain, since).await?;
    let evm = chain.is_evm();
    let addresses: QuoteAddresses = quotes
        .iter()
        .filter(|q| q.derivation_index.is_some())
        .map(|q| (if evm { q.payment_address.to_ascii_lowercase() } else { q.payment_address.clone() }, q.id.clone()))
        .collect();
    let config = FollowConfig { start_height: Some(from_height), max_blocks_per_tick: 1_000, max_reorg_depth };
    let mut follower = ChainFollower::rescanning(config, addresses);
    let mut report =
        RescanReport { chain: chain.to_string(), from_height, quotes: quotes.len(), ..RescanReport::default() };
    loop {
        let tick = follower.poll(&source, &ctx).await?;
        report.blocks_scanned += tick.blocks_scanned;
        report.reported += tick.reported_final;
        report.to_height = tick.cursor_height;
        tracing::info!(%chain, cursor = tick.cursor_height, head = tick.head_height, "rescan progress");
        if !tick.behind || tick.blocks_scanned == 0 {
            break;
        }
    }
    Ok(report)
}

/// Solana: one pass of the watcher's per-reference check over every quote made since `from` (a time), or every
/// SOL quote (a height: slots are not what a rescan of references needs).
pub async fn rescan_solana(
    mut watcher: crate::solana::SolanaWatcher,
    from: RescanFrom,
    purchases: Purchases,
) -> Result<RescanReport, WatchError> {
    let ctx = WatchContext::new(Chain::Sol, purchases.clone(), Arc::new(ChainMetrics::default()));
    let since = match from {
        RescanFrom::Time(t) => Some(t),
        RescanFrom::Height(_) => None,
    };
    let quotes = purchases.quotes_since(Chain::Sol, since).await?;
    let pass = watcher.scan_quotes(&ctx, &quotes).await?;
    let slot = pass.reported.iter().filter_map(|(r, _)| r.block_height).max().unwrap_or(0);
    Ok(RescanReport {
        chain: Chain::Sol.to_string(),
        from_height: 0,
        to_height: slot,
        quotes: quotes.len(),
        blocks_scanned: 0,
        reported: pass.reported.len() as u64,
    })
}
