//! Events: what a creator sells tickets to, its validated creation input, its lifecycle and the marketplace.
//!
//! An event's *stored* status is `draft`, `published` or `cancelled`; `live` and `ended` are derived from the
//! clock ([`Event::status_at`]), so no background job has to flip them. Creation input is parsed once into a
//! [`NewEvent`] whose fields are all known good; every rule that can refuse it has its own [`EventRule`] code.
//!
//! Edits after sales have started are restricted so that nobody who already paid is wronged: the price may not
//! go down once a ticket is sold, capacity may not drop below the seats sold and held, and the schedule is frozen
//! once anyone has paid or holds a seat. Those checks are part of the `UPDATE`'s `WHERE` clause, so a purchase
//! racing an edit cannot slip between the check and the write.
//!
//! The marketplace filters what SQL can (status window, category, dates, creator, text) and does price work in
//! Rust, because a price in USD or another currency depends on the current exchange rate. Pagination is keyset
//! over `(sort key, id)`, so pages never overlap or skip while the data stands still.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chains::{Amount, AmountError, Currency};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::audit::{self, AuditEntry};
use crate::creators::AccountName;
use crate::rates::{convert_usd, to_usd_cents, RateSource};
use crate::store::{Store, StoreError};

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 20_000;
pub const CAPACITY_MAX: i64 = 100_000;
/// The default and largest shard: about what one browser renders and one person follows (issue 24).
pub const SHARD_SIZE_MAX: i64 = 50;
pub const CATEGORY_MAX: usize = 40;
pub const URL_MAX: usize = 2_048;
pub const SPACE_ID_MAX: usize = 256;

/// Where the event takes place in the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpaceType {
    Post,
    Document,
    Custom,
}

impl SpaceType {
    pub fn as_str(self) -> &'static str {
        match self {
            SpaceType::Post => "post",
            SpaceType::Document => "document",
            SpaceType::Custom => "custom",
        }
    }
}

impl FromStr for SpaceType {
    type Err = EventRule;
    fn from_str(s: &str) -> Result<Self, EventRule> {
        match s {
            "post" => Ok(SpaceType::Post),
            "document" => Ok(SpaceType::Document),
            "custom" => Ok(SpaceType::Custom),
            other => Err(EventRule::InvalidSpaceType(other.to_owned())),
        }
    }
}

/// The status column: what was decided, as opposed to what the clock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredStatus {
    Draft,
    Published,
    Cancelled,
}

impl StoredStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StoredStatus::Draft => "draft",
            StoredStatus::Published => "published",
            StoredStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for StoredStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "draft" => Ok(StoredStatus::Draft),
            "published" => Ok(StoredStatus::Published),
            "cancelled" => Ok(StoredStatus::Cancelled),
            other => Err(StoreError::Corrupt(format!("event status `{other}`"))),
        }
    }
}

/// The lifecycle: draft → published (on sale) → live (between start and end) → ended; or cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Draft,
    Published,
    Live,
    Ended,
    Cancelled,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Draft => "draft",
            EventStatus::Published => "published",
            EventStatus::Live => "live",
            EventStatus::Ended => "ended",
            EventStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    pub creator_account: String,
    pub title: String,
    pub description: String,
    pub cover_image_url: Option<String>,
    pub space_type: SpaceType,
    pub space_id: String,
    /// The price in base units of its currency (cents for USD).
    pub price: Amount,
    pub supported_crypto: Vec<Currency>,
    pub max_attendees: i64,
    /// Most attendees off stage in one shard of the event's scene (`signaling::shards`).
    pub shard_size: i64,
    pub seats_held: i64,
    pub tickets_sold: i64,
    pub event_start: i64,
    pub event_end: i64,
    pub sales_start: i64,
    pub sales_end: i64,
    pub require_camera: bool,
    pub require_microphone: bool,
    pub age_restriction: Option<i64>,
    pub category: Option<String>,
    pub stored_status: StoredStatus,
    pub min_certificate_secs: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub cancelled_at: Option<i64>,
}

impl Event {
    /// The status at `now`: a pure function of the stored status and the schedule.
    pub fn status_at(&self, now: i64) -> EventStatus {
        match self.stored_status {
            StoredStatus::Draft => EventStatus::Draft,
            StoredStatus::Cancelled => EventStatus::Cancelled,
            StoredStatus::Published if now >= self.event_end => EventStatus::Ended,
            StoredStatus::Published if now >= self.event_start => EventStatus::Live,
            StoredStatus::Published => EventStatus::Published,
        }
    }

    /// Seats that can still be sold: capacity less tickets sold and seats held by open quotes.
    pub fn seats_left(&self) -> i64 {
        (self.max_attendees - self.tickets_sold - self.seats_held).max(0)
    }

    /// Whether tickets can be bought at `now`.
    pub fn on_sale_at(&self, now: i64) -> bool {
        self.stored_status == StoredStatus::Published
            && now >= self.sales_start
            && now < self.sales_end
            && now < self.event_end
            && self.seats_left() > 0
    }
}

