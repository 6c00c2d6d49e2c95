//! Sign on your phone, continue on the headset: the HTTP side of [`ticketing::pairings`].
//!
//! 1. The waiting page (a headset's join page, a dashboard without Keychain) opens a pairing:
//!    `POST /api/pairings` → a code, a secret, the phone's link and its QR code (`/api/pairings/{code}/qr.svg`).
//! 2. It listens on `GET /api/pairings/{code}/events?secret=…` (Server-Sent Events). Only the holder of the secret
//!    may listen, and the secret is not in the phone's link, so the pairing is bound to the page that opened it.
//! 3. The phone opens `/pages/pair.html?code=…` (scanned or typed), reads what is asked (`GET /api/pairings/{code}`),
//!    signs with its own wallet, and posts the signature once (`POST /api/pairings/{code}/signature`).
//! 4. The stream hands the signature to the waiting page exactly once and ends; the page then joins or signs in
//!    through the ordinary endpoints, which verify the signature (time-limited, single-use, bound to the event and
//!    the domain) as if the page had made it.
//!
//! Nothing leaves the gateway: the rows are in the shared database, so any node serves either side (the stream
//! polls the row, as the quote stream does). Pairings live [`TTL_MS`]; a used or expired code is refused with
//! 410 (`pairing_used`, `pairing_expired`), an unknown one with 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use ticketing::now_ms;
use ticketing::pairings::{normalise_code, PairedSignature, Pairing, PairingStatus, Purpose, SubmitRefusal};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::routes::purchases::rfc3339;
use crate::routes::qr::qr_svg;
use crate::routes::rooms::doors_of;
use crate::state::AppState;

/// How long a pairing can be used: long enough to find a phone and sign, short enough to be useless later.
pub const TTL_MS: i64 = 5 * 60_000;
/// How often the waiting page's stream re-reads the pairing.
const POLL: Duration = Duration::from_millis(400);
/// Longest text a pairing asks to sign, or a signature it carries.
const TEXT_MAX: usize = 4_000;

pub fn router() -> super::Table {
    super::Table::new()
        .post("/api/pairings", open)
        .get("/api/pairings/{code}", show)
        .post("/api/pairings/{code}/signature", submit)
        .get("/api/pairings/{code}/events", events)
        .get("/api/pairings/{code}/qr.svg", qr)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenPairingBody {
    /// `join` (the phone signs the event's access challenge for its own wallet) or `sign` (the phone signs
    /// `message` as `wallet`).
    pub purpose: String,
    /// `join`: the event to enter.
    #[serde(default)]
    pub event_id: Option<i64>,
    /// The chain the phone's wallet signs for (`eth`, `pol`, `bnb`, `sol`, `hive`…).
    pub chain: String,
    /// `sign`: the account or address that must sign.
    #[serde(default)]
    pub wallet: Option<String>,
    /// `sign`: the exact text to sign.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenedPairingView {
    /// What the phone's link carries; shown to type as `ABCD-EFGH`.
    pub code: String,
    /// Only the waiting page holds this: it is needed to read the signature.
    pub secret: String,
    /// The page the phone opens.
    pub link: String,
    /// The link as a QR code (SVG).
    pub qr: String,
    pub expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PairingView {
    pub code: String,
    pub purpose: String,
    pub chain: String,
    pub event_id: Option<i64>,
    pub event_title: Option<String>,
    /// `sign`: who must sign.
    pub wallet: Option<String>,
    /// `sign`: the exact text to sign.
    pub message: Option<String>,
    pub expires_at: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureBody {
    /// The address or account that signed.
    pub wallet: String,
    /// The exact text signed.
    pub message: String,
    pub signature: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaiterParams {
    /// The secret `POST /api/pairings` returned.
    pub secret: String,
}

fn not_found() -> ApiError {
    ApiError::not_found("pairing_not_found", "no such pairing: check the code")
}

fn used() -> ApiError {
    ApiError::new(StatusCode::GONE, "pairing_used", "this pairing was already used: start again on the other device")
}

fn expired() -> ApiError {
    ApiError::new(StatusCode::GONE, "pairing_expired", "this pairing has expired: start again on the other device")
}

fn code_of(raw: &str) -> ApiResult<String> {
    normalise_code(raw).ok_or_else(not_found)
}

fn required<'a>(value: &'a Option<String>, field: &str) -> ApiResult<&'a str> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() && v.len() <= TEXT_MAX => Ok(v),
        Some(v) if v.len() > TEXT_MAX => Err(ApiError::unprocessable("too_long", format!("`{field}` is too long"))),
        _ => Err(ApiError::unprocessable("missing_field", format!("`{field}` is required for this purpose"))),
    }
}

/// Open a pairing for a page that needs a signature made on another device.
#[utoipa::path(post, path = "/api/pairings", request_body = OpenPairingBody,
    responses((status = 201, body = OpenedPairingView),
              (status = 404, description = "`event_not_found`"),
              (status = 409, description = "`not_live` (the doors open at the time in the message), `event_ended`, `event_cancelled`"),
              (status = 422, description = "`unknown_purpose`, `unknown_chain`, `missing_field`, `too_long`"),
              (status = 429, description = "`rate_limited`")))]
