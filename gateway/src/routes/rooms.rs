//! Entering rooms and running them: the join endpoint (wallet signature → session token), the host's join,
//! the creator's controls (kick, ban, mute), the attendee list and live feed, and the NAF adapter script.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use ticketing::attendance::{Refusal, Seat};
use ticketing::now_ms;

use crate::auth::access::AccessRequest;
use crate::auth::creator;
use crate::auth::require_host;
use crate::auth::session_token;
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::routes::purchases::rfc3339;
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new()
        .get("/event/{id}", crate::rooms::event_socket)
        .post("/api/events/{id}/join", join)
        .get("/api/events/{id}/doors", doors)
        .post("/api/events/{id}/host", host_join)
        .get("/api/events/{id}/attendees", attendees)
        .get("/api/events/{id}/attendees/stream", attendee_stream)
        .post("/api/events/{id}/attendees/{client}/kick", kick)
        .post("/api/events/{id}/attendees/{client}/ban", ban)
        .post("/api/events/{id}/ticket", ticket_details)
        .post("/api/events/{id}/attendees/{client}/mute", mute)
        .get("/naf-dlux-adapter.js", adapter_script)
}

#[derive(Debug, Deserialize)]
pub struct JoinBody {
    pub wallet_address: String,
    /// Defaults to `eth`, as in the seed's example.
    #[serde(default)]
    pub chain: Option<String>,
    pub signature: String,
    #[serde(default)]
    pub message: Option<String>,
    /// The seed's form: the message was `Access event {id} at {timestamp}`.
    #[serde(default)]
    pub timestamp: Option<i64>,
}

impl JoinBody {
    /// The body as a wallet proof for `event_id`, from `remote` (the join, the ticket details and an RSVP all
    /// take this body).
    pub fn access_request(&self, event_id: i64, remote: std::net::SocketAddr) -> AccessRequest<'_> {
        AccessRequest {
            event_id,
            chain: self.chain.as_deref().unwrap_or("eth"),
            wallet: &self.wallet_address,
            message: self.message.as_deref(),
            timestamp: self.timestamp,
            signature: &self.signature,
            remote: Some(remote.ip()),
        }
    }
}

/// The seed's join response.
#[derive(Debug, Serialize)]
pub struct JoinResponse {
    pub access_granted: bool,
    pub event_id: i64,
    pub role: &'static str,
    pub ticket_id: Option<i64>,
    /// `ws(s)://host/event/{id}`; connect with `?token=<session_token>`.
    pub websocket_url: String,
    pub session_token: String,
    pub session_expires_at: String,
    pub turn_credentials: Option<serde_json::Value>,
}

pub(crate) fn event_id(raw: &str) -> ApiResult<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))
}

/// When an event's room lets ticket holders in: a page asks before it asks a wallet to sign, so someone early
/// meets a countdown rather than a signing prompt.
#[derive(Debug, Serialize)]
pub struct Doors {
    pub event_id: i64,
    /// `not_open`, `open`, `ended`, `cancelled` or `draft`.
    pub state: &'static str,
    pub opens_at: String,
    pub closes_at: String,
}

/// The doors of `event` at `now` (the room opens `rooms.early_open_secs` before the start).
pub fn doors_of(state: &AppState, event: &ticketing::events::Event, now: i64) -> Doors {
    use ticketing::events::EventStatus;
    let early = i64::try_from(state.settings.rooms.early_open_secs).unwrap_or(0) * 1000;
    let opens_at = event.event_start - early;
    let door_state = match event.status_at(now) {
        EventStatus::Cancelled => "cancelled",
        EventStatus::Draft => "draft",
        EventStatus::Ended => "ended",
        _ if now < opens_at => "not_open",
        _ => "open",
    };
    Doors { event_id: event.id, state: door_state, opens_at: rfc3339(opens_at), closes_at: rfc3339(event.event_end) }
}

/// `GET /api/events/{id}/doors`: whether the room admits ticket holders now, and from when to when.
#[utoipa::path(get, path = "/api/events/{id}/doors", tag = "rooms", params(("id" = String, Path, description = "The event's id")),
    responses((status = 200, description = "`{ event_id, state, opens_at, closes_at }`"), (status = "4XX", description = "Refused: the error's code and message")))]
