//! Analytics for creators: one event's figures, and a creator's across their events.
//!
//! Sales come from the ledger (`Purchases::sales_summary`: gross, the platform's commission and the creator's
//! net, per currency); attendance from the attendance rows (`ticketing::analytics`, whose module docs define
//! every figure). Readable by the event's creator or an operator with the admin token.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use ticketing::analytics::{AttendanceAnalytics, CheckIn, Engagement};
use ticketing::creators::AccountName;
use ticketing::now_ms;

use crate::auth::creator;
use crate::auth::{bearer, AdminUser};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::routes::purchases::rfc3339;
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new()
        .get("/api/events/{id}/analytics", event_analytics)
        .get("/api/creators/me/analytics", creator_analytics)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Revenue {
    pub currency: String,
    pub tickets_sold: i64,
    /// Decimal strings in the currency's unit.
    pub gross: String,
    pub commission: String,
    pub net: String,
    /// `gross` and `net` in US dollars at the current rate (two decimals); null when no rate is known.
    pub gross_usd: Option<String>,
    pub net_usd: Option<String>,
}

/// Fills each line's USD values from the rate source, and returns the USD totals of gross and net (null if any
/// currency has no rate: a partial total would mislead). Display figures only; the ledger stays in coins.
async fn price_in_usd(state: &AppState, revenue: &mut [Revenue]) -> (Option<String>, Option<String>) {
    use rust_decimal::Decimal;
    use std::str::FromStr;
    let (mut gross_total, mut net_total, mut complete) = (Decimal::ZERO, Decimal::ZERO, true);
    for line in revenue.iter_mut() {
        let rate = match line.currency.parse::<chains::Currency>() {
            Ok(currency) => state.rates.usd_rate(currency).await.ok(),
            Err(_) => None,
        };
        let usd = |coins: &str| Some((Decimal::from_str(coins).ok()? * rate?).round_dp(2));
        match (usd(&line.gross), usd(&line.net)) {
            (Some(gross), Some(net)) => {
                gross_total += gross;
                net_total += net;
                line.gross_usd = Some(format!("{gross:.2}"));
                line.net_usd = Some(format!("{net:.2}"));
            }
            _ => complete = false,
        }
    }
    if complete {
        (Some(format!("{gross_total:.2}")), Some(format!("{net_total:.2}")))
    } else {
        (None, None)
    }
}

/// The creator's payouts, per currency, state and receiving address: what is owed, when, where, and what was paid.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PayoutLine {
    pub currency: String,
    /// `pending` (held until `due_at`), `due` (to be sent now), `settled` (sent: see `settled_txid`), `cancelled`.
    pub status: String,
    /// Where the platform sends it (or sent it); null when no payout address is set for the currency's chain.
    pub recipient: Option<String>,
    /// Why it cannot be sent: `no_payout_address` (set one for `chain`); null otherwise.
    pub held: Option<&'static str>,
    /// The chain whose payout address it goes to.
    pub chain: String,
    /// Decimal string in the currency's unit.
    pub amount: String,
    pub entries: i64,
    /// The earliest time one of these becomes due.
    pub due_at: Option<String>,
    /// The latest settlement, and its transaction.
    pub settled_at: Option<String>,
    pub settled_txid: Option<String>,
}

fn payout_lines(payouts: Vec<ticketing::payouts::Payout>) -> Vec<PayoutLine> {
    let mut lines: BTreeMap<(String, String, Option<String>), PayoutLine> = BTreeMap::new();
    for payout in payouts {
        let row = &payout.entry;
        let Ok(currency) = row.currency.parse::<chains::Currency>() else { continue };
        let Ok(amount) = chains::Amount::from_units_str(currency, &row.amount_units) else { continue };
        let key = (row.currency.clone(), row.status.to_string(), payout.payout_address.clone());
        let line = lines.entry(key).or_insert_with(|| PayoutLine {
            currency: row.currency.clone(),
            status: row.status.to_string(),
            recipient: payout.payout_address.clone(),
            held: payout.held.map(|h| h.code()),
            chain: payout.chain.to_string(),
            amount: chains::Amount::zero(currency).to_string(),
            entries: 0,
            due_at: None,
            settled_at: None,
            settled_txid: None,
        });
        let sum = chains::Amount::parse(currency, &line.amount).ok().and_then(|a| a.checked_add(amount));
        if let Some(sum) = sum {
            line.amount = sum.to_string();
        }
        line.entries += 1;
        if let Some(due) = row.due_at {
            let due = rfc3339(due);
            if line.due_at.as_ref().is_none_or(|d| &due < d) {
                line.due_at = Some(due);
            }
        }
        if let Some(at) = row.settled_at {
            let at = rfc3339(at);
            if line.settled_at.as_ref().is_none_or(|d| &at > d) {
                line.settled_at = Some(at);
                line.settled_txid = row.settled_txid.clone();
            }
        }
    }
    lines.into_values().collect()
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
    /// `peak_at` and `per_minute[].minute` in RFC 3339 (`crate::http::time`).
    #[serde(serialize_with = "crate::http::time::serialize_attendance")]
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
            gross_usd: None,
            net_usd: None,
        })
        .collect()
}

