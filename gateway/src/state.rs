//! The state every handler shares.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::configuration::{Secret, Settings};
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub store: ticketing::Store,
    /// USD per unit of each currency (cached upstream, or a static table offline).
    pub rates: Arc<dyn ticketing::rates::RateSource>,
    /// Quotes, payments, tickets and the ledger.
    pub purchases: ticketing::purchases::Purchases,
    /// Hive account keys (posting/active), for creator sign-in and Hive wallet signatures.
    pub hive_keys: Arc<dyn chains::signature::HiveKeySource>,
    pub metrics: Arc<Metrics>,
    /// Sales and refund totals for `/metrics`, re-read from the store at scrape time.
    pub sales: crate::exporters::SalesCollector,
    /// The rooms of this node.
    pub hub: signaling::Hub,
    /// This node's part in a cluster (`[cluster]`); `None` when it is the only node.
    pub cluster: Option<Arc<crate::cluster_node::ClusterNode>>,
    /// Every WebSocket connection task, so shutdown can wait for them to close.
    pub connections: tokio_util::task::TaskTracker,
    /// The creators' live feed (attendance events, sales).
    pub feed: tokio::sync::broadcast::Sender<crate::live::attendance::FeedItem>,
    /// The offline IP → country lookup for attendance analytics, when `geo.enabled`.
    pub geo: Option<Arc<crate::geo::Geo>>,
    /// Voice and screen share: the embedded SFU and which rooms use it (`[media]`).
    pub media: Arc<crate::media_plane::MediaPlane>,
    /// The TURN relay, when enabled.
    pub turn: Option<Arc<turn_relay::TurnRelay>>,
    /// The payment watchers running in this process, if any.
    pub watchers: Option<Arc<watchers::Supervisor>>,
    /// Wallet access proofs: challenges, signature checks, replay protection, rate limits.
    pub access: Arc<crate::auth::access::AccessGuard>,
    pub settings: Arc<Settings>,
    pub secret: Secret,
    /// The public origin, e.g. `https://presence.dlux.io`.
    pub public_url: Arc<str>,
    /// Cancelled when the gateway begins to shut down; long-lived connections watch it.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// TURN credentials for a seat (`seat_key`: the ticket id, or `host:<account>`), registering its session
    /// with the relay; `None` when no relay runs.
    pub fn turn_credentials(&self, seat_key: &str) -> Option<serde_json::Value> {
        let relay = self.turn.as_ref()?;
        let session = turn_relay::SessionId::parse(turn_session(seat_key)).ok()?;
        relay.sessions().register(session.clone());
        // The WebSocket may be on another node (the join endpoint hands out the least loaded), whose relay and
        // `turn_refresh` must know the session too; every relay shares the secret, so the credential works there.
        if let Some(node) = self.cluster.clone() {
            let body = serde_json::json!({ "kind": "turn_session", "seat_key": seat_key });
            tokio::spawn(async move { node.broadcast(body).await });
        }
        serde_json::to_value(relay.issue(&session)).ok()
    }

    /// Refuses a seat's TURN credentials and tears down its allocations (ban, kick).
    pub fn revoke_turn(&self, seat_key: &str) {
        // Every node's relay, when there are several (`cluster_node::events::GatewayMessage::RevokeTurn`).
        if let Some(node) = self.cluster.clone() {
            let body = serde_json::json!({ "kind": "revoke_turn", "seat_key": seat_key });
            tokio::spawn(async move { node.broadcast(body).await });
        }
        self.revoke_local_turn(seat_key);
    }

    /// Registers a seat's TURN session on this node's relay only (what another node's join asks of this one).
    pub fn register_local_turn(&self, seat_key: &str) {
        let Some(relay) = self.turn.as_ref() else { return };
        if let Ok(session) = turn_relay::SessionId::parse(turn_session(seat_key)) {
            relay.sessions().register(session);
        }
    }

    /// Revokes on this node's relay only (what another node's revocation asks of this one).
    pub fn revoke_local_turn(&self, seat_key: &str) {
        let Some(relay) = self.turn.clone() else { return };
        let Ok(session) = turn_relay::SessionId::parse(turn_session(seat_key)) else { return };
        tokio::spawn(async move { relay.revoke_session(&session).await });
    }
}

/// The TURN session id of a seat: `t<ticket>` or `h-<account>`.
pub fn turn_session(seat_key: &str) -> String {
    match seat_key.strip_prefix("host:") {
        Some(account) => format!("h-{account}"),
        None => format!("t{seat_key}"),
    }
}

impl axum::extract::FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Arc<Metrics> {
        state.metrics.clone()
    }
}
