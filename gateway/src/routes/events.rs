//! Events and the marketplace: create, read, edit, publish, cancel, list with filters, and rate.
//!
//! Request bodies are parsed into `ticketing` domain types here, at the edge: times from RFC 3339, the price from
//! the raw JSON text (a number or a string, never through a float), then [`NewEvent::parse`] applies the rules and
//! each broken rule answers 422 with its own code. Responses are the view types below, which are also what the
//! OpenAPI description (`/api/openapi.json`) documents.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chains::signature::VerifyOptions;
use chains::{Amount, Chain, Currency};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use ticketing::events::{
    price_event, Cursor, EventChangeError, EventInput, EventListing, EventPatch, EventPrices, EventRule, MarketItem,
    MarketQuery, NewEvent, RatingSummary, SortBy, Window,
};
use ticketing::purchases::Purchases;
use ticketing::ratings::{rating_message, NewRating, Rating, RatingError, Stars};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::creator::CreatorSession;
use crate::auth::AdminUser;
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::routes::creators;
use crate::state::AppState;

pub const MAX_PAGE: usize = 100;
pub const DEFAULT_PAGE: usize = 20;

/// Every route of this module and of [`creators`], and the OpenAPI description.
pub fn router() -> super::Table {
    super::Table::new()
        .get("/api/events", list_events)
        .post("/api/events", create_event_rest)
        .post("/api/events/create", create_event)
        .get("/api/events/{id}", get_event)
        .patch("/api/events/{id}", update_event)
        .post("/api/events/{id}/publish", publish_event)
        .post("/api/events/{id}/cancel", cancel_event)
        .get("/api/events/{id}/ratings", list_ratings)
        .post("/api/events/{id}/ratings", rate_event)
        .get("/api/openapi.json", openapi)
        .merge(creators::router())
}

// ---------------------------------------------------------------------------------------------------------------
// Views

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RatingView {
    /// Mean stars, two decimals; null without ratings.
    pub average: Option<f64>,
    pub count: i64,
}

