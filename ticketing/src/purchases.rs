//! The money path: quotes with a held seat, payments reported by watchers, tickets, and the ledger.
//!
//! Invariants, each enforced in one database transaction:
//! - a seat is held by an open quote or taken by a valid ticket, never both and never more than exist
//!   (conditional `UPDATE events … WHERE seats_held + tickets_sold < max_attendees`, backed by a CHECK);
//! - an on-chain output (chain, txid, output index) is recorded once and credited at most once;
//! - a quote yields at most one ticket (`tickets.quote_id` is unique);
//! - every sale writes a commission and a payout entry that add up exactly to the price part of what was
//!   paid; anything paid beyond the price, or paid for nothing (expired with too little, cancelled event,
//!   unknown event), is a refund entry. The commission is 20% rounded down (the creator gets the remainder,
//!   see `chains::Amount::split`); transfer fees for payouts and refunds are the platform's cost.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine;
use chains::derive::{solana_reference, BtcAccount, EvmAccount};
use chains::{Amount, Chain, Currency};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::Sha256;
use sqlx::{Any, Transaction};

use crate::audit::{self, AuditEntry};
use crate::rates::{convert_usd, RateError, RateSource};
use crate::store::{Store, StoreError};

mod batch;
pub mod derivation;
pub mod minimums;
mod reversal;
mod rsvp;

pub use reversal::{FinalPayment, Reversal};

pub use rsvp::Rsvp;

/// How long a quote's rate and seat are held.
pub const DEFAULT_QUOTE_TTL_MS: i64 = 15 * 60 * 1000;
/// How long after an event ends the creator's payout becomes due (refunds stay possible until then).
pub const DEFAULT_PAYOUT_DELAY_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// How long a quote's address, memo or reference stays watched after the quote closed (expired, paid, refunded):
/// a payment broadcast just before expiry may confirm after it, and a second payment is owed back.
pub const DEFAULT_WATCH_WINDOW_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Where and how each chain is paid. Built by the gateway from its configuration.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    pub hive_account: String,
    pub btc: Option<BtcAccount>,
    /// The Bitcoin network payments are received on: buyers' BTC wallets must be addresses of the same one.
    pub btc_network: chains::signature::BtcNetwork,
    pub evm: Option<EvmAccount>,
    pub sol_account: Option<String>,
    /// Monero subaddresses, one per quote (monero-wallet-rpc `create_address`); without it XMR is unavailable.
    pub xmr: Option<XmrAddresses>,
    pub chain_ids: HashMap<Chain, u64>,
    pub confirmations: HashMap<Chain, i64>,
    /// More confirmations for large quotes (BTCPay's speed policy, exchanges' tiers): chain → (from this many
    /// base units of the quote's amount, this many confirmations). Recorded on the quote; its chain's follower
    /// waits for it (`watchers::follow`).
    pub large_quote_confirmations: HashMap<Chain, (u128, i64)>,
    pub quote_ttl_ms: i64,
    pub payout_delay_ms: i64,
    /// How long after a quote closes its watcher still looks for payments to it ([`Purchases::watched_quotes`]).
    pub watch_window_ms: i64,
    /// The stablecoin contracts (and Solana mints) buyers may pay with: a token is quotable only when here.
    pub tokens: crate::tokens::TokenContracts,
    /// Chains whose payments no watcher credits (here or in another process), each with the setting that would
    /// (`[watchers.btc]`): their currencies are refused with `currency_not_payable`, since a buyer who paid
    /// would never get a ticket. Empty by default: a caller that reports payments itself (tests, tools) quotes
    /// every chain whose receiving setting is present.
    pub unwatched: std::collections::BTreeMap<Chain, String>,
    /// Limits on what one party may hold of one event's sale; see [`QuoteLimits`].
    pub quote_limits: QuoteLimits,
    /// How derivation indexes are reused and how far past the last paid one they may run; see [`derivation`].
    pub address_reuse: derivation::AddressReuse,
}