pub async fn open(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Json(body): Json<OpenPairingBody>,
) -> ApiResult<Response> {
    admit(&state, remote)?;
    let chain: chains::Chain = body
        .chain
        .parse()
        .map_err(|_| ApiError::unprocessable("unknown_chain", format!("`{}` is not a supported chain", body.chain)))?;
    let now = now_ms();
    let purpose = match body.purpose.as_str() {
        "join" => {
            let event_id = body
                .event_id
                .ok_or_else(|| ApiError::unprocessable("missing_field", "`event_id` is required to join"))?;
            let event = state
                .store
                .event(event_id)
                .await?
                .ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
            // Nobody is sent to find a phone for an event whose doors are shut: say when they open instead.
            let doors = doors_of(&state, &event, now);
            match doors.state {
                "open" => {}
                "not_open" => {
                    return Err(ApiError::conflict(
                        "not_live",
                        format!("the event is not live yet: doors open at {}", doors.opens_at),
                    ))
                }
                "ended" => return Err(ApiError::new(StatusCode::GONE, "event_ended", "the event has ended")),
                _ => return Err(ApiError::forbidden("event_cancelled", "the event is not open to ticket holders")),
            }
            Purpose::Join { event_id }
        }
        "sign" => Purpose::Sign {
            wallet: required(&body.wallet, "wallet")?.to_owned(),
            message: required(&body.message, "message")?.to_owned(),
        },
        other => {
            return Err(ApiError::unprocessable(
                "unknown_purpose",
                format!("`{other}` is not a pairing purpose (join, sign)"),
            ))
        }
    };
    let opened = state.store.open_pairing(&purpose, chain.as_str(), now, TTL_MS).await?;
    let view = OpenedPairingView {
        link: link(&state, &opened.code),
        qr: format!("/api/pairings/{}/qr.svg", opened.code),
        code: opened.code,
        secret: opened.secret,
        expires_at: rfc3339(opened.expires_at),
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// The access guard's per-address limit on challenges also bounds pairings: opening one, and the phone's reads
/// and submission, so codes cannot be guessed at speed.
fn admit(state: &AppState, remote: SocketAddr) -> ApiResult<()> {
    state.access.admit_challenge(Some(remote.ip())).map_err(ApiError::from)
}

fn link(state: &AppState, code: &str) -> String {
    format!("{}/pages/pair.html?code={code}", state.public_url.trim_end_matches('/'))
}

/// A pairing the phone may still sign: pending and unexpired.
async fn open_pairing(state: &AppState, raw: &str, now: i64) -> ApiResult<Pairing> {
    let pairing = state.store.pairing(&code_of(raw)?).await?.ok_or_else(not_found)?;
    if pairing.status != PairingStatus::Pending {
        return Err(used());
    }
    if pairing.expired_at(now) {
        return Err(expired());
    }
    Ok(pairing)
}

/// What the phone is asked to sign.
#[utoipa::path(get, path = "/api/pairings/{code}", params(("code" = String, Path)),
    responses((status = 200, body = PairingView), (status = 404, description = "`pairing_not_found`"),
              (status = 410, description = "`pairing_used`, `pairing_expired`"), (status = 429, description = "`rate_limited`")))]
pub async fn show(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(code): Path<String>,
) -> ApiResult<Json<PairingView>> {
    admit(&state, remote)?;
    let pairing = open_pairing(&state, &code, now_ms()).await?;
    let (event_id, wallet, message) = match &pairing.purpose {
        Purpose::Join { event_id } => (Some(*event_id), None, None),
        Purpose::Sign { wallet, message } => (None, Some(wallet.clone()), Some(message.clone())),
    };
    let event_title = match event_id {
        Some(id) => state.store.event(id).await?.map(|e| e.title),
        None => None,
    };
    Ok(Json(PairingView {
        purpose: pairing.purpose.name().to_owned(),
        code: pairing.code,
        chain: pairing.chain,
        event_id,
        event_title,
        wallet,
        message,
        expires_at: rfc3339(pairing.expires_at),
    }))
}