impl From<RatingSummary> for RatingView {
    fn from(r: RatingSummary) -> Self {
        RatingView { average: r.average, count: r.count }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatorRef {
    pub account: String,
    pub display_name: Option<String>,
    pub rating: RatingView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpaceRef {
    /// `post`, `document` or `custom`.
    #[serde(rename = "type")]
    pub space_type: String,
    pub id: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Requirements {
    pub camera: bool,
    pub microphone: bool,
    pub age_restriction: Option<i64>,
    pub min_certificate_secs: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Preview {
    pub title: String,
    pub description: String,
    pub cover_image_url: Option<String>,
    pub space: SpaceRef,
    pub requirements: Requirements,
}

/// An amount as a decimal string in whole units of its currency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Money {
    pub currency: String,
    pub amount: String,
}

impl From<Amount> for Money {
    fn from(a: Amount) -> Self {
        Money { currency: a.currency.symbol().to_owned(), amount: a.to_string() }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    pub title: String,
    pub category: Option<String>,
    /// draft, published, live, ended or cancelled.
    pub status: String,
    pub on_sale: bool,
    pub preview: Preview,
    pub creator: CreatorRef,
    /// The price as set, in its own currency (USD or a crypto).
    pub price: Money,
    /// The price in US dollars at the current rate (exact for USD prices); null when no rate is known.
    pub price_usd: Option<String>,
    /// The price in each currency buyers may pay in, at the current rates.
    pub prices: Vec<Money>,
    pub supported_crypto: Vec<String>,
    /// The listed currencies this gateway can really be paid in now (its receiving setting is present and a
    /// watcher credits it): a purchase in another is refused.
    pub payable: Vec<String>,
    pub max_attendees: i64,
    /// Most attendees per shard of the scene; the stage is in every shard.
    pub shard_size: i64,
    pub tickets_sold: i64,
    pub seats_held: i64,
    pub seats_left: i64,
    pub event_start: String,
    pub event_end: String,
    pub sales_start: String,
    pub sales_end: String,
    pub created_at: String,
    pub cancelled_at: Option<String>,
}

pub use crate::http::time::rfc3339;

impl EventView {
    pub fn new(listing: &EventListing, prices: &EventPrices, purchases: &Purchases, now: i64) -> Self {
        let e = &listing.event;
        EventView {
            id: e.id,
            title: e.title.clone(),
            category: e.category.clone(),
            status: e.status_at(now).to_string(),
            on_sale: e.on_sale_at(now),
            preview: Preview {
                title: e.title.clone(),
                description: e.description.clone(),
                cover_image_url: e.cover_image_url.clone(),
                space: SpaceRef { space_type: e.space_type.as_str().to_owned(), id: e.space_id.clone() },
                requirements: Requirements {
                    camera: e.require_camera,
                    microphone: e.require_microphone,
                    age_restriction: e.age_restriction,
                    min_certificate_secs: e.min_certificate_secs,
                },
            },
            creator: CreatorRef {
                account: e.creator_account.clone(),
                display_name: listing.creator_display_name.clone(),
                rating: listing.creator_rating.into(),
            },
            price: e.price.into(),
            price_usd: prices
                .usd_cents
                .and_then(|c| u128::try_from(c).ok())
                .map(|c| Amount::new(Currency::Usd, c).to_string()),
            prices: prices.by_currency.iter().map(|a| Money::from(*a)).collect(),
            supported_crypto: e.supported_crypto.iter().map(|c| c.symbol().to_owned()).collect(),
            payable: e
                .supported_crypto
                .iter()
                .filter(|c| purchases.is_payable(**c))
                .map(|c| c.symbol().to_owned())
                .collect(),
            max_attendees: e.max_attendees,
            shard_size: e.shard_size,
            tickets_sold: e.tickets_sold,
            seats_held: e.seats_held,
            seats_left: e.seats_left(),
            event_start: rfc3339(e.event_start),
            event_end: rfc3339(e.event_end),
            sales_start: rfc3339(e.sales_start),
            sales_end: rfc3339(e.sales_end),
            created_at: rfc3339(e.created_at),
            cancelled_at: e.cancelled_at.map(rfc3339),
        }
    }

    pub async fn load(state: &AppState, listing: &EventListing, now: i64) -> Self {
        let prices = price_event(&listing.event, &*state.rates).await;
        EventView::new(listing, &prices, &state.purchases, now)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

pub fn rule_error(rule: EventRule) -> ApiError {
    ApiError::unprocessable(rule.code(), rule.to_string())
}

pub fn change_error(e: EventChangeError) -> ApiError {
    match e {
        EventChangeError::Store(store) => store.into(),
        EventChangeError::NotFound => ApiError::not_found("event_not_found", "no such event"),
        EventChangeError::Rule(rule) => rule_error(rule),
        other => ApiError::conflict(other.code(), other.to_string()),
    }
}

fn rating_error(e: RatingError) -> ApiError {
    let message = e.to_string();
    match e {
        RatingError::Store(store) => store.into(),
        RatingError::InvalidStars | RatingError::CommentTooLong => ApiError::unprocessable(e.code(), message),
        RatingError::EventNotFound => ApiError::not_found(e.code(), message),
        RatingError::NotATicketHolder => ApiError::forbidden(e.code(), message),
        RatingError::EventNotEnded | RatingError::EventCancelled | RatingError::AlreadyRated => {
            ApiError::conflict(e.code(), message)
        }
    }
}

fn parse_time(field: &'static str, text: &str) -> ApiResult<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::unprocessable("invalid_time", format!("{field}: `{text}` is not an RFC 3339 time")))
}

fn parse_opt_time(field: &'static str, text: Option<&str>) -> ApiResult<Option<i64>> {
    text.map(|t| parse_time(field, t)).transpose()
}

/// A price as the client wrote it: the JSON number's own digits, or a string's content.
fn price_text(raw: &RawValue) -> ApiResult<String> {
    let text = raw.get().trim();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text)
            .map_err(|_| ApiError::unprocessable("invalid_price", "ticket_price must be a decimal number or string"))
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err(ApiError::unprocessable("invalid_price", "ticket_price must be a decimal number or string"))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Create, read, edit, publish, cancel

/// The body of `POST /api/events/create`, as the seed defines it plus the optional fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventBody {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// `post`, `document` or `custom`.
    pub space_type: String,
    #[serde(default)]
    pub space_id: String,
    /// A decimal number or string in the currency's units, e.g. `25.00` or `"0.0005"`.
    #[schema(value_type = String)]
    pub ticket_price: Box<RawValue>,
    /// A crypto symbol (`HIVE`, `BTC`, …) or `USD`.
    #[serde(default = "usd")]
    pub ticket_currency: String,
    pub max_attendees: i64,
    /// RFC 3339.
    pub event_start: String,
    pub event_end: String,
    /// Defaults to now.
    pub sales_start: Option<String>,
    /// Defaults to `event_end`.
    pub sales_end: Option<String>,
    /// Defaults to every payable currency (USD prices) or the price's currency (crypto prices).
    pub supported_crypto: Option<Vec<String>>,
    #[serde(default)]
    pub require_camera: bool,
    #[serde(default)]
    pub require_microphone: bool,
    pub age_restriction: Option<i64>,
    pub event_category: Option<String>,
    pub cover_image_url: Option<String>,
    pub min_certificate_secs: Option<i64>,
    /// Most attendees per shard of the scene (1–50, default 50); the host and invited speakers are in every shard.
    pub shard_size: Option<i64>,
    /// Create as a draft (not listed, not on sale) to publish later.
    #[serde(default)]
    pub draft: bool,
}

fn usd() -> String {
    "USD".into()
}

impl CreateEventBody {
    fn into_input(self) -> ApiResult<(EventInput, bool)> {
        let input = EventInput {
            ticket_price: price_text(&self.ticket_price)?,
            event_start: parse_time("event_start", &self.event_start)?,
            event_end: parse_time("event_end", &self.event_end)?,
            sales_start: parse_opt_time("sales_start", self.sales_start.as_deref())?,
            sales_end: parse_opt_time("sales_end", self.sales_end.as_deref())?,
            title: self.title,
            description: self.description,
            space_type: self.space_type,
            space_id: self.space_id,
            ticket_currency: self.ticket_currency,
            max_attendees: self.max_attendees,
            shard_size: self.shard_size,
            supported_crypto: self.supported_crypto,
            require_camera: self.require_camera,
            require_microphone: self.require_microphone,
            age_restriction: self.age_restriction,
            category: self.event_category,
            cover_image_url: self.cover_image_url,
            min_certificate_secs: self.min_certificate_secs,
        };
        Ok((input, self.draft))
    }
}

async fn view_of(state: &AppState, id: i64, now: i64) -> ApiResult<EventView> {
    let listing =
        state.store.event_listing(id).await?.ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    Ok(EventView::load(state, &listing, now).await)
}

/// Create an event (premium and pro creators).
#[utoipa::path(post, path = "/api/events/create", request_body = CreateEventBody,
    responses((status = 201, body = EventView), (status = 401, description = "not signed in"),
              (status = 403, description = "`subscription_required`"), (status = 422, description = "a rule's code")),
    security(("creator" = [])))]
pub async fn create_event(
    State(state): State<AppState>,
    session: CreatorSession,
    Json(body): Json<CreateEventBody>,
) -> ApiResult<(StatusCode, Json<EventView>)> {
    let now = ticketing::now_ms();
    session.require_event_tier(&state, now).await?;
    let (input, draft) = body.into_input()?;
    let event = NewEvent::parse(input, now).map_err(rule_error)?;
    event.check_not_in_past(now).map_err(rule_error)?;
    let created = state.store.create_event(&session.account, &event, draft, now).await?;
    Ok((StatusCode::CREATED, Json(view_of(&state, created.id, now).await?)))
}

/// `POST /api/events`: the same as `POST /api/events/create`, at the collection's path.
#[utoipa::path(post, path = "/api/events", request_body = CreateEventBody,
    responses((status = 201, body = EventView), (status = 401, description = "not signed in"),
              (status = 403, description = "`subscription_required`"), (status = 422, description = "a rule's code")),
    security(("creator" = [])))]
pub async fn create_event_rest(
    state: State<AppState>,
    session: CreatorSession,
    body: Json<CreateEventBody>,
) -> ApiResult<(StatusCode, Json<EventView>)> {
    create_event(state, session, body).await
}

/// An event's details, with prices at the current rates. Drafts are visible to their creator only.
#[utoipa::path(get, path = "/api/events/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = EventView), (status = 404, description = "`event_not_found`")))]
pub async fn get_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<EventView>> {
    let now = ticketing::now_ms();
    let view = view_of(&state, id, now).await?;
    if view.status == "draft" {
        let owner = match crate::auth::bearer(&headers) {
            Some(token) => crate::auth::creator::verify_session(state.secret.bytes(), token, now).ok(),
            None => None,
        };
        if owner.is_none_or(|a| a.as_str() != view.creator.account) {
            return Err(ApiError::not_found("event_not_found", "no such event"));
        }
    }
    Ok(Json(view))
}

/// The fields an edit may change; absent fields keep their value. The price's currency cannot change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEventBody {
    pub title: Option<String>,
    pub description: Option<String>,
    pub cover_image_url: Option<String>,
    pub event_category: Option<String>,
    pub space_type: Option<String>,
    pub space_id: Option<String>,
    #[schema(value_type = Option<String>)]
    pub ticket_price: Option<Box<RawValue>>,
    pub supported_crypto: Option<Vec<String>>,
    pub max_attendees: Option<i64>,
    pub event_start: Option<String>,
    pub event_end: Option<String>,
    pub sales_start: Option<String>,
    pub sales_end: Option<String>,
    pub require_camera: Option<bool>,
    pub require_microphone: Option<bool>,
    pub age_restriction: Option<i64>,
    pub min_certificate_secs: Option<i64>,
    /// Most attendees per shard (1–50); takes effect for the next placements.
    pub shard_size: Option<i64>,
}

impl UpdateEventBody {
    fn into_patch(self) -> ApiResult<EventPatch> {
        Ok(EventPatch {
            ticket_price: self.ticket_price.as_deref().map(price_text).transpose()?,
            event_start: parse_opt_time("event_start", self.event_start.as_deref())?,
            event_end: parse_opt_time("event_end", self.event_end.as_deref())?,
            sales_start: parse_opt_time("sales_start", self.sales_start.as_deref())?,
            sales_end: parse_opt_time("sales_end", self.sales_end.as_deref())?,
            title: self.title,
            description: self.description,
            cover_image_url: self.cover_image_url,
            category: self.event_category,
            space_type: self.space_type,
            space_id: self.space_id,
            supported_crypto: self.supported_crypto,
            max_attendees: self.max_attendees,
            shard_size: self.shard_size,
            require_camera: self.require_camera,
            require_microphone: self.require_microphone,
            age_restriction: self.age_restriction,
            min_certificate_secs: self.min_certificate_secs,
        })
    }
}

/// The event if `session` owns it: 404 if there is none, 403 `not_owner` if it is someone else's.
async fn owned_event(state: &AppState, session: &CreatorSession, id: i64) -> ApiResult<ticketing::events::Event> {
    let event = state.store.event(id).await?.ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    if event.creator_account != session.account.as_str() {
        return Err(ApiError::forbidden("not_owner", "only the event's creator may change it"));
    }
    Ok(event)
}

/// Edit an event (its creator, with an active subscription). Changes that would wrong buyers answer 409.
#[utoipa::path(patch, path = "/api/events/{id}", params(("id" = i64, Path)), request_body = UpdateEventBody,
    responses((status = 200, body = EventView), (status = 403, description = "`not_owner`, `subscription_required`"),
              (status = 409, description = "`price_decrease_after_sales`, `capacity_below_sold`, `schedule_locked`, `event_closed`"),
              (status = 422, description = "a rule's code")),
    security(("creator" = [])))]
