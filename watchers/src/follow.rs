//! Following a chain of blocks: the cursor, reorganisations and the sightings that are not final yet, written
//! once for every chain that has numbered blocks linked by hashes (EVM networks, Bitcoin, Monero).
//!
//! A chain plugs in a [`BlockSource`] (how to read heads, hashes and the payments in a range of blocks);
//! [`ChainFollower::poll`] does one tick:
//!
//! 1. read the head and the highest final height (the chain's [`Finality`](crate::Finality));
//! 2. read the open quotes' addresses — after the head, so every payment in a block up to that head was made
//!    to a quote that already existed;
//! 3. check the cursor's block is still canonical; if not, walk back through the recently scanned hashes to
//!    the common ancestor (or `max_reorg_depth` blocks when the history is gone, e.g. after a restart);
//! 4. re-check every pending sighting: its block no longer canonical (or its unconfirmed transaction gone,
//!    e.g. replaced by fee) → orphaned; final now → reported final; more confirmations → progress reported;
//!    and every final payment still within `max_reorg_depth` of the head (read from the store): its block no
//!    longer canonical → reversed by ticketing (`Purchases::reverse_payment`), the cursor goes back below it;
//! 5. look at unconfirmed transactions to open quotes, where the chain offers them (Bitcoin's mempool);
//! 6. scan the blocks after the cursor, checking each one's parent hash, report what pays a quote, move the
//!    cursor.
//!
//! Everything is reported before the cursor moves past it, and ticketing's (chain, txid, output index) key
//! makes a second report harmless: a crash anywhere costs a rescan, never a double credit.

use std::collections::{BTreeMap, HashMap};

use ticketing::purchases::PaymentReport;

use crate::watcher::{Finality, PollReport, TokenTransfer, WatchContext, WatchError};

/// Open quotes: payment address (lower-case on EVM) → quote id.
pub type QuoteAddresses = HashMap<String, String>;

/// One scanned block and the transfers in it that pay open quotes.
#[derive(Debug, Clone)]
pub struct ScannedBlock {
    pub height: i64,
    pub hash: String,
    pub parent_hash: String,
    /// Reports with chain, txid, output index, quote, amount and addresses filled in; the follower sets the
    /// block, confirmations and finality.
    pub payments: Vec<PaymentReport>,
    /// Transfers of tokens ticketing cannot credit (reported in [`PollReport::token_transfers`] only).
    pub token_transfers: Vec<TokenTransfer>,
    /// Transactions or logs in this block that could not be understood.
    pub skipped: u64,
}

/// Where an unconfirmed transaction stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// The node no longer knows it (dropped, or replaced by another spending the same inputs).
    Missing,
    Unconfirmed,
    Confirmed {
        height: i64,
        hash: String,
    },
}

/// How to read one chain.
#[async_trait::async_trait]
pub trait BlockSource: Send + Sync {
    async fn head(&self) -> Result<i64, WatchError>;

    /// The highest height whose blocks are final, given the head.
    async fn final_height(&self, head: i64) -> Result<i64, WatchError>;

    /// Canonical block hashes at these heights (`None` above the head).
    async fn block_hashes(&self, heights: &[i64]) -> Result<Vec<Option<String>>, WatchError>;

    /// How many blocks one [`BlockSource::scan`] call should cover.
    fn batch_blocks(&self) -> u64;

    /// The blocks `from..=to` in order, with the transfers paying `quotes`. May return fewer blocks (a prefix)
    /// when the chain changed under it; the follower picks up from there on the next tick.
    async fn scan(&self, from: i64, to: i64, quotes: &QuoteAddresses) -> Result<Vec<ScannedBlock>, WatchError>;

    /// Unconfirmed transfers paying `quotes` (reports without a block). Chains without a useful mempool
    /// view return nothing.
    async fn unconfirmed(&self, _quotes: &QuoteAddresses) -> Result<Vec<PaymentReport>, WatchError> {
        Ok(Vec::new())
    }

    /// Where an unconfirmed transaction stands now.
    async fn tx_status(&self, _txid: &str) -> Result<TxStatus, WatchError> {
        Ok(TxStatus::Unconfirmed)
    }
}

