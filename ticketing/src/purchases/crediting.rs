//! Crediting: a payment a watcher reports final is recorded once per (chain, txid, output), matched to its
//! quote, and credited (a ticket with its commission and payout entries), refunded, or recorded on its own.
//! `batch.rs` credits a block's common case set-wise and must write the same rows.

use super::*;

/// One on-chain transfer, as a watcher saw it.
#[derive(Debug, Clone)]
pub struct PaymentReport {
    pub chain: Chain,
    pub txid: String,
    pub output_index: i64,
    /// The quote, when the watcher knows it (per-quote address or reference). Otherwise matched by memo.
    pub quote_id: Option<String>,
    pub memo: Option<String>,
    pub amount: Amount,
    pub to_address: String,
    pub from_address: Option<String>,
    pub block_height: Option<i64>,
    pub block_hash: Option<String>,
    pub confirmations: i64,
    /// Final under the chain's policy: only final payments are credited.
    pub is_final: bool,
}

impl PaymentReport {
    /// The receiving address as quotes and payments store it (lower-case on EVM chains).
    pub(super) fn stored_to_address(&self) -> String {
        if self.chain.is_evm() {
            self.to_address.to_ascii_lowercase()
        } else {
            self.to_address.clone()
        }
    }
}

/// What a report changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Seen but not final yet: progress recorded on the quote.
    Pending {
        confirmations: i64,
        required: i64,
    },
    /// Final, but the quote still needs `remaining` more.
    Partial {
        remaining: Amount,
    },
    TicketIssued {
        ticket_id: i64,
    },
    /// Final, and owed back to the payer for `reason`.
    RefundDue {
        reason: &'static str,
    },
    /// This output was already final and processed: nothing changed.
    AlreadyProcessed,
}

/// Why a payment that names a quote must not touch it: another currency (`wrong_currency`), or, for a quote
/// matched by its memo (which anyone can copy from the chain), a sender that is not the quote's buyer
/// (`third_party`). A per-quote address or reference was handed to the buyer alone, so whoever pays to it pays
/// for the buyer (an exchange withdrawal, a friend): that is credited to the quote.
pub(crate) fn stray_reason(quote: &QuoteRow, report: &PaymentReport) -> Option<&'static str> {
    if quote.currency().is_ok_and(|c| c != report.amount.currency) {
        return Some("wrong_currency");
    }
    let by_memo = quote.memo.is_some() && quote.derivation_index.is_none() && report.memo.is_some();
    match &report.from_address {
        Some(from) if by_memo && !from.eq_ignore_ascii_case(&quote.wallet_address) => Some("third_party"),
        _ => None,
    }
}

/// How a payment recorded on its own is booked (see `Purchases::record_on_its_own`).
struct OnItsOwn<'a> {
    reason: &'static str,
    /// The event its ledger entry is filed under, when it exists.
    event_id: Option<i64>,
    /// Who the refund is owed to: the sender where the chain shows one; `None`: to be claimed.
    recipient: Option<String>,
    /// The quote it named, for the audit row only.
    named_quote: Option<&'a str>,
}

impl<'a> OnItsOwn<'a> {
    fn unmatched(report: &PaymentReport) -> Self {
        let memo = report.memo.as_deref().and_then(parse_memo);
        OnItsOwn {
            reason: "unmatched",
            event_id: memo.as_ref().map(|m| m.event_id),
            // The sender first: a memo names whoever its writer chose.
            recipient: report.from_address.clone().or_else(|| memo.map(|m| m.wallet)),
            named_quote: None,
        }
    }

    fn stray(quote: &'a QuoteRow, report: &PaymentReport, reason: &'static str) -> Self {
        OnItsOwn {
            reason,
            event_id: Some(quote.event_id),
            recipient: report.from_address.clone(),
            named_quote: Some(&quote.id),
        }
    }
}

/// A ticket's bearer token: 32 random bytes, base64url.
pub(super) fn new_ticket_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A payment in one of these states was final and has been dealt with: a later report of it changes nothing.
pub(super) fn is_final_payment_status(status: &str) -> bool {
    PaymentStatus::try_from(status).is_ok_and(PaymentStatus::is_final)
}