/// What one party may hold of one event's sale, so that nobody can block it with unpaid quotes.
///
/// Open quotes (awaiting payment, not expired) are counted from the store under the event's row lock, so the
/// limits hold across any number of gateway nodes. Unpaid holds are capped at a share of the seats not yet sold
/// (at least one): a quote asked for beyond the cap is still issued, but *unreserved* (`holds_seat = 0`): its
/// payment, once final, takes a seat if one is free then (first paid, first served) and is refunded otherwise.
/// So however many quotes are open, the seats outside the held share stay buyable by whoever pays first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteLimits {
    /// Open quotes per client address per event; `None`: unlimited.
    pub per_client: Option<u32>,
    /// Open quotes per buyer wallet per event; `None`: unlimited.
    pub per_wallet: Option<u32>,
    /// The share of the seats not yet sold that unpaid quotes may hold, in thousandths (1000: every seat).
    pub hold_share_permille: u32,
}

impl Default for QuoteLimits {
    /// No limits: every free seat may be held (the ticketing crate's own callers; the gateway configures them).
    fn default() -> Self {
        QuoteLimits { per_client: None, per_wallet: None, hold_share_permille: 1000 }
    }
}

impl QuoteLimits {
    /// How many seats unpaid quotes may hold when `sold` of `capacity` seats are sold: the share of the rest,
    /// rounded down, at least one (integer arithmetic).
    pub fn hold_cap(&self, capacity: i64, sold: i64) -> i64 {
        let unsold = (capacity - sold).max(0);
        (unsold * i64::from(self.hold_share_permille.min(1000)) / 1000).max(1)
    }
}

impl PaymentSettings {
    pub fn new(hive_account: impl Into<String>) -> Self {
        PaymentSettings {
            hive_account: hive_account.into(),
            btc: None,
            btc_network: chains::signature::BtcNetwork::Mainnet,
            evm: None,
            sol_account: None,
            xmr: None,
            chain_ids: HashMap::from([(Chain::Eth, 1), (Chain::Pol, 137), (Chain::Bnb, 56)]),
            confirmations: default_confirmations(),
            large_quote_confirmations: HashMap::new(),
            quote_ttl_ms: DEFAULT_QUOTE_TTL_MS,
            payout_delay_ms: DEFAULT_PAYOUT_DELAY_MS,
            watch_window_ms: DEFAULT_WATCH_WINDOW_MS,
            tokens: crate::tokens::TokenContracts::new(),
            unwatched: Default::default(),
            quote_limits: QuoteLimits::default(),
            address_reuse: derivation::AddressReuse::default(),
        }
    }

    pub fn confirmations_required(&self, chain: Chain) -> i64 {
        self.confirmations.get(&chain).copied().unwrap_or(1)
    }

    /// The confirmations a quote of `amount` on `chain` waits for: the chain's policy, or more for a large one.
    pub fn confirmations_for(&self, chain: Chain, amount: Amount) -> i64 {
        let policy = self.confirmations_required(chain);
        match self.large_quote_confirmations.get(&chain) {
            Some((from, n)) if amount.units >= *from => policy.max(*n),
            _ => policy,
        }
    }
}

/// Hands out a fresh Monero subaddress for a quote: `(address, minor index)`. Implemented over
/// monero-wallet-rpc by the watchers crate; called before the quote's transaction (it is a network call, and an
/// unused subaddress costs nothing).
#[async_trait::async_trait]
pub trait SubaddressSource: Send + Sync {
    async fn allocate(&self, label: &str) -> Result<(String, u32), String>;
}

/// The configured [`SubaddressSource`].
#[derive(Clone)]
pub struct XmrAddresses(pub Arc<dyn SubaddressSource>);

impl std::fmt::Debug for XmrAddresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XmrAddresses")
    }
}

/// Safe defaults: Bitcoin 2 blocks, Ethereum 12 (or its `finalized` tag, watcher's choice), Polygon 128,
/// BNB 15, Solana and Hive 1 (the watcher only reports `finalized` / irreversible blocks), Monero 10 (unlock).
pub fn default_confirmations() -> HashMap<Chain, i64> {
    HashMap::from([
        (Chain::Btc, 2),
        (Chain::Eth, 12),
        (Chain::Pol, 128),
        (Chain::Bnb, 15),
        (Chain::Sol, 1),
        (Chain::Hive, 1),
        (Chain::Xmr, 10),
    ])
}