async fn event_row(state: &AppState, event_id: i64) -> ApiResult<(String, String)> {
    state
        .store
        .event(event_id)
        .await?
        .map(|event| (event.title, event.creator_account))
        .ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))
}

async fn analytics_of(
    state: &AppState,
    event_id: i64,
    creator: &str,
    title: String,
    now: i64,
) -> ApiResult<EventAnalytics> {
    let sales = state.purchases.sales_summary(creator).await?;
    let check_in = state.store.check_in(event_id).await?;
    Ok(EventAnalytics {
        event_id,
        title,
        creator: creator.to_owned(),
        generated_at: rfc3339(now),
        tickets_sold: check_in.tickets_sold,
        revenue: {
            let mut lines = revenue(sales.into_iter().filter(|l| l.event_id == event_id));
            price_in_usd(state, &mut lines).await;
            lines
        },
        check_in,
        attendance: state.store.attendance_analytics(event_id, now).await?,
    })
}

/// `GET /api/events/{id}/analytics`
#[utoipa::path(get, path = "/api/events/{id}/analytics", tag = "analytics", params(("id" = String, Path, description = "The event's id")),
    responses((status = 200, description = "Sales, attendance and retention of the event"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = []), ("admin" = [])))]
pub async fn event_analytics(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<EventAnalytics>> {
    let event_id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    crate::auth::require_host(&state, &headers, event_id).await?;
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
    /// Sums of `revenue`'s USD values at the current rates; null when a currency has no rate.
    pub gross_usd: Option<String>,
    pub net_usd: Option<String>,
    pub payouts: Vec<PayoutLine>,
    pub totals: CreatorTotals,
    pub events: Vec<EventSummary>,
}

/// `GET /api/creators/me/analytics` (creator session; or the admin token with `?account=`).
#[utoipa::path(get, path = "/api/creators/me/analytics", tag = "analytics", params(("account" = Option<String>, Query, description = "With the admin token: whose")),
    responses((status = 200, description = "The creator's totals across events"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = []), ("admin" = [])))]
pub async fn creator_analytics(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CreatorQuery>,
) -> ApiResult<Json<CreatorAnalytics>> {
    let is_admin = bearer(&headers).is_some_and(|t| state.settings.admin_token.as_deref() == Some(t));
    let creator = if is_admin {
        AdminUser::from_headers(&state, &headers)?;
        let account = query
            .account
            .ok_or_else(|| ApiError::bad_request("account_required", "operators name the creator: ?account=…"))?;
        AccountName::parse(&account)
            .map_err(|e| ApiError::bad_request("invalid_account", e.to_string()))?
            .as_str()
            .to_owned()
    } else {
        creator::authenticate(&state, &headers).await?.account.as_str().to_owned()
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
    let mut ledger = Vec::new();
    let mut closed_sessions = 0i64;
    for event_id in state.store.creator_event_ids(&creator).await? {
        ledger.extend(state.purchases.ledger_for_event(event_id).await?);
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
    totals.average_duration_secs =
        (closed_sessions > 0).then(|| totals.total_duration_secs as f64 / closed_sessions as f64);
    let sales = state.purchases.sales_summary(&creator).await?;
    let mut revenue = revenue(sales.into_iter());
    let (gross_usd, net_usd) = price_in_usd(&state, &mut revenue).await;
    Ok(Json(CreatorAnalytics {
        creator,
        generated_at: rfc3339(now),
        revenue,
        gross_usd,
        net_usd,
        payouts: payout_lines(state.store.resolve_payouts(ledger).await?),
        totals,
        events,
    }))
}
