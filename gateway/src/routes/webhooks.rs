//! `PUT /api/creators/me/webhook`: where a creator's `joined`, `left` and `ticket_sold` callbacks go.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::auth::creator::CreatorSession;
use crate::error::{ApiError, ApiResult, Json};
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new().put("/api/creators/me/webhook", set_webhook)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// `https://…` (or `http://…`); `null` removes the webhook.
    pub url: Option<String>,
    /// At least 16 characters; the HMAC-SHA256 key of `X-Dlux-Signature`.
    pub secret: Option<String>,
}

/// Sets (or with `url: null` clears) the creator's webhook. Audited; the secret is never returned.
#[utoipa::path(put, path = "/api/creators/me/webhook", tag = "creators", request_body(content = inline(Object), description = "`{ url, secret? }`, or `{ url: null }` to clear"),
    responses((status = 204, description = "Set (the secret is never returned)"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn set_webhook(
    State(state): State<AppState>,
    session: CreatorSession,
    Json(body): Json<WebhookBody>,
) -> ApiResult<StatusCode> {
    let (url, secret) = match body.url {
        None => (None, None),
        Some(url) => {
            let parsed =
                reqwest::Url::parse(&url).map_err(|e| ApiError::unprocessable("invalid_url", e.to_string()))?;
            if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() || url.len() > 2048 {
                return Err(ApiError::unprocessable("invalid_url", "the webhook URL must be an http(s) URL"));
            }
            let secret = body.secret.unwrap_or_default();
            if secret.chars().count() < 16 || secret.len() > 256 {
                return Err(ApiError::unprocessable(
                    "invalid_secret",
                    "the webhook secret must be 16 to 256 characters",
                ));
            }
            (Some(url), Some(secret))
        }
    };
    state.store.ensure_creator(&session.account).await?;
    state.store.set_webhook(&session.account, url.as_deref(), secret.as_deref(), ticketing::now_ms()).await?;
    let action = if url.is_some() { "creator.webhook_set" } else { "creator.webhook_cleared" };
    state
        .store
        .audit(&ticketing::audit::AuditEntry::new(session.account.as_str(), action).subject(session.account.as_str()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
