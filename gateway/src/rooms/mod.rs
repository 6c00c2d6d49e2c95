//! The presence WebSocket, `/event/{id}`: authenticate, seat, relay, leave.
//!
//! A connection proves itself either with the single-use `session_token` from the join endpoint
//! (`?token=…`) or with a wallet signature in its first frame within `auth_timeout`. Nothing is relayed to or
//! from it before it is seated. Seating checks, in order: a valid ticket for this event (4403), the event's
//! window (4410, with the opening time), and the room's capacity (4409, in memory; hosts do not count).
//! Then frames flow through the [`signaling`] crate until either side leaves. The close codes are the table
//! in docs/PROTOCOL.md.

pub mod resume;
pub mod state;

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::Response;
use futures_util::SinkExt;
use serde::Deserialize;
use signaling::batch::Framing;
use signaling::{Admission, CloseCode, Flusher, LeaveReason, Outbound, Role};
use ticketing::attendance::{Refusal, Seat};
use ticketing::now_ms;

use crate::auth::access::AccessRequest;
use crate::auth::session_token;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct SocketQuery {
    pub token: Option<String>,
    /// A resume token instead (`resume.rs`), with how many frames of the session the client read.
    pub resume: Option<String>,
    pub received: Option<u64>,
    /// The presence protocol version the client speaks (docs/PROTOCOL.md); 2 and later unpack `batch` frames.
    pub protocol: Option<u32>,
    /// A group code friends share: they are placed in the same shard while it has room (`signaling::shards`).
    pub group: Option<String>,
}

/// The first frame of a connection that authenticates with its wallet instead of a session token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFrame {
    /// Always `auth`.
    #[serde(rename = "type")]
    kind: String,
    chain: String,
    wallet: String,
    signature: String,
    message: Option<String>,
    timestamp: Option<i64>,
}

/// A refusal at the door: the close code and its reason text.
pub(crate) struct Denied(pub(crate) u16, pub(crate) String);

impl Denied {
    pub(crate) fn code(code: CloseCode, reason: impl Into<String>) -> Self {
        Denied(code.code(), reason.into())
    }
}

/// `GET /event/{id}` (WebSocket upgrade).
pub async fn event_socket(
    State(state): State<AppState>,
    Path(event): Path<String>,
    Query(query): Query<SocketQuery>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let max = state.hub.config().max_frame_bytes;
    // The transport limit sits above the protocol's so an oversized frame gets signaling's precise 1009.
    // tungstenite's default 128 KiB read buffer per socket would cost an idle room of 50,000 seats 6 GiB;
    // NAF frames are a few hundred bytes, and the buffer still grows for a large one.
    let ws = ws.max_message_size(max * 2).max_frame_size(max * 2).read_buffer_size(4 * 1024);
    let tracker = state.connections.clone();
    let framing = signaling::batch::Framing::for_version(query.protocol);
    ws.on_upgrade(move |socket| tracker.track_future(serve(state, socket, event, query, remote, framing)))
}

/// A seated connection, by a join or by a resume.
pub(crate) struct Admitted {
    pub(crate) peer: signaling::Peer,
    pub(crate) outbox: signaling::Outbox,
    pub(crate) role: Role,
    pub(crate) event_end: i64,
    pub(crate) client_id: String,
}

