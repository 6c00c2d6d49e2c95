//! Free events: a seat for a wallet that proved itself, with no money anywhere.
//!
//! An event priced at 0 is not sold but *reserved*: the gateway checks the wallet's signature (the access
//! challenge) and calls [`Purchases::rsvp`]. The ticket is an ordinary one — status `valid`, bound to the chain and
//! wallet, its own token and server signature — so joining, banning, the door and check-in analytics treat it
//! like a paid one. What differs:
//!
//! - no payment, no ledger entry (nothing to commission, pay out or refund); the ticket's `amount_paid_units` is 0
//!   in the event's price currency;
//! - `tickets.quote_id` is required, so each RSVP writes a closed quote row (`r_…`, status `paid`, amount 0, no
//!   payment address, holding no seat) that no watcher can ever match: the quote table stays the one record of
//!   how every ticket came to be;
//! - one ticket per wallet per event: a second RSVP by the same wallet gets the ticket it already has (whatever
//!   its status: a banned wallet does not come back through a fresh RSVP).
//!
//! Capacity and the one-per-wallet rule are decided in one transaction that first writes the event's row, so
//! RSVPs for one event serialise there (the row lock on PostgreSQL, the write lock on SQLite); the seat is then
//! taken by the same conditional `UPDATE … WHERE seats_held + tickets_sold < max_attendees` as a paid sale.

use super::*;

/// What an RSVP gave the wallet.
#[derive(Debug, Clone)]
pub struct Rsvp {
    pub ticket: TicketRow,
    /// `false`: the wallet already held this ticket; nothing was written.
    pub created: bool,
}

impl Purchases {
    /// Reserves a seat of the free event `event_id` for `wallet` on `chain` (already proven by a signature and in
    /// canonical form). Refused when the event is not free (`not_free`), not on sale, or full.
    #[tracing::instrument(skip(self), fields(event_id, chain = %chain))]
    pub async fn rsvp(&self, event_id: i64, chain: Chain, wallet: &str, now: i64) -> Result<Rsvp, PurchaseError> {
        let wallet = chains::address::canonical_address(chain, wallet, self.settings.btc_network)?;
        let event = event_terms(&self.store, event_id).await?.ok_or(PurchaseError::EventNotFound(event_id))?;
        let price = event.price()?;
        if price.units != 0 {
            return Err(PurchaseError::NotFree);
        }
        if event.status != "published" {
            return Err(PurchaseError::NotOnSale(if event.status == "cancelled" {
                "cancelled"
            } else {
                "not published"
            }));
        }
        if now < event.sales_start {
            return Err(PurchaseError::NotOnSale("reservations have not opened"));
        }
        if now >= event.sales_end || now >= event.event_end {
            return Err(PurchaseError::NotOnSale("reservations have closed"));
        }

        let mut tx = self.store.pool().begin().await?;
        // Serialise this event's RSVPs: every read below sees every RSVP committed before.
        let locked = sqlx::query("UPDATE events SET updated_at = $2 WHERE id = $1 AND status = 'published'")
            .bind(event_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(PurchaseError::NotOnSale("not published"));
        }
        if let Some(ticket) = wallet_ticket(&mut tx, event_id, chain, &wallet).await? {
            tx.rollback().await?;
            return Ok(Rsvp { ticket, created: false });
        }
        let seat = sqlx::query(
            "UPDATE events SET tickets_sold = tickets_sold + 1 \
             WHERE id = $1 AND status = 'published' AND seats_held + tickets_sold < max_attendees",
        )
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
        if seat.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(PurchaseError::SoldOut);
        }
        let quote_id = random_id("r", 12);
        sqlx::query(
            "INSERT INTO quotes (id, event_id, currency, chain, wallet_address, amount_units, payment_address, status, \
             holds_seat, received_units, confirmations_required, created_at, expires_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, '0', '', 'paid', 0, '0', 0, $6, $6, $6)",
        )
        .bind(&quote_id)
        .bind(event_id)
        .bind(price.currency.symbol())
        .bind(chain.as_str())
        .bind(&wallet)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let token = new_ticket_token();
        let signature = self.access_signature(event_id, chain.as_str(), &wallet, &token);
        let ticket: TicketRow = sqlx::query_as(&format!(
            "INSERT INTO tickets (event_id, quote_id, token, chain, wallet_address, currency, amount_paid_units, \
             access_signature, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, '0', $7, 'valid', $8, $8) \
             RETURNING {TICKET_COLUMNS}"
        ))
        .bind(event_id)
        .bind(&quote_id)
        .bind(&token)
        .bind(chain.as_str())
        .bind(&wallet)
        .bind(price.currency.symbol())
        .bind(signature)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        audit::record(
            &mut *tx,
            &AuditEntry::new("buyer", "ticket.reserved")
                .event(event_id)
                .subject(&quote_id)
                .detail(serde_json::json!({ "ticket_id": ticket.id, "chain": chain.as_str(), "wallet": wallet })),
        )
        .await?;
        tx.commit().await?;
        Ok(Rsvp { ticket, created: true })
    }
}

/// The wallet's ticket for the event, whatever its status. EVM wallets are one key on every EVM chain.
async fn wallet_ticket(
    tx: &mut Transaction<'static, Any>,
    event_id: i64,
    chain: Chain,
    wallet: &str,
) -> Result<Option<TicketRow>, StoreError> {
    let chains: &[&str] = if chain.is_evm() { &["eth", "pol", "bnb"] } else { &[chain.as_str()] };
    for c in chains {
        let found: Option<TicketRow> = sqlx::query_as(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE event_id = $1 AND chain = $2 AND wallet_address = $3 \
             ORDER BY (CASE WHEN status = 'valid' THEN 0 ELSE 1 END), id LIMIT 1"
        ))
        .bind(event_id)
        .bind(*c)
        .bind(wallet)
        .fetch_optional(&mut **tx)
        .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}