#[derive(Debug, thiserror::Error)]
pub enum PurchaseError {
    #[error("event {0} does not exist")]
    EventNotFound(i64),
    #[error("tickets for this event are not on sale: {0}")]
    NotOnSale(&'static str),
    #[error("the event is sold out")]
    SoldOut,
    #[error("this event is free: reserve a seat with POST /api/events/{0}/rsvp instead of buying one")]
    FreeEvent(i64),
    #[error("this event is not free: buy a ticket instead of reserving one")]
    NotFree,
    #[error("{limit} open quotes for this event from this {scope} already; try again when one expires or is paid")]
    TooManyQuotes { scope: QuoteScope, limit: u32, retry_after_secs: u64 },
    #[error("this event does not accept {0}")]
    CurrencyNotAccepted(Currency),
    #[error("{0} payments are not configured on this gateway")]
    PaymentMethodUnavailable(Currency),
    #[error("the price is {0} {cur}, below the least {1} {cur} a quote may ask for (dust or fees would eat it)", cur = .0.currency)]
    BelowMinimum(Amount, Amount),
    #[error("{0} cannot be paid on this gateway: no watcher credits its payments ({1} is not configured)")]
    CurrencyNotPayable(Currency, String),
    #[error(transparent)]
    InvalidWallet(#[from] chains::address::InvalidAddress),
    #[error("no exchange rate: {0}")]
    Rate(#[from] RateError),
    #[error("quote {0} does not exist")]
    QuoteNotFound(String),
    #[error("ledger entry {0} does not exist")]
    EntryNotFound(i64),
    #[error("ledger entry {0} is already settled")]
    AlreadySettled(i64),
    #[error("ledger entry {0} is not due yet")]
    NotDue(i64),
    #[error("ticket {0} cannot be refunded: {1}")]
    NotRefundable(i64, &'static str),
    #[error("no receiving address is free: every index within the gap of {0} is held by an open quote; retry later")]
    AddressGapFull(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PurchaseError {
    fn from(err: sqlx::Error) -> Self {
        PurchaseError::Store(StoreError::Database(err))
    }
}

impl PurchaseError {
    /// The stable code clients and metrics see.
    pub fn code(&self) -> &'static str {
        match self {
            PurchaseError::EventNotFound(_) => "event_not_found",
            PurchaseError::NotOnSale(_) => "not_on_sale",
            PurchaseError::SoldOut => "sold_out",
            PurchaseError::FreeEvent(_) => "free_event",
            PurchaseError::NotFree => "not_free",
            PurchaseError::TooManyQuotes { scope: QuoteScope::Client, .. } => "too_many_quotes_from_address",
            PurchaseError::TooManyQuotes { scope: QuoteScope::Wallet, .. } => "too_many_quotes_for_wallet",
            PurchaseError::CurrencyNotAccepted(_) => "currency_not_accepted",
            PurchaseError::PaymentMethodUnavailable(_) => "payment_method_unavailable",
            PurchaseError::CurrencyNotPayable(..) => "currency_not_payable",
            PurchaseError::BelowMinimum(..) => "amount_below_minimum",
            PurchaseError::InvalidWallet(_) => "invalid_wallet",
            PurchaseError::Rate(RateError::Unrepresentable(_)) => "amount_unrepresentable",
            PurchaseError::Rate(_) => "rate_unavailable",
            PurchaseError::QuoteNotFound(_) => "quote_not_found",
            PurchaseError::EntryNotFound(_) => "entry_not_found",
            PurchaseError::AlreadySettled(_) => "already_settled",
            PurchaseError::NotDue(_) => "not_due",
            PurchaseError::NotRefundable(..) => "not_refundable",
            PurchaseError::AddressGapFull(_) => "address_gap_full",
            PurchaseError::Store(_) => "store_unavailable",
        }
    }
}

/// Whose open quotes a [`QuoteLimits`] limit counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteScope {
    Client,
    Wallet,
}

impl std::fmt::Display for QuoteScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QuoteScope::Client => "address",
            QuoteScope::Wallet => "wallet",
        })
    }
}

/// The event fields the money path needs.
#[derive(Debug, Clone, sqlx::FromRow)]
struct EventTerms {
    id: i64,
    price_units: String,
    price_currency: String,
    supported_crypto: String,
    status: String,
    event_end: i64,
    sales_start: i64,
    sales_end: i64,
    creator_account: String,
}

const EVENT_TERMS_COLUMNS: &str =
    "id, price_units, price_currency, supported_crypto, status, event_end, sales_start, sales_end, creator_account";

