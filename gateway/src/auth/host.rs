//! Who may run a room: the event's creator, signed in, or an operator with the admin token. Used by every host
//! action (the host's join, the attendee list and feed, kick, ban, mute, the stage, announcements).

use axum::http::HeaderMap;

use super::{bearer, creator, AdminUser};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Only the event's creator (with a creator session) or an operator (admin token) may run a room.
pub async fn require_host(state: &AppState, headers: &HeaderMap, event_id: i64) -> ApiResult<String> {
    if let Some(token) = bearer(headers) {
        if state.settings.admin_token.as_deref().is_some_and(|t| t == token) {
            AdminUser::from_headers(state, headers)?;
            return Ok("admin".into());
        }
    }
    let session = creator::authenticate(state, headers).await?;
    let creator = state.store.event(event_id).await?.map(|event| event.creator_account);
    match creator {
        None => Err(ApiError::not_found("event_not_found", "no such event")),
        Some(c) if c == session.account.as_str() => Ok(c),
        Some(_) => Err(ApiError::forbidden("not_host", "only the event's creator can do this")),
    }
}