pub async fn update_event(
    State(state): State<AppState>,
    session: CreatorSession,
    Path(id): Path<i64>,
    Json(body): Json<UpdateEventBody>,
) -> ApiResult<Json<EventView>> {
    let now = ticketing::now_ms();
    owned_event(&state, &session, id).await?;
    session.require_event_tier(&state, now).await?;
    let patch = body.into_patch()?;
    state.store.update_event(id, &patch, session.account.as_str(), now).await.map_err(change_error)?;
    Ok(Json(view_of(&state, id, now).await?))
}

/// Publish a draft: it becomes listed and, within its sales window, on sale.
#[utoipa::path(post, path = "/api/events/{id}/publish", params(("id" = i64, Path)),
    responses((status = 200, body = EventView), (status = 409, description = "`not_draft`")),
    security(("creator" = [])))]
pub async fn publish_event(
    State(state): State<AppState>,
    session: CreatorSession,
    Path(id): Path<i64>,
) -> ApiResult<Json<EventView>> {
    let now = ticketing::now_ms();
    owned_event(&state, &session, id).await?;
    session.require_event_tier(&state, now).await?;
    state.store.publish_event(id, session.account.as_str(), now).await.map_err(change_error)?;
    Ok(Json(view_of(&state, id, now).await?))
}

