//! Buying tickets: quotes with payment instructions, quote status, a wallet's tickets, and the operators'
//! ledger (payouts, refunds, settlement).

use axum::extract::State;
use axum::http::StatusCode;
use chains::{Amount, Chain, Currency};
use serde::{Deserialize, Serialize};
use ticketing::now_ms;
use ticketing::purchases::payment_uri;
use ticketing::purchases::{QuoteRequest, QuoteRow, TicketRow};

use crate::auth::AdminUser;
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new()
        .post("/api/events/purchase", create_quote)
        .get("/api/quotes/{id}", quote)
        .get("/api/tickets", tickets)
        .get("/api/admin/payouts", payouts)
        .get("/api/admin/refunds", refunds)
        .post("/api/admin/ledger/{id}/settle", settle)
        .post("/api/admin/tickets/{id}/refund", refund_ticket)
}

#[derive(Debug, Deserialize)]
pub struct PurchaseBody {
    /// The event id, as a number or a numeric string.
    pub event_id: serde_json::Value,
    /// A currency code: `HIVE`, `ETH`, `USDC.POL` (also `usdc-pol`), or a bare `USDC`/`USDT` with `chain`.
    #[serde(alias = "currency")]
    pub payment_method: String,
    /// The network, when `payment_method` does not name one (`"USDC"` + `"pol"`).
    #[serde(default)]
    pub chain: Option<String>,
    pub wallet_address: String,
    /// Accepted for compatibility with the seed's clients; buyers need no account.
    #[serde(default)]
    pub user_account: Option<String>,
}

/// A quote as clients see it: the seed's fields plus status and, once paid, the ticket.
#[derive(Debug, Serialize)]
pub struct QuoteResponse {
    pub quote_id: String,
    pub event_id: i64,
    pub status: String,
    pub payment_address: String,
    pub amount: String,
    pub currency: Currency,
    pub memo: Option<String>,
    pub reference: Option<String>,
    pub expires_at: String,
    pub payment_uri: Option<String>,
    pub wallet_address: String,
    pub confirmations: i64,
    pub confirmations_required: i64,
    /// `confirming 1/2` while a payment gathers confirmations.
    pub progress: Option<String>,
    pub received: String,
    pub remaining: String,
    pub usd_rate: Option<String>,
    /// Whether a seat is held for this quote until it expires. An unreserved quote (asked for when unpaid
    /// quotes already held their share of the seats) gets a seat when its payment is final, if one is free then.
    pub seat_reserved: bool,
    pub ticket: Option<TicketView>,
}

#[derive(Debug, Serialize)]
pub struct TicketView {
    pub ticket_id: i64,
    pub event_id: i64,
    /// The ticket's secrets: only in answers to the wallet's own signature (`POST /api/events/{id}/ticket`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_signature: Option<String>,
    pub chain: String,
    pub wallet_address: String,
    pub currency: String,
    pub amount_paid: String,
    pub status: String,
    pub first_access_at: Option<String>,
    pub last_access_at: Option<String>,
    pub access_count: i64,
    pub total_duration_secs: i64,
}

pub use crate::http::time::rfc3339;

/// What anyone may see of a ticket: no token, no signature.
pub(crate) fn public_ticket_view(t: TicketRow) -> TicketView {
    TicketView { token: None, access_signature: None, ..ticket_view(t) }
}

/// Everything about a ticket, for its holder once they proved the wallet.
pub(crate) fn ticket_view(t: TicketRow) -> TicketView {
    let amount_paid = t
        .currency
        .parse::<Currency>()
        .ok()
        .and_then(|c| Amount::from_units_str(c, &t.amount_paid_units).ok())
        .map(|a| a.to_string())
        .unwrap_or(t.amount_paid_units.clone());
    TicketView {
        ticket_id: t.id,
        event_id: t.event_id,
        token: Some(t.token),
        access_signature: Some(t.access_signature),
        chain: t.chain,
        wallet_address: t.wallet_address,
        currency: t.currency,
        amount_paid,
        status: t.status.to_string(),
        first_access_at: t.first_access_at.map(rfc3339),
        last_access_at: t.last_access_at.map(rfc3339),
        access_count: t.access_count,
        total_duration_secs: t.total_duration_secs,
    }
}

