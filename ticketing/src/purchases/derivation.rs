//! Derivation indexes for per-quote receiving addresses (`0/i` of the BTC account, of the shared EVM account),
//! and why their gap stays bounded.
//!
//! A wallet restored from the platform's seed finds its coins by scanning addresses `0/0, 0/1, …` and stops after
//! its *gap limit* of consecutive unused ones. Every quote takes an index, and most anonymous quotes are never
//! paid, so without care a burst of quotes (one client may hold only 4 open quotes per event, but over many events,
//! addresses and hours the count has no bound) would push paid addresses beyond any gap a wallet scans.
//!
//! Two rules keep the gap bounded by [`AddressReuse::max_gap`]:
//! - **reuse**: a quote that expired (or was cancelled) with nothing received and no payment seen releases its
//!   index once `reuse_after_ms` has passed since it expired (the watch window: a payer who pays that late pays
//!   an address a newer quote may hold, and is credited to it); the lowest such index is taken before a fresh one;
//! - **cap**: a fresh index is taken only while it stays within `max_gap` of the highest index that received a
//!   payment; past that, an expired unpaid quote's index is reused at once, whatever the window, and when there is
//!   none (every index in the gap belongs to an open quote) the quote is refused with `address_gap_full` (503).
//!
//! So the largest run of unused indexes — what a restored wallet's gap limit must cover — is at most `max_gap`,
//! reported by `gateway admin addresses --chain C` ([`DerivationReport`]).

use chains::Chain;
use serde::Serialize;
use sqlx::{Any, Transaction};

use crate::store::{Store, StoreError};

/// How derivation indexes are reused and how far ahead of the last paid one they may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressReuse {
    /// An expired unpaid quote's index is reused this long after it expired.
    pub reuse_after_ms: i64,
    /// Indexes never run more than this past the highest one that was paid.
    pub max_gap: u32,
}

impl Default for AddressReuse {
    fn default() -> Self {
        AddressReuse { reuse_after_ms: 24 * 60 * 60 * 1000, max_gap: 1000 }
    }
}

/// The counter a chain's quotes draw from: the EVM chains share one key, so they share one counter.
pub fn counter(chain: Chain) -> &'static str {
    if chain.is_evm() {
        "evm"
    } else {
        chain.as_str()
    }
}

/// The chains sharing `chain`'s counter (as stored in `quotes.chain`).
fn counter_chains(chain: Chain) -> Vec<&'static str> {
    if chain.is_evm() {
        vec!["eth", "pol", "bnb"]
    } else {
        vec![chain.as_str()]
    }
}

const PAID: &str = "(received_units <> '0' OR EXISTS (SELECT 1 FROM payments p WHERE p.quote_id = quotes.id))";

#[derive(Debug, thiserror::Error)]
pub enum AllocateError {
    #[error("every receiving address within the gap of {0} is held by an open quote")]
    GapFull(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The index for a new quote on `chain`, inside the quote's transaction (see the module docs).
pub(crate) async fn allocate(
    tx: &mut Transaction<'static, Any>,
    chain: Chain,
    policy: AddressReuse,
    now: i64,
) -> Result<u32, AllocateError> {
    let chains = counter_chains(chain);
    let list = chains.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
    // Reuse first: the lowest index of a quote that expired unpaid before the watch window.
    if let Some(index) = take(tx, &list, now - policy.reuse_after_ms).await? {
        return Ok(index);
    }
    let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(next_index), 0) FROM derivation_counters WHERE chain = $1")
        .bind(counter(chain))
        .fetch_one(&mut **tx)
        .await
        .map_err(StoreError::from)?;
    let highest_paid: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT MAX(derivation_index) FROM quotes WHERE chain IN ({list}) AND derivation_index IS NOT NULL AND {PAID}"
    ))
    .fetch_one(&mut **tx)
    .await
    .map_err(StoreError::from)?;
    let limit = highest_paid.unwrap_or(-1) + i64::from(policy.max_gap);
    if next > limit {
        // Under pressure: any expired unpaid quote's index, at once.
        if let Some(index) = take(tx, &list, now).await? {
            return Ok(index);
        }
        return Err(AllocateError::GapFull(policy.max_gap));
    }
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO derivation_counters (chain, next_index) VALUES ($1, 1) \
         ON CONFLICT (chain) DO UPDATE SET next_index = derivation_counters.next_index + 1 RETURNING next_index",
    )
    .bind(counter(chain))
    .fetch_one(&mut **tx)
    .await
    .map_err(StoreError::from)?;
    u32::try_from(next - 1).map_err(|_| AllocateError::Store(StoreError::Corrupt("derivation index overflow".into())))
}