/// Cancel an event (its creator, whatever their tier, or an operator with the admin token). Held seats are
/// released, paid tickets become refund due and payouts are cancelled, in one transaction.
#[utoipa::path(post, path = "/api/events/{id}/cancel", params(("id" = i64, Path)),
    responses((status = 200, body = EventView), (status = 409, description = "`already_cancelled`, `event_ended`")),
    security(("creator" = []), ("admin" = [])))]
pub async fn cancel_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<EventView>> {
    let now = ticketing::now_ms();
    let actor = if AdminUser::from_headers(&state, &headers).is_ok() {
        "admin-api".to_owned()
    } else {
        let session = crate::auth::creator::authenticate(&state, &headers).await?;
        owned_event(&state, &session, id).await?;
        session.account.to_string()
    };
    state.store.cancel_event(id, &actor, now).await.map_err(change_error)?;
    // Its tickets are cancelled now: whoever is still in the room is told and closed, as at the event's end.
    let closed = state.hub.cancel_room(id);
    if closed > 0 {
        tracing::info!(event_id = id, closed, "closed the room of a cancelled event");
    }
    Ok(Json(view_of(&state, id, now).await?))
}

// ---------------------------------------------------------------------------------------------------------------
// Marketplace

/// Marketplace filters. Prices bound inclusively; `minPrice`/`maxPrice` (the SDK's names) are USD.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `upcoming` (default), `live`, or `all` (both).
    pub status: Option<String>,
    /// The SDK's form: `true` is `status=upcoming`, `false` is `status=all`.
    pub upcoming: Option<bool>,
    pub category: Option<String>,
    /// USD, decimal.
    pub min_usd: Option<String>,
    pub max_usd: Option<String>,
    #[serde(rename = "minPrice")]
    #[param(rename = "minPrice")]
    pub min_price_usd: Option<String>,
    #[serde(rename = "maxPrice")]
    #[param(rename = "maxPrice")]
    pub max_price_usd: Option<String>,
    /// With `min_price`/`max_price`: bounds in this currency at the current rate.
    pub currency: Option<String>,
    pub min_price: Option<String>,
    pub max_price: Option<String>,
    /// RFC 3339 bounds on the start time, inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
    /// A creator's account.
    pub creator: Option<String>,
    /// Case-insensitive text in title or description.
    pub q: Option<String>,
    /// `start` (default), `price` or `popularity`.
    pub sort: Option<String>,
    pub cursor: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<u32>,
}