/// One broken rule of event input. [`code`](Self::code) is the client-facing reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventRule {
    #[error("a title is required")]
    TitleRequired,
    #[error("the title is longer than {TITLE_MAX} characters")]
    TitleTooLong,
    #[error("the description is longer than {DESCRIPTION_MAX} characters")]
    DescriptionTooLong,
    #[error("space_type `{0}` is not post, document or custom")]
    InvalidSpaceType(String),
    #[error("a space_id is required (at most {SPACE_ID_MAX} characters)")]
    SpaceIdRequired,
    #[error("ticket_price `{0}` is not a decimal number")]
    InvalidPrice(String),
    #[error("ticket_price must not be negative (0 makes a free event)")]
    PriceNotPositive,
    #[error("{currency} prices have at most {decimals} decimals")]
    TooManyDecimals { currency: Currency, decimals: u32 },
    #[error("ticket_price is too large: at most {PRICE_MAX} in its currency")]
    PriceTooLarge,
    #[error("unknown ticket_currency `{0}`")]
    UnknownCurrency(String),
    #[error("`{0}` is not a currency tickets can be paid in")]
    UnsupportedCrypto(String),
    #[error("supported_crypto must name at least one currency")]
    NoSupportedCrypto,
    #[error("an event priced in {0} can only be paid in {0}")]
    CryptoPriceOtherCurrency(Currency),
    #[error("max_attendees must be at least 1")]
    CapacityTooSmall,
    #[error("max_attendees must be at most {CAPACITY_MAX}")]
    CapacityTooLarge,
    #[error("shard_size must be between 1 and {SHARD_SIZE_MAX}")]
    InvalidShardSize,
    #[error("event_end must be after event_start")]
    EndBeforeStart,
    #[error("event_start is in the past")]
    StartInPast,
    #[error("sales_end must not be after event_end")]
    SalesEndAfterEventEnd,
    #[error("sales_end must be after sales_start")]
    SalesEndBeforeSalesStart,
    #[error("age_restriction must be between 1 and 99")]
    InvalidAgeRestriction,
    #[error("min_certificate_secs must not be negative")]
    InvalidMinCertificate,
    #[error("cover_image_url must be an https URL or a path on this gateway (/covers/…) of at most {URL_MAX} characters")]
    InvalidCoverImageUrl,
    #[error("event_category must be 1–{CATEGORY_MAX} lowercase letters, digits or dashes")]
    InvalidCategory,
}

impl EventRule {
    pub const fn code(&self) -> &'static str {
        match self {
            EventRule::TitleRequired => "title_required",
            EventRule::TitleTooLong => "title_too_long",
            EventRule::DescriptionTooLong => "description_too_long",
            EventRule::InvalidSpaceType(_) => "invalid_space_type",
            EventRule::SpaceIdRequired => "space_id_required",
            EventRule::InvalidPrice(_) => "invalid_price",
            EventRule::PriceNotPositive => "price_not_positive",
            EventRule::TooManyDecimals { .. } => "too_many_decimals",
            EventRule::PriceTooLarge => "price_too_large",
            EventRule::UnknownCurrency(_) => "unknown_currency",
            EventRule::UnsupportedCrypto(_) => "unsupported_crypto",
            EventRule::NoSupportedCrypto => "no_supported_crypto",
            EventRule::CryptoPriceOtherCurrency(_) => "crypto_price_other_currency",
            EventRule::CapacityTooSmall => "capacity_too_small",
            EventRule::CapacityTooLarge => "capacity_too_large",
            EventRule::InvalidShardSize => "invalid_shard_size",
            EventRule::EndBeforeStart => "end_before_start",
            EventRule::StartInPast => "start_in_past",
            EventRule::SalesEndAfterEventEnd => "sales_end_after_event_end",
            EventRule::SalesEndBeforeSalesStart => "sales_end_before_sales_start",
            EventRule::InvalidAgeRestriction => "invalid_age_restriction",
            EventRule::InvalidMinCertificate => "invalid_min_certificate",
            EventRule::InvalidCoverImageUrl => "invalid_cover_image_url",
            EventRule::InvalidCategory => "invalid_category",
        }
    }
}

/// Event fields as a client sent them, before any rule is checked. Times are unix milliseconds (the HTTP edge
/// parses RFC 3339); `ticket_price` is the raw decimal text, never a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInput {
    pub title: String,
    pub description: String,
    pub space_type: String,
    pub space_id: String,
    pub ticket_price: String,
    pub ticket_currency: String,
    pub max_attendees: i64,
    /// Most attendees in one shard; `None` is the default ([`SHARD_SIZE_MAX`]).
    pub shard_size: Option<i64>,
    pub event_start: i64,
    pub event_end: i64,
    pub sales_start: Option<i64>,
    pub sales_end: Option<i64>,
    pub supported_crypto: Option<Vec<String>>,
    pub require_camera: bool,
    pub require_microphone: bool,
    pub age_restriction: Option<i64>,
    pub category: Option<String>,
    pub cover_image_url: Option<String>,
    pub min_certificate_secs: Option<i64>,
}

/// A new event whose every field has passed the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub title: String,
    pub description: String,
    pub space_type: SpaceType,
    pub space_id: String,
    pub price: Amount,
    pub supported_crypto: Vec<Currency>,
    pub max_attendees: i64,
    pub shard_size: i64,
    pub event_start: i64,
    pub event_end: i64,
    pub sales_start: i64,
    pub sales_end: i64,
    pub require_camera: bool,
    pub require_microphone: bool,
    pub age_restriction: Option<i64>,
    pub category: Option<String>,
    pub cover_image_url: Option<String>,
    pub min_certificate_secs: Option<i64>,
}