#[tracing::instrument(name = "room", skip_all, fields(event_id = %event, client_id))]
async fn serve(
    state: AppState,
    mut socket: WebSocket,
    event: String,
    query: SocketQuery,
    remote: SocketAddr,
    framing: Framing,
) {
    let Some(event_id) = event.parse::<i64>().ok().filter(|id| *id > 0) else {
        return close(&mut socket, Denied::code(CloseCode::Malformed, "no such event id")).await;
    };
    let admitted = match &query.resume {
        Some(token) => crate::rooms::resume::admit(&state, event_id, token, query.received.unwrap_or(0)).await,
        None => admit(&state, &mut socket, event_id, query.token, query.group, remote).await,
    };
    let Admitted { mut peer, mut outbox, role, event_end, client_id } = match admitted {
        Ok(admitted) => admitted,
        Err(denied) => {
            state.metrics.ws_rejections.get_or_create(&crate::metrics::CodeLabels { code: denied.0 }).inc();
            state.metrics.join("socket", &denied.0.to_string());
            return close(&mut socket, denied).await;
        }
    };
    tracing::Span::current().record("client_id", client_id.as_str());
    state.metrics.join("socket", if query.resume.is_some() { "resumed" } else { "admitted" });
    let idle_after = Duration::from_secs(state.settings.rooms.idle_timeout_secs);
    let mut ping = tokio::time::interval(Duration::from_secs(state.settings.rooms.ping_interval_secs));
    let mut last_heard = Instant::now();
    // The event's end closes the room for everyone still in it.
    let until_end = Duration::from_millis(u64::try_from(event_end - now_ms()).unwrap_or(0));
    let event_end = tokio::time::sleep(until_end);
    tokio::pin!(event_end);
    // A host's connection also carries the event's live feed as `feed` frames.
    let mut feed = (role == Role::Host).then(|| state.feed.subscribe());
    // Voice through the SFU when the room uses it (`media_plane.rs`): its frames are written beside the hub's.
    let occupants = state.hub.occupancy(event_id).map_or(1, |o| (o.attendees + o.hosts) as usize);
    let mut media = state.media.attach(&state.hub, event_id, &client_id, role, occupants);
    // Grows to the largest batch this connection has seen; an idle seat never allocates it.
    let mut batch = Vec::new();
    // Set when the connection dropped rather than closed: the seat then waits for a resume (`resume.rs`).
    let mut dropped = None;
    // Writes on the shared flush tick, everything owed at once (`[signaling] flush_interval_ms`).
    let mut flusher = Flusher::new(Duration::from_millis(state.hub.config().flush_interval_ms));
    // The welcome (and the snapshot queued with it) is written at once, not on the next tick: it must be the
    // connection's first frame, before any feed or media frame written beside the outbox, and a join should not
    // wait for the tick.
    if outbox.take_ready(&mut batch, WRITE_BATCH).is_some_and(|taken| taken > 0)
        && write_batch(&mut socket, &mut batch, framing).await.is_break()
    {
        dropped = Some(LeaveReason::Left);
    }
    while dropped.is_none() {
        tokio::select! {
            frame = media.next_frame() => {
                let Some(frame) = frame else { continue };
                if socket.send(Message::Text(frame.into())).await.is_err() {
                    dropped = Some(LeaveReason::Left);
                    break;
                }
            }
            item = next_feed_frame(&mut feed, event_id) => {
                let Some(frame) = item else { continue };
                if socket.send(Message::Text(frame.into())).await.is_err() {
                    dropped = Some(LeaveReason::Left);
                    break;
                }
            }
            taken = flusher.next_batch(&mut outbox, &mut batch, WRITE_BATCH) => {
                if taken == 0 || write_batch(&mut socket, &mut batch, framing).await.is_break() {
                    // A peer the room closed (kicked, superseded, …) is no longer held: suspending it is a no-op.
                    dropped = Some(LeaveReason::Left);
                    break;
                }
            }
            inbound = socket.recv() => {
                last_heard = Instant::now();
                match inbound {
                    Some(Ok(Message::Text(text))) => match signaling::protocol::SfuClientMessage::parse(&text) {
                        // Within the size limit and the rate bucket of any frame; a peer closed for it is
                        // ended by the loop as for NAF's frames.
                        Some(message) if peer.admit(text.len()).is_continue() => {
                            let muted = state.hub.occupants(event_id).iter().any(|o| o.muted && o.info.client_id.as_ref() == client_id);
                            state.media.handle(&media, message, muted).await;
                        }
                        Some(_) => {}
                        None => { let _ = peer.handle_text(&text); }
                    },
                    Some(Ok(Message::Binary(data))) => { let _ = peer.handle_binary(data.len()); }
                    Some(Ok(Message::Close(_))) => {
                        // The WebSocket layer queued the answering close frame; flushing sends it, so a client
                        // that closed with 1000 sees 1000 echoed rather than 1006.
                        let _ = socket.flush().await;
                        break;
                    }
                    Some(Err(err)) => {
                        // A violation of RFC 6455 gets the close code the RFC names for it before the TCP
                        // connection goes; a vanished peer gets nothing, there is nobody to tell.
                        if let Some((code, reason)) = violation_close(err) {
                            let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                            // Lingering close, as nginx does: the rest of an oversized frame is still unread, and
                            // closing a socket with unread data sends a reset that can destroy the close frame
                            // before the client reads it.
                            tokio::time::sleep(VIOLATION_LINGER).await;
                        } else {
                            dropped = Some(LeaveReason::Left);
                        }
                        break;
                    }
                    None => {
                        dropped = Some(LeaveReason::Left);
                        break;
                    }
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > idle_after {
                    dropped = Some(LeaveReason::TimedOut);
                    break;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    dropped = Some(LeaveReason::Left);
                    break;
                }
            }
            _ = &mut event_end => {
                peer.leave(LeaveReason::EventEnded);
            }
        }
    }
    match dropped {
        // The seat, client id and what the peer is owed wait `resume_window_secs` for a resume.
        Some(reason) => peer.suspend(reason),
        // Dropping the peer leaves the room with `left` unless a reason was already recorded.
        None => drop(peer),
    }
}

/// The door for a join: authenticate (session token or wallet signature), check the ticket, seat.
async fn admit(
    state: &AppState,
    socket: &mut WebSocket,
    event_id: i64,
    token: Option<String>,
    group: Option<String>,
    remote: SocketAddr,
) -> Result<Admitted, Denied> {
    let seat = authenticate(state, socket, event_id, token, remote).await?;
    let client_id = uuid::Uuid::new_v4().simple().to_string();
    let (role, seat_key) = match seat.ticket_id {
        Some(ticket) => (Role::Attendee, ticket.to_string()),
        None => (Role::Host, format!("host:{}", seat.wallet)),
    };
    let admission = Admission {
        room_id: event_id,
        client_id,
        identity: seat.wallet.clone(),
        role,
        seat_key,
        capacity: u32::try_from(seat.capacity).unwrap_or(u32::MAX),
    };
    if let Some(geo) = &state.geo {
        geo.tag(&admission.client_id, remote.ip());
    }
    let client_id = admission.client_id.clone();
    // The room's persistent entities go to the joiner in its snapshot: after a restart they come from the store.
    crate::rooms::state::ensure_loaded(state, event_id).await;
    // Placed in a shard of at most the event's `shard_size` attendees; the host is on the stage, in every shard.
    let mut placement = signaling::Placement {
        shard_size: u32::try_from(seat.shard_size).unwrap_or(0),
        group: group.filter(|g| !g.trim().is_empty()),
        stage: role == Role::Host,
        decided: None,
    };
    // With several nodes the seat is claimed cluster-wide first: the room's capacity, one session per ticket and
    // the shards hold across nodes (`cluster_node`); the hub admits where the claim placed it.
    if let Some(node) = &state.cluster {
        match node.claim_seat(&admission, &placement).await {
            Ok(placed) => placement.decided = Some(placed),
            Err(denied) => {
                if let Some(geo) = &state.geo {
                    geo.take(&client_id);
                }
                return Err(denied);
            }
        }
    }
    let (peer, outbox) = match state.hub.try_admit_placed(admission, &placement) {
        Ok(admitted) => admitted,
        Err(refused) => {
            if let Some(node) = &state.cluster {
                node.seat_unused(event_id, &client_id).await;
            }
            if let Some(geo) = &state.geo {
                geo.take(&client_id);
            }
            let frame = refused.close_frame();
            return Err(Denied(frame.code, frame.reason));
        }
    };
    let mut peer = peer;
    if let Some(node) = &state.cluster {
        if !node.still_holds(event_id, &client_id).await {
            // Superseded on another node while this one was seating it: the welcome is followed by 4000.
            peer.leave(LeaveReason::Superseded);
        }
    }
    Ok(Admitted { peer, outbox, role, event_end: seat.event_end, client_id })
}

/// How long a connection closed for a protocol violation stays open for its close frame to be read.
const VIOLATION_LINGER: Duration = Duration::from_millis(250);

/// The close frame owed for a broken frame: 1002 protocol error, 1007 invalid UTF-8, 1009 too big. `None` for
/// transport errors (the peer is gone).
fn violation_close(err: axum::Error) -> Option<(u16, &'static str)> {
    use tungstenite::Error;
    match err.into_inner().downcast::<Error>().ok().map(|e| *e) {
        // The TCP connection went without a close frame: a vanished peer (a drop), not a broken frame.
        Some(Error::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake)) => None,
        Some(Error::Protocol(_)) => Some((1002, "protocol error")),
        Some(Error::Utf8(_)) => Some((1007, "invalid UTF-8 in a text frame")),
        Some(Error::Capacity(_)) => Some((1009, "frame too large")),
        _ => None,
    }
}