/// The phone's signature, taken once.
#[utoipa::path(post, path = "/api/pairings/{code}/signature", params(("code" = String, Path)), request_body = SignatureBody,
    responses((status = 200, description = "`{\"status\": \"signed\"}`: the waiting page continues"),
              (status = 404, description = "`pairing_not_found`"), (status = 410, description = "`pairing_used`, `pairing_expired`"),
              (status = 422, description = "`missing_field`, `too_long`, `wrong_message`, `wrong_signer`")))]
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(code): Path<String>,
    Json(body): Json<SignatureBody>,
) -> ApiResult<Json<serde_json::Value>> {
    admit(&state, remote)?;
    let now = now_ms();
    let pairing = open_pairing(&state, &code, now).await?;
    let signed = PairedSignature {
        wallet: required(&Some(body.wallet), "wallet")?.to_owned(),
        message: required(&Some(body.message), "message")?.to_owned(),
        signature: required(&Some(body.signature), "signature")?.to_owned(),
    };
    // A `sign` pairing carries exactly the text and signer the waiting page asked for; anything else would
    // only fail there, later and less clearly.
    if let Purpose::Sign { wallet, message } = &pairing.purpose {
        if &signed.message != message {
            return Err(ApiError::unprocessable("wrong_message", "the signed text is not the one asked for"));
        }
        if !signed.wallet.eq_ignore_ascii_case(wallet) {
            return Err(ApiError::unprocessable("wrong_signer", format!("this must be signed by {wallet}")));
        }
    }
    match state.store.sign_pairing(&pairing.code, &signed, now).await? {
        Ok(()) => Ok(Json(json!({ "status": "signed" }))),
        Err(SubmitRefusal::NotFound) => Err(not_found()),
        Err(SubmitRefusal::Used) => Err(used()),
        Err(SubmitRefusal::Expired) => Err(expired()),
    }
}

/// The waiting page's stream: `event: pairing` with `{"status": "pending"}` at once, then one of
/// `{"status": "signed", "chain", "wallet", "message", "signature"}` (sent once, to one reader), `{"status":
/// "expired"}` or `{"status": "used"}` (another reader took it), and the stream ends.
#[utoipa::path(get, path = "/api/pairings/{code}/events", params(("code" = String, Path), WaiterParams),
    responses((status = 200, description = "`text/event-stream` of `pairing` events"),
              (status = 404, description = "`pairing_not_found` (also for a wrong secret)")))]
pub async fn events(
    State(state): State<AppState>,
    Path(code): Path<String>,
    Query(params): Query<WaiterParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let code = code_of(&code)?;
    if params.secret.len() > 128 {
        return Err(not_found());
    }
    let first = state.store.pairing_for_waiter(&code, &params.secret).await?.ok_or_else(not_found)?;
    let stream = async_stream::stream! {
        let event = |value: serde_json::Value| Event::default().event("pairing").json_data(value).ok();
        if let Some(e) = event(json!({ "status": "pending", "code": first.code, "expires_at": rfc3339(first.expires_at) })) {
            yield Ok(e);
        }
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let pairing = match state.store.pairing(&code).await {
                Ok(Some(p)) => p,
                Ok(None) => {
                    // Pruned: it had expired.
                    if let Some(e) = event(json!({ "status": "expired" })) { yield Ok(e); }
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "pairing stream could not read the pairing");
                    continue;
                }
            };
            let outcome = match pairing.status {
                PairingStatus::Pending if pairing.expired_at(now_ms()) => Some(json!({ "status": "expired" })),
                PairingStatus::Pending => None,
                PairingStatus::Delivered => Some(json!({ "status": "used" })),
                PairingStatus::Signed => match (state.store.deliver_pairing(&code).await, &pairing.signed) {
                    (Ok(true), Some(signed)) => Some(json!({
                        "status": "signed", "chain": pairing.chain, "wallet": signed.wallet,
                        "message": signed.message, "signature": signed.signature,
                    })),
                    (Ok(_), _) => Some(json!({ "status": "used" })),
                    (Err(err), _) => {
                        tracing::warn!(error = %err, "pairing stream could not deliver the signature");
                        continue;
                    }
                },
            };
            if let Some(outcome) = outcome {
                if let Some(e) = event(outcome) { yield Ok(e); }
                break;
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The phone's link as a QR code.
#[utoipa::path(get, path = "/api/pairings/{code}/qr.svg", params(("code" = String, Path)),
    responses((status = 200, description = "`image/svg+xml`"), (status = 404, description = "`pairing_not_found`")))]
pub async fn qr(State(state): State<AppState>, Path(code): Path<String>) -> ApiResult<Response> {
    let pairing = state.store.pairing(&code_of(&code)?).await?.ok_or_else(not_found)?;
    let svg =
        qr_svg(&link(&state, &pairing.code)).ok_or_else(|| ApiError::internal("the link does not fit in a QR code"))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "private, max-age=300")], svg)
        .into_response())
}
