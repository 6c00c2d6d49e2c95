//! Operators' view of what the platform owes and owns per chain: payout batches (CSV, a Bitcoin PSBT, Hive
//! transfers; `crate::payments::payout_export`), the commission per chain, and the receiving addresses in use.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chains::Chain;
use serde::Deserialize;
use ticketing::now_ms;

use crate::auth::AdminUser;
use crate::error::{ApiError, ApiResult, Json, Query};
use crate::payments::payout_export::{AddressesError, Format};
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new()
        .get("/api/admin/payouts/export", export)
        .get("/api/admin/commission", commission)
        .get("/api/admin/addresses", addresses)
}

fn parse_chain(text: &str) -> ApiResult<Chain> {
    text.parse().map_err(|e: chains::UnknownCurrency| ApiError::unprocessable("unknown_chain", e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// batches (default), csv, psbt, hive, or json (the due payouts).
    pub format: Option<String>,
    /// With csv: one chain only.
    pub chain: Option<String>,
    /// With psbt: sat/vB.
    pub fee_rate: Option<u64>,
}

/// `GET /api/admin/payouts/export?format=batches|csv|psbt|hive[&chain=btc][&fee_rate=5]`
#[utoipa::path(get, path = "/api/admin/payouts/export", tag = "admin", params(("format" = String, Query, description = "batches, csv, psbt or hive"), ("chain" = Option<String>, Query), ("fee_rate" = Option<u64>, Query)),
    responses((status = 200, description = "Due payouts in the requested format (JSON, CSV or PSBT)"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("admin" = [])))]
pub async fn export(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    let format: Format = q
        .format
        .as_deref()
        .unwrap_or("batches")
        .parse()
        .map_err(|e: String| ApiError::unprocessable("unknown_format", e))?;
    let chain = q.chain.as_deref().map(parse_chain).transpose()?;
    if q.fee_rate == Some(0) {
        return Err(ApiError::unprocessable("invalid_fee_rate", "fee_rate is at least 1 sat/vB"));
    }
    let btc = state.purchases.settings().btc.as_ref();
    let request = crate::payments::payout_export::ExportRequest { format, chain, fee_rate: q.fee_rate, all: false };
    let rendered =
        crate::payments::payout_export::render(&state.store, &state.settings, btc, request, now_ms()).await?;
    Ok(([(header::CONTENT_TYPE, rendered.content_type)], rendered.body).into_response())
}

/// `GET /api/admin/commission`: the platform's 20% per chain and currency, earned and pending.
#[utoipa::path(get, path = "/api/admin/commission", tag = "admin",
    responses((status = 200, description = "The platform's commission per chain and currency, earned and pending"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("admin" = [])))]
pub async fn commission(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> ApiResult<Json<Vec<ticketing::payouts::CommissionLine>>> {
    Ok(Json(state.store.commission_by_chain(now_ms()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressesQuery {
    pub chain: String,
}

/// `GET /api/admin/addresses?chain=btc`: the derivation index range in use, the gap a restored wallet needs, and
/// for Bitcoin the account's output descriptors.
#[utoipa::path(get, path = "/api/admin/addresses", tag = "admin", params(("chain" = String, Query)),
    responses((status = 200, description = "The derivation index range in use and the gap a restored wallet needs"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("admin" = [])))]
pub async fn addresses(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<AddressesQuery>,
) -> ApiResult<Json<crate::payments::payout_export::AddressesReport>> {
    let chain = parse_chain(&q.chain)?;
    match crate::payments::payout_export::addresses(&state.store, &state.settings, state.purchases.settings(), chain)
        .await
    {
        Ok(report) => Ok(Json(report)),
        Err(err @ AddressesError::NotDerived(_)) => Err(ApiError::unprocessable("not_derived", err.to_string())),
        Err(err @ AddressesError::BadOrigin(_)) => Err(ApiError::internal(err.to_string())),
        Err(AddressesError::Store(err)) => Err(err.into()),
    }
}