/// Close codes for what a client sent (a flood, an oversized or malformed frame): such a client is likely still
/// sending, so its connection lingers after the close frame (see [`linger`]).
const CLOSED_FOR_WHAT_IT_SENT: [u16; 3] = [4429, 1009, 4400];

/// After a close the server began: what the client still sends is read and dropped until its answering close (or
/// [`VIOLATION_LINGER`]), as nginx's lingering close does. Closing a socket with unread data sends a reset, which
/// can destroy the close frame before the client reads it, so a flooding client would see a reset, not 4429.
async fn linger(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(VIOLATION_LINGER, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Most frames taken from the outbox for one write: about 50 KiB of NAF updates, under tungstenite's
/// 128 KiB write buffer, so a batch leaves in one `write(2)`.
const WRITE_BATCH: usize = 128;

/// Writes frames taken from the outbox and flushes once: one system call for the lot instead of one per
/// frame. `Break` after a close frame or when the socket failed.
async fn write_batch(socket: &mut WebSocket, batch: &mut Vec<Outbound>, framing: Framing) -> ControlFlow<()> {
    // A client speaking protocol 2 gets the lot as one `batch` frame.
    signaling::batch::pack(batch, framing);
    for out in batch.drain(..) {
        let message = match out {
            // signaling encodes with serde_json, so this never fails; the check is the price of axum's safe type.
            Outbound::Text(bytes) => match Utf8Bytes::try_from(bytes) {
                Ok(text) => Message::Text(text),
                Err(_) => continue,
            },
            Outbound::Close(frame) => {
                // `send` flushes what was fed before it, then the close frame; nothing follows a close.
                let code = frame.code;
                let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: frame.reason.into() }))).await;
                if CLOSED_FOR_WHAT_IT_SENT.contains(&code) {
                    linger(socket).await;
                }
                return ControlFlow::Break(());
            }
        };
        if socket.feed(message).await.is_err() {
            return ControlFlow::Break(());
        }
    }
    if socket.flush().await.is_err() {
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(())
}

