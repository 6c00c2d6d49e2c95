//! Where each payment watcher is on its chain, and the sightings it still has to follow.
//!
//! A watcher's cursor is the last block it scanned (height and hash), one row per chain in `watcher_cursors`.
//! The hash lets a restarted watcher notice that the block it stopped at was reorganised away while it was
//! down. The payments it reported but that are not final yet (`seen`/`confirming`) live in `payments`; a
//! restarted watcher reloads them here to keep re-checking them. Crediting stays with `purchases`: this module
//! only reads payments, it never changes them.

use std::str::FromStr;

use chains::{Amount, Chain, Currency};

use crate::purchases::PaymentReport;
use crate::store::{Store, StoreError};

/// The last block a watcher scanned.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Cursor {
    pub height: i64,
    pub block_hash: String,
    pub updated_at: i64,
}

impl Store {
    /// The chain's cursor, if its watcher ever saved one.
    pub async fn watcher_cursor(&self, chain: Chain) -> Result<Option<Cursor>, StoreError> {
        Ok(sqlx::query_as::<_, Cursor>("SELECT height, block_hash, updated_at FROM watcher_cursors WHERE chain = $1")
            .bind(chain.as_str())
            .fetch_optional(self.pool())
            .await?)
    }

    /// Moves the chain's cursor (forwards after a scan, backwards after a reorg).
    pub async fn save_watcher_cursor(
        &self,
        chain: Chain,
        height: i64,
        block_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO watcher_cursors (chain, height, block_hash, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (chain) DO UPDATE SET height = $2, block_hash = $3, updated_at = $4",
        )
        .bind(chain.as_str())
        .bind(height)
        .bind(block_hash)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The chain's payments that were reported but are not final yet, as the reports that recorded them
    /// (`confirmations` as last reported, `is_final` false).
    pub async fn pending_payments(&self, chain: Chain) -> Result<Vec<PaymentReport>, StoreError> {
        type Row = (
            String,
            i64,
            Option<String>,
            Option<String>,
            String,
            String,
            String,
            Option<String>,
            Option<i64>,
            Option<String>,
            i64,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT txid, output_index, quote_id, memo, currency, amount_units, to_address, from_address, block_height, \
             block_hash, confirmations FROM payments WHERE chain = $1 AND status IN ('seen', 'confirming') ORDER BY id",
        )
        .bind(chain.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(
                |(
                    txid,
                    output_index,
                    quote_id,
                    memo,
                    currency,
                    units,
                    to_address,
                    from_address,
                    block_height,
                    block_hash,
                    confirmations,
                )| {
                    let currency = Currency::from_str(&currency).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let amount =
                        Amount::from_units_str(currency, &units).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    Ok(PaymentReport {
                        chain,
                        txid,
                        output_index,
                        quote_id,
                        memo,
                        amount,
                        to_address,
                        from_address,
                        block_height,
                        block_hash,
                        confirmations,
                        is_final: false,
                    })
                },
            )
            .collect()
    }
}
