//! The `events` table: creating, reading, editing, publishing and cancelling events (each change audited in
//! its transaction), a creator's events and sales, and the marketplace query with its filters and cursor.

use super::*;

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
        let price =
            Amount::from_units_str(currency, &row.price_units).map_err(|_| corrupt("price", &row.price_units))?;
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
            let currency: Currency =
                currency.parse().map_err(|_| StoreError::Corrupt(format!("currency `{currency}`")))?;
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
        let done =
            sqlx::query("UPDATE events SET status = 'published', updated_at = $2 WHERE id = $1 AND status = 'draft'")
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