pub(super) async fn upsert_payment(
    tx: &mut Transaction<'static, Any>,
    report: &PaymentReport,
    quote_id: Option<&str>,
    status: &str,
    now: i64,
) -> Result<i64, StoreError> {
    let to = report.stored_to_address();
    Ok(sqlx::query_scalar(
        "INSERT INTO payments (chain, txid, output_index, quote_id, currency, amount_units, from_address, to_address, memo, \
         block_height, block_hash, confirmations, status, first_seen_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
         ON CONFLICT (chain, txid, output_index) DO UPDATE SET block_height = $10, block_hash = $11, confirmations = $12, \
         status = $13, updated_at = $14 RETURNING id",
    )
    .bind(report.chain.as_str())
    .bind(&report.txid)
    .bind(report.output_index)
    .bind(quote_id)
    .bind(report.amount.currency.symbol())
    .bind(report.amount.units.to_string())
    .bind(&report.from_address)
    .bind(to)
    .bind(&report.memo)
    .bind(report.block_height)
    .bind(&report.block_hash)
    .bind(report.confirmations)
    .bind(status)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?)
}

async fn refund_payment(
    tx: &mut Transaction<'static, Any>,
    event_id: i64,
    quote: &QuoteRow,
    payment_id: i64,
    amount: Amount,
    reason: &'static str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE payments SET status = 'refund_due', updated_at = $2 WHERE id = $1")
        .bind(payment_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    insert_ledger(
        tx,
        LedgerInsert {
            event_id: Some(event_id),
            ticket_id: None,
            quote_id: Some(&quote.id),
            payment_id: Some(payment_id),
            kind: "refund",
            reason,
            amount,
            recipient: Some(&quote.wallet_address),
            status: "due",
            due_at: Some(now),
            now,
        },
    )
    .await?;
    if quote.is_open() {
        close_quote(tx, quote, QuoteStatus::RefundDue, now).await?;
    }
    Ok(())
}

/// Makes every final, uncredited payment of a quote refund due. Returns how many.
pub(super) async fn refund_confirmed_payments(
    tx: &mut Transaction<'static, Any>,
    quote: &QuoteRow,
    reason: &'static str,
    now: i64,
) -> Result<usize, StoreError> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, currency, amount_units FROM payments WHERE quote_id = $1 AND status = 'confirmed'")
            .bind(&quote.id)
            .fetch_all(&mut **tx)
            .await?;
    for (payment_id, currency, units) in &rows {
        let currency = Currency::from_str(currency).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let amount = Amount::from_units_str(currency, units).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE payments SET status = 'refund_due', updated_at = $2 WHERE id = $1")
            .bind(payment_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        insert_ledger(
            tx,
            LedgerInsert {
                event_id: Some(quote.event_id),
                ticket_id: None,
                quote_id: Some(&quote.id),
                payment_id: Some(*payment_id),
                kind: "refund",
                reason,
                amount,
                recipient: Some(&quote.wallet_address),
                status: "due",
                due_at: Some(now),
                now,
            },
        )
        .await?;
    }
    Ok(rows.len())
}

impl Purchases {
    /// Records a watcher's sighting and, when final, credits it. Idempotent per (chain, txid, output).
    #[tracing::instrument(skip(self, report), fields(chain = %report.chain, txid = %report.txid, output = report.output_index))]
    pub async fn report_payment(&self, report: PaymentReport, now: i64) -> Result<PaymentOutcome, PurchaseError> {
        let mut outcomes = self.report_payments(std::slice::from_ref(&report), now).await?;
        outcomes.pop().expect("one outcome per report")
    }

    /// The price of a ticket bought now, in `currency` (a USD price at today's rate); `None` when no rate.
    pub(super) async fn current_price(
        &self,
        event: &EventTerms,
        currency: Currency,
    ) -> Result<Option<Amount>, StoreError> {
        Ok(match event.price()? {
            p if p.currency == Currency::Usd => match self.rates.usd_rate(currency).await {
                Ok(rate) => convert_usd(p, currency, rate).ok(),
                Err(_) => None,
            },
            p => Some(p),
        })
    }

    /// One report inside the caller's transaction: the general path, for every case (see `batch` for the
    /// common one done set-wise). `quote` and `event` were read before the transaction; the quote is re-read
    /// under its lock here.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn report_in_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        report: &PaymentReport,
        quote: Option<&QuoteRow>,
        event: Option<&EventTerms>,
        current_price: Option<Amount>,
        now: i64,
    ) -> Result<PaymentOutcome, PurchaseError> {
        let Some(quote) = quote else {
            return self.record_on_its_own(tx, report, OnItsOwn::unmatched(report), now).await;
        };
        if let Some(reason) = stray_reason(quote, report) {
            return self.record_on_its_own(tx, report, OnItsOwn::stray(quote, report, reason), now).await;
        }
        let event = event.ok_or(PurchaseError::EventNotFound(quote.event_id))?;
        // Writing the quote row first serialises every report for this quote (row lock on PostgreSQL, the
        // write lock on SQLite) before anything is read.
        let quote: QuoteRow =
            sqlx::query_as(&format!("UPDATE quotes SET updated_at = $2 WHERE id = $1 RETURNING {QUOTE_COLUMNS}"))
                .bind(&quote.id)
                .bind(now)
                .fetch_one(&mut **tx)
                .await?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT status FROM payments WHERE chain = $1 AND txid = $2 AND output_index = $3")
                .bind(report.chain.as_str())
                .bind(&report.txid)
                .bind(report.output_index)
                .fetch_optional(&mut **tx)
                .await?;
        if existing.as_deref().is_some_and(is_final_payment_status) {
            return Ok(PaymentOutcome::AlreadyProcessed);
        }
        let status = if report.is_final { "confirmed" } else { "confirming" };
        let payment_id = upsert_payment(tx, report, Some(&quote.id), status, now).await?;

        if !report.is_final {
            if quote.is_open() {
                let quote_status = if report.confirmations > 0 { "confirming" } else { "seen" };
                sqlx::query("UPDATE quotes SET status = $2, confirmations = $3, updated_at = $4 WHERE id = $1")
                    .bind(&quote.id)
                    .bind(quote_status)
                    .bind(report.confirmations)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
            }
            return Ok(PaymentOutcome::Pending {
                confirmations: report.confirmations,
                required: quote.confirmations_required,
            });
        }
        self.credit(tx, &quote, event, payment_id, report, current_price, now).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn credit(
        &self,
        tx: &mut Transaction<'static, Any>,
        quote: &QuoteRow,
        event: &EventTerms,
        payment_id: i64,
        report: &PaymentReport,
        current_price: Option<Amount>,
        now: i64,
    ) -> Result<PaymentOutcome, PurchaseError> {
        let currency = quote.currency()?;
        // Stray payments (another currency, another sender) never reach here: see `stray_reason`.
        let event_status: String = sqlx::query_scalar("SELECT status FROM events WHERE id = $1")
            .bind(quote.event_id)
            .fetch_one(&mut **tx)
            .await?;
        if event_status == "cancelled" {
            refund_payment(tx, quote.event_id, quote, payment_id, report.amount, "event_cancelled", now).await?;
            return Ok(PaymentOutcome::RefundDue { reason: "event_cancelled" });
        }
        if quote.status == "paid" || quote.status == "refund_due" || quote.status == "cancelled" {
            // The quote is settled already: anything more is owed back.
            refund_payment(tx, quote.event_id, quote, payment_id, report.amount, "overpaid", now).await?;
            return Ok(PaymentOutcome::RefundDue { reason: "overpaid" });
        }

        // Everything final and not yet credited for this quote counts toward it (payments in two outputs).
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, amount_units FROM payments WHERE quote_id = $1 AND status = 'confirmed'")
                .bind(&quote.id)
                .fetch_all(&mut **tx)
                .await?;
        let mut total = Amount::zero(currency);
        for (_, units) in &rows {
            let amount = Amount::from_units_str(currency, units).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            total = total.checked_add(amount).ok_or_else(|| StoreError::Corrupt("amount overflow".into()))?;
        }
        let required = quote.amount()?;
        let expired = quote.status == "expired" || quote.expires_at <= now;

        if total < required {
            if expired {
                let refunded = refund_confirmed_payments(tx, quote, "underpaid", now).await?;
                debug_assert!(refunded > 0);
                close_quote(tx, quote, QuoteStatus::RefundDue, now).await?;
                return Ok(PaymentOutcome::RefundDue { reason: "underpaid" });
            }
            sqlx::query("UPDATE quotes SET status = 'seen', received_units = $2, updated_at = $3 WHERE id = $1")
                .bind(&quote.id)
                .bind(total.units.to_string())
                .bind(now)
                .execute(&mut **tx)
                .await?;
            return Ok(PaymentOutcome::Partial { remaining: required.checked_sub(total).expect("total < required") });
        }

        // Enough was paid. A live quote holds its seat, or (unreserved) must find a free one at its own price; an
        // expired one must find a seat and cover today's price.
        let price = if quote.holds_seat == 1 && !expired {
            sqlx::query(
                "UPDATE events SET seats_held = seats_held - 1, tickets_sold = tickets_sold + 1, updated_at = $2 WHERE id = $1",
            )
            .bind(quote.event_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            required
        } else {
            if quote.holds_seat == 1 {
                // Expired but not yet swept: give the held seat back first, then compete for one like anyone.
                release_seat(tx, quote.event_id, now).await?;
                sqlx::query("UPDATE quotes SET holds_seat = 0 WHERE id = $1")
                    .bind(&quote.id)
                    .execute(&mut **tx)
                    .await?;
            }
            let covers =
                if expired { current_price.filter(|p| p.currency == currency && total >= *p) } else { Some(required) };
            let seat = match covers {
                Some(_) => sqlx::query(
                    "UPDATE events SET tickets_sold = tickets_sold + 1, updated_at = $2 \
                     WHERE id = $1 AND status = 'published' AND seats_held + tickets_sold < max_attendees",
                )
                .bind(quote.event_id)
                .bind(now)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
                None => 0,
            };
            if seat == 0 {
                let reason = match (covers, expired) {
                    (None, _) => "late_underpaid",
                    (Some(_), true) => "late_sold_out",
                    (Some(_), false) => "sold_out",
                };
                refund_confirmed_payments(tx, quote, reason, now).await?;
                close_quote(tx, quote, QuoteStatus::RefundDue, now).await?;
                return Ok(PaymentOutcome::RefundDue { reason });
            }
            covers.expect("seat taken only when covered")
        };

        let ticket_id = self.issue_ticket(tx, quote, total, now).await?;
        let split = price.split();
        let due_at = event.event_end + self.settings.payout_delay_ms;
        let creator = &event.creator_account;
        insert_ledger(
            tx,
            LedgerInsert {
                event_id: Some(quote.event_id),
                ticket_id: Some(ticket_id),
                quote_id: Some(&quote.id),
                payment_id: Some(payment_id),
                kind: "commission",
                reason: "sale",
                amount: split.commission,
                recipient: Some("platform"),
                status: "pending",
                due_at: Some(due_at),
                now,
            },
        )
        .await?;
        insert_ledger(
            tx,
            LedgerInsert {
                event_id: Some(quote.event_id),
                ticket_id: Some(ticket_id),
                quote_id: Some(&quote.id),
                payment_id: Some(payment_id),
                kind: "payout",
                reason: "sale",
                amount: split.payout,
                recipient: Some(creator),
                status: "pending",
                due_at: Some(due_at),
                now,
            },
        )
        .await?;
        if let Some(excess) = total.checked_sub(price).filter(|e| e.units > 0) {
            insert_ledger(
                tx,
                LedgerInsert {
                    event_id: Some(quote.event_id),
                    ticket_id: Some(ticket_id),
                    quote_id: Some(&quote.id),
                    payment_id: Some(payment_id),
                    kind: "refund",
                    reason: "overpaid",
                    amount: excess,
                    recipient: Some(&quote.wallet_address),
                    status: "due",
                    due_at: Some(now),
                    now,
                },
            )
            .await?;
        }
        sqlx::query(
            "UPDATE payments SET status = 'credited', updated_at = $2 WHERE quote_id = $1 AND status = 'confirmed'",
        )
        .bind(&quote.id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE quotes SET status = 'paid', holds_seat = 0, received_units = $2, confirmations = confirmations_required, \
             updated_at = $3 WHERE id = $1",
        )
        .bind(&quote.id)
        .bind(total.units.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        audit::record(
            &mut **tx,
            &AuditEntry::new("watcher", "ticket.issued")
                .event(quote.event_id)
                .subject(&quote.id)
                .detail(serde_json::json!({ "ticket_id": ticket_id, "paid": total.to_string(), "currency": currency })),
        )
        .await?;
        Ok(PaymentOutcome::TicketIssued { ticket_id })
    }

    pub(super) async fn issue_ticket(
        &self,
        tx: &mut Transaction<'static, Any>,
        quote: &QuoteRow,
        paid: Amount,
        now: i64,
    ) -> Result<i64, PurchaseError> {
        let token = new_ticket_token();
        let signature = self.access_signature(quote.event_id, &quote.chain, &quote.wallet_address, &token);
        // One ticket per quote, ever: a quote whose payment was reversed (see `reversal`) and that is paid again
        // gets its own ticket back.
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tickets (event_id, quote_id, token, chain, wallet_address, currency, amount_paid_units, \
             access_signature, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'valid', $9, $9) \
             ON CONFLICT (quote_id) DO UPDATE SET status = 'valid', amount_paid_units = excluded.amount_paid_units, \
             updated_at = excluded.updated_at WHERE tickets.status = 'payment_reversed' \
             RETURNING id",
        )
        .bind(quote.event_id)
        .bind(&quote.id)
        .bind(&token)
        .bind(&quote.chain)
        .bind(&quote.wallet_address)
        .bind(&quote.currency)
        .bind(paid.units.to_string())
        .bind(signature)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        Ok(id)
    }

    /// The server's signature over a ticket's binding (the seed's `access_signature`): HMAC-SHA256 of
    /// `ticket:v1|event|chain|wallet|token`, hex.
    pub fn access_signature(&self, event_id: i64, chain: &str, wallet: &str, token: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(format!("ticket:v1|{event_id}|{chain}|{wallet}|{token}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub(super) async fn match_quote(&self, report: &PaymentReport) -> Result<Option<QuoteRow>, StoreError> {
        let chain = report.chain.as_str();
        if let Some(id) = &report.quote_id {
            return Ok(self.quote(id).await?.filter(|q| q.chain == chain));
        }
        if let Some(memo) = &report.memo {
            if let Some(parsed) = parse_memo(memo) {
                if let Some(id) = parsed.quote_id {
                    return Ok(self.quote(&id).await?.filter(|q| q.chain == chain));
                }
                // The seed's memo names event and wallet only: the newest quote that fits.
                return Ok(sqlx::query_as::<_, QuoteRow>(&format!(
                    "SELECT {QUOTE_COLUMNS} FROM quotes WHERE chain = $1 AND event_id = $2 AND wallet_address = $3 \
                     ORDER BY (CASE WHEN status IN ('awaiting_payment', 'seen', 'confirming') THEN 0 ELSE 1 END), created_at DESC LIMIT 1"
                ))
                .bind(chain)
                .bind(parsed.event_id)
                .bind(parsed.wallet)
                .fetch_optional(self.store.pool())
                .await?);
            }
            return Ok(None);
        }
        let to = report.stored_to_address();
        Ok(sqlx::query_as::<_, QuoteRow>(&format!(
            "SELECT {QUOTE_COLUMNS} FROM quotes WHERE chain = $1 AND payment_address = $2 AND derivation_index IS NOT NULL \
             ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(chain)
        .bind(to)
        .fetch_optional(self.store.pool())
        .await?)
    }

    /// A payment recorded on its own, outside any quote's accounts: one that names no quote we know (e.g. a memo
    /// for a non-existent event), or a stray one for a quote (see [`stray_reason`]). Its row has no quote, so it
    /// never changes a quote's state, counts toward one or withdraws one's progress when orphaned; once final it
    /// is owed back to its sender where the chain shows one, and is to be claimed (no recipient) otherwise.
    async fn record_on_its_own(
        &self,
        tx: &mut Transaction<'static, Any>,
        report: &PaymentReport,
        why: OnItsOwn<'_>,
        now: i64,
    ) -> Result<PaymentOutcome, PurchaseError> {
        let status = if report.is_final { "refund_due" } else { "confirming" };
        let inserted = sqlx::query(
            "INSERT INTO payments (chain, txid, output_index, currency, amount_units, from_address, to_address, memo, \
             block_height, block_hash, confirmations, status, first_seen_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) ON CONFLICT (chain, txid, output_index) DO NOTHING",
        )
        .bind(report.chain.as_str())
        .bind(&report.txid)
        .bind(report.output_index)
        .bind(report.amount.currency.symbol())
        .bind(report.amount.units.to_string())
        .bind(&report.from_address)
        .bind(&report.to_address)
        .bind(&report.memo)
        .bind(report.block_height)
        .bind(&report.block_hash)
        .bind(report.confirmations)
        .bind(status)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if inserted.rows_affected() == 0 {
            let previous: String =
                sqlx::query_scalar("SELECT status FROM payments WHERE chain = $1 AND txid = $2 AND output_index = $3")
                    .bind(report.chain.as_str())
                    .bind(&report.txid)
                    .bind(report.output_index)
                    .fetch_one(&mut **tx)
                    .await?;
            if previous != "confirming" || !report.is_final {
                return Ok(PaymentOutcome::AlreadyProcessed);
            }
            sqlx::query("UPDATE payments SET status = 'refund_due', updated_at = $4 WHERE chain = $1 AND txid = $2 AND output_index = $3")
                .bind(report.chain.as_str())
                .bind(&report.txid)
                .bind(report.output_index)
                .bind(now)
                .execute(&mut **tx)
                .await?;
        }
        if !report.is_final {
            return Ok(PaymentOutcome::Pending {
                confirmations: report.confirmations,
                required: self.settings.confirmations_required(report.chain),
            });
        }
        let payment_id: i64 =
            sqlx::query_scalar("SELECT id FROM payments WHERE chain = $1 AND txid = $2 AND output_index = $3")
                .bind(report.chain.as_str())
                .bind(&report.txid)
                .bind(report.output_index)
                .fetch_one(&mut **tx)
                .await?;
        let known_event = match why.event_id {
            Some(id) => {
                sqlx::query_scalar::<_, i64>("SELECT id FROM events WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?
            }
            None => None,
        };
        insert_ledger(
            tx,
            LedgerInsert {
                event_id: known_event,
                ticket_id: None,
                quote_id: None,
                payment_id: Some(payment_id),
                kind: "refund",
                reason: why.reason,
                amount: report.amount,
                recipient: why.recipient.as_deref(),
                status: "due",
                due_at: Some(now),
                now,
            },
        )
        .await?;
        let action = if why.named_quote.is_some() { "payment.stray" } else { "payment.unmatched" };
        audit::record(
            &mut **tx,
            &AuditEntry::new("watcher", action).subject(&report.txid).detail(serde_json::json!({
                "reason": why.reason, "quote_id": why.named_quote, "currency": report.amount.currency,
                "amount": report.amount.units.to_string(), "from": report.from_address, "refund_to": why.recipient,
            })),
        )
        .await?;
        Ok(PaymentOutcome::RefundDue { reason: why.reason })
    }

    /// A sighting whose block was orphaned before it became final: the payment goes back to unconfirmed and
    /// counts again only if it lands again.
    pub async fn orphan_payment(
        &self,
        chain: Chain,
        txid: &str,
        output_index: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.pool().begin().await?;
        let changed = sqlx::query(
            "UPDATE payments SET status = 'orphaned', block_height = NULL, block_hash = NULL, confirmations = 0, updated_at = $4 \
             WHERE chain = $1 AND txid = $2 AND output_index = $3 AND status IN ('seen', 'confirming')",
        )
        .bind(chain.as_str())
        .bind(txid)
        .bind(output_index)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 1 {
            sqlx::query(
                "UPDATE quotes SET status = 'awaiting_payment', confirmations = 0, updated_at = $2 \
                 WHERE id = (SELECT quote_id FROM payments WHERE chain = $3 AND txid = $4 AND output_index = $5) \
                 AND status IN ('seen', 'confirming')",
            )
            .bind(chain.as_str())
            .bind(now)
            .bind(chain.as_str())
            .bind(txid)
            .bind(output_index)
            .execute(&mut *tx)
            .await?;
            audit::record(&mut *tx, &AuditEntry::new("watcher", "payment.orphaned").subject(txid)).await?;
        }
        tx.commit().await?;
        Ok(changed.rows_affected() == 1)
    }
}