impl NewEvent {
    /// Checks every rule that does not depend on the clock; `now` only fills in the default `sales_start`.
    /// [`NewEvent::check_not_in_past`] is separate because an edit of a running event must not trip it.
    pub fn parse(input: EventInput, now: i64) -> Result<NewEvent, EventRule> {
        let title = input.title.trim().to_owned();
        if title.is_empty() {
            return Err(EventRule::TitleRequired);
        }
        if title.chars().count() > TITLE_MAX {
            return Err(EventRule::TitleTooLong);
        }
        if input.description.chars().count() > DESCRIPTION_MAX {
            return Err(EventRule::DescriptionTooLong);
        }
        let space_type: SpaceType = input.space_type.trim().parse()?;
        let space_id = input.space_id.trim().to_owned();
        if space_id.is_empty() || space_id.len() > SPACE_ID_MAX {
            return Err(EventRule::SpaceIdRequired);
        }
        let currency: Currency =
            input.ticket_currency.parse().map_err(|_| EventRule::UnknownCurrency(input.ticket_currency.clone()))?;
        let price = parse_price(currency, &input.ticket_price)?;
        let supported_crypto = parse_supported(currency, input.supported_crypto.as_deref())?;
        if input.max_attendees < 1 {
            return Err(EventRule::CapacityTooSmall);
        }
        if input.max_attendees > CAPACITY_MAX {
            return Err(EventRule::CapacityTooLarge);
        }
        let shard_size = input.shard_size.unwrap_or(SHARD_SIZE_MAX);
        if !(1..=SHARD_SIZE_MAX).contains(&shard_size) {
            return Err(EventRule::InvalidShardSize);
        }
        if input.event_end <= input.event_start {
            return Err(EventRule::EndBeforeStart);
        }
        // An event entirely in the past has no sales window to speak of; say what is wrong with it.
        if input.event_end <= now && input.sales_start.is_none() && input.sales_end.is_none() {
            return Err(EventRule::StartInPast);
        }
        let sales_start = input.sales_start.unwrap_or(now);
        let sales_end = input.sales_end.unwrap_or(input.event_end);
        if sales_end > input.event_end {
            return Err(EventRule::SalesEndAfterEventEnd);
        }
        if sales_end <= sales_start {
            return Err(EventRule::SalesEndBeforeSalesStart);
        }
        if input.age_restriction.is_some_and(|a| !(1..=99).contains(&a)) {
            return Err(EventRule::InvalidAgeRestriction);
        }
        if input.min_certificate_secs.is_some_and(|s| s < 0) {
            return Err(EventRule::InvalidMinCertificate);
        }
        let cover_image_url = non_empty(input.cover_image_url);
        if let Some(url) = &cover_image_url {
            // An https URL, or a path on the gateway itself ("/covers/…"): what the pages show and their
            // Content-Security-Policy (`img-src 'self' https:`) lets load. Plain http would be blocked as mixed
            // content on an https site, and "//host" is another host in disguise.
            let place_ok = url.starts_with("https://") || (url.starts_with('/') && !url.starts_with("//"));
            if !place_ok || url.len() > URL_MAX || url.contains(char::is_whitespace) {
                return Err(EventRule::InvalidCoverImageUrl);
            }
        }
        let category = non_empty(input.category).map(|c| c.to_ascii_lowercase());
        if let Some(c) = &category {
            let ok = c.len() <= CATEGORY_MAX && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(EventRule::InvalidCategory);
            }
        }
        Ok(NewEvent {
            title,
            description: input.description,
            space_type,
            space_id,
            price,
            supported_crypto,
            max_attendees: input.max_attendees,
            shard_size,
            event_start: input.event_start,
            event_end: input.event_end,
            sales_start,
            sales_end,
            require_camera: input.require_camera,
            require_microphone: input.require_microphone,
            age_restriction: input.age_restriction,
            category,
            cover_image_url,
            min_certificate_secs: input.min_certificate_secs,
        })
    }

    pub fn check_not_in_past(&self, now: i64) -> Result<(), EventRule> {
        if self.event_start <= now {
            return Err(EventRule::StartInPast);
        }
        Ok(())
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The largest ticket price, in whole units of the price's currency (USD or a coin).
pub const PRICE_MAX: u64 = 1_000_000;

/// Parses a price's decimal text in its currency's scale. Exponents are refused: prices are typed by people.
pub fn parse_price(currency: Currency, text: &str) -> Result<Amount, EventRule> {
    let text = text.trim();
    // Plain decimals only: `Decimal::from_str` would also take `1e3`.
    let digits = text.strip_prefix('-').unwrap_or(text);
    let plain = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.bytes().any(|b| b.is_ascii_digit());
    if !plain {
        return Err(EventRule::InvalidPrice(text.to_owned()));
    }
    let value = Decimal::from_str(text).map_err(|_| EventRule::InvalidPrice(text.to_owned()))?;
    // 0 is a free event (reserved with a wallet signature, see `purchases::rsvp`); below 0 is no price.
    if value < Decimal::ZERO {
        return Err(EventRule::PriceNotPositive);
    }
    // A bound people never reach, so that every accepted price converts into every payable currency's base
    // units (a $10^18 ticket was accepted, then every quote for it failed).
    if value > Decimal::from(PRICE_MAX) {
        return Err(EventRule::PriceTooLarge);
    }
    let amount = Amount::from_decimal(currency, value).map_err(|e| match e {
        AmountError::TooManyDecimals { currency, decimals } => EventRule::TooManyDecimals { currency, decimals },
        AmountError::Negative => EventRule::PriceNotPositive,
        AmountError::Overflow => EventRule::PriceTooLarge,
        AmountError::NotANumber(t) => EventRule::InvalidPrice(t),
    })?;
    // Stored prices must survive a round trip through `Decimal` for conversions.
    if amount.to_decimal().is_none() {
        return Err(EventRule::PriceTooLarge);
    }
    Ok(amount)
}

/// The currencies buyers may pay in. Default: every native payable currency for a USD price (stablecoins only
/// when listed: `USDC.POL`, …), only the price's currency for a crypto price (a crypto price is a promise of that
/// amount of that coin).
fn parse_supported(price_currency: Currency, list: Option<&[String]>) -> Result<Vec<Currency>, EventRule> {
    let Some(list) = list else {
        return Ok(if price_currency == Currency::Usd { Currency::PAYABLE.to_vec() } else { vec![price_currency] });
    };
    let mut out = Vec::new();
    for name in list {
        let c: Currency = name.parse().map_err(|_| EventRule::UnsupportedCrypto(name.clone()))?;
        if !c.is_payable() {
            return Err(EventRule::UnsupportedCrypto(name.clone()));
        }
        if price_currency != Currency::Usd && c != price_currency {
            return Err(EventRule::CryptoPriceOtherCurrency(price_currency));
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err(EventRule::NoSupportedCrypto);
    }
    out.sort();
    Ok(out)
}

/// The fields of an edit; `None` keeps the current value. The currency of the price cannot change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub cover_image_url: Option<String>,
    pub category: Option<String>,
    pub space_type: Option<String>,
    pub space_id: Option<String>,
    pub ticket_price: Option<String>,
    pub supported_crypto: Option<Vec<String>>,
    pub max_attendees: Option<i64>,
    pub shard_size: Option<i64>,
    pub event_start: Option<i64>,
    pub event_end: Option<i64>,
    pub sales_start: Option<i64>,
    pub sales_end: Option<i64>,
    pub require_camera: Option<bool>,
    pub require_microphone: Option<bool>,
    pub age_restriction: Option<i64>,
    pub min_certificate_secs: Option<i64>,
}

/// Why a change to an existing event was refused.
#[derive(Debug, thiserror::Error)]
pub enum EventChangeError {
    #[error("no such event")]
    NotFound,
    #[error("{0}")]
    Rule(#[from] EventRule),
    #[error("the price cannot be lowered once tickets have been sold")]
    PriceLowered,
    #[error("capacity cannot drop below the seats already sold or held")]
    CapacityBelowSold,
    #[error("the schedule cannot change once tickets are sold or seats are held")]
    ScheduleLocked,
    #[error("the event is cancelled or over and can no longer change")]
    EventClosed,
    #[error("only draft events can be published")]
    NotDraft,
    #[error("the event is already cancelled")]
    AlreadyCancelled,
    #[error("an event that has ended cannot be cancelled")]
    AlreadyEnded,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EventChangeError {
    fn from(e: sqlx::Error) -> Self {
        EventChangeError::Store(StoreError::Database(e))
    }
}

impl EventChangeError {
    pub fn code(&self) -> &'static str {
        match self {
            EventChangeError::NotFound => "event_not_found",
            EventChangeError::Rule(rule) => rule.code(),
            EventChangeError::PriceLowered => "price_decrease_after_sales",
            EventChangeError::CapacityBelowSold => "capacity_below_sold",
            EventChangeError::ScheduleLocked => "schedule_locked",
            EventChangeError::EventClosed => "event_closed",
            EventChangeError::NotDraft => "not_draft",
            EventChangeError::AlreadyCancelled => "already_cancelled",
            EventChangeError::AlreadyEnded => "event_ended",
            EventChangeError::Store(_) => "store_unavailable",
        }
    }
}

/// A creator's rating: the mean of 1–5 star ratings over all their events.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RatingSummary {
    /// Rounded to two decimals; `None` without ratings.
    pub average: Option<f64>,
    pub count: i64,
}

impl RatingSummary {
    pub fn from_sum(count: Option<i64>, sum: Option<i64>) -> Self {
        let count = count.unwrap_or(0);
        let average = (count > 0).then(|| {
            let mean = sum.unwrap_or(0) as f64 / count as f64;
            (mean * 100.0).round() / 100.0
        });
        RatingSummary { average, count }
    }
}

/// An event with its creator's display name and rating, as the marketplace and detail pages show it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventListing {
    pub event: Event,
    pub creator_display_name: Option<String>,
    pub creator_rating: RatingSummary,
}

