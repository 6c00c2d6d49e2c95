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
    // With several nodes, the broker: while it is away this node still serves its own peers (degraded, not
    // unready), but nobody on other nodes sees them and new joins are refused.
    let broker = state.cluster.as_ref().map(|node| node.broker_up());
    let nodes = state.cluster.as_ref().map(|node| node.live_nodes());
    let label = match (ready, broker) {
        (false, _) => "not_ready",
        (true, Some(false)) => "degraded",
        (true, _) => "ready",
    };
    (
        status,
        axum::Json(json!({
            "status": label,
            "checks": { "database": database, "accepting": !shutting_down, "broker": broker },
            // With several nodes: the live nodes this one knows of from their heartbeats, itself included.
            "nodes": nodes,
            "watchers": watchers,
            "unhealthy_quotable_chains": unhealthy,
        })),
    )
}
