//! Access challenges: `GET /api/events/{id}/challenge?chain=…&wallet=…` hands a wallet the text to sign. The
//! signed text comes back through the join endpoint and the WebSocket's first frame, which call
//! [`crate::auth::access::AccessGuard::verify`].

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use serde::{Deserialize, Serialize};

use crate::error::{ApiResult, Json, Path, Query};
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new().get("/api/events/{id}/challenge", challenge)
}

#[derive(Debug, Deserialize)]
pub struct ChallengeQuery {
    pub chain: String,
    pub wallet: String,
}

#[derive(Debug, Serialize)]
pub struct ChallengeResponse {
    /// The exact text to sign.
    pub message: String,
    pub nonce: String,
    /// RFC 3339 UTC (`crate::http::time`).
    #[serde(serialize_with = "crate::http::time::serialize_ms_as_rfc3339")]
    pub expires_at: i64,
    pub chain: String,
    /// The wallet as the message names it (EIP-55 for EVM chains).
    pub wallet: String,
}

#[utoipa::path(get, path = "/api/events/{id}/challenge", tag = "rooms", params(("id" = String, Path, description = "The event's id"), ("chain" = String, Query), ("wallet" = String, Query)),
    responses((status = 200, description = "The message to sign to prove the wallet (join, ticket details, RSVP)"), (status = "4XX", description = "Refused: the error's code and message")))]
pub async fn challenge(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(event_id): Path<i64>,
    Query(query): Query<ChallengeQuery>,
) -> ApiResult<Json<ChallengeResponse>> {
    state.access.admit_challenge(Some(remote.ip()))?;
    let issued = state.access.challenge(event_id, &query.chain, &query.wallet, ticketing::now_ms()).await?;
    Ok(Json(ChallengeResponse {
        message: issued.message,
        nonce: issued.nonce,
        expires_at: issued.expires_at,
        chain: issued.chain.to_string(),
        wallet: issued.wallet,
    }))
}