/// The price of an event in each currency it can be paid in, at the current rates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventPrices {
    /// The price's value in US cents (rounded down for crypto prices); `None` if no rate is known.
    pub usd_cents: Option<i64>,
    pub by_currency: Vec<Amount>,
}

/// Prices an event in every supported currency. A currency whose rate is unavailable is left out.
pub async fn price_event(event: &Event, rates: &dyn RateSource) -> EventPrices {
    let price = event.price;
    if price.currency == Currency::Usd {
        let mut by_currency = Vec::new();
        for &currency in &event.supported_crypto {
            if let Ok(rate) = rates.usd_rate(currency).await {
                if let Ok(amount) = convert_usd(price, currency, rate) {
                    by_currency.push(amount);
                }
            }
        }
        EventPrices { usd_cents: i64::try_from(price.units).ok(), by_currency }
    } else {
        let usd_cents = match rates.usd_rate(price.currency).await {
            Ok(rate) => to_usd_cents(price, rate),
            Err(_) => None,
        };
        EventPrices { usd_cents, by_currency: vec![price] }
    }
}

/// Which part of the calendar the marketplace lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    /// Published events that have not started.
    #[default]
    Upcoming,
    /// Published events running now.
    Live,
    /// Both.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// Soonest first.
    #[default]
    Start,
    /// Cheapest first (in USD at current rates).
    Price,
    /// Most tickets sold first.
    Popularity,
}

impl SortBy {
    pub fn as_str(self) -> &'static str {
        match self {
            SortBy::Start => "start",
            SortBy::Price => "price",
            SortBy::Popularity => "popularity",
        }
    }
}

/// A position in a sorted listing: the last item's sort key and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub sort: &'static str,
    pub key: i64,
    pub id: i64,
}

/// Marketplace filters, all optional except the window.
#[derive(Debug, Clone, Default)]
pub struct MarketQuery {
    pub window: Window,
    pub category: Option<String>,
    /// Inclusive bounds on the price in US cents.
    pub min_usd_cents: Option<i64>,
    pub max_usd_cents: Option<i64>,
    /// Inclusive bounds on the price in one currency (events not payable in it are left out).
    pub currency_range: Option<(Currency, Option<Amount>, Option<Amount>)>,
    /// Bounds on `event_start`, unix milliseconds, inclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub creator: Option<String>,
    /// Case-insensitive substring of title or description.
    pub text: Option<String>,
    pub sort: SortBy,
    pub after: Option<Cursor>,
    pub limit: usize,
}

/// One marketplace item with what the list shows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketItem {
    pub listing: EventListing,
    pub prices: EventPrices,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MarketPage {
    pub items: Vec<MarketItem>,
    /// Where the next page starts, if there is one.
    pub next: Option<Cursor>,
}

/// Escapes `%`, `_` and the escape character itself, for `LIKE … ESCAPE '\'`.
pub fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

const EVENT_COLUMNS: &str = "e.id, e.creator_account, e.title, e.description, e.cover_image_url, e.space_type, \
    e.space_id, e.price_units, e.price_currency, e.supported_crypto, e.max_attendees, e.seats_held, e.tickets_sold, \
    e.event_start, e.event_end, e.sales_start, e.sales_end, e.require_camera, e.require_microphone, \
    e.age_restriction, e.category, e.status, e.min_certificate_secs, e.created_at, e.updated_at, e.cancelled_at, \
    e.shard_size";