pub(crate) async fn quote_response(state: &AppState, quote: QuoteRow) -> ApiResult<QuoteResponse> {
    let amount = quote.amount()?;
    let received = quote.received()?;
    let ticket = state.purchases.ticket_for_quote(&quote.id).await?.map(ticket_view);
    let finalized_tag =
        quote.chain().is_ok_and(|chain| crate::routes::quote_events::follows_finalized_tag(&state.settings, chain));
    let progress = crate::routes::quote_events::progress(&quote, finalized_tag);
    Ok(QuoteResponse {
        payment_uri: payment_uri(&quote, state.purchases.settings()),
        quote_id: quote.id,
        event_id: quote.event_id,
        status: quote.status.to_string(),
        payment_address: quote.payment_address,
        amount: amount.to_string(),
        currency: amount.currency,
        memo: quote.memo,
        reference: quote.reference,
        expires_at: rfc3339(quote.expires_at),
        wallet_address: quote.wallet_address,
        confirmations: quote.confirmations,
        confirmations_required: quote.confirmations_required,
        progress,
        received: received.to_string(),
        remaining: amount.checked_sub(received).unwrap_or(Amount::zero(amount.currency)).to_string(),
        usd_rate: quote.usd_rate,
        seat_reserved: quote.holds_seat == 1,
        ticket,
    })
}

fn parse_event_id(value: &serde_json::Value) -> ApiResult<i64> {
    let id = match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    id.filter(|id| *id > 0)
        .ok_or_else(|| ApiError::unprocessable("invalid_event_id", "event_id must be a positive integer"))
}

/// `POST /api/events/purchase`: a rate-locked quote with payment instructions, holding a seat (or unreserved
/// past the held share; see `ticketing::purchases::QuoteLimits`). Open quotes are limited per client address
/// (an IPv6 client by its /64) and per wallet for each event: over either limit, 429 with `Retry-After` (when
/// the oldest one expires).
///
/// Body: `{ "event_id", "payment_method" (or `currency`, with `chain` for a bare `USDC`/`USDT`),
/// "wallet_address" }`.
#[utoipa::path(post, path = "/api/events/purchase",
    responses((status = 201, description = "The quote: `quote_id`, `payment_address`, `amount`, `currency`, `memo`, \
                `reference`, `payment_uri`, `expires_at`, `seat_reserved` (false: past the held share, a seat is \
                taken when the payment is final, if one is free then), `status`"),
              (status = 404, description = "`event_not_found`"),
              (status = 409, description = "`sold_out`, `not_on_sale`"),
              (status = 422, description = "`invalid_event_id`, `unknown_payment_method`, `currency_not_accepted`, \
                `payment_method_unavailable`, `invalid_wallet`, `invalid_body`"),
              (status = 429, description = "`too_many_quotes_from_address`, `too_many_quotes_for_wallet`: the open \
                quotes allowed per client address or wallet for this event; `Retry-After` says when the oldest expires"),
              (status = 503, description = "`rate_unavailable`, `store_unavailable`")))]
#[tracing::instrument(skip(state, body, remote), fields(event_id))]
pub async fn create_quote(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Json(body): Json<PurchaseBody>,
) -> ApiResult<(StatusCode, Json<QuoteResponse>)> {
    let currency = payment_currency(&body.payment_method, body.chain.as_deref());
    let label = currency.as_ref().map(|c| c.to_string()).unwrap_or_else(|_| "unknown".into());
    let result = async {
        let event_id = parse_event_id(&body.event_id)?;
        tracing::Span::current().record("event_id", event_id);
        let request = QuoteRequest { event_id, currency: currency?, wallet_address: body.wallet_address };
        let client = crate::http::client_address::client_key(remote.ip());
        let quote = state.purchases.create_quote_from(request, Some(&client), now_ms()).await?;
        ApiResult::Ok((StatusCode::CREATED, Json(quote_response(&state, quote).await?)))
    }
    .await;
    let outcome = match &result {
        Ok(_) => "created",
        Err(e) => e.code,
    };
    state
        .metrics
        .quotes
        .get_or_create(&crate::metrics::QuoteLabels { currency: label, outcome: outcome.to_owned() })
        .inc();
    result
}

/// The currency a purchase asks to pay in: `payment_method` alone, or a symbol plus `chain`.
fn payment_currency(method: &str, chain: Option<&str>) -> ApiResult<Currency> {
    let parsed = match chain {
        Some(chain) => Currency::with_chain(method, chain),
        None => method.parse(),
    };
    match parsed {
        Ok(currency) if currency.is_payable() => Ok(currency),
        _ if chain.is_none() && chains::Stablecoin::parse(method).is_some() => {
            let coin = chains::Stablecoin::parse(method).expect("checked");
            let codes: Vec<&str> =
                Currency::TOKENS.iter().filter(|c| c.stablecoin() == Some(coin)).map(|c| c.symbol()).collect();
            Err(ApiError::unprocessable(
                "unknown_payment_method",
                format!("`{method}` needs a network: one of {}, or `chain`", codes.join(", ")),
            ))
        }
        _ => Err(ApiError::unprocessable(
            "unknown_payment_method",
            match chain {
                Some(chain) => format!("`{method}` on `{chain}` is not a payment method"),
                None => format!("`{method}` is not a payment method"),
            },
        )),
    }
}

