//! Creators: sign-in with a Hive signature, public profiles with ratings and events, profile edits, and a
//! creator's own events with their sales. How sign-in works is in [`crate::auth::creator`].

use axum::extract::State;
use serde::{Deserialize, Serialize};
use ticketing::creators::{AccountName, ProfileUpdate};
use ticketing::events::{EventListing, EventStatus};
use utoipa::{IntoParams, ToSchema};

use crate::auth::creator::{self, issue_session, CreatorSession, IssuedChallenge};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::routes::events::{rfc3339, EventView, Money, RatingView};
use crate::state::AppState;

pub const DISPLAY_NAME_MAX: usize = 64;
pub const BIO_MAX: usize = 2_000;
pub const LINKS_MAX: usize = 10;
pub const URL_MAX: usize = 2_048;

pub fn router() -> super::Table {
    super::Table::new()
        .get("/api/creators/login/challenge", login_challenge)
        .post("/api/creators/login", login)
        .put("/api/creators/me/profile", update_profile)
        .get("/api/creators/me/events", my_events)
        .get("/api/creators/{account}", profile)
}

fn parse_account(text: &str) -> ApiResult<AccountName> {
    AccountName::parse(text.trim()).map_err(|e| ApiError::unprocessable("invalid_account", e.to_string()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChallengeParams {
    /// The Hive account that will sign.
    pub account: String,
}

/// A sign-in challenge for a Hive account: sign `message` with the account's posting key within five minutes.
#[utoipa::path(get, path = "/api/creators/login/challenge", params(ChallengeParams),
    responses((status = 200, body = IssuedChallenge), (status = 422, description = "`invalid_account`"),
        (status = 429, description = "`rate_limited`, with `Retry-After`")))]
pub async fn login_challenge(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Query(params): Query<ChallengeParams>,
) -> ApiResult<Json<IssuedChallenge>> {
    // Issuing writes a row and needs no authentication: the same per-address budget as access challenges.
    state.access.admit_challenge(Some(remote.ip()))?;
    let account = parse_account(&params.account)?;
    Ok(Json(creator::issue_challenge(&state, &account, &remote.ip().to_string(), ticketing::now_ms()).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub account: String,
    /// The challenge text exactly as issued.
    pub message: String,
    /// Hive compact signature (hex) over the message, by the account's posting or active key.
    pub signature: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub token: String,
    pub token_type: &'static str,
    pub account: String,
    pub tier: String,
    pub expires_at: String,
}

/// Exchange a signed challenge for a session token (one hour).
#[utoipa::path(post, path = "/api/creators/login", request_body = LoginBody,
    responses((status = 200, body = Session),
              (status = 401, description = "`challenge_used`, `unknown_challenge`, `challenge_expired`, `wrong_signer`, …")))]
pub async fn login(State(state): State<AppState>, Json(body): Json<LoginBody>) -> ApiResult<Json<Session>> {
    let now = ticketing::now_ms();
    let account = parse_account(&body.account)?;
    creator::login_with_message(&state, &account, &body.message, &body.signature, now).await?;
    let creator = state.store.ensure_creator(&account).await?;
    let (token, expires_at) = issue_session(state.secret.bytes(), &account, now);
    Ok(Json(Session {
        token,
        token_type: "Bearer",
        account: account.to_string(),
        tier: creator.effective_tier(now).to_string(),
        expires_at: rfc3339(expires_at),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    pub account: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub links: Vec<String>,
    pub rating: RatingView,
    /// Published events not yet over (on sale or live), soonest first.
    pub upcoming_events: Vec<EventView>,
    /// Events that have ended, most recent first.
    pub past_events: Vec<EventView>,
}

/// A creator's public profile: who they are, how they are rated, and their events.
#[utoipa::path(get, path = "/api/creators/{account}", params(("account" = String, Path)),
    responses((status = 200, body = ProfileView), (status = 404, description = "`creator_not_found`")))]
pub async fn profile(State(state): State<AppState>, Path(account): Path<String>) -> ApiResult<Json<ProfileView>> {
    let now = ticketing::now_ms();
    let account = parse_account(&account)?;
    let creator = state
        .store
        .creator(&account)
        .await?
        .ok_or_else(|| ApiError::not_found("creator_not_found", "no such creator"))?;
    let rating = state.store.creator_rating(&account).await?;
    let mut upcoming_events = Vec::new();
    let mut past_events = Vec::new();
    for event in state.store.events_by_creator(&account).await? {
        let status = event.status_at(now);
        let listing =
            EventListing { event, creator_display_name: creator.display_name.clone(), creator_rating: rating };
        match status {
            EventStatus::Published | EventStatus::Live => {
                upcoming_events.push(EventView::load(&state, &listing, now).await)
            }
            EventStatus::Ended => past_events.push(EventView::load(&state, &listing, now).await),
            EventStatus::Draft | EventStatus::Cancelled => {}
        }
    }
    past_events.reverse();
    Ok(Json(ProfileView {
        account: creator.account,
        display_name: creator.display_name,
        bio: creator.bio,
        avatar_url: creator.avatar_url,
        links: creator.links,
        rating: rating.into(),
        upcoming_events,
        past_events,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub links: Option<Vec<String>>,
}

fn is_web_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= URL_MAX
        && !url.contains(char::is_whitespace)
}

impl ProfileBody {
    fn parse(self) -> ApiResult<ProfileUpdate> {
        let trim = |s: Option<String>| s.map(|s| s.trim().to_owned());
        let display_name = trim(self.display_name);
        if display_name.as_ref().is_some_and(|n| n.chars().count() > DISPLAY_NAME_MAX) {
            return Err(ApiError::unprocessable(
                "display_name_too_long",
                format!("at most {DISPLAY_NAME_MAX} characters"),
            ));
        }
        let bio = trim(self.bio);
        if bio.as_ref().is_some_and(|b| b.chars().count() > BIO_MAX) {
            return Err(ApiError::unprocessable("bio_too_long", format!("at most {BIO_MAX} characters")));
        }
        let avatar_url = trim(self.avatar_url);
        if avatar_url.as_deref().is_some_and(|u| !u.is_empty() && !is_web_url(u)) {
            return Err(ApiError::unprocessable("invalid_avatar_url", "avatar_url must be an http(s) URL"));
        }
        if let Some(links) = &self.links {
            if links.len() > LINKS_MAX {
                return Err(ApiError::unprocessable("too_many_links", format!("at most {LINKS_MAX} links")));
            }
            if let Some(bad) = links.iter().find(|l| !is_web_url(l)) {
                return Err(ApiError::unprocessable("invalid_link", format!("`{bad}` is not an http(s) URL")));
            }
        }
        Ok(ProfileUpdate { display_name, bio, avatar_url, links: self.links })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnProfile {
    pub account: String,
    pub tier: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub links: Vec<String>,
}

/// Edit the signed-in creator's profile; absent fields keep their value.
#[utoipa::path(put, path = "/api/creators/me/profile", request_body = ProfileBody,
    responses((status = 200, body = OwnProfile), (status = 422, description = "the broken rule's code")),
    security(("creator" = [])))]
pub async fn update_profile(
    State(state): State<AppState>,
    session: CreatorSession,
    Json(body): Json<ProfileBody>,
) -> ApiResult<Json<OwnProfile>> {
    let update = body.parse()?;
    let creator = state.store.update_profile(&session.account, &update).await?;
    Ok(Json(OwnProfile {
        tier: creator.effective_tier(ticketing::now_ms()).to_string(),
        account: creator.account,
        display_name: creator.display_name,
        bio: creator.bio,
        avatar_url: creator.avatar_url,
        links: creator.links,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Sales {
    pub tickets_sold: i64,
    pub seats_held: i64,
    pub seats_left: i64,
    /// Paid for valid tickets, by currency.
    pub revenue: Vec<Money>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnEvent {
    pub event: EventView,
    pub sales: Sales,
}

/// The signed-in creator's events (drafts and cancelled ones too) with their sales figures.
#[utoipa::path(get, path = "/api/creators/me/events",
    responses((status = 200, body = [OwnEvent])), security(("creator" = [])))]
pub async fn my_events(State(state): State<AppState>, session: CreatorSession) -> ApiResult<Json<Vec<OwnEvent>>> {
    let now = ticketing::now_ms();
    let creator = state.store.ensure_creator(&session.account).await?;
    let rating = state.store.creator_rating(&session.account).await?;
    let mut sales = state.store.creator_sales(&session.account).await?;
    let mut out = Vec::new();
    for event in state.store.events_by_creator(&session.account).await? {
        let figures = Sales {
            tickets_sold: event.tickets_sold,
            seats_held: event.seats_held,
            seats_left: event.seats_left(),
            revenue: sales.remove(&event.id).unwrap_or_default().into_iter().map(Money::from).collect(),
        };
        let listing =
            EventListing { event, creator_display_name: creator.display_name.clone(), creator_rating: rating };
        out.push(OwnEvent { event: EventView::load(&state, &listing, now).await, sales: figures });
    }
    Ok(Json(out))
}