/// The listing join: creator's display name and rating aggregate.
const LISTING_FROM: &str = "FROM events e \
    LEFT JOIN creators c ON c.account = e.creator_account \
    LEFT JOIN (SELECT creator_account, COUNT(*) AS rating_count, CAST(SUM(stars) AS BIGINT) AS rating_sum \
               FROM ratings GROUP BY creator_account) r ON r.creator_account = e.creator_account";

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    creator_account: String,
    title: String,
    description: String,
    cover_image_url: Option<String>,
    space_type: String,
    space_id: String,
    price_units: String,
    price_currency: String,
    supported_crypto: String,
    max_attendees: i64,
    seats_held: i64,
    tickets_sold: i64,
    event_start: i64,
    event_end: i64,
    sales_start: i64,
    sales_end: i64,
    require_camera: i64,
    require_microphone: i64,
    age_restriction: Option<i64>,
    category: Option<String>,
    status: String,
    min_certificate_secs: Option<i64>,
    created_at: i64,
    updated_at: i64,
    cancelled_at: Option<i64>,
    shard_size: i64,
}

#[derive(sqlx::FromRow)]
struct ListingRow {
    #[sqlx(flatten)]
    event: EventRow,
    display_name: Option<String>,
    rating_count: Option<i64>,
    rating_sum: Option<i64>,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;
    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, value: &str| StoreError::Corrupt(format!("event {}: {what} `{value}`", row.id));
        let currency: Currency = row.price_currency.parse().map_err(|_| corrupt("currency", &row.price_currency))?;
        let price = Amount::from_units_str(currency, &row.price_units).map_err(|_| corrupt("price", &row.price_units))?;
        let supported_crypto = row
            .supported_crypto
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<Currency>().map_err(|_| corrupt("supported currency", s)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Event {
            id: row.id,
            space_type: row.space_type.parse().map_err(|_| corrupt("space type", &row.space_type))?,
            stored_status: row.status.parse()?,
            creator_account: row.creator_account,
            title: row.title,
            description: row.description,
            cover_image_url: row.cover_image_url,
            space_id: row.space_id,
            price,
            supported_crypto,
            max_attendees: row.max_attendees,
            shard_size: row.shard_size,
            seats_held: row.seats_held,
            tickets_sold: row.tickets_sold,
            event_start: row.event_start,
            event_end: row.event_end,
            sales_start: row.sales_start,
            sales_end: row.sales_end,
            require_camera: row.require_camera != 0,
            require_microphone: row.require_microphone != 0,
            age_restriction: row.age_restriction,
            category: row.category,
            min_certificate_secs: row.min_certificate_secs,
            created_at: row.created_at,
            updated_at: row.updated_at,
            cancelled_at: row.cancelled_at,
        })
    }
}

impl TryFrom<ListingRow> for EventListing {
    type Error = StoreError;
    fn try_from(row: ListingRow) -> Result<Self, StoreError> {
        Ok(EventListing {
            event: row.event.try_into()?,
            creator_display_name: row.display_name,
            creator_rating: RatingSummary::from_sum(row.rating_count, row.rating_sum),
        })
    }
}

fn supported_text(list: &[Currency]) -> String {
    list.iter().map(|c| c.symbol()).collect::<Vec<_>>().join(",")
}

/// Reads one event inside a transaction (or on any executor).
/// Reads an event inside a transaction that will write, taking the write lock first: on SQLite a transaction
/// that reads and then writes cannot wait for the lock (it fails at once with SQLITE_BUSY while another
/// connection holds it, e.g. one still rolling back), so the no-op write makes it wait its turn; on PostgreSQL it
/// locks the event's row for the change.
pub(crate) async fn event_for_update(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: i64,
) -> Result<Option<Event>, StoreError> {
    sqlx::query("UPDATE events SET updated_at = updated_at WHERE id = $1").bind(id).execute(&mut **tx).await?;
    event_in(&mut **tx, id).await
}

pub async fn event_in<'e, E>(executor: E, id: i64) -> Result<Option<Event>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query_as::<_, EventRow>(&format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await?;
    row.map(Event::try_from).transpose()
}

