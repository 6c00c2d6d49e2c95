//! Attendees' data rights over HTTP: a wallet proves itself with a signed challenge (the access machinery, with
//! the challenge's event id [`chains::challenge::WALLET_DATA`] and its own statement), then downloads everything
//! kept about it as JSON, or has it erased. Each signed challenge serves one request.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chains::challenge::{Challenge, WALLET_DATA};
use serde::{Deserialize, Serialize};
use ticketing::audit::AuditEntry;
use ticketing::privacy::ErasureError;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::access::{AccessRequest, VerifiedAccess};
use crate::error::{ApiError, ApiResult, Json, Query};
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new()
        .get("/api/privacy/challenge", challenge)
        .post("/api/privacy/export", export)
        .post("/api/privacy/erase", erase)
}

#[derive(OpenApi)]
#[openapi(paths(challenge, export, erase))]
pub struct PrivacyDoc;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChallengeQuery {
    /// eth, pol, bnb, btc, sol, hive or xmr.
    pub chain: String,
    pub wallet: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeResponse {
    /// The exact text to sign.
    pub message: String,
    /// RFC 3339 UTC.
    #[serde(serialize_with = "crate::http::time::serialize_ms_as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    pub chain: String,
    pub wallet: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofBody {
    pub chain: String,
    pub wallet_address: String,
    /// The challenge exactly as issued by `/api/privacy/challenge`.
    pub message: String,
    pub signature: String,
}

/// A challenge proving a wallet to see or erase what is kept about it (five minutes, one use).
#[utoipa::path(get, path = "/api/privacy/challenge", params(ChallengeQuery),
    responses((status = 200, body = ChallengeResponse), (status = 400, description = "`invalid_wallet`, `unknown_chain`")))]
pub async fn challenge(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Query(query): Query<ChallengeQuery>,
) -> ApiResult<Json<ChallengeResponse>> {
    state.access.admit_challenge(Some(remote.ip()))?;
    let issued = state.access.challenge(WALLET_DATA, &query.chain, &query.wallet, ticketing::now_ms()).await?;
    Ok(Json(ChallengeResponse {
        message: issued.message,
        expires_at: issued.expires_at,
        chain: issued.chain.to_string(),
        wallet: issued.wallet,
    }))
}

/// Everything kept about the signing wallet, as a JSON download: quotes, tickets, payments, refunds, attendance,
/// ratings (certificates are not stored: they are signed on request from the attendance).
#[utoipa::path(post, path = "/api/privacy/export", request_body = ProofBody,
    responses((status = 200, description = "the wallet's data (JSON attachment)"),
              (status = 401, description = "`bad_signature`, `replayed`, `wrong_event`, …")))]
pub async fn export(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Json(body): Json<ProofBody>,
) -> ApiResult<Response> {
    let wallet = prove(&state, &body, remote).await?;
    let data = state.store.wallet_data(wallet.chain.as_str(), &wallet.wallet).await?;
    let remote = remote.ip().to_string();
    let entry = AuditEntry::new(&wallet.wallet, "privacy.exported").subject(&wallet.wallet).remote(Some(&remote));
    state.store.audit(&entry).await?;
    let disposition = format!("attachment; filename=\"wallet-data-{}.json\"", wallet.chain);
    Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(data)).into_response())
}

/// Erases the signing wallet: its address replaced by a one-way token where the ledger keeps the record, its
/// attendance, ratings and access keys deleted. Refused (409) while a refund to it is due or one of its tickets
/// is for an event that has not ended.
#[utoipa::path(post, path = "/api/privacy/erase", request_body = ProofBody,
    responses((status = 200, description = "what was erased and the token that replaces the wallet"),
              (status = 401, description = "`bad_signature`, `replayed`, …"),
              (status = 409, description = "`refund_outstanding`, `ticket_in_use`")))]
pub async fn erase(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Json(body): Json<ProofBody>,
) -> ApiResult<Json<ticketing::privacy::Erasure>> {
    let wallet = prove(&state, &body, remote).await?;
    let chain = wallet.chain.as_str();
    let token = crate::privacy::erasure_token(state.secret.bytes(), chain, &wallet.wallet);
    match state.store.erase_wallet(chain, &wallet.wallet, &token, ticketing::now_ms()).await {
        Ok(erased) => {
            tracing::info!(token = %erased.token, "wallet erased on request");
            Ok(Json(erased))
        }
        Err(ErasureError::RefundOutstanding) => {
            Err(ApiError::new(StatusCode::CONFLICT, "refund_outstanding", ErasureError::RefundOutstanding.to_string()))
        }
        Err(ErasureError::TicketInUse) => {
            Err(ApiError::new(StatusCode::CONFLICT, "ticket_in_use", ErasureError::TicketInUse.to_string()))
        }
        Err(ErasureError::Store(err)) => Err(err.into()),
    }
}

/// Checks that `body` carries a data-rights challenge as issued (nothing added or changed, not an event's
/// challenge nor the seed's message) signed by its wallet, and consumes it.
async fn prove(state: &AppState, body: &ProofBody, remote: SocketAddr) -> ApiResult<VerifiedAccess> {
    let issued =
        Challenge::parse(&body.message).ok().filter(|c| c.event_id == WALLET_DATA && c.to_message() == body.message);
    if issued.is_none() {
        return Err(ApiError::unauthorized(
            "wrong_challenge",
            "sign the challenge from /api/privacy/challenge exactly as issued",
        ));
    }
    let request = AccessRequest {
        event_id: WALLET_DATA,
        chain: &body.chain,
        wallet: &body.wallet_address,
        message: Some(&body.message),
        timestamp: None,
        signature: &body.signature,
        remote: Some(remote.ip()),
    };
    Ok(state.access.verify(request, ticketing::now_ms()).await?)
}