/// The next `{"type":"feed",…}` frame for this event's host; never resolves for attendees.
async fn next_feed_frame(
    feed: &mut Option<tokio::sync::broadcast::Receiver<crate::live::attendance::FeedItem>>,
    event_id: i64,
) -> Option<String> {
    use tokio::sync::broadcast::error::RecvError;
    let Some(rx) = feed.as_mut() else { return std::future::pending().await };
    match rx.recv().await {
        Ok(item) if item.event_id == event_id => {
            let mut frame = serde_json::to_value(&item).ok()?;
            frame.as_object_mut()?.insert("type".into(), "feed".into());
            Some(frame.to_string())
        }
        Ok(_) => None,
        Err(RecvError::Lagged(n)) => {
            Some(serde_json::json!({ "type": "feed", "kind": "lagged", "event_id": event_id, "missed": n }).to_string())
        }
        Err(RecvError::Closed) => {
            *feed = None;
            None
        }
    }
}

async fn authenticate(
    state: &AppState,
    socket: &mut WebSocket,
    event_id: i64,
    token: Option<String>,
    remote: SocketAddr,
) -> Result<Seat, Denied> {
    let now = now_ms();
    let early = i64::try_from(state.settings.rooms.early_open_secs).unwrap_or(0) * 1000;
    let unavailable = |_| Denied(1011, "the database did not answer".into());
    if state.shutdown.is_cancelled() {
        return Err(Denied::code(CloseCode::Shutdown, "server shutting down"));
    }
    let decision = if let Some(token) = token {
        let claims = session_token::verify(state.secret.bytes(), &token, event_id, now)
            .map_err(|e| Denied::code(CloseCode::Unauthorized, e.to_string()))?;
        if !state
            .store
            .spend_once(&claims.jti, "session_token", Some(event_id), None, claims.exp, now)
            .await
            .map_err(unavailable)?
        {
            return Err(Denied::code(CloseCode::Unauthorized, "session token already used"));
        }
        match (claims.ticket_id, &claims.host) {
            (Some(ticket), _) => {
                state.store.check_ticket_admission(event_id, ticket, now, early).await.map_err(unavailable)?
            }
            (None, Some(host)) => {
                state.store.check_host_admission(event_id, host, now, early).await.map_err(unavailable)?
            }
            (None, None) => return Err(Denied::code(CloseCode::Unauthorized, "session token names no seat")),
        }
    } else {
        let timeout = Duration::from_secs(state.settings.rooms.auth_timeout_secs);
        let frame = match tokio::time::timeout(timeout, socket.recv()).await {
            Err(_) => return Err(Denied::code(CloseCode::Unauthorized, "no credentials within the time allowed")),
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(_) => return Err(Denied::code(CloseCode::Malformed, "expected an auth frame")),
        };
        let auth: AuthFrame = serde_json::from_str(&frame)
            .ok()
            .filter(|a: &AuthFrame| a.kind == "auth")
            .ok_or_else(|| Denied::code(CloseCode::Malformed, "the first frame must be {\"type\":\"auth\",…}"))?;
        let request = AccessRequest {
            event_id,
            chain: &auth.chain,
            wallet: &auth.wallet,
            message: auth.message.as_deref(),
            timestamp: auth.timestamp,
            signature: &auth.signature,
            remote: Some(remote.ip()),
        };
        let verified = state.access.verify(request, now).await.map_err(|e| Denied(e.ws_close_code(), e.to_string()))?;
        let ticket = state
            .store
            .valid_ticket_for_wallet(event_id, verified.chain.as_str(), &verified.wallet)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| Denied::code(CloseCode::NoTicket, "no ticket for this wallet"))?;
        state.store.check_ticket_admission(event_id, ticket, now, early).await.map_err(unavailable)?
    };
    decision.map_err(refusal_close)
}

/// The close frame for a refusal at the door.
pub(crate) fn refusal_close(refusal: Refusal) -> Denied {
    match refusal {
        Refusal::NoTicket => Denied::code(CloseCode::NoTicket, "no valid ticket for this event"),
        Refusal::TicketInvalid(status) => Denied::code(CloseCode::NoTicket, format!("ticket {status}")),
        Refusal::EventCancelled => Denied::code(CloseCode::NoTicket, "event cancelled"),
        Refusal::NotYetOpen { opens_at } => Denied::code(
            CloseCode::NotLive,
            format!("not live yet: opens at {}", crate::routes::purchases::rfc3339(opens_at)),
        ),
        Refusal::Ended => Denied::code(CloseCode::NotLive, "event ended"),
    }
}

pub(crate) async fn close(socket: &mut WebSocket, Denied(code, reason): Denied) {
    let reason: String = truncate(&reason, 123);
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

/// Close reasons are limited to 123 bytes; cut on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
