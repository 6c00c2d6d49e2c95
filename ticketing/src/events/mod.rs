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

mod queries;
mod validation;

pub use queries::*;
pub use validation::*;

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
        let hive =
            NewEvent::parse(EventInput { ticket_price: "0".into(), ticket_currency: "hive".into(), ..input() }, 0)
                .unwrap();
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
            (
                EventInput { sales_start: Some(15_000), sales_end: Some(15_000), ..input() },
                "sales_end_before_sales_start",
            ),
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