fn usd_bound(field: &'static str, text: Option<&str>) -> ApiResult<Option<i64>> {
    text.map(|t| {
        Amount::parse(Currency::Usd, t)
            .ok()
            .and_then(|a| i64::try_from(a.units).ok())
            .ok_or_else(|| ApiError::unprocessable("invalid_price", format!("{field}: `{t}` is not a USD amount")))
    })
    .transpose()
}

fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}:{}", cursor.sort, cursor.key, cursor.id))
}

fn decode_cursor(sort: SortBy, text: &str) -> ApiResult<Cursor> {
    let invalid = || ApiError::unprocessable("invalid_cursor", "the cursor is not one this listing returned");
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?).map_err(|_| invalid())?;
    let mut parts = raw.splitn(3, ':');
    let (Some(name), Some(key), Some(id)) = (parts.next(), parts.next(), parts.next()) else { return Err(invalid()) };
    if name != sort.as_str() {
        return Err(invalid());
    }
    Ok(Cursor { sort: sort.as_str(), key: key.parse().map_err(|_| invalid())?, id: id.parse().map_err(|_| invalid())? })
}

impl ListParams {
    fn into_query(self) -> ApiResult<MarketQuery> {
        let window = match (self.status.as_deref(), self.upcoming) {
            (Some("upcoming"), _) | (None, Some(true)) | (None, None) => Window::Upcoming,
            (Some("live"), _) => Window::Live,
            (Some("all"), _) | (None, Some(false)) => Window::All,
            (Some(other), _) => {
                return Err(ApiError::unprocessable(
                    "invalid_status",
                    format!("status `{other}`: use upcoming, live or all"),
                ))
            }
        };
        let sort = match self.sort.as_deref().unwrap_or("start") {
            "start" => SortBy::Start,
            "price" => SortBy::Price,
            "popularity" => SortBy::Popularity,
            other => {
                return Err(ApiError::unprocessable(
                    "invalid_sort",
                    format!("sort `{other}`: use start, price or popularity"),
                ))
            }
        };
        let limit = match self.limit {
            None => DEFAULT_PAGE,
            Some(n @ 1..=100) => n as usize,
            Some(_) => return Err(ApiError::unprocessable("invalid_limit", "limit must be between 1 and 100")),
        };
        let currency_range = match self.currency.as_deref() {
            None if self.min_price.is_some() || self.max_price.is_some() => {
                return Err(ApiError::unprocessable("currency_required", "min_price/max_price need `currency`"))
            }
            None => None,
            Some(symbol) => {
                let currency: Currency =
                    symbol.parse().ok().filter(|c: &Currency| c.is_payable()).ok_or_else(|| {
                        ApiError::unprocessable("unknown_currency", format!("unknown currency `{symbol}`"))
                    })?;
                let bound = |t: Option<&str>| {
                    t.map(|t| {
                        Amount::parse(currency, t).map_err(|e| ApiError::unprocessable("invalid_price", e.to_string()))
                    })
                    .transpose()
                };
                Some((currency, bound(self.min_price.as_deref())?, bound(self.max_price.as_deref())?))
            }
        };
        let creator = self.creator.filter(|c| !c.is_empty());
        let text = self.q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
        Ok(MarketQuery {
            window,
            category: self.category.filter(|c| !c.is_empty()).map(|c| c.to_ascii_lowercase()),
            min_usd_cents: usd_bound("min_usd", self.min_usd.as_deref().or(self.min_price_usd.as_deref()))?,
            max_usd_cents: usd_bound("max_usd", self.max_usd.as_deref().or(self.max_price_usd.as_deref()))?,
            currency_range,
            from: parse_opt_time("from", self.from.as_deref())?,
            to: parse_opt_time("to", self.to.as_deref())?,
            creator,
            text,
            sort,
            after: self.cursor.as_deref().map(|c| decode_cursor(sort, c)).transpose()?,
            limit,
        })
    }
}

