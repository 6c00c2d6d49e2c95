//! Analytics for creators: one event's figures, and a creator's across their events.
//!
//! Sales come from the ledger (`Purchases::sales_summary`: gross, the platform's commission and the creator's
//! net, per currency); attendance from the attendance rows (`ticketing::analytics`, whose module docs define
//! every figure). Readable by the event's creator or an operator with the admin token.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use ticketing::analytics::{AttendanceAnalytics, CheckIn, Engagement};
use ticketing::creators::AccountName;
use ticketing::now_ms;

use crate::auth::{bearer, require_admin};
use crate::creator_auth;
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::routes::purchases::rfc3339;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/events/{id}/analytics", get(event_analytics))
        .route("/api/creators/me/analytics", get(creator_analytics))
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Revenue {
    pub currency: String,
    pub tickets_sold: i64,
    /// Decimal strings in the currency's unit.
    pub gross: String,
    pub commission: String,
    pub net: String,
}

#[derive(Debug, Serialize)]
pub struct EventAnalytics {
    pub event_id: i64,
    pub title: String,
    pub creator: String,
    pub generated_at: String,
    pub tickets_sold: i64,
    pub revenue: Vec<Revenue>,
    pub check_in: CheckIn,
    pub attendance: AttendanceAnalytics,
}

fn revenue(lines: impl Iterator<Item = ticketing::purchases::SalesLine>) -> Vec<Revenue> {
    let mut by_currency: BTreeMap<String, (i64, chains::Amount, chains::Amount, chains::Amount)> = BTreeMap::new();
    for line in lines {
        let entry = by_currency.entry(line.currency.to_string()).or_insert((
            0,
            chains::Amount::zero(line.currency),
            chains::Amount::zero(line.currency),
            chains::Amount::zero(line.currency),
        ));
        entry.0 += line.tickets_sold;
        entry.1 = entry.1.checked_add(line.gross).unwrap_or(entry.1);
        entry.2 = entry.2.checked_add(line.commission).unwrap_or(entry.2);
        entry.3 = entry.3.checked_add(line.net_payout).unwrap_or(entry.3);
    }
    by_currency
        .into_iter()
        .map(|(currency, (n, gross, commission, net))| Revenue {
            currency,
            tickets_sold: n,
            gross: gross.to_string(),
            commission: commission.to_string(),
            net: net.to_string(),
        })
        .collect()
}

async fn event_row(state: &AppState, event_id: i64) -> ApiResult<(String, String)> {
    sqlx::query_as("SELECT title, creator_account FROM events WHERE id = $1")
        .bind(event_id)
        .fetch_optional(state.store.pool())
        .await
        .map_err(|e| ApiError::from(ticketing::StoreError::from(e)))?
        .ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))
}

async fn analytics_of(state: &AppState, event_id: i64, creator: &str, title: String, now: i64) -> ApiResult<EventAnalytics> {
    let sales = state.purchases.sales_summary(creator).await?;
    let check_in = state.store.check_in(event_id).await?;
    Ok(EventAnalytics {
        event_id,
        title,
        creator: creator.to_owned(),
        generated_at: rfc3339(now),
        tickets_sold: check_in.tickets_sold,
        revenue: revenue(sales.into_iter().filter(|l| l.event_id == event_id)),
        check_in,
        attendance: state.store.attendance_analytics(event_id, now).await?,
    })
}