/// Follower settings.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Where to start without a cursor (default: `max_reorg_depth` blocks below the head).
    pub start_height: Option<i64>,
    pub max_blocks_per_tick: u64,
    pub max_reorg_depth: u64,
}

/// The cursor, recent history and pending sightings of one chain.
pub struct ChainFollower {
    config: FollowConfig,
    cursor: Option<(i64, String)>,
    /// Hashes of recently scanned blocks, to find the common ancestor after a reorg.
    recent: BTreeMap<i64, String>,
    pending: HashMap<(String, i64), PaymentReport>,
    pending_tokens: HashMap<(String, i64), TokenTransfer>,
    /// A rescan (`crate::rescan`): these addresses instead of the watched quotes', and no durable cursor.
    rescan: Option<QuoteAddresses>,
    /// Quotes that wait for more confirmations than the chain's policy (large quotes): quote id → count.
    extra_confirmations: HashMap<String, i64>,
    /// The open quotes' addresses: the only ones looked up in the mempool (a closed quote's late payment is
    /// found in its block; asking the node about every address of the watch window each tick would not scale).
    open_addresses: QuoteAddresses,
}

impl ChainFollower {
    pub fn new(config: FollowConfig) -> Self {
        ChainFollower {
            config,
            cursor: None,
            recent: BTreeMap::new(),
            pending: HashMap::new(),
            pending_tokens: HashMap::new(),
            rescan: None,
            extra_confirmations: HashMap::new(),
            open_addresses: QuoteAddresses::new(),
        }
    }

    /// A follower that looks for `quotes` from `config.start_height` on and never saves its cursor, so the
    /// chain's own watcher is not moved (see `crate::rescan`).
    pub fn rescanning(config: FollowConfig, quotes: QuoteAddresses) -> Self {
        ChainFollower { rescan: Some(quotes), ..ChainFollower::new(config) }
    }

    async fn save_cursor(&self, ctx: &WatchContext, height: i64, hash: &str) -> Result<(), WatchError> {
        if self.rescan.is_none() {
            ctx.save_cursor(height, hash).await?;
        }
        Ok(())
    }

    /// The addresses to look for: open quotes and quotes closed within the watch window (both read from the
    /// store, see `Purchases::watched_quotes`), and pending sightings.
    async fn addresses(&mut self, ctx: &WatchContext) -> Result<QuoteAddresses, WatchError> {
        let mut addresses = match &self.rescan {
            Some(quotes) => quotes.clone(),
            None => {
                let quotes = ctx.watched_quotes().await?;
                let policy = ctx.purchases().settings().confirmations_required(ctx.chain());
                self.extra_confirmations = quotes
                    .iter()
                    .filter(|q| q.confirmations_required > policy)
                    .map(|q| (q.id.clone(), q.confirmations_required))
                    .collect();
                let evm = ctx.chain().is_evm();
                let all: QuoteAddresses = quotes
                    .iter()
                    .map(|q| {
                        (
                            if evm { q.payment_address.to_ascii_lowercase() } else { q.payment_address.clone() },
                            q.id.clone(),
                        )
                    })
                    .collect();
                let open: std::collections::HashSet<&str> = quotes
                    .iter()
                    .filter(|q| matches!(q.status.as_str(), "awaiting_payment" | "seen" | "confirming"))
                    .map(|q| q.id.as_str())
                    .collect();
                self.open_addresses = all
                    .iter()
                    .filter(|(_, id)| open.contains(id.as_str()))
                    .map(|(a, id)| (a.clone(), id.clone()))
                    .collect();
                all
            }
        };
        for p in self.pending.values() {
            if let Some(quote) = &p.quote_id {
                addresses.entry(p.to_address.clone()).or_insert_with(|| quote.clone());
            }
        }
        Ok(addresses)
    }

    /// Reloads the cursor and the pending sightings from the store.
    pub async fn resume(&mut self, ctx: &WatchContext) -> Result<(), WatchError> {
        self.cursor = ctx.cursor().await?.map(|c| (c.height, c.block_hash));
        if let Some((height, _)) = &self.cursor {
            ctx.metrics().set_cursor(*height);
        }
        self.recent.clear();
        self.pending_tokens.clear();
        self.pending = ctx.pending().await?.into_iter().map(|r| ((r.txid.clone(), r.output_index), r)).collect();
        tracing::info!(chain = %ctx.chain(), cursor = ?self.cursor, pending = self.pending.len(), "watcher resumed");
        Ok(())
    }