/// The marketplace: published events, filtered, sorted, a page at a time.
#[utoipa::path(get, path = "/api/events", params(ListParams),
    responses((status = 200, body = EventPage), (status = 422, description = "a bad filter's code")))]
pub async fn list_events(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<EventPage>> {
    let now = ticketing::now_ms();
    let query = params.into_query()?;
    let page = state.store.marketplace(&query, &*state.rates, now).await?;
    let items = page
        .items
        .iter()
        .map(|MarketItem { listing, prices }| EventView::new(listing, prices, &state.purchases, now))
        .collect();
    Ok(Json(EventPage { items, next_cursor: page.next.as_ref().map(encode_cursor) }))
}

// ---------------------------------------------------------------------------------------------------------------
// Ratings

/// A rating, signed by the wallet that held the ticket. `message` must be exactly `Rate event {id}: {stars} stars`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateBody {
    pub wallet_address: String,
    /// The wallet's chain: hive, btc, eth, pol, bnb, sol or xmr.
    pub chain: String,
    pub stars: i64,
    pub comment: Option<String>,
    pub message: String,
    pub signature: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RatingOut {
    pub event_id: i64,
    pub ticket_id: i64,
    pub creator_account: String,
    pub wallet_address: String,
    pub stars: i64,
    pub comment: Option<String>,
    pub created_at: String,
}

impl From<Rating> for RatingOut {
    fn from(r: Rating) -> Self {
        RatingOut {
            event_id: r.event_id,
            ticket_id: r.ticket_id,
            creator_account: r.creator_account,
            wallet_address: r.wallet_address,
            stars: r.stars,
            comment: r.comment,
            created_at: rfc3339(r.created_at),
        }
    }
}

/// Rate an ended event, once per ticket, from the wallet that holds the ticket.
#[utoipa::path(post, path = "/api/events/{id}/ratings", params(("id" = i64, Path)), request_body = RateBody,
    responses((status = 201, body = RatingOut), (status = 401, description = "the signature's reason code"),
              (status = 403, description = "`not_a_ticket_holder`"),
              (status = 409, description = "`event_not_ended`, `already_rated`, `event_cancelled`"),
              (status = 422, description = "`invalid_stars`, `message_mismatch`, `unknown_chain`")))]