/// `GET /api/quotes/{id}`
#[utoipa::path(get, path = "/api/quotes/{id}", tag = "purchases", params(("id" = String, Path, description = "The quote's id")),
    responses((status = 200, description = "The quote: status, amount, currency, payment address and URI, expiry"), (status = "4XX", description = "Refused: the error's code and message")))]
pub async fn quote(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<QuoteResponse>> {
    if id.len() > 64 {
        return Err(ApiError::not_found("quote_not_found", "no such quote"));
    }
    let quote =
        state.purchases.quote(&id).await?.ok_or_else(|| ApiError::not_found("quote_not_found", "no such quote"))?;
    Ok(Json(quote_response(&state, quote).await?))
}

#[derive(Debug, Deserialize)]
pub struct TicketsQuery {
    pub wallet: String,
    pub chain: String,
}

/// `GET /api/tickets?wallet=…&chain=…`
#[utoipa::path(get, path = "/api/tickets", tag = "purchases", params(("wallet" = String, Query), ("chain" = Option<String>, Query)),
    responses((status = 200, description = "The wallet's tickets (no token or signature: those need a signed challenge, `POST /api/events/{id}/ticket`)"), (status = "4XX", description = "Refused: the error's code and message")))]
pub async fn tickets(State(state): State<AppState>, Query(q): Query<TicketsQuery>) -> ApiResult<Json<Vec<TicketView>>> {
    let chain: Chain = q
        .chain
        .parse()
        .map_err(|e: chains::UnknownCurrency| ApiError::unprocessable("unknown_chain", e.to_string()))?;
    let tickets = state.purchases.tickets_for_wallet(chain, q.wallet.trim()).await?;
    Ok(Json(tickets.into_iter().map(public_ticket_view).collect()))
}

/// `?all=true` lists every entry of the kind (the CLI's `--all`); by default only what is due now. Unknown
/// parameters are refused rather than ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    #[serde(default)]
    pub all: bool,
}

/// `GET /api/admin/payouts[?all=true]`: each payout with `chain`, `payout_address` (where it goes, or went) and
/// `held` (`no_payout_address`, or null).
#[utoipa::path(get, path = "/api/admin/payouts", tag = "admin", params(("all" = Option<bool>, Query, description = "Settled ones too")),
    responses((status = 200, description = "Each payout with `chain`, `payout_address` and `held`"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("admin" = [])))]
pub async fn payouts(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    ledger_json(state.store.payouts(!q.all, now_ms()).await?)
}

/// Ledger rows (alone, or flattened into payouts and settlements) as the API shows them: `due_at` and
/// `settled_at` in RFC 3339 (`crate::http::time`), not the store's unix milliseconds.
fn ledger_json<T: serde::Serialize>(rows: T) -> ApiResult<Json<serde_json::Value>> {
    let mut json = serde_json::to_value(rows).map_err(|e| ApiError::internal(e.to_string()))?;
    crate::http::time::ms_fields_as_rfc3339(&mut json, crate::http::time::LEDGER_TIMES);
    Ok(Json(json))
}

/// `GET /api/admin/refunds[?all=true]`
#[utoipa::path(get, path = "/api/admin/refunds", tag = "admin", params(("all" = Option<bool>, Query, description = "Settled ones too")),
    responses((status = 200, description = "The refund ledger rows"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("admin" = [])))]
pub async fn refunds(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    ledger_json(state.purchases.ledger("refund", !q.all, now_ms()).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleBody {
    pub txid: String,
}

/// `POST /api/admin/ledger/{id}/settle`: records the transaction that paid a due payout or refund, after
/// checking it (`crate::payments::settlement`).
#[utoipa::path(post, path = "/api/admin/ledger/{id}/settle", tag = "admin", params(("id" = i64, Path, description = "The ledger entry")), request_body(content = inline(Object), description = "`{ txid }`: the transaction that paid it"),
    responses((status = 200, description = "Settled, with the checked transaction"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("admin" = [])))]
pub async fn settle(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<i64>,
    Json(body): Json<SettleBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let lookup =
        crate::payments::settlement::lookup_for(&state.settings).map_err(|e| ApiError::internal(e.to_string()))?;
    let settled =
        crate::payments::settlement::settle(&state.store, lookup.as_ref(), id, &body.txid, "admin-api", now_ms())
            .await?;
    ledger_json(settled)
}

/// `POST /api/admin/tickets/{id}/refund`: refunds one ticket before its payout is due.
#[utoipa::path(post, path = "/api/admin/tickets/{id}/refund", tag = "admin", params(("id" = i64, Path, description = "The ticket")),
    responses((status = 204, description = "Refund recorded, due to the buyer"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("admin" = [])))]
pub async fn refund_ticket(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state.purchases.refund_ticket(id, "admin-api", now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}