    /// Sightings reported but not final yet.
    pub fn pending(&self) -> impl Iterator<Item = &PaymentReport> {
        self.pending.values()
    }

    pub fn cursor(&self) -> Option<(i64, &str)> {
        self.cursor.as_ref().map(|(h, s)| (*h, s.as_str()))
    }

    /// One tick (see the module documentation).
    pub async fn poll(&mut self, source: &dyn BlockSource, ctx: &WatchContext) -> Result<PollReport, WatchError> {
        let head = source.head().await?;
        let final_height = source.final_height(head).await?.min(head);
        ctx.metrics().set_head(head);
        let quotes = self.addresses(ctx).await?;
        let mut report = PollReport { head_height: head, ..PollReport::default() };

        if self.cursor.is_none() {
            // The first tick ever (no cursor stored) looks back as deep as a reorganisation may reach: a quote can be
            // paid between the gateway's start and this tick (a slow or unreachable node at start-up), and a
            // payment in a block the cursor starts above would never be seen.
            let lookback = i64::try_from(self.config.max_reorg_depth).unwrap_or(0);
            let start = self.config.start_height.unwrap_or(head - lookback).clamp(0, head.max(0));
            let hash = self.hash_at(source, start - 1).await?;
            self.set_cursor(ctx, start - 1, hash).await?;
        }
        self.check_cursor(source, ctx, head, &mut report).await?;
        self.recheck_pending(source, ctx, head, final_height, &mut report).await?;
        self.recheck_final(source, ctx, head, &mut report).await?;

        for mut sighting in source.unconfirmed(&self.open_addresses).await? {
            let key = (sighting.txid.clone(), sighting.output_index);
            if self.pending.contains_key(&key) {
                continue;
            }
            sighting.confirmations = 0;
            sighting.is_final = false;
            ctx.metrics().payments_seen.inc();
            if ctx.report(sighting.clone()).await?.is_some() {
                report.reported_pending += 1;
            }
            self.pending.insert(key, sighting);
        }

        self.scan(source, ctx, head, final_height, &quotes, &mut report).await?;
        let (cursor_height, _) = self.cursor.clone().expect("cursor set above");
        report.cursor_height = cursor_height;
        report.behind |= cursor_height < head;
        let keep_from = cursor_height - i64::try_from(self.config.max_reorg_depth).unwrap_or(i64::MAX);
        self.recent = self.recent.split_off(&keep_from);
        Ok(report)
    }