/// Releases the lowest index of a quote that expired unpaid before `cutoff` and returns it. The conditional
/// `UPDATE` decides between two quotes racing for it (the loser finds no row and tries the next).
async fn take(tx: &mut Transaction<'static, Any>, list: &str, cutoff: i64) -> Result<Option<u32>, StoreError> {
    for _ in 0..3 {
        let candidate: Option<(String, i64)> = sqlx::query_as(&format!(
            "SELECT id, derivation_index FROM quotes WHERE chain IN ({list}) AND derivation_index IS NOT NULL \
             AND status IN ('expired', 'cancelled') AND expires_at <= $1 AND NOT {PAID} \
             ORDER BY derivation_index LIMIT 1"
        ))
        .bind(cutoff)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((id, index)) = candidate else { return Ok(None) };
        let released = sqlx::query(&format!(
            "UPDATE quotes SET derivation_index = NULL WHERE id = $1 AND derivation_index = $2 AND NOT {PAID}"
        ))
        .bind(&id)
        .bind(index)
        .execute(&mut **tx)
        .await?;
        if released.rows_affected() == 1 {
            crate::audit::record(
                &mut **tx,
                &crate::audit::AuditEntry::new("ticketing", "derivation.reused")
                    .subject(&id)
                    .detail(serde_json::json!({ "index": index })),
            )
            .await?;
            return u32::try_from(index).map(Some).map_err(|_| StoreError::Corrupt("derivation index".into()));
        }
    }
    Ok(None)
}

/// What `gateway admin addresses --chain C` shows: the index range quotes have used and the gap a restored
/// wallet must scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DerivationReport {
    pub chain: Chain,
    /// Indexes `0 .. next_index` have been handed out (`0/i`).
    pub next_index: u32,
    /// Indexes currently held by a quote.
    pub indexes_in_use: u32,
    /// The highest index that received a payment.
    pub highest_paid_index: Option<u32>,
    /// The longest run of unpaid indexes below `next_index` (before the first paid one, between two, or after
    /// the last): a restored wallet's gap limit must be larger.
    pub largest_unpaid_run: u32,
    /// The bound the gateway keeps the gap within (`payments.max_address_gap`).
    pub max_gap: u32,
}

impl Store {
    pub async fn derivation_report(&self, chain: Chain, policy: AddressReuse) -> Result<DerivationReport, StoreError> {
        let list = counter_chains(chain).iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
        let next: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(next_index), 0) FROM derivation_counters WHERE chain = $1")
                .bind(counter(chain))
                .fetch_one(self.pool())
                .await?;
        let rows: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT derivation_index, CASE WHEN {PAID} THEN 1 ELSE 0 END FROM quotes \
             WHERE chain IN ({list}) AND derivation_index IS NOT NULL ORDER BY derivation_index"
        ))
        .fetch_all(self.pool())
        .await?;
        let mut paid: Vec<i64> = rows.iter().filter(|(_, p)| *p == 1).map(|(i, _)| *i).collect();
        paid.dedup();
        let mut largest = 0i64;
        let mut previous = -1i64;
        for index in &paid {
            largest = largest.max(index - previous - 1);
            previous = *index;
        }
        largest = largest.max(next - previous - 1);
        let to_u32 = |v: i64| u32::try_from(v.max(0)).map_err(|_| StoreError::Corrupt("derivation index".into()));
        Ok(DerivationReport {
            chain,
            next_index: to_u32(next)?,
            indexes_in_use: to_u32(rows.len() as i64)?,
            highest_paid_index: paid.last().map(|i| to_u32(*i)).transpose()?,
            largest_unpaid_run: to_u32(largest)?,
            max_gap: policy.max_gap,
        })
    }
}