impl EventTerms {
    fn price(&self) -> Result<Amount, StoreError> {
        let currency = Currency::from_str(&self.price_currency).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Amount::from_units_str(currency, &self.price_units).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    fn accepts(&self, currency: Currency) -> bool {
        self.supported_crypto.split(',').filter_map(|s| Currency::from_str(s).ok()).any(|c| c == currency)
    }
}

async fn event_terms(store: &Store, event_id: i64) -> Result<Option<EventTerms>, StoreError> {
    Ok(sqlx::query_as::<_, EventTerms>(&format!("SELECT {EVENT_TERMS_COLUMNS} FROM events WHERE id = $1"))
    .bind(event_id)
    .fetch_optional(store.pool())
    .await?)
}

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
    pub status: String,
    pub holds_seat: i64,
    pub received_units: String,
    pub confirmations: i64,
    pub confirmations_required: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

const QUOTE_COLUMNS: &str = "id, event_id, currency, chain, wallet_address, amount_units, usd_rate, payment_address, \
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

    fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "awaiting_payment" | "seen" | "confirming")
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
    pub status: String,
    pub first_access_at: Option<i64>,
    pub last_access_at: Option<i64>,
    pub access_count: i64,
    pub total_duration_secs: i64,
    pub created_at: i64,
}

const TICKET_COLUMNS: &str = "id, event_id, quote_id, token, chain, wallet_address, currency, amount_paid_units, \
    access_signature, status, first_access_at, last_access_at, access_count, total_duration_secs, created_at";

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
    fn stored_to_address(&self) -> String {
        if self.chain.is_evm() { self.to_address.to_ascii_lowercase() } else { self.to_address.clone() }
    }
}

/// What a report changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Seen but not final yet: progress recorded on the quote.
    Pending { confirmations: i64, required: i64 },
    /// Final, but the quote still needs `remaining` more.
    Partial { remaining: Amount },
    TicketIssued { ticket_id: i64 },
    /// Final, and owed back to the payer for `reason`.
    RefundDue { reason: &'static str },
    /// This output was already final and processed: nothing changed.
    AlreadyProcessed,
}

/// Quotes, payments, tickets and the ledger, over the store.
#[derive(Clone)]
pub struct Purchases {
    store: Store,
    rates: Arc<dyn RateSource>,
    settings: Arc<PaymentSettings>,
    secret: Arc<Vec<u8>>,
    /// Whether `report_payments` credits the common case set-wise (see `batch`); off only in tests.
    bulk_credit: bool,
    bulk_credited: Arc<std::sync::atomic::AtomicU64>,
}

/// A request for a quote, parsed at the edge.
#[derive(Debug, Clone)]
pub struct QuoteRequest {
    pub event_id: i64,
    pub currency: Currency,
    pub wallet_address: String,
}

impl Purchases {
    pub fn new(store: Store, rates: Arc<dyn RateSource>, settings: PaymentSettings, secret: &[u8]) -> Self {
        Purchases {
            store,
            rates,
            settings: Arc::new(settings),
            secret: Arc::new(secret.to_vec()),
            bulk_credit: true,
            bulk_credited: Arc::default(),
        }
    }