    async fn hash_at(&self, source: &dyn BlockSource, height: i64) -> Result<String, WatchError> {
        if height < 0 {
            return Ok(String::new());
        }
        source
            .block_hashes(&[height])
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| WatchError::Rpc(format!("no block at height {height}")))
    }

    async fn set_cursor(&mut self, ctx: &WatchContext, height: i64, hash: String) -> Result<(), WatchError> {
        self.save_cursor(ctx, height, &hash).await?;
        if height >= 0 {
            self.recent.insert(height, hash.clone());
        }
        self.cursor = Some((height, hash));
        Ok(())
    }

    /// Moves the cursor back to the common ancestor if its block left the canonical chain.
    async fn check_cursor(
        &mut self,
        source: &dyn BlockSource,
        ctx: &WatchContext,
        head: i64,
        report: &mut PollReport,
    ) -> Result<(), WatchError> {
        let (height, hash) = self.cursor.clone().expect("cursor set");
        if height < 0 {
            return Ok(());
        }
        let canonical = if height <= head { source.block_hashes(&[height]).await?.pop().flatten() } else { None };
        if canonical.as_deref() == Some(hash.as_str()) {
            return Ok(());
        }
        let depth = i64::try_from(self.config.max_reorg_depth).unwrap_or(i64::MAX);
        let floor = (height - depth).max(-1);
        let known: Vec<(i64, String)> =
            self.recent.range(floor.max(0)..height.min(head + 1)).rev().map(|(h, s)| (*h, s.clone())).collect();
        let heights: Vec<i64> = known.iter().map(|(h, _)| *h).collect();
        let canonical = source.block_hashes(&heights).await?;
        let ancestor = known.iter().zip(canonical).find(|((_, ours), theirs)| theirs.as_deref() == Some(ours.as_str()));
        let (to, to_hash) = match ancestor {
            Some(((h, s), _)) => (*h, s.clone()),
            None => {
                // No history to compare (fresh process) or deeper than we remember: rescan the whole window.
                let h = floor.min(head);
                (h, self.hash_at(source, h).await?)
            }
        };
        tracing::warn!(chain = %ctx.chain(), from = height, to, "reorganisation: cursor moved back");
        ctx.metrics().reorgs.inc();
        report.rewound += u64::try_from(height - to).unwrap_or(0);
        self.recent.retain(|h, _| *h <= to);
        self.set_cursor(ctx, to, to_hash).await
    }

    async fn recheck_pending(
        &mut self,
        source: &dyn BlockSource,
        ctx: &WatchContext,
        head: i64,
        final_height: i64,
        report: &mut PollReport,
    ) -> Result<(), WatchError> {
        let mut heights: Vec<i64> = self
            .pending
            .values()
            .filter_map(|p| p.block_height)
            .chain(self.pending_tokens.values().map(|t| t.block_height))
            .filter(|h| *h <= head)
            .collect();
        heights.sort_unstable();
        heights.dedup();
        let canonical: HashMap<i64, Option<String>> =
            heights.iter().copied().zip(source.block_hashes(&heights).await?).collect();
        let is_canonical = |height: i64, hash: &str| canonical.get(&height).and_then(|c| c.as_deref()) == Some(hash);

        let cursor_height = self.cursor.as_ref().map_or(-1, |(h, _)| *h);
        let mut lowest_orphan: Option<i64> = None;
        let mut keys: Vec<(String, i64)> = self.pending.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let sighting = self.pending[&key].clone();
            let Some(height) = sighting.block_height else {
                // Unconfirmed: still there? Mined meanwhile (then follow it by its block from now on)?
                match source.tx_status(&sighting.txid).await? {
                    TxStatus::Missing => {
                        if ctx.orphan(&sighting.txid, sighting.output_index).await? {
                            report.orphaned += 1;
                        }
                        self.pending.remove(&key);
                    }
                    TxStatus::Unconfirmed => {}
                    TxStatus::Confirmed { height, .. } if height > cursor_height => {
                        // The scan reaches its block this tick and reports it with the block.
                    }
                    TxStatus::Confirmed { height, hash } if height <= head => {
                        // Mined in a block already scanned (its quote was no longer watched then): follow it.
                        let confirmations = Finality::confirmations(height, head);
                        let is_final = height <= final_height && self.enough(&sighting, confirmations);
                        let mined = PaymentReport {
                            block_height: Some(height),
                            block_hash: Some(hash),
                            confirmations,
                            is_final,
                            ..sighting
                        };
                        let outcome = ctx.report(mined.clone()).await?;
                        if is_final {
                            report.reported_final += u64::from(outcome.is_some());
                            self.pending.remove(&key);
                        } else {
                            report.reported_pending += u64::from(outcome.is_some());
                            self.pending.insert(key, mined);
                        }
                    }
                    TxStatus::Confirmed { .. } => {}
                }
                continue;
            };
            if !is_canonical(height, sighting.block_hash.as_deref().unwrap_or_default()) {
                if ctx.orphan(&sighting.txid, sighting.output_index).await? {
                    report.orphaned += 1;
                }
                self.pending.remove(&key);
                lowest_orphan = Some(lowest_orphan.map_or(height, |l| l.min(height)));
                continue;
            }
            let confirmations = Finality::confirmations(height, head);
            if height <= final_height && self.enough(&sighting, confirmations) {
                let outcome = ctx.report(PaymentReport { confirmations, is_final: true, ..sighting }).await?;
                report.reported_final += u64::from(outcome.is_some());
                self.pending.remove(&key);
            } else if confirmations != sighting.confirmations {
                let outcome = ctx.report(PaymentReport { confirmations, is_final: false, ..sighting }).await?;
                report.reported_pending += u64::from(outcome.is_some());
                self.pending.get_mut(&key).expect("pending").confirmations = confirmations;
            }
        }

        let token_keys: Vec<(String, i64)> = self.pending_tokens.keys().cloned().collect();
        for key in token_keys {
            let mut transfer = self.pending_tokens[&key].clone();
            if !is_canonical(transfer.block_height, &transfer.block_hash) {
                tracing::info!(chain = %ctx.chain(), txid = %transfer.txid, "token transfer orphaned");
                self.pending_tokens.remove(&key);
                report.orphaned += 1;
                continue;
            }
            transfer.confirmations = Finality::confirmations(transfer.block_height, head);
            transfer.is_final = transfer.block_height <= final_height;
            if transfer.is_final {
                self.pending_tokens.remove(&key);
                report.token_transfers.push(transfer);
            } else {
                self.pending_tokens.insert(key, transfer);
            }
        }

        // A sighting below the cursor whose block changed means the cursor's history changed too: rescan.
        if let (Some(low), Some((cursor, _))) = (lowest_orphan, self.cursor.clone()) {
            if low <= cursor {
                let hash = self.hash_at(source, low - 1).await?;
                report.rewound += u64::try_from(cursor - (low - 1)).unwrap_or(0);
                self.recent.retain(|h, _| *h < low);
                self.set_cursor(ctx, low - 1, hash).await?;
            }
        }
        Ok(())
    }

    /// Whether a payment in a final block also has the confirmations its quote asks beyond the chain's policy
    /// (a large quote).
    fn enough(&self, payment: &PaymentReport, confirmations: i64) -> bool {
        payment.quote_id.as_ref().and_then(|q| self.extra_confirmations.get(q)).is_none_or(|n| confirmations >= *n)
    }

    /// Final payments within the reorganisation window (`max_reorg_depth` blocks below the head), read from the
    /// store: one whose block is no longer canonical is reversed by ticketing, and the cursor goes back below it
    /// so that, if its transaction landed again, the scan finds it in its new block.
    async fn recheck_final(
        &mut self,
        source: &dyn BlockSource,
        ctx: &WatchContext,
        head: i64,
        report: &mut PollReport,
    ) -> Result<(), WatchError> {
        let depth = i64::try_from(self.config.max_reorg_depth).unwrap_or(i64::MAX);
        let credited = ctx.final_payments_since(head.saturating_sub(depth).max(0)).await?;
        if credited.is_empty() {
            return Ok(());
        }
        let mut heights: Vec<i64> = credited.iter().map(|p| p.block_height).collect();
        heights.sort_unstable();
        heights.dedup();
        let canonical: HashMap<i64, Option<String>> =
            heights.iter().copied().zip(source.block_hashes(&heights).await?).collect();
        let mut lowest: Option<i64> = None;
        for payment in &credited {
            if canonical.get(&payment.block_height).and_then(|h| h.as_deref()) == Some(payment.block_hash.as_str()) {
                continue;
            }
            if ctx.reverse(&payment.txid, payment.output_index).await? {
                report.reversed += 1;
            }
            lowest = Some(lowest.map_or(payment.block_height, |l| l.min(payment.block_height)));
        }
        if let (Some(low), Some((cursor, _))) = (lowest, self.cursor.clone()) {
            if low <= cursor {
                let hash = self.hash_at(source, low - 1).await?;
                report.rewound += u64::try_from(cursor - (low - 1)).unwrap_or(0);
                self.recent.retain(|h, _| *h < low);
                self.set_cursor(ctx, low - 1, hash).await?;
            }
        }
        Ok(())
    }

    async fn scan(
        &mut self,
        source: &dyn BlockSource,
        ctx: &WatchContext,
        head: i64,
        final_height: i64,
        quotes: &QuoteAddresses,
        report: &mut PollReport,
    ) -> Result<(), WatchError> {
        let (start, _) = self.cursor.clone().expect("cursor set");
        let last =
            head.min(start.saturating_add(i64::try_from(self.config.max_blocks_per_tick.max(1)).unwrap_or(i64::MAX)));
        let batch = i64::try_from(source.batch_blocks().max(1)).unwrap_or(1);
        if start + 1 > last {
            return Ok(());
        }
        let mut range = (start + 1, last.min(start + batch));
        let mut blocks = source.scan(range.0, range.1, quotes).await?;
        loop {
            let complete = blocks.len() == usize::try_from(range.1 - range.0 + 1).unwrap_or(0);
            let next_range = (range.1 < last).then(|| (range.1 + 1, last.min(range.1 + batch)));
            // The node reads the next blocks while the store takes this batch's reports.
            let prefetch = async {
                match next_range {
                    Some((from, to)) if complete => Some(source.scan(from, to, quotes).await),
                    _ => None,
                }
            };
            let (next, extended) = tokio::join!(prefetch, self.ingest_blocks(ctx, blocks, head, final_height, report));
            let extended = extended?;
            let (height, hash) = self.cursor.clone().expect("cursor set");
            if height >= range.0 {
                self.save_cursor(ctx, height, &hash).await?;
            }
            if !extended || !complete {
                report.behind = true;
                return Ok(());
            }
            match (next, next_range) {
                (Some(next), Some(next_range)) => {
                    blocks = next?;
                    range = next_range;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Ingests blocks in order while each extends the cursor; `false` when one does not (the chain changed
    /// between reading the cursor and this block: the next tick sorts it out).
    async fn ingest_blocks(
        &mut self,
        ctx: &WatchContext,
        blocks: Vec<ScannedBlock>,
        head: i64,
        final_height: i64,
        report: &mut PollReport,
    ) -> Result<bool, WatchError> {
        for block in blocks {
            let (height, hash) = self.cursor.clone().expect("cursor set");
            if block.height != height + 1 || (height >= 0 && block.parent_hash != hash) {
                tracing::info!(chain = %ctx.chain(), height = block.height, "block does not extend the cursor, stopping");
                return Ok(false);
            }
            self.ingest(ctx, &block, head, final_height, report).await?;
            report.blocks_scanned += 1;
            ctx.metrics().blocks_scanned.inc();
            self.recent.insert(block.height, block.hash.clone());
            self.cursor = Some((block.height, block.hash));
        }
        Ok(true)
    }

    async fn ingest(
        &mut self,
        ctx: &WatchContext,
        block: &ScannedBlock,
        head: i64,
        final_height: i64,
        report: &mut PollReport,
    ) -> Result<(), WatchError> {
        report.skipped += block.skipped;
        let confirmations = Finality::confirmations(block.height, head);
        let block_final = block.height <= final_height;
        let mut sightings = Vec::with_capacity(block.payments.len());
        for payment in &block.payments {
            let is_final = block_final && self.enough(payment, confirmations);
            let sighting = PaymentReport {
                block_height: Some(block.height),
                block_hash: Some(block.hash.clone()),
                confirmations,
                is_final,
                ..payment.clone()
            };
            match self.pending.get(&(sighting.txid.clone(), sighting.output_index)) {
                // Already followed in this block (an unconfirmed sighting found mined this tick): nothing new.
                Some(known)
                    if known.block_hash == sighting.block_hash && known.confirmations == confirmations && !is_final =>
                {
                    continue
                }
                Some(_) => {}
                None => ctx.metrics().payments_seen.inc(),
            }
            sightings.push(sighting);
        }
        // A block's sightings go to ticketing in one call, which credits them in a few statements per
        // transaction (see `ticketing::purchases::Purchases::report_payments`).
        let outcomes = ctx.report_batch(&sightings).await?;
        let outcomes = sightings.into_iter().zip(outcomes.into_iter().map(|o| o.is_some()));
        for (sighting, accepted) in outcomes {
            let key = (sighting.txid.clone(), sighting.output_index);
            if sighting.is_final {
                report.reported_final += u64::from(accepted);
                self.pending.remove(&key);
            } else {
                report.reported_pending += u64::from(accepted);
                self.pending.insert(key, sighting);
            }
        }
        for transfer in &block.token_transfers {
            let transfer = TokenTransfer {
                block_height: block.height,
                block_hash: block.hash.clone(),
                confirmations,
                is_final: block_final,
                ..transfer.clone()
            };
            tracing::warn!(chain = %ctx.chain(), symbol = %transfer.symbol, txid = %transfer.txid, units = %transfer.units,
                "token payment to a quote address: ticketing has no currency for this token, not reported");
            if !block_final {
                self.pending_tokens.insert((transfer.txid.clone(), transfer.log_index), transfer.clone());
            }
            report.token_transfers.push(transfer);
        }
        Ok(())
    }
}
