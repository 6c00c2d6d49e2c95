//! The door for a resuming connection: `/event/{id}?resume=<token>&received=<n>` (issue 26).
//!
//! No signature: the resume token of the session's `welcome` (or last `resumed`) stands for it. It is checked
//! (signature, expiry, event), spent once in the shared store, and the seat must still be good — a ban saved by
//! any node, a refund, the event's end or cancellation refuse it exactly as at a join. Then the room continues
//! the session ([`signaling::Hub::try_resume`]): same client id, same seat, the frames it missed, then live
//! traffic. Every refusal is 4401 (join again with fresh credentials) or the admission's own code; the adapter
//! then asks the page for new credentials. See `signaling::resume` for the room's side.

use signaling::{CloseCode, Resume, Role};
use ticketing::now_ms;

use crate::auth::resume_token;
use crate::rooms::{refusal_close, Admitted, Denied};
use crate::state::AppState;

/// How long a resume token is good for at most. The room's window is the real limit: a seat no longer held
/// cannot be resumed, whatever the token says; the expiry only bounds a token kept from a long connection.
pub const RESUME_TOKEN_TTL_MS: i64 = 12 * 3600 * 1000;

/// The resume token for a seat's session, for the hub's `welcome` and `resumed` frames.
pub fn issuer(secret: Vec<u8>) -> impl signaling::ResumeIssuer {
    move |peer: &signaling::PeerInfo| {
        Some(resume_token::issue(
            &secret,
            peer.room_id,
            &peer.seat_key,
            &peer.client_id,
            now_ms() + RESUME_TOKEN_TTL_MS,
        ))
    }
}

pub(crate) async fn admit(state: &AppState, event_id: i64, token: &str, received: u64) -> Result<Admitted, Denied> {
    let (claims, role, seat) = match door(state, event_id, token).await {
        Ok(passed) => passed,
        Err(denied) => {
            // Refused here, before the room: counted with the room's own refusals (window passed, kicked, gap).
            state.hub.stats().resumes_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(denied);
        }
    };
    let resume = Resume { room_id: event_id, client_id: claims.client_id.clone(), seat_key: claims.seat_key, received };
    let resumed = state.hub.try_resume(resume).map_err(|e| {
        let frame = e.close_frame();
        Denied(frame.code, frame.reason)
    })?;
    tracing::info!(event_id, client_id = %claims.client_id, replayed = resumed.replayed, "resumed");
    Ok(Admitted {
        peer: resumed.peer,
        outbox: resumed.outbox,
        role,
        event_end: seat.event_end,
        client_id: claims.client_id,
    })
}

/// The token (signature, expiry, event, single use) and the seat it names (still admitted by the store).
async fn door(
    state: &AppState,
    event_id: i64,
    token: &str,
) -> Result<(resume_token::ResumeClaims, Role, ticketing::attendance::Seat), Denied> {
    let now = now_ms();
    if state.shutdown.is_cancelled() {
        return Err(Denied::code(CloseCode::Shutdown, "server shutting down"));
    }
    let unavailable = |_| Denied(1011, "the database did not answer".into());
    let claims = resume_token::verify(state.secret.bytes(), token, event_id, now)
        .map_err(|e| Denied::code(CloseCode::Unauthorized, e.to_string()))?;
    // Spent beside the session tokens (the table's kinds are fixed), under a prefix of its own.
    let key = format!("resume:{}", claims.jti);
    if !state
        .store
        .spend_once(&key, "session_token", Some(event_id), None, claims.exp, now)
        .await
        .map_err(unavailable)?
    {
        return Err(Denied::code(CloseCode::Unauthorized, "resume token already used"));
    }
    let early = i64::try_from(state.settings.rooms.early_open_secs).unwrap_or(0) * 1000;
    let (role, decision) = match claims.seat_key.strip_prefix("host:") {
        Some(host) => {
            (Role::Host, state.store.check_host_admission(event_id, host, now, early).await.map_err(unavailable)?)
        }
        None => {
            let ticket = claims
                .seat_key
                .parse::<i64>()
                .map_err(|_| Denied::code(CloseCode::Unauthorized, "malformed resume token"))?;
            (
                Role::Attendee,
                state.store.check_ticket_admission(event_id, ticket, now, early).await.map_err(unavailable)?,
            )
        }
    };
    let seat = decision.map_err(refusal_close)?;
    Ok((claims, role, seat))
}