/// `GET /api/events/{id}/analytics`
pub async fn event_analytics(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Json<EventAnalytics>> {
    let event_id = id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    crate::routes::rooms::require_host(&state, &headers, event_id).await?;
    let (title, creator) = event_row(&state, event_id).await?;
    Ok(Json(analytics_of(&state, event_id, &creator, title, now_ms()).await?))
}

#[derive(Debug, Deserialize)]
pub struct CreatorQuery {
    /// With the admin token: whose analytics.
    pub account: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EventSummary {
    pub event_id: i64,
    pub title: String,
    pub tickets_sold: i64,
    pub tickets_used: i64,
    pub sessions: i64,
    pub peak_concurrent: i64,
    pub current_concurrent: i64,
    pub average_duration_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct CreatorTotals {
    pub events: i64,
    pub tickets_sold: i64,
    pub tickets_used: i64,
    pub check_in_rate: Option<f64>,
    pub sessions: i64,
    pub total_duration_secs: i64,
    /// Mean over every closed session of every event.
    pub average_duration_secs: Option<f64>,
    /// The highest of the events' peaks.
    pub peak_concurrent: i64,
    /// Attendees in rooms now, over all events.
    pub current_concurrent: i64,
    pub engagement: Engagement,
    pub countries: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize)]
pub struct CreatorAnalytics {
    pub creator: String,
    pub generated_at: String,
    pub revenue: Vec<Revenue>,
    pub totals: CreatorTotals,
    pub events: Vec<EventSummary>,
}

/// `GET /api/creators/me/analytics` (creator session; or the admin token with `?account=`).
pub async fn creator_analytics(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CreatorQuery>,
) -> ApiResult<Json<CreatorAnalytics>> {
    let is_admin = bearer(&headers).is_some_and(|t| state.settings.admin_token.as_deref() == Some(t));
    let creator = if is_admin {
        require_admin(&state, &headers)?;
        let account = query.account.ok_or_else(|| ApiError::bad_request("account_required", "operators name the creator: ?account=…"))?;
        AccountName::parse(&account).map_err(|e| ApiError::bad_request("invalid_account", e.to_string()))?.as_str().to_owned()
    } else {
        creator_auth::authenticate(&state, &headers).await?.account.as_str().to_owned()
    };
    let now = now_ms();
    let mut totals = CreatorTotals {
        events: 0,
        tickets_sold: 0,
        tickets_used: 0,
        check_in_rate: None,
        sessions: 0,
        total_duration_secs: 0,
        average_duration_secs: None,
        peak_concurrent: 0,
        current_concurrent: 0,
        engagement: Engagement::default(),
        countries: BTreeMap::new(),
    };
    let mut events = Vec::new();
    let mut closed_sessions = 0i64;
    for event_id in state.store.creator_event_ids(&creator).await? {
        let (title, _) = event_row(&state, event_id).await?;
        let check_in = state.store.check_in(event_id).await?;
        let a = state.store.attendance_analytics(event_id, now).await?;
        totals.events += 1;
        totals.tickets_sold += check_in.tickets_sold;
        totals.tickets_used += check_in.tickets_used;
        totals.sessions += a.sessions;
        totals.total_duration_secs += a.total_duration_secs;
        closed_sessions += a.end_reasons.values().sum::<i64>();
        totals.peak_concurrent = totals.peak_concurrent.max(a.peak_concurrent);
        totals.current_concurrent += a.current_concurrent;
        totals.engagement.chat_messages += a.engagement.chat_messages;
        totals.engagement.voice_secs += a.engagement.voice_secs;
        totals.engagement.screen_share_secs += a.engagement.screen_share_secs;
        totals.engagement.screen_sharing_sessions += a.engagement.screen_sharing_sessions;
        for (country, n) in &a.countries {
            *totals.countries.entry(country.clone()).or_insert(0) += n;
        }
        events.push(EventSummary {
            event_id,
            title,
            tickets_sold: check_in.tickets_sold,
            tickets_used: check_in.tickets_used,
            sessions: a.sessions,
            peak_concurrent: a.peak_concurrent,
            current_concurrent: a.current_concurrent,
            average_duration_secs: a.average_duration_secs,
        });
    }
    totals.check_in_rate = (totals.tickets_sold > 0).then(|| totals.tickets_used as f64 / totals.tickets_sold as f64);
    totals.average_duration_secs = (closed_sessions > 0).then(|| totals.total_duration_secs as f64 / closed_sessions as f64);
    let sales = state.purchases.sales_summary(&creator).await?;
    Ok(Json(CreatorAnalytics { creator, generated_at: rfc3339(now), revenue: revenue(sales.into_iter()), totals, events }))
}
