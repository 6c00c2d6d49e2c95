//! Operator endpoints, protected by the admin token.

use axum::extract::State;
use serde::Deserialize;
use ticketing::creators::{AccountName, Creator, Tier};

use crate::auth::AdminUser;
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTierBody {
    pub tier: String,
    /// RFC 3339 time the subscription lapses; absent for no expiry.
    pub until: Option<String>,
}

/// `PUT /api/admin/creators/{account}/tier`
#[utoipa::path(put, path = "/api/admin/creators/{account}/tier", tag = "admin", params(("account" = String, Path)), request_body(content = inline(Object), description = "`{ tier, until? }`"),
    responses((status = 200, description = "The creator with the new tier"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("admin" = [])))]
pub async fn set_tier(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(account): Path<String>,
    Json(body): Json<SetTierBody>,
) -> ApiResult<Json<CreatorView>> {
    let account =
        AccountName::parse(&account).map_err(|e| ApiError::unprocessable("invalid_account", e.to_string()))?;
    let tier: Tier = body
        .tier
        .parse()
        .map_err(|e: ticketing::creators::UnknownTier| ApiError::unprocessable("invalid_tier", e.to_string()))?;
    let until = body.until.as_deref().map(parse_time).transpose()?;
    if until.is_some_and(|until| until <= ticketing::now_ms()) {
        return Err(ApiError::unprocessable(
            "until_in_past",
            "`until` is in the past: a subscription ends in the future",
        ));
    }
    let creator = state.store.set_tier(&account, tier, until, "admin-api").await?;
    Ok(Json(CreatorView::from(creator)))
}

/// Parses an RFC 3339 time into unix milliseconds.
pub fn parse_time(text: &str) -> ApiResult<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::unprocessable("invalid_time", format!("`{text}` is not an RFC 3339 time")))
}

/// A creator as the admin API shows it: the store's record with `tier_until` in RFC 3339 (`crate::http::time`).
#[derive(Debug, serde::Serialize)]
pub struct CreatorView {
    pub account: String,
    pub tier: Tier,
    #[serde(serialize_with = "crate::http::time::serialize_opt_ms_as_rfc3339")]
    pub tier_until: Option<i64>,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub links: Vec<String>,
}

impl From<Creator> for CreatorView {
    fn from(c: Creator) -> Self {
        Self {
            account: c.account,
            tier: c.tier,
            tier_until: c.tier_until,
            display_name: c.display_name,
            bio: c.bio,
            avatar_url: c.avatar_url,
            links: c.links,
        }
    }
}