pub async fn rate_event(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<RateBody>,
) -> ApiResult<(StatusCode, Json<RatingOut>)> {
    let now = ticketing::now_ms();
    let chain: Chain = body
        .chain
        .parse()
        .map_err(|_| ApiError::unprocessable("unknown_chain", format!("unknown chain `{}`", body.chain)))?;
    let stars = Stars::parse(body.stars).map_err(rating_error)?;
    if body.message != rating_message(id, stars.get()) {
        return Err(ApiError::unprocessable(
            "message_mismatch",
            format!("sign exactly `{}`", rating_message(id, stars.get())),
        ));
    }
    let opts = VerifyOptions { hive_keys: Some(&*state.hive_keys), ..Default::default() };
    let signer =
        chains::signature::verify(chain, &body.wallet_address, body.message.as_bytes(), &body.signature, &opts)
            .await
            .map_err(|e| match e {
            chains::signature::SignatureError::KeySourceUnavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "hive_unavailable", e.to_string())
            }
            other => ApiError::unauthorized(other.code(), other.to_string()),
        })?;
    let rating = NewRating { event_id: id, chain, wallet_address: signer.address, stars, comment: body.comment };
    let saved = state.store.add_rating(&rating, now).await.map_err(rating_error)?;
    Ok((StatusCode::CREATED, Json(saved.into())))
}

/// An event's newest ratings.
#[utoipa::path(get, path = "/api/events/{id}/ratings", params(("id" = i64, Path)),
    responses((status = 200, body = [RatingOut])))]
pub async fn list_ratings(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Vec<RatingOut>>> {
    let ratings = state.store.event_ratings(id, 100).await?;
    Ok(Json(ratings.into_iter().map(RatingOut::from).collect()))
}

// ---------------------------------------------------------------------------------------------------------------
// OpenAPI

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "creator",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token from POST /api/creators/login, or `<hive signature hex>:<account>` over the \
                         newest challenge fetched from GET /api/creators/login/challenge (single use).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme("admin", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Presence gateway: events, creators and the marketplace"),
    paths(
        create_event, get_event, update_event, publish_event, cancel_event, list_events, rate_event, list_ratings,
        creators::login_challenge, creators::login, creators::profile, creators::update_profile, creators::my_events,
        super::pairings::open, super::pairings::show, super::pairings::submit, super::pairings::events, super::pairings::qr,
        super::purchases::create_quote, super::rsvp::rsvp, create_event_rest,
        super::admin::set_tier,
        super::purchases::quote, super::purchases::tickets, super::purchases::payouts, super::purchases::refunds,
        super::purchases::settle, super::purchases::refund_ticket, super::quote_events::quote_events, super::qr::quote_qr,
        super::charts::attendance_chart, super::charts::shards_chart, super::charts::sales_chart,
        super::rooms::join, super::rooms::doors, super::rooms::host_join, super::rooms::attendees,
        super::rooms::attendee_stream, super::rooms::kick, super::rooms::ban, super::rooms::ticket_details,
        super::rooms::mute, super::access::challenge,
        super::analytics::event_analytics, super::analytics::creator_analytics,
        super::certificates::certificate, super::certificates::verify, super::certificates::key,
        super::webhooks::set_webhook,
        super::stage::invite, super::stage::remove, super::stage::announce, super::stage::shards,
        super::admin_payouts::export, super::admin_payouts::commission, super::admin_payouts::addresses,
    ),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`
pub async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(document())
}

/// The whole API's document: this module's and the others' `OpenApi` derives merged.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::routes::privacy::PrivacyDoc::openapi());
    doc.merge(crate::routes::payout_addresses::PayoutAddressesDoc::openapi());
    doc
}