impl Store {
    /// Creates an event for `creator` (whose tier the caller has checked), as a draft or published.
    pub async fn create_event(
        &self,
        creator: &AccountName,
        event: &NewEvent,
        draft: bool,
        now: i64,
    ) -> Result<Event, StoreError> {
        let status = if draft { StoredStatus::Draft } else { StoredStatus::Published };
        let mut tx = self.pool().begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (creator_account, title, description, cover_image_url, space_type, space_id, \
             price_units, price_currency, supported_crypto, max_attendees, event_start, event_end, sales_start, \
             sales_end, require_camera, require_microphone, age_restriction, category, status, \
             min_certificate_secs, created_at, updated_at, shard_size) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $21, $22) \
             RETURNING id",
        )
        .bind(creator.as_str())
        .bind(&event.title)
        .bind(&event.description)
        .bind(event.cover_image_url.as_deref())
        .bind(event.space_type.as_str())
        .bind(&event.space_id)
        .bind(event.price.units.to_string())
        .bind(event.price.currency.symbol())
        .bind(supported_text(&event.supported_crypto))
        .bind(event.max_attendees)
        .bind(event.event_start)
        .bind(event.event_end)
        .bind(event.sales_start)
        .bind(event.sales_end)
        .bind(event.require_camera as i64)
        .bind(event.require_microphone as i64)
        .bind(event.age_restriction)
        .bind(event.category.as_deref())
        .bind(status.as_str())
        .bind(event.min_certificate_secs)
        .bind(now)
        .bind(event.shard_size)
        .fetch_one(&mut *tx)
        .await?;
        audit::record(
            &mut *tx,
            &AuditEntry::new(creator.as_str(), "event.create").event(id).detail(serde_json::json!({
                "title": event.title,
                "price": event.price.to_string(),
                "currency": event.price.currency,
                "max_attendees": event.max_attendees,
                "status": status,
            })),
        )
        .await?;
        let created = event_in(&mut *tx, id).await?.ok_or_else(|| StoreError::Corrupt("event vanished".into()))?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn event(&self, id: i64) -> Result<Option<Event>, StoreError> {
        event_in(self.pool(), id).await
    }

    /// An event with its creator's name and rating.
    pub async fn event_listing(&self, id: i64) -> Result<Option<EventListing>, StoreError> {
        let row = sqlx::query_as::<_, ListingRow>(&format!(
            "SELECT {EVENT_COLUMNS}, c.display_name, r.rating_count, r.rating_sum {LISTING_FROM} WHERE e.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(EventListing::try_from).transpose()
    }

    /// Every event of one creator, soonest first (drafts and cancelled ones included).
    pub async fn events_by_creator(&self, creator: &AccountName) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.creator_account = $1 ORDER BY e.event_start, e.id"
        ))
        .bind(creator.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Event::try_from).collect()
    }

    /// Revenue of a creator's events: the sum paid for valid tickets, by event and currency.
    pub async fn creator_sales(&self, creator: &AccountName) -> Result<HashMap<i64, Vec<Amount>>, StoreError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT t.event_id, t.currency, t.amount_paid_units FROM tickets t JOIN events e ON e.id = t.event_id \
             WHERE e.creator_account = $1 AND t.status = 'valid'",
        )
        .bind(creator.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut sales: HashMap<i64, Vec<Amount>> = HashMap::new();
        for (event_id, currency, units) in rows {
            let currency: Currency = currency.parse().map_err(|_| StoreError::Corrupt(format!("currency `{currency}`")))?;
            let paid = Amount::from_units_str(currency, &units).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let totals = sales.entry(event_id).or_default();
            match totals.iter_mut().find(|a| a.currency == currency) {
                Some(total) => {
                    *total = total.checked_add(paid).ok_or_else(|| StoreError::Corrupt("revenue overflow".into()))?
                }
                None => totals.push(paid),
            }
        }
        for totals in sales.values_mut() {
            totals.sort_by_key(|a| a.currency);
        }
        Ok(sales)
    }

    /// Applies an edit within the rules for events that may already have buyers (see the module docs).
    pub async fn update_event(
        &self,
        id: i64,
        patch: &EventPatch,
        actor: &str,
        now: i64,
    ) -> Result<Event, EventChangeError> {
        let mut tx = self.pool().begin().await?;
        let current = event_for_update(&mut tx, id).await?.ok_or(EventChangeError::NotFound)?;
        if matches!(current.status_at(now), EventStatus::Cancelled | EventStatus::Ended) {
            return Err(EventChangeError::EventClosed);
        }
        let input = EventInput {
            title: patch.title.clone().unwrap_or_else(|| current.title.clone()),
            description: patch.description.clone().unwrap_or_else(|| current.description.clone()),
            space_type: patch.space_type.clone().unwrap_or_else(|| current.space_type.as_str().to_owned()),
            space_id: patch.space_id.clone().unwrap_or_else(|| current.space_id.clone()),
            ticket_price: patch.ticket_price.clone().unwrap_or_else(|| current.price.to_string()),
            ticket_currency: current.price.currency.symbol().to_owned(),
            max_attendees: patch.max_attendees.unwrap_or(current.max_attendees),
            shard_size: Some(patch.shard_size.unwrap_or(current.shard_size)),
            event_start: patch.event_start.unwrap_or(current.event_start),
            event_end: patch.event_end.unwrap_or(current.event_end),
            sales_start: Some(patch.sales_start.unwrap_or(current.sales_start)),
            sales_end: Some(patch.sales_end.unwrap_or(current.sales_end)),
            supported_crypto: Some(
                patch
                    .supported_crypto
                    .clone()
                    .unwrap_or_else(|| current.supported_crypto.iter().map(|c| c.symbol().to_owned()).collect()),
            ),
            require_camera: patch.require_camera.unwrap_or(current.require_camera),
            require_microphone: patch.require_microphone.unwrap_or(current.require_microphone),
            age_restriction: patch.age_restriction.or(current.age_restriction),
            category: patch.category.clone().or_else(|| current.category.clone()),
            cover_image_url: patch.cover_image_url.clone().or_else(|| current.cover_image_url.clone()),
            min_certificate_secs: patch.min_certificate_secs.or(current.min_certificate_secs),
        };
        let next = NewEvent::parse(input, now)?;
        let schedule_changed = next.event_start != current.event_start || next.event_end != current.event_end;
        if next.event_start != current.event_start {
            next.check_not_in_past(now)?;
        }
        let price_lowered = next.price.units < current.price.units;
        let updated = sqlx::query(
            "UPDATE events SET title = $2, description = $3, cover_image_url = $4, space_type = $5, space_id = $6, \
             price_units = $7, supported_crypto = $8, max_attendees = $9, event_start = $10, event_end = $11, \
             sales_start = $12, sales_end = $13, require_camera = $14, require_microphone = $15, \
             age_restriction = $16, category = $17, min_certificate_secs = $18, updated_at = $19, shard_size = $22 \
             WHERE id = $1 AND status <> 'cancelled' \
             AND tickets_sold + seats_held <= $9 \
             AND ($20 = 0 OR tickets_sold = 0) \
             AND ($21 = 0 OR (tickets_sold = 0 AND seats_held = 0))",
        )
        .bind(id)
        .bind(&next.title)
        .bind(&next.description)
        .bind(next.cover_image_url.as_deref())
        .bind(next.space_type.as_str())
        .bind(&next.space_id)
        .bind(next.price.units.to_string())
        .bind(supported_text(&next.supported_crypto))
        .bind(next.max_attendees)
        .bind(next.event_start)
        .bind(next.event_end)
        .bind(next.sales_start)
        .bind(next.sales_end)
        .bind(next.require_camera as i64)
        .bind(next.require_microphone as i64)
        .bind(next.age_restriction)
        .bind(next.category.as_deref())
        .bind(next.min_certificate_secs)
        .bind(now)
        .bind(price_lowered as i64)
        .bind(schedule_changed as i64)
        .bind(next.shard_size)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            // Re-read to name the rule that held; the row may have moved since the first read.
            let now_row = event_in(&mut *tx, id).await?.ok_or(EventChangeError::NotFound)?;
            return Err(if now_row.stored_status == StoredStatus::Cancelled {
                EventChangeError::EventClosed
            } else if now_row.tickets_sold + now_row.seats_held > next.max_attendees {
                EventChangeError::CapacityBelowSold
            } else if price_lowered && now_row.tickets_sold > 0 {
                EventChangeError::PriceLowered
            } else {
                EventChangeError::ScheduleLocked
            });
        }
        audit::record(
            &mut *tx,
            &AuditEntry::new(actor, "event.update").event(id).detail(serde_json::json!({
                "price": next.price.to_string(),
                "max_attendees": next.max_attendees,
                "shard_size": next.shard_size,
                "event_start": next.event_start,
                "event_end": next.event_end,
            })),
        )
        .await?;
        let event = event_in(&mut *tx, id).await?.ok_or(EventChangeError::NotFound)?;
        tx.commit().await?;
        Ok(event)
    }

    /// Draft → published.
    pub async fn publish_event(&self, id: i64, actor: &str, now: i64) -> Result<Event, EventChangeError> {
        let mut tx = self.pool().begin().await?;
        let current = event_for_update(&mut tx, id).await?.ok_or(EventChangeError::NotFound)?;
        if current.stored_status != StoredStatus::Draft {
            return Err(EventChangeError::NotDraft);
        }
        if current.event_end <= now {
            return Err(EventChangeError::EventClosed);
        }
        let done = sqlx::query("UPDATE events SET status = 'published', updated_at = $2 WHERE id = $1 AND status = 'draft'")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(EventChangeError::NotDraft);
        }
        audit::record(&mut *tx, &AuditEntry::new(actor, "event.publish").event(id)).await?;
        let event = event_in(&mut *tx, id).await?.ok_or(EventChangeError::NotFound)?;
        tx.commit().await?;
        Ok(event)
    }

    /// Cancels an event and, in the same transaction, unwinds its money: held seats are released, paid tickets'
    /// payments become refund due and pending payouts are cancelled ([`crate::purchases::on_event_cancelled`]).
    pub async fn cancel_event(&self, id: i64, actor: &str, now: i64) -> Result<Event, EventChangeError> {
        let mut tx = self.pool().begin().await?;
        let current = event_for_update(&mut tx, id).await?.ok_or(EventChangeError::NotFound)?;
        match current.status_at(now) {
            EventStatus::Cancelled => return Err(EventChangeError::AlreadyCancelled),
            EventStatus::Ended => return Err(EventChangeError::AlreadyEnded),
            _ => {}
        }
        let done = sqlx::query(
            "UPDATE events SET status = 'cancelled', cancelled_at = $2, updated_at = $2 \
             WHERE id = $1 AND status <> 'cancelled'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(EventChangeError::AlreadyCancelled);
        }
        crate::purchases::on_event_cancelled(&mut tx, id, now).await?;
        audit::record(
            &mut *tx,
            &AuditEntry::new(actor, "event.cancel").event(id).detail(serde_json::json!({
                "tickets_sold": current.tickets_sold,
                "seats_held": current.seats_held,
            })),
        )
        .await?;
        let event = event_in(&mut *tx, id).await?.ok_or(EventChangeError::NotFound)?;
        tx.commit().await?;
        Ok(event)
    }

    /// One page of the marketplace. See the module docs for what runs in SQL and what in Rust.
    pub async fn marketplace(
        &self,
        query: &MarketQuery,
        rates: &dyn RateSource,
        now: i64,
    ) -> Result<MarketPage, StoreError> {
        let (started_after, started_by) = match query.window {
            Window::Upcoming => (Some(now), None),
            Window::Live => (None, Some(now)),
            Window::All => (None, None),
        };
        let rows = sqlx::query_as::<_, ListingRow>(&format!(
            "SELECT {EVENT_COLUMNS}, c.display_name, r.rating_count, r.rating_sum {LISTING_FROM} \
             WHERE e.status = 'published' AND e.event_end > $1 \
             AND ($2 IS NULL OR e.event_start > $2) \
             AND ($3 IS NULL OR e.event_start <= $3) \
             AND ($4 IS NULL OR e.category = $4) \
             AND ($5 IS NULL OR e.event_start >= $5) \
             AND ($6 IS NULL OR e.event_start <= $6) \
             AND ($7 IS NULL OR e.creator_account = $7) \
             AND ($8 IS NULL OR LOWER(e.title) LIKE LOWER($8) ESCAPE '\\' \
                  OR LOWER(e.description) LIKE LOWER($8) ESCAPE '\\')"
        ))
        .bind(now)
        .bind(started_after)
        .bind(started_by)
        .bind(query.category.as_deref())
        .bind(query.from)
        .bind(query.to)
        .bind(query.creator.as_deref())
        .bind(query.text.as_deref().map(like_pattern))
        .fetch_all(self.pool())
        .await?;

        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let listing = EventListing::try_from(row)?;
            let prices = price_event(&listing.event, rates).await;
            if !price_in_range(&prices, query) {
                continue;
            }
            items.push((sort_key(query.sort, &listing.event, &prices), MarketItem { listing, prices }));
        }
        items.sort_by_key(|(key, item)| (*key, item.listing.event.id));
        if let Some(after) = query.after {
            items.retain(|(key, item)| (*key, item.listing.event.id) > (after.key, after.id));
        }
        let limit = query.limit.max(1);
        let more = items.len() > limit;
        items.truncate(limit);
        let next = more.then(|| {
            let (key, item) = items.last().expect("a full page is not empty");
            Cursor { sort: query.sort.as_str(), key: *key, id: item.listing.event.id }
        });
        Ok(MarketPage { items: items.into_iter().map(|(_, item)| item).collect(), next })
    }
}

