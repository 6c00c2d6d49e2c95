//! What a creator may ask for: an event's creation input parsed into a `NewEvent` (every rule an `EventRule`
//! with its code), prices and accepted currencies, and the patch an edit applies.

use super::*;

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
    #[error(
        "cover_image_url must be an https URL or a path on this gateway (/covers/…) of at most {URL_MAX} characters"
    )]
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
            let ok =
                c.len() <= CATEGORY_MAX && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
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