pub async fn doors(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Doors>> {
    let id = event_id(&id)?;
    let event = state.store.event(id).await?.ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    Ok(Json(doors_of(&state, &event, now_ms())))
}

/// HTTP form of a refusal at the door.
fn refusal(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NoTicket => ApiError::forbidden("no_ticket", "this wallet holds no ticket for this event"),
        Refusal::TicketInvalid(status) => {
            let code = match status.as_str() {
                "banned" => "ticket_banned",
                "refunded" => "ticket_refunded",
                // Its payment left the chain (a reorganisation after crediting): `ticketing::purchases::reversal`.
                "payment_reversed" => "payment_reversed",
                _ => "ticket_cancelled",
            };
            ApiError::forbidden(code, format!("the ticket is {status}"))
        }
        Refusal::EventCancelled => ApiError::forbidden("event_cancelled", "the event was cancelled"),
        Refusal::NotYetOpen { opens_at } => {
            ApiError::conflict("not_live", format!("the event is not live yet: doors open at {}", rfc3339(opens_at)))
        }
        Refusal::Ended => ApiError::new(StatusCode::GONE, "event_ended", "the event has ended"),
    }
}

fn websocket_url(state: &AppState, event_id: i64) -> String {
    // With several nodes, the least loaded live one (`cluster_node::ClusterNode::websocket_base`).
    let base = state.cluster.as_ref().map_or_else(|| state.public_url.to_string(), |node| node.websocket_base());
    let base = base.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
    format!("{base}/event/{event_id}")
}

async fn grant(state: &AppState, seat: Seat, host: Option<String>) -> ApiResult<JoinResponse> {
    let ttl = i64::try_from(state.settings.rooms.session_token_ttl_secs).unwrap_or(120) * 1000;
    let expires = now_ms() + ttl;
    let (token, _claims) = session_token::issue(
        state.secret.bytes(),
        seat.event_id,
        seat.ticket_id,
        host.clone(),
        seat.wallet.clone(),
        expires,
    );
    let seat_key = match seat.ticket_id {
        Some(ticket) => ticket.to_string(),
        None => format!("host:{}", seat.wallet),
    };
    let turn_credentials = state.turn_credentials(&seat_key);
    Ok(JoinResponse {
        access_granted: true,
        event_id: seat.event_id,
        role: if host.is_some() { "host" } else { "attendee" },
        ticket_id: seat.ticket_id,
        websocket_url: websocket_url(state, seat.event_id),
        session_token: token,
        session_expires_at: rfc3339(expires),
        turn_credentials,
    })
}

/// `POST /api/events/{id}/join`: a wallet signature for a ticket → a single-use session token.
#[utoipa::path(post, path = "/api/events/{id}/join", tag = "rooms", params(("id" = String, Path, description = "The event's id")), request_body(content = inline(Object), description = "A signed access challenge: `{ wallet_address, chain?, signature, … }`"),
    responses((status = 200, description = "A single-use session token for `/event/{id}`"), (status = "4XX", description = "Refused: the error's code and message")))]
#[tracing::instrument(skip_all, fields(event_id = %id))]
pub async fn join(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    Json(body): Json<JoinBody>,
) -> ApiResult<Json<JoinResponse>> {
    let _ = headers;
    let result = join_inner(&state, remote, &id, body).await;
    state.metrics.join("http", result.as_ref().map_or_else(|e| e.code, |_| "granted"));
    result
}

async fn join_inner(
    state: &AppState,
    remote: std::net::SocketAddr,
    id: &str,
    body: JoinBody,
) -> ApiResult<Json<JoinResponse>> {
    let event_id = event_id(id)?;
    let now = now_ms();
    let verified = state.access.verify(body.access_request(event_id, remote), now).await?;
    let ticket = state
        .store
        .valid_ticket_for_wallet(event_id, verified.chain.as_str(), &verified.wallet)
        .await?
        .ok_or_else(|| refusal(Refusal::NoTicket))?;
    let early = i64::try_from(state.settings.rooms.early_open_secs).unwrap_or(0) * 1000;
    let seat = state.store.check_ticket_admission(event_id, ticket, now, early).await?.map_err(refusal)?;
    Ok(Json(grant(state, seat, None).await?))
}

/// `POST /api/events/{id}/ticket`: the wallet's ticket for this event with its token and server signature,
/// for whoever proves the wallet with a signed access challenge (the join body; the challenge is consumed).
#[utoipa::path(post, path = "/api/events/{id}/ticket", tag = "rooms", params(("id" = String, Path, description = "The event's id")), request_body(content = inline(Object), description = "A signed access challenge, as for `join` (consumed)"),
    responses((status = 200, description = "The wallet's tickets for this event with token and server signature"), (status = "4XX", description = "Refused: the error's code and message")))]
pub async fn ticket_details(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    Json(body): Json<JoinBody>,
) -> ApiResult<Json<Vec<crate::routes::purchases::TicketView>>> {
    let event_id = event_id(&id)?;
    let verified = state.access.verify(body.access_request(event_id, remote), now_ms()).await?;
    let tickets = state.purchases.tickets_for_wallet(verified.chain, &verified.wallet).await?;
    Ok(Json(
        tickets.into_iter().filter(|t| t.event_id == event_id).map(crate::routes::purchases::ticket_view).collect(),
    ))
}

