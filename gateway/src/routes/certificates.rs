//! Completion certificates: fetch one after the event, verify one, and the public key to verify offline.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use ticketing::now_ms;

use crate::certificates::{Certificate, CertificateKey, SignedCertificate, ALGORITHM, KIND};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::routes::purchases::rfc3339;
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new()
        .get("/api/events/{id}/certificate", certificate)
        .post("/api/certificates/verify", verify)
        .get("/api/certificates/key", key)
}

fn signing_key(state: &AppState) -> CertificateKey {
    CertificateKey::derive(state.secret.bytes())
}

#[derive(Debug, Deserialize)]
pub struct CertificateQuery {
    pub wallet: String,
    /// Defaults to `eth`, like the join endpoint.
    pub chain: Option<String>,
}

/// `GET /api/events/{id}/certificate?wallet=…&chain=…`: after the event ended, for a ticket whose total time
/// in the room reached the event's `min_certificate_secs`.
#[utoipa::path(get, path = "/api/events/{id}/certificate", tag = "certificates", params(("id" = String, Path, description = "The event's id"), ("wallet" = String, Query), ("chain" = String, Query)),
    responses((status = 200, description = "A signed attendance certificate"), (status = "4XX", description = "Refused: the error's code and message")))]
pub async fn certificate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<CertificateQuery>,
) -> ApiResult<Json<SignedCertificate>> {
    let event_id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    let chain = query.chain.as_deref().unwrap_or("eth");
    let event =
        state.store.event(event_id).await?.ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    let (title, creator, start, end, min) =
        (event.title, event.creator_account, event.event_start, event.event_end, event.min_certificate_secs);
    let min =
        min.ok_or_else(|| ApiError::not_found("no_certificates", "this event does not offer completion certificates"))?;
    let now = now_ms();
    if now < end {
        return Err(ApiError::conflict(
            "event_not_ended",
            format!("certificates are issued after the event ends at {}", rfc3339(end)),
        ));
    }
    let ticket_id = state
        .store
        .valid_ticket_for_wallet(event_id, chain, &query.wallet)
        .await?
        .ok_or_else(|| ApiError::not_found("no_ticket", "this wallet held no ticket for this event"))?;
    let attended = state
        .store
        .ticket_attendance(ticket_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no_ticket", "this wallet held no ticket for this event"))?;
    let (status, wallet, ticket_chain, duration) =
        (attended.status, attended.wallet_address, attended.chain, attended.total_duration_secs);
    if status != "valid" {
        return Err(ApiError::forbidden("ticket_invalid", format!("the ticket is {status}")));
    }
    if duration < min {
        return Err(ApiError::forbidden(
            "below_minimum",
            format!("attended {duration} s; a certificate needs {min} s"),
        ));
    }
    let certificate = Certificate {
        kind: KIND.into(),
        event_id,
        event_title: title,
        creator,
        chain: ticket_chain,
        wallet,
        ticket_id,
        duration_secs: duration,
        min_certificate_secs: min,
        event_start: rfc3339(start),
        event_end: rfc3339(end),
        issued_at: rfc3339(now),
    };
    Ok(Json(signing_key(&state).sign(certificate)))
}

#[derive(Debug, Serialize)]
pub struct Verdict {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// `POST /api/certificates/verify` with a certificate as issued: `{"valid": true}` or `{"valid": false, "reason": …}`.
#[utoipa::path(post, path = "/api/certificates/verify", tag = "certificates", request_body(content = inline(Object), description = "A certificate as issued"),
    responses((status = 200, description = "`{ valid: true }`, or `{ valid: false, reason }`")))]
pub async fn verify(
    State(state): State<AppState>,
    Json(signed): Json<SignedCertificate>,
) -> (StatusCode, Json<Verdict>) {
    match signing_key(&state).verify(&signed) {
        Ok(()) => (StatusCode::OK, Json(Verdict { valid: true, reason: None })),
        Err(e) => (StatusCode::OK, Json(Verdict { valid: false, reason: Some(e.code()) })),
    }
}

#[derive(Debug, Serialize)]
pub struct PublicKey {
    pub algorithm: &'static str,
    /// Base64 of the 32-byte ed25519 public key.
    pub public_key: String,
    pub public_key_hex: String,
    /// How the signed bytes are formed.
    pub signed_bytes: &'static str,
}

/// `GET /api/certificates/key`
#[utoipa::path(get, path = "/api/certificates/key", tag = "certificates",
    responses((status = 200, description = "The public key certificates are signed with")))]
pub async fn key(State(state): State<AppState>) -> Json<PublicKey> {
    let key = signing_key(&state);
    Json(PublicKey {
        algorithm: ALGORITHM,
        public_key: key.public_base64(),
        public_key_hex: hex::encode(key.public().as_bytes()),
        signed_bytes: "the `certificate` object serialised as compact JSON with its fields in the documented order",
    })
}