    pub fn settings(&self) -> &PaymentSettings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

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
        let event = event_terms(&self.store, request.event_id)
            .await?
            .ok_or(PurchaseError::EventNotFound(request.event_id))?;
        if event.status != "published" {
            return Err(PurchaseError::NotOnSale(if event.status == "cancelled" { "cancelled" } else { "not published" }));
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
        self.settings.tokens.check_quotable(currency)
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
        all.sort_by(|a, b| b.id.cmp(&a.id));
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
                    set_quote_status(&mut tx, &id, "refund_due", now).await?;
                }
                audit::record(&mut *tx, &AuditEntry::new("system", "quote.expired").event(quote.event_id).subject(&id))
                    .await?;
                expired += 1;
            }
            tx.commit().await?;
        }
        Ok(expired)
    }

    /// Records a watcher's sighting and, when final, credits it. Idempotent per (chain, txid, output).
    #[tracing::instrument(skip(self, report), fields(chain = %report.chain, txid = %report.txid, output = report.output_index))]
    pub async fn report_payment(&self, report: PaymentReport, now: i64) -> Result<PaymentOutcome, PurchaseError> {
        let mut outcomes = self.report_payments(std::slice::from_ref(&report), now).await?;
        outcomes.pop().expect("one outcome per report")
    }

    /// The price of a ticket bought now, in `currency` (a USD price at today's rate); `None` when no rate.
    async fn current_price(&self, event: &EventTerms, currency: Currency) -> Result<Option<Amount>, StoreError> {
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
    async fn report_in_tx(
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
        let quote: QuoteRow = sqlx::query_as(&format!("UPDATE quotes SET updated_at = $2 WHERE id = $1 RETURNING {QUOTE_COLUMNS}"))
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
    async fn credit(
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
        let event_status: String =
            sqlx::query_scalar("SELECT status FROM events WHERE id = $1").bind(quote.event_id).fetch_one(&mut **tx).await?;
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
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, amount_units FROM payments WHERE quote_id = $1 AND status = 'confirmed'",
        )
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
                close_quote(tx, quote, "refund_due", now).await?;
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
                sqlx::query("UPDATE quotes SET holds_seat = 0 WHERE id = $1").bind(&quote.id).execute(&mut **tx).await?;
            }
            let covers = if expired {
                current_price.filter(|p| p.currency == currency && total >= *p)
            } else {
                Some(required)
            };
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
                close_quote(tx, quote, "refund_due", now).await?;
                return Ok(PaymentOutcome::RefundDue { reason });
            }
            covers.expect("seat taken only when covered")
        };

        let ticket_id = self.issue_ticket(tx, quote, total, now).await?;
        let split = price.split();
        let due_at = event.event_end + self.settings.payout_delay_ms;
        let creator = &event.creator_account;
        insert_ledger(tx, LedgerInsert {
            event_id: Some(quote.event_id), ticket_id: Some(ticket_id), quote_id: Some(&quote.id), payment_id: Some(payment_id),
            kind: "commission", reason: "sale", amount: split.commission, recipient: Some("platform"), status: "pending", due_at: Some(due_at), now,
        }).await?;
        insert_ledger(tx, LedgerInsert {
            event_id: Some(quote.event_id), ticket_id: Some(ticket_id), quote_id: Some(&quote.id), payment_id: Some(payment_id),
            kind: "payout", reason: "sale", amount: split.payout, recipient: Some(creator), status: "pending", due_at: Some(due_at), now,
        }).await?;
        if let Some(excess) = total.checked_sub(price).filter(|e| e.units > 0) {
            insert_ledger(tx, LedgerInsert {
                event_id: Some(quote.event_id), ticket_id: Some(ticket_id), quote_id: Some(&quote.id), payment_id: Some(payment_id),
                kind: "refund", reason: "overpaid", amount: excess, recipient: Some(&quote.wallet_address), status: "due", due_at: Some(now), now,
            }).await?;
        }
        sqlx::query("UPDATE payments SET status = 'credited', updated_at = $2 WHERE quote_id = $1 AND status = 'confirmed'")
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

    async fn issue_ticket(
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

    async fn match_quote(&self, report: &PaymentReport) -> Result<Option<QuoteRow>, StoreError> {
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
            let previous: String = sqlx::query_scalar(
                "SELECT status FROM payments WHERE chain = $1 AND txid = $2 AND output_index = $3",
            )
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
            return Ok(PaymentOutcome::Pending { confirmations: report.confirmations, required: self.settings.confirmations_required(report.chain) });
        }
        let payment_id: i64 = sqlx::query_scalar("SELECT id FROM payments WHERE chain = $1 AND txid = $2 AND output_index = $3")
            .bind(report.chain.as_str())
            .bind(&report.txid)
            .bind(report.output_index)
            .fetch_one(&mut **tx)
            .await?;
        let known_event = match why.event_id {
            Some(id) => sqlx::query_scalar::<_, i64>("SELECT id FROM events WHERE id = $1").bind(id).fetch_optional(&mut **tx).await?,
            None => None,
        };
        insert_ledger(tx, LedgerInsert {
            event_id: known_event, ticket_id: None, quote_id: None, payment_id: Some(payment_id),
            kind: "refund", reason: why.reason, amount: report.amount, recipient: why.recipient.as_deref(), status: "due", due_at: Some(now), now,
        }).await?;
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
    pub async fn orphan_payment(&self, chain: Chain, txid: &str, output_index: i64, now: i64) -> Result<bool, StoreError> {
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
        Ok(sqlx::query_as::<_, LedgerRow>(&format!("SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE event_id = $1 ORDER BY id"))
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
    pub async fn settle(&self, entry_id: i64, txid: &str, actor: &str, now: i64) -> Result<LedgerRow, crate::payouts::SettleError> {
        let destination = self.store.settlement_destination(entry_id, now).await?;
        self.store.settle_entry(entry_id, txid, &destination.address, actor, now).await
    }

    /// Refunds one ticket before its payout is due: the seat returns to sale, the sale's commission and
    /// payout are cancelled and the price paid becomes refund due.
    pub async fn refund_ticket(&self, ticket_id: i64, actor: &str, now: i64) -> Result<(), PurchaseError> {
        let mut tx = self.store.pool().begin().await?;
        let changed = sqlx::query("UPDATE tickets SET status = 'refunded', updated_at = $2 WHERE id = $1 AND status = 'valid'")
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
        let event_id: i64 = sqlx::query_scalar("SELECT event_id FROM tickets WHERE id = $1").bind(ticket_id).fetch_one(&mut *tx).await?;
        sqlx::query("UPDATE events SET tickets_sold = tickets_sold - 1, updated_at = $2 WHERE id = $1")
            .bind(event_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        audit::record(&mut *tx, &AuditEntry::new(actor, "ticket.refunded").event(event_id).subject(&ticket_id.to_string())).await?;
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
    pub kind: String,
    pub reason: String,
    pub currency: String,
    pub amount_units: String,
    pub recipient: Option<String>,
    pub status: String,
    pub due_at: Option<i64>,
    pub settled_txid: Option<String>,
    pub settled_at: Option<i64>,
    /// The address a settled payout or refund was sent to (see `crate::payouts`).
    pub paid_to: Option<String>,
}

pub(crate) const LEDGER_COLUMNS: &str = "id, event_id, ticket_id, quote_id, payment_id, kind, reason, currency, amount_units, \
    recipient, status, due_at, settled_txid, settled_at, paid_to";

struct LedgerInsert<'a> {
    event_id: Option<i64>,
    ticket_id: Option<i64>,
    quote_id: Option<&'a str>,
    payment_id: Option<i64>,
    kind: &'a str,
    reason: &'a str,
    amount: Amount,
    recipient: Option<&'a str>,
    status: &'a str,
    due_at: Option<i64>,
    now: i64,
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
        OnItsOwn { reason, event_id: Some(quote.event_id), recipient: report.from_address.clone(), named_quote: Some(&quote.id) }
    }
}

async fn insert_ledger(tx: &mut Transaction<'static, Any>, e: LedgerInsert<'_>) -> Result<(), StoreError> {
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

/// A ticket's bearer token: 32 random bytes, base64url.
fn new_ticket_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A payment in one of these states was final and has been dealt with: a later report of it changes nothing.
fn is_final_payment_status(status: &str) -> bool {
    matches!(status, "confirmed" | "credited" | "refund_due")
}

async fn upsert_payment(
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
    insert_ledger(tx, LedgerInsert {
        event_id: Some(event_id), ticket_id: None, quote_id: Some(&quote.id), payment_id: Some(payment_id),
        kind: "refund", reason, amount, recipient: Some(&quote.wallet_address), status: "due", due_at: Some(now), now,
    })
    .await?;
    if quote.is_open() {
        close_quote(tx, quote, "refund_due", now).await?;
    }
    Ok(())
}

/// Makes every final, uncredited payment of a quote refund due. Returns how many.
async fn refund_confirmed_payments(
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
        insert_ledger(tx, LedgerInsert {
            event_id: Some(quote.event_id), ticket_id: None, quote_id: Some(&quote.id), payment_id: Some(*payment_id),
            kind: "refund", reason, amount, recipient: Some(&quote.wallet_address), status: "due", due_at: Some(now), now,
        })
        .await?;
    }
    Ok(rows.len())
}

/// The price part of a ticket's payment becomes refund due (the sale's commission and payout are cancelled by
/// the caller).
async fn refund_ticket_price(tx: &mut Transaction<'static, Any>, ticket_id: i64, reason: &'static str, now: i64) -> Result<(), StoreError> {
    let sale: Vec<(Option<i64>, Option<String>, Option<i64>, String, String, Option<String>)> = sqlx::query_as(
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
    insert_ledger(tx, LedgerInsert {
        event_id, ticket_id: Some(ticket_id), quote_id: quote_id.as_deref(), payment_id,
        kind: "refund", reason, amount: total, recipient: wallet.as_deref(), status: "due", due_at: Some(now), now,
    })
    .await
}

async fn close_quote(tx: &mut Transaction<'static, Any>, quote: &QuoteRow, status: &str, now: i64) -> Result<(), StoreError> {
    let released = sqlx::query("UPDATE quotes SET status = $2, holds_seat = 0, updated_at = $3 WHERE id = $1 AND holds_seat = 1")
        .bind(&quote.id)
        .bind(status)
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

async fn set_quote_status(tx: &mut Transaction<'static, Any>, id: &str, status: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE quotes SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(status)
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

async fn release_seat(tx: &mut Transaction<'static, Any>, event_id: i64, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE events SET seats_held = seats_held - 1, updated_at = $2 WHERE id = $1 AND seats_held > 0")
        .bind(event_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
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
        close_quote(tx, &quote, if refunded > 0 { "refund_due" } else { "cancelled" }, now).await?;
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

/// A payment memo: `event:{id}:wallet:{address}` (the seed's form) with an optional `:quote:{quote id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memo {
    pub event_id: i64,
    pub wallet: String,
    pub quote_id: Option<String>,
}

pub fn parse_memo(memo: &str) -> Option<Memo> {
    let rest = memo.trim().strip_prefix("event:")?;
    let (event, rest) = rest.split_once(":wallet:")?;
    let event_id = event.parse::<i64>().ok().filter(|id| *id > 0)?;
    let (wallet, quote_id) = match rest.split_once(":quote:") {
        Some((w, q)) => (w, Some(q.to_owned())),
        None => (rest, None),
    };
    let valid = |s: &str| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid(wallet) || quote_id.as_deref().is_some_and(|q| !valid(q)) {
        return None;
    }
    Some(Memo { event_id, wallet: wallet.to_owned(), quote_id })
}

/// The payment URI a wallet or QR code understands.
pub fn payment_uri(quote: &QuoteRow, settings: &PaymentSettings) -> Option<String> {
    if quote.currency().ok()?.is_token() {
        return crate::tokens::token_payment_uri(quote, settings);
    }
    let amount = quote.amount().ok()?;
    let chain = quote.chain().ok()?;
    let enc = |s: &str| s.replace('%', "%25").replace(' ', "%20").replace(':', "%3A").replace('&', "%26").replace('?', "%3F").replace('=', "%3D");
    Some(match chain {
        Chain::Btc => format!("bitcoin:{}?amount={}", quote.payment_address, amount),
        Chain::Eth | Chain::Pol | Chain::Bnb => {
            let chain_id = settings.chain_ids.get(&chain).copied().unwrap_or(1);
            format!("ethereum:{}@{}?value={}", quote.payment_address, chain_id, amount.units)
        }
        Chain::Sol => format!(
            "solana:{}?amount={}&reference={}&label=Ticket&memo={}",
            quote.payment_address,
            amount,
            quote.reference.as_deref().unwrap_or_default(),
            enc(&quote.id)
        ),
        Chain::Xmr => format!("monero:{}?tx_amount={}", quote.payment_address, amount),
        Chain::Hive => format!(
            "https://hivesigner.com/sign/transfer?to={}&amount={}%20{}&memo={}",
            quote.payment_address,
            format_hive(amount),
            amount.currency.symbol(),
            enc(quote.memo.as_deref().unwrap_or_default())
        ),
    })
}

/// Hive amounts always carry three decimals (`25.000`).
pub fn format_hive(amount: Amount) -> String {
    format!("{}.{:03}", amount.units / 1000, amount.units % 1000)
}

fn random_id(prefix: &str, bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!("{prefix}_{}", hex::encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memos() {
        assert_eq!(
            parse_memo("event:123:wallet:bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"),
            Some(Memo { event_id: 123, wallet: "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh".into(), quote_id: None })
        );
        assert_eq!(parse_memo("event:7:wallet:alice:quote:q_ab12").unwrap().quote_id.as_deref(), Some("q_ab12"));
        for bad in ["", "event:x:wallet:a", "event:0:wallet:a", "event:1:wallet:", "hello", "event:1:wallet:a b", "event:-1:wallet:a"] {
            assert_eq!(parse_memo(bad), None, "{bad}");
        }
    }

    #[test]
    fn hive_amounts_have_three_decimals() {
        assert_eq!(format_hive(Amount::new(Currency::Hive, 25_000)), "25.000");
        assert_eq!(format_hive(Amount::new(Currency::Hbd, 10_005)), "10.005");
    }
}
