//! Reversals: a final payment that left the chain after ticketing dealt with it.
//!
//! Watchers credit a payment once the chain's policy calls it final, but a reorganisation deeper than that policy
//! (or a replacement) can still take its transaction out of the canonical chain. Money never received must not
//! stay credited: [`Purchases::reverse_payment`] undoes what the payment did, in one transaction —
//!
//! - the payment goes back to `orphaned` (as an unconfirmed sighting whose block left the chain), so it counts
//!   again only if it lands again;
//! - the ticket it paid for becomes `payment_reversed` (joins are refused with that reason) and its seat returns
//!   to sale;
//! - its ledger entries not yet paid (the sale's commission and payout: the payout is held; a refund owed of it)
//!   are cancelled; entries already settled cannot be, and are named in the audit row for an operator;
//! - the quote is as if the payment had never come: open (without a seat) until its expiry, or expired, with any
//!   other final output of it counted again (and refunded when the quote has expired);
//! - a `payment.reversed` audit row, written in the same transaction.
//!
//! If the transaction lands again (a reorganisation usually re-mines it), it is reported and credited like any
//! late payment: the reversed ticket is given back (`Purchases::issue_ticket` restores it, the one ticket per
//! quote) when a seat is free at the quote's terms, otherwise the payment is refunded.

use sqlx::{Any, Transaction};

use crate::audit::{self, AuditEntry};
use crate::StoreError;
use chains::Chain;

use super::{
    refund_confirmed_payments, PaymentOutcome, PaymentReport, Purchases, QuoteRow, QuoteStatus, QUOTE_COLUMNS,
};

/// What one reversal undid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversal {
    pub payment_id: i64,
    /// The event whose sale or refund it was, when known.
    pub event_id: Option<i64>,
    pub quote_id: Option<String>,
    /// The ticket that became `payment_reversed`.
    pub ticket_id: Option<i64>,
    /// Ledger entries cancelled (held payout and commission, refunds no longer owed).
    pub cancelled_entries: Vec<i64>,
    /// Ledger entries of it already paid out: money that left for a payment never received.
    pub settled_entries: Vec<i64>,
}

/// A final payment a watcher should re-check while its block may still be reorganised away.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FinalPayment {
    pub txid: String,
    pub output_index: i64,
    pub block_height: i64,
    pub block_hash: String,
}

impl Purchases {
    /// Final payments (credited, refunded or counted toward a quote) of `chain` in blocks at or above
    /// `min_height`, with the block they were credited from: what a watcher re-checks after a reorganisation.
    pub async fn final_payments_since(&self, chain: Chain, min_height: i64) -> Result<Vec<FinalPayment>, StoreError> {
        Ok(sqlx::query_as::<_, FinalPayment>(
            "SELECT txid, output_index, block_height, block_hash FROM payments WHERE chain = $1 AND block_height >= $2 \
             AND block_hash IS NOT NULL AND status IN ('confirmed', 'credited', 'refund_due') ORDER BY block_height, id",
        )
        .bind(chain.as_str())
        .bind(min_height)
        .fetch_all(self.store.pool())
        .await?)
    }

