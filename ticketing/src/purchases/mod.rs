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
mod crediting;
pub mod derivation;
mod ledger;
pub mod minimums;
pub mod payment_uri;
mod quotes;
mod reversal;
mod rsvp;
pub mod states;

pub use crediting::*;
pub use ledger::*;
pub use payment_uri::*;
pub use quotes::*;
pub use reversal::{FinalPayment, Reversal};

pub use rsvp::Rsvp;
pub use states::{LedgerKind, LedgerStatus, PaymentStatus, QuoteStatus, TicketStatus, UnknownState};

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
}

fn random_id(prefix: &str, bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!("{prefix}_{}", hex::encode(raw))
}
