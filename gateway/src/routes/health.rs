//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

/// The process is up and serving HTTP.
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(json!({ "status": "ok" })))
}

/// The gateway can do its work: the database answers and it is not shutting down.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.store.ping().await.is_ok();
    let shutting_down = state.shutdown.is_cancelled();
    let ready = database && !shutting_down;
    // Watchers are reported, not required: a chain's node being down must not take the rooms offline.
    let watchers = state.watchers.as_ref().map(|w| w.status()).unwrap_or_default();
    // …but a chain buyers are quoted on whose watcher is failing is named: their payments wait until it recovers.
    let unhealthy = crate::payments::payability::unhealthy_quotable_chains(&state.purchases, &watchers);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        axum::Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "checks": { "database": database, "accepting": !shutting_down },
            "watchers": watchers,
            "unhealthy_quotable_chains": unhealthy,
        })),
    )
}
