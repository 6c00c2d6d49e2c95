//! The ledger: commission, payout and refund entries, what is due, settling, refunding a ticket, the sales
//! summary, and what cancelling an event does to its quotes and tickets.

use super::*;

#[derive(Debug, Clone, Serialize)]
pub struct SalesLine {
    pub event_id: i64,
    pub currency: Currency,
    pub tickets_sold: i64,
    #[serde(serialize_with = "amount_text")]
    pub gross: Amount,
    #[serde(serialize_with = "amount_text")]
    pub commission: Amount,
    #[serde(serialize_with = "amount_text")]
    pub net_payout: Amount,
}

fn amount_text<S: serde::Serializer>(amount: &Amount, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&amount.to_string())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LedgerRow {
    pub id: i64,
    pub event_id: Option<i64>,
    pub ticket_id: Option<i64>,
    pub quote_id: Option<String>,
    pub payment_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub kind: LedgerKind,
    pub reason: String,
    pub currency: String,
    pub amount_units: String,
    pub recipient: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: LedgerStatus,
    pub due_at: Option<i64>,
    pub settled_txid: Option<String>,
    pub settled_at: Option<i64>,
    /// The address a settled payout or refund was sent to (see `crate::payouts`).
    pub paid_to: Option<String>,
}

pub(crate) const LEDGER_COLUMNS: &str =
    "id, event_id, ticket_id, quote_id, payment_id, kind, reason, currency, amount_units, \
    recipient, status, due_at, settled_txid, settled_at, paid_to";

pub(super) struct LedgerInsert<'a> {
    pub(super) event_id: Option<i64>,
    pub(super) ticket_id: Option<i64>,
    pub(super) quote_id: Option<&'a str>,
    pub(super) payment_id: Option<i64>,
    pub(super) kind: &'a str,
    pub(super) reason: &'a str,
    pub(super) amount: Amount,
    pub(super) recipient: Option<&'a str>,
    pub(super) status: &'a str,
    pub(super) due_at: Option<i64>,
    pub(super) now: i64,
}