/// `POST /api/events/{id}/host`: the event's creator joins as host (not counted against capacity).
#[utoipa::path(post, path = "/api/events/{id}/host", tag = "rooms", params(("id" = String, Path, description = "The event's id")),
    responses((status = 200, description = "A host session token"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn host_join(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<JoinResponse>> {
    let event_id = event_id(&id)?;
    let session = creator::authenticate(&state, &headers).await?;
    let early = i64::try_from(state.settings.rooms.early_open_secs).unwrap_or(0) * 1000;
    let seat =
        state.store.check_host_admission(event_id, session.account.as_str(), now_ms(), early).await?.map_err(|r| {
            match r {
                Refusal::NoTicket => ApiError::forbidden("not_host", "only the event's creator can host it"),
                other => refusal(other),
            }
        })?;
    let host = Some(session.account.as_str().to_owned());
    Ok(Json(grant(&state, seat, host).await?))
}

#[derive(Debug, Serialize)]
pub struct Attendee {
    pub client_id: String,
    pub wallet: String,
    pub role: String,
    pub ticket_id: Option<i64>,
    pub joined_at: String,
    pub duration_secs: i64,
    pub chat_messages: i64,
    pub voice_secs: i64,
    pub screen_shared: bool,
    pub screen_share_secs: i64,
    pub mic: bool,
    pub screen: bool,
    pub muted: bool,
    /// The shard the attendee is in (`null` on the stage, which every shard sees, or off this node).
    pub shard: Option<u32>,
    pub stage: bool,
}

/// `GET /api/events/{id}/attendees`: who is in the room now, from the store (every node's sessions), with
/// live media state from this node's rooms.
#[utoipa::path(get, path = "/api/events/{id}/attendees", tag = "rooms", params(("id" = String, Path, description = "The event's id")),
    responses((status = 200, description = "Who is in the room now, with live media state"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn attendees(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Attendee>>> {
    let event_id = event_id(&id)?;
    require_host(&state, &headers, event_id).await?;
    let now = now_ms();
    let live: std::collections::HashMap<String, signaling::OccupantSummary> =
        state.hub.occupants(event_id).into_iter().map(|o| (o.info.client_id.to_string(), o)).collect();
    let sessions = state.store.attendance_sessions(event_id).await?;
    Ok(Json(
        sessions
            .into_iter()
            .filter(|s| s.left_at.is_none())
            .map(|s| {
                let occupant = live.get(&s.client_id);
                Attendee {
                    duration_secs: (now - s.joined_at).max(0) / 1000,
                    joined_at: rfc3339(s.joined_at),
                    mic: occupant.is_some_and(|o| o.mic),
                    screen: occupant.is_some_and(|o| o.screen),
                    muted: occupant.is_some_and(|o| o.muted),
                    shard: occupant.filter(|o| !o.stage).map(|o| o.shard),
                    stage: occupant.is_some_and(|o| o.stage),
                    client_id: s.client_id,
                    wallet: s.wallet,
                    role: s.role,
                    ticket_id: s.ticket_id,
                    chat_messages: s.chat_messages,
                    voice_secs: s.voice_secs,
                    screen_shared: s.screen_shared == 1,
                    screen_share_secs: s.screen_share_secs,
                }
            })
            .collect(),
    ))
}

/// `GET /api/events/{id}/attendees/stream`: the live feed as Server-Sent Events, in order.
#[utoipa::path(get, path = "/api/events/{id}/attendees/stream", tag = "rooms", params(("id" = String, Path, description = "The event's id")),
    responses((status = 200, content_type = "text/event-stream", description = "The attendance feed as Server-Sent Events, in order"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn attendee_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let event_id = event_id(&id)?;
    require_host(&state, &headers, event_id).await?;
    let mut feed = state.feed.subscribe();
    let shutdown = state.shutdown.clone();
    let stream = async_stream::stream! {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                item = feed.recv() => match item {
                    Ok(item) if item.event_id == event_id => {
                        let data = serde_json::to_string(&item).unwrap_or_default();
                        yield Ok(SseEvent::default().event(item.kind).data(data));
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        yield Ok(SseEvent::default().event("lagged").data(n.to_string()));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

pub(crate) fn client_path(id: &str, client: &str) -> ApiResult<i64> {
    if client.len() > 64 {
        return Err(ApiError::not_found("not_in_room", "no such attendee in the room"));
    }
    event_id(id)
}

/// `POST /api/events/{id}/attendees/{client}/kick`: disconnects; the attendee may rejoin.
#[utoipa::path(post, path = "/api/events/{id}/attendees/{client}/kick", tag = "rooms", params(("id" = String, Path, description = "The event's id"), ("client" = String, Path, description = "The attendee's client id in the room")),
    responses((status = 204, description = "Disconnected; may rejoin"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn kick(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, client)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let event_id = client_path(&id, &client)?;
    let actor = require_host(&state, &headers, event_id).await?;
    let mut seat_key = state
        .hub
        .occupants(event_id)
        .into_iter()
        .find(|o| &*o.info.client_id == client.as_str())
        .map(|o| o.info.seat_key.to_string());
    if !state.hub.kick(event_id, &client) {
        // Held by another node: closed there.
        let remote = match &state.cluster {
            Some(node) => node.close_remote(event_id, &client, signaling::LeaveReason::Kicked).await,
            None => None,
        };
        let Some(member) = remote else {
            return Err(ApiError::not_found("not_in_room", "no such attendee in the room"));
        };
        seat_key = Some(member.seat_key);
    }
    // A kicked attendee may rejoin (and gets new TURN credentials then); the current ones stop now.
    if let Some(seat_key) = seat_key {
        state.revoke_turn(&seat_key);
    }
    state.store.audit(&ticketing::audit::AuditEntry::new(&actor, "room.kick").event(event_id).subject(&client)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/events/{id}/attendees/{client}/ban`: disconnects and invalidates the ticket for good.
#[utoipa::path(post, path = "/api/events/{id}/attendees/{client}/ban", tag = "rooms", params(("id" = String, Path, description = "The event's id"), ("client" = String, Path, description = "The attendee's client id in the room")),
    responses((status = 204, description = "Disconnected and the ticket invalidated"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn ban(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, client)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let event_id = client_path(&id, &client)?;
    let actor = require_host(&state, &headers, event_id).await?;
    ban_occupant(&state, event_id, &client, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The one ban operation, for the HTTP endpoint and a host's `ban` frame alike: the ticket is banned in the
/// store first (audited), so no node seats it again, even after a restart; then the peer is closed with 4003
/// and its TURN credentials stop.
pub(crate) async fn ban_occupant(state: &AppState, event_id: i64, client: &str, actor: &str) -> ApiResult<()> {
    let not_found = || ApiError::not_found("not_in_room", "no such attendee in the room");
    let local = state.hub.occupants(event_id).into_iter().find(|o| &*o.info.client_id == client);
    // Held here, or (with several nodes) by the node the roster names.
    let seat_key = match (&local, &state.cluster) {
        (Some(occupant), _) => occupant.info.seat_key.to_string(),
        (None, Some(node)) => node.locate(event_id, client).await.ok_or_else(not_found)?.seat_key,
        (None, None) => return Err(not_found()),
    };
    let ticket: i64 =
        seat_key.parse().map_err(|_| ApiError::conflict("cannot_ban_host", "the host cannot be banned"))?;
    state.store.ban_ticket(ticket, actor, now_ms()).await?;
    match (&local, &state.cluster) {
        (None, Some(node)) => {
            node.close_remote(event_id, client, signaling::LeaveReason::Banned).await;
        }
        _ => {
            state.hub.ban(event_id, client);
        }
    }
    state.revoke_turn(&seat_key);
    Ok(())
}

#[derive(Debug, Deserialize, Default)]
pub struct MuteBody {
    #[serde(default = "yes")]
    pub muted: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/events/{id}/attendees/{client}/mute`: every peer is told to mute that peer's audio, and its
/// audio renegotiation is refused.
#[utoipa::path(post, path = "/api/events/{id}/attendees/{client}/mute", tag = "rooms", params(("id" = String, Path, description = "The event's id"), ("client" = String, Path, description = "The attendee's client id in the room")),
    responses((status = 204, description = "Every peer told to mute that peer's audio"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn mute(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, client)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let event_id = client_path(&id, &client)?;
    let actor = require_host(&state, &headers, event_id).await?;
    // The body is optional: no body mutes.
    let muted = if body.is_empty() {
        true
    } else {
        serde_json::from_slice::<MuteBody>(&body)
            .map_err(|e| ApiError::unprocessable("invalid_body", e.to_string()))?
            .muted
    };
    if !state.hub.mute(event_id, &client, muted) {
        let remote = match &state.cluster {
            Some(node) => node.mute_remote(event_id, &client, muted).await,
            None => false,
        };
        if !remote {
            return Err(ApiError::not_found("not_in_room", "no such attendee in the room"));
        }
    }
    let entry = ticketing::audit::AuditEntry::new(&actor, if muted { "room.mute" } else { "room.unmute" })
        .event(event_id)
        .subject(&client);
    state.store.audit(&entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /naf-dlux-adapter.js`
pub async fn adapter_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")],
        signaling::NAF_ADAPTER_JS,
    )
}
