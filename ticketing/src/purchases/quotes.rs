//! Quotes: a price in one currency with a seat held for its lifetime, made in one transaction under the
//! event's row lock (see `QuoteLimits`), with the payment instructions for its chain; reading quotes and tickets;
//! expiry, which gives held seats back.

use super::*;

/// A quote as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct QuoteRow {
    pub id: String,
    pub event_id: i64,
    pub currency: String,
    pub chain: String,
    pub wallet_address: String,
    pub amount_units: String,
    pub usd_rate: Option<String>,
    pub payment_address: String,
    pub memo: Option<String>,
    pub reference: Option<String>,
    pub derivation_index: Option<i64>,
    #[sqlx(try_from = "String")]
    pub status: QuoteStatus,
    pub holds_seat: i64,
    pub received_units: String,
    pub confirmations: i64,
    pub confirmations_required: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

pub(super) const QUOTE_COLUMNS: &str =
    "id, event_id, currency, chain, wallet_address, amount_units, usd_rate, payment_address, \
    memo, reference, derivation_index, status, holds_seat, received_units, confirmations, confirmations_required, \
    created_at, expires_at";

impl QuoteRow {
    pub fn currency(&self) -> Result<Currency, StoreError> {
        Currency::from_str(&self.currency).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub fn chain(&self) -> Result<Chain, StoreError> {
        Chain::from_str(&self.chain).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub fn amount(&self) -> Result<Amount, StoreError> {
        Amount::from_units_str(self.currency()?, &self.amount_units).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub fn received(&self) -> Result<Amount, StoreError> {
        Amount::from_units_str(self.currency()?, &self.received_units).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub(super) fn is_open(&self) -> bool {
        self.status.is_open()
    }
}

/// A ticket as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TicketRow {
    pub id: i64,
    pub event_id: i64,
    pub quote_id: String,
    pub token: String,
    pub chain: String,
    pub wallet_address: String,
    pub currency: String,
    pub amount_paid_units: String,
    pub access_signature: String,
    #[sqlx(try_from = "String")]
    pub status: TicketStatus,
    pub first_access_at: Option<i64>,
    pub last_access_at: Option<i64>,
    pub access_count: i64,
    pub total_duration_secs: i64,
    pub created_at: i64,
}

pub(super) const TICKET_COLUMNS: &str =
    "id, event_id, quote_id, token, chain, wallet_address, currency, amount_paid_units, \
    access_signature, status, first_access_at, last_access_at, access_count, total_duration_secs, created_at";

/// A request for a quote, parsed at the edge.
#[derive(Debug, Clone)]
pub struct QuoteRequest {
    pub event_id: i64,
    pub currency: Currency,
    pub wallet_address: String,
}

pub(super) async fn close_quote(
    tx: &mut Transaction<'static, Any>,
    quote: &QuoteRow,
    status: QuoteStatus,
    now: i64,
) -> Result<(), StoreError> {
    let released =
        sqlx::query("UPDATE quotes SET status = $2, holds_seat = 0, updated_at = $3 WHERE id = $1 AND holds_seat = 1")
            .bind(&quote.id)
            .bind(status.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await?;
    if released.rows_affected() == 1 {
        release_seat(tx, quote.event_id, now).await?;
    } else {
        set_quote_status(tx, &quote.id, status, now).await?;
    }
    Ok(())
}

pub(super) async fn set_quote_status(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    status: QuoteStatus,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE quotes SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(status.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Refuses a quote when `column = value` already has `limit` open quotes (awaiting payment, not expired) for the
/// event; the refusal says when the oldest of them expires.
async fn check_open_quotes(
    tx: &mut Transaction<'static, Any>,
    event_id: i64,
    column: &'static str,
    value: &str,
    limit: u32,
    scope: QuoteScope,
    now: i64,
) -> Result<(), PurchaseError> {
    let (open, first_expiry): (i64, Option<i64>) = sqlx::query_as(&format!(
        "SELECT COUNT(*), MIN(expires_at) FROM quotes \
         WHERE event_id = $1 AND {column} = $2 AND status = 'awaiting_payment' AND expires_at > $3"
    ))
    .bind(event_id)
    .bind(value)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    if open < i64::from(limit) {
        return Ok(());
    }
    let wait_ms = u64::try_from(first_expiry.map_or(0, |at| at - now)).unwrap_or(0);
    let retry_after_secs = wait_ms.div_ceil(1000).max(1);
    Err(PurchaseError::TooManyQuotes { scope, limit, retry_after_secs })
}

pub(super) async fn release_seat(
    tx: &mut Transaction<'static, Any>,
    event_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE events SET seats_held = seats_held - 1, updated_at = $2 WHERE id = $1 AND seats_held > 0")
        .bind(event_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Purchases {
    /// Locks a rate, holds a seat and returns the payment instructions; for callers without a client address
    /// (see [`Purchases::create_quote_from`]).
    pub async fn create_quote(&self, request: QuoteRequest, now: i64) -> Result<QuoteRow, PurchaseError> {
        self.create_quote_from(request, None, now).await
    }

    /// Locks a rate, holds a seat (or, past the held share, issues the quote unreserved: see [`QuoteLimits`])
    /// and returns the payment instructions. `client` is the asking client's address, recorded on the quote and
    /// limited by [`QuoteLimits::per_client`].
    #[tracing::instrument(skip(self), fields(event_id = request.event_id, currency = %request.currency))]
    pub async fn create_quote_from(
        &self,
        request: QuoteRequest,
        client: Option<&str>,
        now: i64,
    ) -> Result<QuoteRow, PurchaseError> {
        let currency = request.currency;
        let chain = currency.chain().ok_or(PurchaseError::CurrencyNotAccepted(currency))?;
        let wallet = chains::address::canonical_address(chain, &request.wallet_address, self.settings.btc_network)?;
        let event =
            event_terms(&self.store, request.event_id).await?.ok_or(PurchaseError::EventNotFound(request.event_id))?;
        if event.status != "published" {
            return Err(PurchaseError::NotOnSale(if event.status == "cancelled" {
                "cancelled"
            } else {
                "not published"
            }));
        }
        if now < event.sales_start {
            return Err(PurchaseError::NotOnSale("sales have not started"));
        }
        if now >= event.sales_end || now >= event.event_end {
            return Err(PurchaseError::NotOnSale("sales have ended"));
        }
        if !event.accepts(currency) {
            return Err(PurchaseError::CurrencyNotAccepted(currency));
        }
        let price = event.price()?;
        if price.units == 0 {
            return Err(PurchaseError::FreeEvent(event.id));
        }
        let (amount, usd_rate) = if price.currency == Currency::Usd {
            let rate = self.rates.usd_rate(currency).await?;
            (convert_usd(price, currency, rate)?, Some(rate.to_string()))
        } else if price.currency == currency {
            (price, None)
        } else {
            return Err(PurchaseError::CurrencyNotAccepted(currency));
        };
        self.check_configured(chain, currency)?;
        let minimum = Amount::new(currency, minimums::minimum_quote(currency));
        if amount.units > 0 && amount.units < minimum.units {
            return Err(PurchaseError::BelowMinimum(amount, minimum));
        }
        self.expire_quotes(Some(event.id), now).await?;

        let id = random_id("q", 12);
        let subaddress = match (chain, &self.settings.xmr) {
            (Chain::Xmr, Some(source)) => Some(source.0.allocate(&id).await.map_err(|e| {
                tracing::warn!(error = %e, "monero subaddress allocation failed");
                PurchaseError::PaymentMethodUnavailable(currency)
            })?),
            _ => None,
        };
        let mut tx = self.store.pool().begin().await?;
        let holds_seat = match self.claim(&mut tx, event.id, client, &wallet, now).await {
            Ok(holds_seat) => holds_seat,
            Err(err) => {
                tx.rollback().await?;
                return Err(err);
            }
        };
        let index = if let Some((_, minor)) = &subaddress {
            Some(*minor)
        } else if matches!(chain, Chain::Btc) || (chain.is_evm() && self.settings.evm.is_some()) {
            match derivation::allocate(&mut tx, chain, self.settings.address_reuse, now).await {
                Ok(index) => Some(index),
                Err(derivation::AllocateError::GapFull(gap)) => {
                    tx.rollback().await?;
                    return Err(PurchaseError::AddressGapFull(gap));
                }
                Err(derivation::AllocateError::Store(err)) => return Err(err.into()),
            }
        } else {
            None
        };
        let (payment_address, memo, reference) = match subaddress {
            Some((address, _)) => (address, None, None),
            None => self.instructions(chain, currency, event.id, &wallet, &id, index)?,
        };
        let quote: QuoteRow = sqlx::query_as(&format!(
            "INSERT INTO quotes (id, event_id, currency, chain, wallet_address, amount_units, usd_rate, payment_address, \
             memo, reference, derivation_index, status, holds_seat, confirmations_required, created_at, expires_at, updated_at, \
             client_address) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'awaiting_payment', $15, $12, $13, $14, $13, $16) \
             RETURNING {QUOTE_COLUMNS}"
        ))
        .bind(&id)
        .bind(event.id)
        .bind(currency.symbol())
        .bind(chain.as_str())
        .bind(&wallet)
        .bind(amount.units.to_string())
        .bind(usd_rate)
        .bind(&payment_address)
        .bind(memo)
        .bind(reference)
        .bind(index.map(i64::from))
        .bind(self.settings.confirmations_for(chain, amount))
        .bind(now)
        .bind(now + self.settings.quote_ttl_ms)
        .bind(i64::from(holds_seat))
        .bind(client)
        .fetch_one(&mut *tx)
        .await?;
        audit::record(
            &mut *tx,
            &AuditEntry::new("buyer", "quote.created").event(event.id).subject(&id).detail(serde_json::json!({
                "currency": currency, "amount": amount.to_string(), "wallet": wallet, "holds_seat": holds_seat,
            })),
        )
        .await?;
        tx.commit().await?;
        Ok(quote)
    }

    /// Inside the quote's transaction: checks the open-quote limits and claims a held seat when the held share
    /// allows; `Ok(false)` means the quote is issued unreserved. The event's row is written first, so every
    /// quote for this event serialises here (the row lock on PostgreSQL, the write lock on SQLite) and the counts
    /// read after it see every quote committed before: the limits and the cap hold on any number of nodes.
    async fn claim(
        &self,
        tx: &mut Transaction<'static, Any>,
        event_id: i64,
        client: Option<&str>,
        wallet: &str,
        now: i64,
    ) -> Result<bool, PurchaseError> {
        let seats: Option<(i64, i64, i64)> = sqlx::query_as(
            "UPDATE events SET updated_at = $2 WHERE id = $1 AND status = 'published' \
             RETURNING max_attendees, seats_held, tickets_sold",
        )
        .bind(event_id)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        let (capacity, held, sold) = seats.ok_or(PurchaseError::NotOnSale("not published"))?;
        let limits = self.settings.quote_limits;
        if let (Some(limit), Some(client)) = (limits.per_client, client) {
            check_open_quotes(tx, event_id, "client_address", client, limit, QuoteScope::Client, now).await?;
        }
        if let Some(limit) = limits.per_wallet {
            check_open_quotes(tx, event_id, "wallet_address", wallet, limit, QuoteScope::Wallet, now).await?;
        }
        if held + sold >= capacity {
            return Err(PurchaseError::SoldOut);
        }
        if held >= limits.hold_cap(capacity, sold) {
            return Ok(false);
        }
        // Still the conditional write of the capacity invariant, whatever was read above.
        let claimed = sqlx::query(
            "UPDATE events SET seats_held = seats_held + 1 \
             WHERE id = $1 AND status = 'published' AND seats_held + tickets_sold < max_attendees",
        )
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Err(PurchaseError::SoldOut);
        }
        Ok(true)
    }

    fn check_configured(&self, chain: Chain, currency: Currency) -> Result<(), PurchaseError> {
        let ok = match chain {
            Chain::Hive => true,
            Chain::Btc => self.settings.btc.is_some(),
            Chain::Eth | Chain::Pol | Chain::Bnb => self.settings.evm.is_some(),
            Chain::Sol => self.settings.sol_account.is_some(),
            Chain::Xmr => self.settings.xmr.is_some(),
        };
        if !ok {
            return Err(PurchaseError::PaymentMethodUnavailable(currency));
        }
        if let Some(setting) = self.settings.unwatched.get(&chain) {
            return Err(PurchaseError::CurrencyNotPayable(currency, setting.clone()));
        }
        if !self.settings.tokens.is_quotable(currency) {
            return Err(PurchaseError::PaymentMethodUnavailable(currency));
        }
        Ok(())
    }

    /// Whether a quote in `currency` would be issued (its receiving setting is present and a watcher credits
    /// it), rates and the event's own list aside: what listings show as payable.
    pub fn check_payable(&self, currency: Currency) -> Result<(), PurchaseError> {
        let chain = currency.chain().ok_or(PurchaseError::CurrencyNotAccepted(currency))?;
        self.check_configured(chain, currency)
    }

    pub fn is_payable(&self, currency: Currency) -> bool {
        self.check_payable(currency).is_ok()
    }

    /// Address, memo and reference that tie a payment to quote `id`.
    fn instructions(
        &self,
        chain: Chain,
        currency: Currency,
        event_id: i64,
        wallet: &str,
        id: &str,
        index: Option<u32>,
    ) -> Result<(String, Option<String>, Option<String>), PurchaseError> {
        let unavailable = || PurchaseError::PaymentMethodUnavailable(currency);
        Ok(match chain {
            Chain::Hive => (
                self.settings.hive_account.clone(),
                Some(format!("event:{event_id}:wallet:{wallet}:quote:{id}")),
                Some(id.to_owned()),
            ),
            Chain::Btc => {
                let account = self.settings.btc.as_ref().ok_or_else(unavailable)?;
                let address = account.address(index.ok_or_else(unavailable)?).map_err(|_| unavailable())?;
                (address, None, None)
            }
            Chain::Eth | Chain::Pol | Chain::Bnb => {
                let account = self.settings.evm.as_ref().ok_or_else(unavailable)?;
                let address = account.address(index.ok_or_else(unavailable)?).map_err(|_| unavailable())?;
                (address.to_ascii_lowercase(), None, None)
            }
            Chain::Sol => {
                let account = self.settings.sol_account.clone().ok_or_else(unavailable)?;
                (account, None, Some(solana_reference()))
            }
            // Allocated by the SubaddressSource before the transaction; never reached without one.
            Chain::Xmr => return Err(unavailable()),
        })
    }

    pub async fn quote(&self, id: &str) -> Result<Option<QuoteRow>, StoreError> {
        Ok(sqlx::query_as::<_, QuoteRow>(&format!("SELECT {QUOTE_COLUMNS} FROM quotes WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.store.pool())
            .await?)
    }

    pub async fn ticket_for_quote(&self, quote_id: &str) -> Result<Option<TicketRow>, StoreError> {
        Ok(sqlx::query_as::<_, TicketRow>(&format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE quote_id = $1"))
            .bind(quote_id)
            .fetch_optional(self.store.pool())
            .await?)
    }

    pub async fn ticket(&self, id: i64) -> Result<Option<TicketRow>, StoreError> {
        Ok(sqlx::query_as::<_, TicketRow>(&format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.store.pool())
            .await?)
    }

    /// A wallet's tickets, newest first. EVM addresses compare case-insensitively.
    pub async fn tickets_for_wallet(&self, chain: Chain, wallet: &str) -> Result<Vec<TicketRow>, StoreError> {
        let wallet = if chain.is_evm() { wallet.to_ascii_lowercase() } else { wallet.to_owned() };
        let chains: Vec<&str> = if chain.is_evm() { vec!["eth", "pol", "bnb"] } else { vec![chain.as_str()] };
        let mut all = Vec::new();
        for c in chains {
            let rows = sqlx::query_as::<_, TicketRow>(&format!(
                "SELECT {TICKET_COLUMNS} FROM tickets WHERE wallet_address = $1 AND chain = $2 ORDER BY id DESC"
            ))
            .bind(&wallet)
            .bind(c)
            .fetch_all(self.store.pool())
            .await?;
            all.extend(rows);
        }
        all.sort_by_key(|q| std::cmp::Reverse(q.id));
        Ok(all)
    }

    /// Open quotes still awaiting payment, for watchers.
    pub async fn open_quotes(&self, chain: Chain) -> Result<Vec<QuoteRow>, StoreError> {
        Ok(sqlx::query_as::<_, QuoteRow>(&format!(
            "SELECT {QUOTE_COLUMNS} FROM quotes WHERE chain = $1 AND status IN ('awaiting_payment', 'seen', 'confirming') \
             ORDER BY created_at"
        ))
        .bind(chain.as_str())
        .fetch_all(self.store.pool())
        .await?)
    }

    /// What a chain's watcher must look for now, read from the store so that it survives restarts of the
    /// process and of the watcher task: the open quotes, and every quote that closed (expired, paid, refunded,
    /// cancelled) within the watch window, oldest first. A quote's close is its last change (`updated_at`) or its
    /// expiry, whichever is later.
    pub async fn watched_quotes(&self, chain: Chain, now: i64) -> Result<Vec<QuoteRow>, StoreError> {
        let since = now.saturating_sub(self.settings.watch_window_ms.max(0));
        Ok(sqlx::query_as::<_, QuoteRow>(&format!(
            "SELECT {QUOTE_COLUMNS} FROM quotes WHERE chain = $1 \
             AND (status IN ('awaiting_payment', 'seen', 'confirming') OR expires_at >= $2 OR updated_at >= $2) \
             ORDER BY created_at"
        ))
        .bind(chain.as_str())
        .bind(since)
        .fetch_all(self.store.pool())
        .await?)
    }

    /// Every quote of a chain, or those created since a time (unix ms): what `gateway admin rescan` looks for.
    pub async fn quotes_since(&self, chain: Chain, since: Option<i64>) -> Result<Vec<QuoteRow>, StoreError> {
        Ok(sqlx::query_as::<_, QuoteRow>(&format!(
            "SELECT {QUOTE_COLUMNS} FROM quotes WHERE chain = $1 AND ($2 IS NULL OR created_at >= $2) ORDER BY created_at"
        ))
        .bind(chain.as_str())
        .bind(since)
        .fetch_all(self.store.pool())
        .await?)
    }

    /// Expires open quotes past their time (all, or one event's): their seats return to sale, and a quote
    /// that received too little becomes refund due.
    pub async fn expire_quotes(&self, event_id: Option<i64>, now: i64) -> Result<u64, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM quotes WHERE status IN ('awaiting_payment', 'seen', 'confirming') AND expires_at <= $1 \
             AND ($2 IS NULL OR event_id = $2)",
        )
        .bind(now)
        .bind(event_id)
        .fetch_all(self.store.pool())
        .await?;
        let mut expired = 0;
        for id in ids {
            let mut tx = self.store.pool().begin().await?;
            // Re-checked under the write: a payment may have completed the quote meanwhile.
            let changed = sqlx::query(
                "UPDATE quotes SET status = 'expired', updated_at = $2 \
                 WHERE id = $1 AND status IN ('awaiting_payment', 'seen', 'confirming') AND expires_at <= $2",
            )
            .bind(&id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if changed.rows_affected() == 1 {
                let quote: QuoteRow = sqlx::query_as(&format!("SELECT {QUOTE_COLUMNS} FROM quotes WHERE id = $1"))
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await?;
                // An unreserved quote (past the held share) has no seat to give back.
                if quote.holds_seat == 1 {
                    sqlx::query("UPDATE quotes SET holds_seat = 0 WHERE id = $1").bind(&id).execute(&mut *tx).await?;
                    release_seat(&mut tx, quote.event_id, now).await?;
                }
                let refunded = refund_confirmed_payments(&mut tx, &quote, "underpaid", now).await?;
                if refunded > 0 {
                    set_quote_status(&mut tx, &id, QuoteStatus::RefundDue, now).await?;
                }
                audit::record(&mut *tx, &AuditEntry::new("system", "quote.expired").event(quote.event_id).subject(&id))
                    .await?;
                expired += 1;
            }
            tx.commit().await?;
        }
        Ok(expired)
    }
}
