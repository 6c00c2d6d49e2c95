//! Free events: `POST /api/events/{id}/rsvp` reserves a seat for a wallet that signs the access challenge.
//!
//! The body is the join body (`wallet_address`, `chain`, `signature`, `message`), signed over a challenge from
//! `GET /api/events/{id}/challenge`; the challenge is consumed, so joining afterwards asks for a fresh one. The
//! ticket is an ordinary one (see `ticketing::purchases::rsvp`): the join endpoint admits it like a paid ticket.

use axum::extract::State;
use axum::http::StatusCode;
use ticketing::now_ms;
use ticketing::purchases::PurchaseError;

use crate::error::{ApiResult, Json, Path};
use crate::routes::purchases::{ticket_view, TicketView};
use crate::routes::rooms::JoinBody;
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new().post("/api/events/{id}/rsvp", rsvp)
}

/// `POST /api/events/{id}/rsvp`: a seat of a free event for the wallet that signed the access challenge.
///
/// Body: the join body `{ "wallet_address", "chain", "signature", "message" }` over a challenge from
/// `GET /api/events/{id}/challenge?chain=&wallet=`. One ticket per wallet: a wallet that already holds one gets
/// it back with 200 (`created: false`); a new ticket is 201. No payment and no ledger entry are written.
#[utoipa::path(post, path = "/api/events/{id}/rsvp", params(("id" = i64, Path)),
    responses((status = 201, description = "Reserved: `{ created: true, ticket: { ticket_id, event_id, token, \
                access_signature, chain, wallet_address, currency, amount_paid: \"0\", status: \"valid\", … } }`"),
              (status = 200, description = "The wallet already holds a ticket for this event: `{ created: false, ticket }`"),
              (status = 400, description = "The access proof is malformed (`unknown_chain`, `invalid_wallet`, `missing_message`, …)"),
              (status = 401, description = "The signature is refused (`bad_signature`, `expired`, `replayed`, `wrong_event`, …)"),
              (status = 404, description = "`event_not_found`"),
              (status = 409, description = "`sold_out`, `not_on_sale`"),
              (status = 422, description = "`not_free`: the event has a price; buy with `POST /api/events/purchase`"),
              (status = 429, description = "`rate_limited`: too many access attempts"),
              (status = 503, description = "`store_unavailable`")))]
#[tracing::instrument(skip_all, fields(event_id = %id))]
pub async fn rsvp(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    Json(body): Json<JoinBody>,
) -> ApiResult<(StatusCode, Json<RsvpResponse>)> {
    let event_id = id.parse::<i64>().ok().filter(|id| *id > 0).ok_or(PurchaseError::EventNotFound(0))?;
    // Refuse a paid event before the signature is checked, so the challenge is not spent on a request that
    // cannot succeed (`Purchases::rsvp` checks again inside its transaction).
    let event = state.store.event(event_id).await?.ok_or(PurchaseError::EventNotFound(event_id))?;
    if event.price.units != 0 {
        return Err(PurchaseError::NotFree.into());
    }
    let now = now_ms();
    let verified = state.access.verify(body.access_request(event_id, remote), now).await?;
    let reserved = state.purchases.rsvp(event_id, verified.chain, &verified.wallet, now).await?;
    let status = if reserved.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(RsvpResponse { created: reserved.created, ticket: ticket_view(reserved.ticket) })))
}

#[derive(Debug, serde::Serialize)]
pub struct RsvpResponse {
    /// `false`: the wallet already held this ticket.
    pub created: bool,
    pub ticket: TicketView,
}
