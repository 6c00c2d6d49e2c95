//! The stage and the shards from the creator's tools: invite a speaker onto the stage (seen and heard in every
//! shard) or take it off, post an announcement to every shard, and read each shard's occupancy, now and over time
//! (drawn by `charts.rs`).
//!
//! The same operations exist on the host's room WebSocket (`invite_to_stage`, `remove_from_stage`, `announce`;
//! docs/PROTOCOL.md); these endpoints let the dashboard do them without a scene open. Placement itself is the
//! signaling crate's (`signaling::shards`): this module only checks the creator and audits.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use signaling::{ShardError, ShardOccupancy};

use crate::auth::require_host;
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::routes::rooms::{client_path, event_id};
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new()
        .post("/api/events/{id}/stage/{client}", invite)
        .delete("/api/events/{id}/stage/{client}", remove)
        .post("/api/events/{id}/announcements", announce)
        .get("/api/events/{id}/shards", shards)
}

/// `POST /api/events/{id}/stage/{client}`: puts an attendee on the stage.
#[utoipa::path(post, path = "/api/events/{id}/stage/{client}", tag = "rooms", params(("id" = String, Path, description = "The event's id"), ("client" = String, Path, description = "The attendee's client id in the room")),
    responses((status = 204, description = "On the stage: seen and heard in every shard"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, client)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    set_stage(&state, &headers, &id, &client, true).await
}

/// `DELETE /api/events/{id}/stage/{client}`: takes a speaker off the stage, back into a shard.
#[utoipa::path(delete, path = "/api/events/{id}/stage/{client}", tag = "rooms", params(("id" = String, Path, description = "The event's id"), ("client" = String, Path, description = "The attendee's client id in the room")),
    responses((status = 204, description = "Off the stage, back in a shard"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, client)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    set_stage(&state, &headers, &id, &client, false).await
}

async fn set_stage(state: &AppState, headers: &HeaderMap, id: &str, client: &str, on: bool) -> ApiResult<StatusCode> {
    let event_id = client_path(id, client)?;
    let actor = require_host(state, headers, event_id).await?;
    let placed = match &state.cluster {
        // The broker holds the shard table; the node holding the attendee applies its decision.
        Some(node) => node.change_placement(event_id, client, signaling::PlacementChange::Stage(on), None).await,
        None => state.hub.set_stage(event_id, client, on, None),
    };
    placed.map_err(stage_error)?;
    let action = if on { "room.stage_invite" } else { "room.stage_remove" };
    state.store.audit(&ticketing::audit::AuditEntry::new(&actor, action).event(event_id).subject(client)).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn stage_error(error: ShardError) -> ApiError {
    match error {
        ShardError::NotInRoom => ApiError::not_found("not_in_room", "no such attendee in the room"),
        ShardError::Forbidden => ApiError::conflict("host_always_on_stage", "a host is always on the stage"),
        other => ApiError::conflict("shard_full", other.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnouncementBody {
    pub text: String,
}

/// `POST /api/events/{id}/announcements`: a line to every shard of the live event (`announcement` frames).
#[utoipa::path(post, path = "/api/events/{id}/announcements", tag = "rooms", params(("id" = String, Path, description = "The event's id")),
    request_body(content = inline(Object), description = "`{ text }`: 1 to the room's chat limit in characters"),
    responses((status = 204, description = "Sent to every shard"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn announce(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<AnnouncementBody>,
) -> ApiResult<StatusCode> {
    let event_id = event_id(&id)?;
    let actor = require_host(&state, &headers, event_id).await?;
    let text = body.text.trim();
    let max = state.hub.config().max_chat_chars;
    if text.is_empty() || text.chars().count() > max {
        return Err(ApiError::unprocessable(
            "invalid_announcement",
            format!("an announcement is 1 to {max} characters"),
        ));
    }
    if !state.hub.announce(event_id, None, text) {
        return Err(ApiError::conflict("room_not_open", "nobody is in the event's room"));
    }
    let entry = ticketing::audit::AuditEntry::new(&actor, "room.announce")
        .event(event_id)
        .detail(serde_json::json!({ "text": text }));
    state.store.audit(&entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
pub struct Shards {
    /// Attendees off stage per open shard now (this node's rooms).
    pub live: Vec<ShardOccupancy>,
    /// Members on the stage now, by client id.
    pub stage: Vec<String>,
    /// Sessions and tickets per shard over the event so far (attendance rows).
    pub history: Vec<ticketing::attendance::ShardAttendance>,
    /// Attendees present per shard, minute by minute (attendance rows; `ticketing::analytics::shard_timeline`).
    pub over_time: ticketing::analytics::ShardTimeline,
}

/// `GET /api/events/{id}/shards`: occupancy per shard, now and over the event.
#[utoipa::path(get, path = "/api/events/{id}/shards", tag = "rooms", params(("id" = String, Path, description = "The event's id")),
    responses((status = 200, description = "`{ live, stage, history, over_time }`: attendees per open shard now, the stage's members, sessions and tickets per shard so far, attendees present per shard per minute"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn shards(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Shards>> {
    let event_id = event_id(&id)?;
    require_host(&state, &headers, event_id).await?;
    // On the stage here and, with several nodes, on the others (as mirrored here).
    let stage = state
        .hub
        .occupants(event_id)
        .into_iter()
        .filter(|o| o.stage)
        .map(|o| o.info.client_id.to_string())
        .chain(state.hub.remote_occupants(event_id).into_iter().filter(|o| o.stage).map(|o| o.client_id.to_string()))
        .collect();
    let history = state.store.attendance_by_shard(event_id).await?;
    // With several nodes the live head count is the broker's (this node holds only its own peers).
    let live = match &state.cluster {
        Some(node) => match node.placements.occupancy(event_id).await {
            Ok(open) => open.into_iter().map(|(shard, attendees)| ShardOccupancy { shard, attendees }).collect(),
            Err(_) => state.hub.shard_occupancy(event_id),
        },
        None => state.hub.shard_occupancy(event_id),
    };
    let over_time = state.store.shard_timeline(event_id, ticketing::now_ms()).await?;
    Ok(Json(Shards { live, stage, history, over_time }))
}