pub(super) async fn insert_ledger(tx: &mut Transaction<'static, Any>, e: LedgerInsert<'_>) -> Result<(), StoreError> {
    // A refund too small to send is recorded, not owed.
    let status = if e.kind == "refund" && e.status == "due" { minimums::refund_status(e.amount) } else { e.status };
    // An entry cancelled by a reversal is written again when the same payment lands again (the unique key).
    sqlx::query(
        "INSERT INTO ledger_entries (event_id, ticket_id, quote_id, payment_id, kind, reason, currency, amount_units, \
         recipient, status, due_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (payment_id, kind, reason) DO UPDATE SET ticket_id = excluded.ticket_id, amount_units = excluded.amount_units, \
         recipient = excluded.recipient, status = excluded.status, due_at = excluded.due_at \
         WHERE ledger_entries.status = 'cancelled'",
    )
    .bind(e.event_id)
    .bind(e.ticket_id)
    .bind(e.quote_id)
    .bind(e.payment_id)
    .bind(e.kind)
    .bind(e.reason)
    .bind(e.amount.currency.symbol())
    .bind(e.amount.units.to_string())
    .bind(e.recipient)
    .bind(status)
    .bind(e.due_at)
    .bind(e.now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A sale's ledger entry with its quote's wallet: event, quote, payment, currency, amount, wallet.
type SaleEntry = (Option<i64>, Option<String>, Option<i64>, String, String, Option<String>);

/// The price part of a ticket's payment becomes refund due (the sale's commission and payout are cancelled by
/// the caller).
async fn refund_ticket_price(
    tx: &mut Transaction<'static, Any>,
    ticket_id: i64,
    reason: &'static str,
    now: i64,
) -> Result<(), StoreError> {
    let sale: Vec<SaleEntry> = sqlx::query_as(
        "SELECT l.event_id, l.quote_id, l.payment_id, l.currency, l.amount_units, q.wallet_address FROM ledger_entries l \
         LEFT JOIN quotes q ON q.id = l.quote_id WHERE l.ticket_id = $1 AND l.kind IN ('commission', 'payout') AND l.reason = 'sale'",
    )
    .bind(ticket_id)
    .fetch_all(&mut **tx)
    .await?;
    let Some((event_id, quote_id, payment_id, currency, _, wallet)) = sale.first().cloned() else { return Ok(()) };
    let currency = Currency::from_str(&currency).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut total = Amount::zero(currency);
    for (.., units, _) in &sale {
        let a = Amount::from_units_str(currency, units).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        total = total.checked_add(a).ok_or_else(|| StoreError::Corrupt("overflow".into()))?;
    }
    insert_ledger(
        tx,
        LedgerInsert {
            event_id,
            ticket_id: Some(ticket_id),
            quote_id: quote_id.as_deref(),
            payment_id,
            kind: "refund",
            reason,
            amount: total,
            recipient: wallet.as_deref(),
            status: "due",
            due_at: Some(now),
            now,
        },
    )
    .await
}

/// Cancels an event's money: open quotes are cancelled and their seats released, every valid ticket is
/// cancelled with its price refund due, and pending commissions and payouts are cancelled. Runs inside the
/// caller's transaction, which also marks the event cancelled.
pub async fn on_event_cancelled(tx: &mut Transaction<'static, Any>, event_id: i64, now: i64) -> Result<(), StoreError> {
    let open: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM quotes WHERE event_id = $1 AND status IN ('awaiting_payment', 'seen', 'confirming')",
    )
    .bind(event_id)
    .fetch_all(&mut **tx)
    .await?;
    for id in &open {
        let quote: QuoteRow = sqlx::query_as(&format!("SELECT {QUOTE_COLUMNS} FROM quotes WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
        let refunded = refund_confirmed_payments(tx, &quote, "event_cancelled", now).await?;
        close_quote(tx, &quote, if refunded > 0 { QuoteStatus::RefundDue } else { QuoteStatus::Cancelled }, now)
            .await?;
    }
    let tickets: Vec<i64> = sqlx::query_scalar("SELECT id FROM tickets WHERE event_id = $1 AND status = 'valid'")
        .bind(event_id)
        .fetch_all(&mut **tx)
        .await?;
    for ticket_id in tickets {
        sqlx::query("UPDATE tickets SET status = 'cancelled', updated_at = $2 WHERE id = $1")
            .bind(ticket_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "UPDATE ledger_entries SET status = 'cancelled' WHERE ticket_id = $1 AND kind IN ('commission', 'payout') AND status = 'pending'",
        )
        .bind(ticket_id)
        .execute(&mut **tx)
        .await?;
        refund_ticket_price(tx, ticket_id, "event_cancelled", now).await?;
    }
    audit::record(&mut **tx, &AuditEntry::new("system", "event.money_cancelled").event(event_id)).await?;
    Ok(())
}

impl Purchases {
    /// Ledger entries of one kind; `due_only` keeps the ones an operator should pay now.
    pub async fn ledger(&self, kind: &str, due_only: bool, now: i64) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = sqlx::query_as::<_, LedgerRow>(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE kind = $1 AND \
             ($2 = 0 OR status = 'due' OR (status = 'pending' AND due_at <= $3)) ORDER BY id"
        ))
        .bind(kind)
        .bind(i64::from(due_only))
        .bind(now)
        .fetch_all(self.store.pool())
        .await?;
        Ok(rows)
    }

    pub async fn ledger_for_event(&self, event_id: i64) -> Result<Vec<LedgerRow>, StoreError> {
        Ok(sqlx::query_as::<_, LedgerRow>(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE event_id = $1 ORDER BY id"
        ))
        .bind(event_id)
        .fetch_all(self.store.pool())
        .await?)
    }

    pub async fn ledger_entry(&self, id: i64) -> Result<Option<LedgerRow>, StoreError> {
        Ok(sqlx::query_as::<_, LedgerRow>(&format!("SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.store.pool())
            .await?)
    }

    /// Records the transaction that paid a due payout or refund, to where it goes now (a payout: its creator's
    /// payout address for its chain; none: held, `no_payout_address`). A second settlement is refused. The
    /// gateway checks the transaction first and calls [`Store::settle_entry`] itself; see `crate::payouts`.
    pub async fn settle(
        &self,
        entry_id: i64,
        txid: &str,
        actor: &str,
        now: i64,
    ) -> Result<LedgerRow, crate::payouts::SettleError> {
        let destination = self.store.settlement_destination(entry_id, now).await?;
        self.store.settle_entry(entry_id, txid, &destination.address, actor, now).await
    }

    /// Refunds one ticket before its payout is due: the seat returns to sale, the sale's commission and
    /// payout are cancelled and the price paid becomes refund due.
    pub async fn refund_ticket(&self, ticket_id: i64, actor: &str, now: i64) -> Result<(), PurchaseError> {
        let mut tx = self.store.pool().begin().await?;
        let changed =
            sqlx::query("UPDATE tickets SET status = 'refunded', updated_at = $2 WHERE id = $1 AND status = 'valid'")
                .bind(ticket_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        if changed.rows_affected() == 0 {
            return Err(PurchaseError::NotRefundable(ticket_id, "not a valid ticket"));
        }
        let cancelled = sqlx::query(
            "UPDATE ledger_entries SET status = 'cancelled' WHERE ticket_id = $1 AND kind IN ('commission', 'payout') \
             AND status = 'pending' AND due_at > $2",
        )
        .bind(ticket_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if cancelled.rows_affected() != 2 {
            tx.rollback().await?;
            return Err(PurchaseError::NotRefundable(ticket_id, "the payout is already due"));
        }
        refund_ticket_price(&mut tx, ticket_id, "refunded", now).await?;
        let event_id: i64 = sqlx::query_scalar("SELECT event_id FROM tickets WHERE id = $1")
            .bind(ticket_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("UPDATE events SET tickets_sold = tickets_sold - 1, updated_at = $2 WHERE id = $1")
            .bind(event_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut *tx,
            &AuditEntry::new(actor, "ticket.refunded").event(event_id).subject(&ticket_id.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Tickets sold, gross, commission and net payout by event and currency, for a creator.
    pub async fn sales_summary(&self, creator: &str) -> Result<Vec<SalesLine>, StoreError> {
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT l.event_id, l.currency, l.kind, l.amount_units, l.status FROM ledger_entries l \
             JOIN events e ON e.id = l.event_id WHERE e.creator_account = $1 AND l.reason = 'sale' ORDER BY l.event_id",
        )
        .bind(creator)
        .fetch_all(self.store.pool())
        .await?;
        let mut lines: std::collections::BTreeMap<(i64, String), SalesLine> = Default::default();
        for (event_id, currency_text, kind, units, status) in rows {
            if status == "cancelled" {
                continue;
            }
            let currency = Currency::from_str(&currency_text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let amount = Amount::from_units_str(currency, &units).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let line = lines.entry((event_id, currency_text.clone())).or_insert_with(|| SalesLine {
                event_id,
                currency,
                tickets_sold: 0,
                gross: Amount::zero(currency),
                commission: Amount::zero(currency),
                net_payout: Amount::zero(currency),
            });
            let add = |a: Amount, b: Amount| a.checked_add(b).ok_or_else(|| StoreError::Corrupt("overflow".into()));
            line.gross = add(line.gross, amount)?;
            if kind == "commission" {
                line.commission = add(line.commission, amount)?;
                line.tickets_sold += 1;
            } else {
                line.net_payout = add(line.net_payout, amount)?;
            }
        }
        Ok(lines.into_values().collect())
    }
}