    /// Reverses a final payment whose transaction left the chain (see the module documentation). `None` when it
    /// is not a final payment we know (never reported, still pending, or reversed already): reversing is
    /// idempotent.
    #[tracing::instrument(skip(self), fields(chain = %chain))]
    pub async fn reverse_payment(
        &self,
        chain: Chain,
        txid: &str,
        output_index: i64,
        now: i64,
    ) -> Result<Option<Reversal>, StoreError> {
        let mut tx = self.store.pool().begin().await?;
        let row: Option<(i64, Option<String>, String)> = sqlx::query_as(
            "SELECT id, quote_id, status FROM payments WHERE chain = $1 AND txid = $2 AND output_index = $3",
        )
        .bind(chain.as_str())
        .bind(txid)
        .bind(output_index)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((payment_id, quote_id, previous)) = row else { return Ok(None) };
        let changed = sqlx::query(
            "UPDATE payments SET status = 'orphaned', block_height = NULL, block_hash = NULL, confirmations = 0, updated_at = $3 \
             WHERE id = $1 AND status = $2 AND status IN ('confirmed', 'credited', 'refund_due')",
        )
        .bind(payment_id)
        .bind(&previous)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 0 {
            return Ok(None);
        }

        let quote: Option<QuoteRow> = match &quote_id {
            // Writing the quote first serialises this with every report for it.
            Some(id) => {
                sqlx::query_as(&format!("UPDATE quotes SET updated_at = $2 WHERE id = $1 RETURNING {QUOTE_COLUMNS}"))
                    .bind(id)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?
            }
            None => None,
        };
        let mut ticket_id = None;
        if previous == "credited" {
            if let Some(quote) = &quote {
                ticket_id = reverse_ticket(&mut tx, quote, now).await?;
            }
        }

        // Everything the ledger holds of this payment (and of its ticket) that is not paid yet is cancelled.
        let entries: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT id, status, event_id FROM ledger_entries WHERE payment_id = $1 OR ($2 IS NOT NULL AND ticket_id = $2) ORDER BY id",
        )
        .bind(payment_id)
        .bind(ticket_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut cancelled_entries = Vec::new();
        let mut settled_entries = Vec::new();
        for (id, status, _) in &entries {
            match status.as_str() {
                "pending" | "due" | "below_minimum" => {
                    sqlx::query("UPDATE ledger_entries SET status = 'cancelled' WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    cancelled_entries.push(*id);
                }
                "settled" => settled_entries.push(*id),
                _ => {}
            }
        }

        if let (Some(quote), true) = (&quote, previous == "credited" || previous == "confirmed") {
            reopen_quote(&mut tx, quote, now).await?;
        }
        let event_id = quote.as_ref().map(|q| q.event_id).or_else(|| entries.iter().find_map(|(_, _, e)| *e));
        let reversal = Reversal { payment_id, event_id, quote_id, ticket_id, cancelled_entries, settled_entries };
        let mut entry = AuditEntry::new("watcher", "payment.reversed").subject(txid).detail(serde_json::json!({
            "chain": chain, "output_index": output_index, "was": previous, "quote_id": reversal.quote_id,
            "ticket_id": reversal.ticket_id, "cancelled_entries": reversal.cancelled_entries,
            "settled_entries": reversal.settled_entries,
        }));
        if let Some(event_id) = event_id {
            entry = entry.event(event_id);
        }
        audit::record(&mut *tx, &entry).await?;
        tx.commit().await?;
        if !reversal.settled_entries.is_empty() {
            tracing::error!(txid, ?reversal, "reversed payment had ledger entries already paid out");
        }
        Ok(Some(reversal))
    }
}

impl Purchases {
    /// A payment that cannot be credited in time because the chain keeps it locked past its quote's watch window
    /// (a Monero `unlock_time`): recorded at once, final, as a refund due to the quote's buyer with reason
    /// `locked`. The quote's state is left alone. Idempotent per (chain, txid, output).
    pub async fn record_locked(&self, report: &PaymentReport, now: i64) -> Result<PaymentOutcome, StoreError> {
        let Some(quote_id) = report.quote_id.as_deref() else { return Ok(PaymentOutcome::AlreadyProcessed) };
        let mut tx = self.store.pool().begin().await?;
        let quote: Option<QuoteRow> =
            sqlx::query_as(&format!("UPDATE quotes SET updated_at = $2 WHERE id = $1 RETURNING {QUOTE_COLUMNS}"))
                .bind(quote_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(quote) = quote else { return Ok(PaymentOutcome::AlreadyProcessed) };
        let existing: Option<String> =
            sqlx::query_scalar("SELECT status FROM payments WHERE chain = $1 AND txid = $2 AND output_index = $3")
                .bind(report.chain.as_str())
                .bind(&report.txid)
                .bind(report.output_index)
                .fetch_optional(&mut *tx)
                .await?;
        if existing.as_deref().is_some_and(super::is_final_payment_status) {
            return Ok(PaymentOutcome::AlreadyProcessed);
        }
        let payment_id = super::upsert_payment(&mut tx, report, Some(&quote.id), "refund_due", now).await?;
        super::insert_ledger(
            &mut tx,
            super::LedgerInsert {
                event_id: Some(quote.event_id),
                ticket_id: None,
                quote_id: Some(&quote.id),
                payment_id: Some(payment_id),
                kind: "refund",
                reason: "locked",
                amount: report.amount,
                recipient: Some(&quote.wallet_address),
                status: "due",
                due_at: Some(now),
                now,
            },
        )
        .await?;
        // A quote whose only sighting was this transfer no longer shows it as coming.
        sqlx::query(
            "UPDATE quotes SET status = 'awaiting_payment', confirmations = 0 WHERE id = $1 AND status IN ('seen', 'confirming') \
             AND NOT EXISTS (SELECT 1 FROM payments WHERE quote_id = $1 AND status IN ('seen', 'confirming', 'confirmed'))",
        )
        .bind(&quote.id)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut *tx,
            &AuditEntry::new("watcher", "payment.locked").event(quote.event_id).subject(&report.txid).detail(
                serde_json::json!({
                    "quote_id": quote.id, "amount": report.amount.units.to_string(), "currency": report.amount.currency,
                }),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(PaymentOutcome::RefundDue { reason: "locked" })
    }
}

/// The quote's ticket becomes `payment_reversed` and its seat returns to sale. Returns the ticket.
async fn reverse_ticket(
    tx: &mut Transaction<'static, Any>,
    quote: &QuoteRow,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let ticket: Option<i64> = sqlx::query_scalar(
        "UPDATE tickets SET status = 'payment_reversed', updated_at = $2 WHERE quote_id = $1 AND status IN ('valid', 'banned') \
         RETURNING id",
    )
    .bind(&quote.id)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    if ticket.is_some() {
        sqlx::query(
            "UPDATE events SET tickets_sold = tickets_sold - 1, updated_at = $2 WHERE id = $1 AND tickets_sold > 0",
        )
        .bind(quote.event_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(ticket)
}

/// The quote as if the reversed payment had never come: its other credited outputs count toward it again; it is
/// open (holding no seat: it competes for one when paid, as an unreserved quote does) until it expires, and
/// once expired what it holds is owed back as `underpaid`.
async fn reopen_quote(tx: &mut Transaction<'static, Any>, quote: &QuoteRow, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE payments SET status = 'confirmed', updated_at = $2 WHERE quote_id = $1 AND status = 'credited'",
    )
    .bind(&quote.id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if quote.holds_seat == 1 {
        super::release_seat(tx, quote.event_id, now).await?;
    }
    let received: Vec<(String,)> =
        sqlx::query_as("SELECT amount_units FROM payments WHERE quote_id = $1 AND status = 'confirmed'")
            .bind(&quote.id)
            .fetch_all(&mut **tx)
            .await?;
    let currency = quote.currency()?;
    let mut total = chains::Amount::zero(currency);
    for (units,) in &received {
        let a = chains::Amount::from_units_str(currency, units).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        total = total.checked_add(a).ok_or_else(|| StoreError::Corrupt("amount overflow".into()))?;
    }
    let expired = quote.expires_at <= now;
    let status = match (expired, total.units > 0) {
        (false, false) => QuoteStatus::AwaitingPayment,
        (false, true) => QuoteStatus::Seen,
        (true, _) => QuoteStatus::Expired,
    };
    sqlx::query(
        "UPDATE quotes SET status = $2, holds_seat = 0, received_units = $3, confirmations = 0, updated_at = $4 WHERE id = $1",
    )
    .bind(&quote.id)
    .bind(status.as_str())
    .bind(total.units.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if expired && total.units > 0 {
        let reopened = QuoteRow { status, holds_seat: 0, ..quote.clone() };
        if refund_confirmed_payments(tx, &reopened, "underpaid", now).await? > 0 {
            super::set_quote_status(tx, &quote.id, QuoteStatus::RefundDue, now).await?;
        }
    }
    Ok(())
}