fn sort_key(sort: SortBy, event: &Event, prices: &EventPrices) -> i64 {
    match sort {
        SortBy::Start => event.event_start,
        // Events without a known USD value sort last.
        SortBy::Price => prices.usd_cents.unwrap_or(i64::MAX),
        SortBy::Popularity => -event.tickets_sold,
    }
}

fn price_in_range(prices: &EventPrices, query: &MarketQuery) -> bool {
    if query.min_usd_cents.is_some() || query.max_usd_cents.is_some() {
        let Some(usd) = prices.usd_cents else { return false };
        if query.min_usd_cents.is_some_and(|min| usd < min) || query.max_usd_cents.is_some_and(|max| usd > max) {
            return false;
        }
    }
    if let Some((currency, min, max)) = query.currency_range {
        let Some(price) = prices.by_currency.iter().find(|a| a.currency == currency) else { return false };
        if min.is_some_and(|min| price.units < min.units) || max.is_some_and(|max| price.units > max.units) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn input() -> EventInput {
        EventInput {
            title: "Concert".into(),
            description: "A VR concert".into(),
            space_type: "post".into(),
            space_id: "artist/concert".into(),
            ticket_price: "25.00".into(),
            ticket_currency: "USD".into(),
            max_attendees: 100,
            shard_size: None,
            event_start: 10_000,
            event_end: 20_000,
            sales_start: None,
            sales_end: None,
            supported_crypto: None,
            require_camera: false,
            require_microphone: false,
            age_restriction: None,
            category: Some("Music".into()),
            cover_image_url: None,
            min_certificate_secs: None,
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let e = NewEvent::parse(input(), 1_000).unwrap();
        assert_eq!(e.price, Amount::new(Currency::Usd, 2_500));
        assert_eq!(e.supported_crypto, Currency::PAYABLE.to_vec());
        assert_eq!((e.sales_start, e.sales_end), (1_000, 20_000));
        assert_eq!(e.category.as_deref(), Some("music"));
        let crypto = NewEvent::parse(EventInput { ticket_currency: "hive".into(), ..input() }, 0).unwrap();
        assert_eq!(crypto.supported_crypto, vec![Currency::Hive]);
    }

    #[test]
    fn a_zero_price_is_a_free_event() {
        for zero in ["0", "0.00", "-0"] {
            let free = NewEvent::parse(EventInput { ticket_price: zero.into(), ..input() }, 0).unwrap();
            assert_eq!(free.price.units, 0, "{zero}");
        }
        let hive = NewEvent::parse(EventInput { ticket_price: "0".into(), ticket_currency: "hive".into(), ..input() }, 0).unwrap();
        assert_eq!(hive.price, Amount::zero(Currency::Hive));
    }

    #[test]
    fn every_rule_has_its_code() {
        let cases: Vec<(EventInput, &str)> = vec![
            (EventInput { title: "  ".into(), ..input() }, "title_required"),
            (EventInput { title: "x".repeat(201), ..input() }, "title_too_long"),
            (EventInput { description: "x".repeat(20_001), ..input() }, "description_too_long"),
            (EventInput { space_type: "room".into(), ..input() }, "invalid_space_type"),
            (EventInput { space_id: "".into(), ..input() }, "space_id_required"),
            (EventInput { ticket_price: "abc".into(), ..input() }, "invalid_price"),
            (EventInput { ticket_price: "1e3".into(), ..input() }, "invalid_price"),
            (EventInput { ticket_price: "-5".into(), ..input() }, "price_not_positive"),
            (EventInput { ticket_price: "1.001".into(), ..input() }, "too_many_decimals"),
            (EventInput { ticket_currency: "DOGE".into(), ..input() }, "unknown_currency"),
            (EventInput { supported_crypto: Some(vec!["USD".into()]), ..input() }, "unsupported_crypto"),
            (EventInput { supported_crypto: Some(vec![]), ..input() }, "no_supported_crypto"),
            (
                EventInput { ticket_currency: "HIVE".into(), supported_crypto: Some(vec!["BTC".into()]), ..input() },
                "crypto_price_other_currency",
            ),
            (EventInput { max_attendees: 0, ..input() }, "capacity_too_small"),
            (EventInput { max_attendees: 100_001, ..input() }, "capacity_too_large"),
            (EventInput { event_end: 10_000, ..input() }, "end_before_start"),
            (EventInput { sales_end: Some(20_001), ..input() }, "sales_end_after_event_end"),
            (EventInput { sales_start: Some(15_000), sales_end: Some(15_000), ..input() }, "sales_end_before_sales_start"),
            (EventInput { age_restriction: Some(0), ..input() }, "invalid_age_restriction"),
            (EventInput { min_certificate_secs: Some(-1), ..input() }, "invalid_min_certificate"),
            (EventInput { cover_image_url: Some("javascript:alert(1)".into()), ..input() }, "invalid_cover_image_url"),
            (EventInput { category: Some("rock & roll".into()), ..input() }, "invalid_category"),
        ];
        for (input, code) in cases {
            assert_eq!(NewEvent::parse(input.clone(), 1_000).unwrap_err().code(), code, "{input:?}");
        }
        let e = NewEvent::parse(input(), 1_000).unwrap();
        assert_eq!(e.check_not_in_past(10_000).unwrap_err().code(), "start_in_past");
        assert!(e.check_not_in_past(9_999).is_ok());
    }

    #[test]
    fn status_follows_the_clock() {
        let new = NewEvent::parse(input(), 0).unwrap();
        let mut e = Event {
            id: 1,
            creator_account: "alice".into(),
            title: new.title,
            description: new.description,
            cover_image_url: None,
            space_type: new.space_type,
            space_id: new.space_id,
            price: new.price,
            supported_crypto: new.supported_crypto,
            max_attendees: 10,
            shard_size: 50,
            seats_held: 2,
            tickets_sold: 3,
            event_start: 10_000,
            event_end: 20_000,
            sales_start: 0,
            sales_end: 20_000,
            require_camera: false,
            require_microphone: false,
            age_restriction: None,
            category: None,
            stored_status: StoredStatus::Published,
            min_certificate_secs: None,
            created_at: 0,
            updated_at: 0,
            cancelled_at: None,
        };
        assert_eq!(e.status_at(9_999), EventStatus::Published);
        assert_eq!(e.status_at(10_000), EventStatus::Live);
        assert_eq!(e.status_at(20_000), EventStatus::Ended);
        assert_eq!(e.seats_left(), 5);
        e.stored_status = StoredStatus::Draft;
        assert_eq!(e.status_at(15_000), EventStatus::Draft);
        e.stored_status = StoredStatus::Cancelled;
        assert_eq!(e.status_at(0), EventStatus::Cancelled);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
