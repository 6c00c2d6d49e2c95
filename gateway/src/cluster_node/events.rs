//! What this node does on its own: control messages other nodes sent it, and seats its peers gave back.

use std::sync::Arc;

use cluster::{Control, Inbound};
use signaling::{LeaveReason, RoomEvent, RoomEventKind};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{ClusterNode, BANNED, KICKED, SUPERSEDED};
use crate::state::AppState;

/// A gateway-defined control message: what it is about.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GatewayMessage {
    /// A seat was banned: its TURN credentials stop on this node's relay too.
    RevokeTurn { seat_key: String },
}

/// Acts on what other nodes tell this one.
pub async fn control(node: Arc<ClusterNode>, state: AppState, mut inbound: mpsc::UnboundedReceiver<Inbound>) {
    while let Some(message) = inbound.recv().await {
        match message {
            Inbound::Control(Control::Close { room, client_id, code, reason }) => {
                let why = match code {
                    SUPERSEDED => LeaveReason::Superseded,
                    BANNED => LeaveReason::Banned,
                    KICKED => LeaveReason::Kicked,
                    _ => LeaveReason::Kicked,
                };
                let closed = state.hub.close_peer(room, &client_id, why);
                tracing::info!(event_id = room, client_id = %client_id, code, reason = %reason, closed, "cluster: close from another node");
            }
            Inbound::Control(Control::Mute { room, client_id, muted }) => {
                state.hub.mute(room, &client_id, muted);
            }
            Inbound::Control(Control::Gateway { body }) => match serde_json::from_value::<GatewayMessage>(body) {
                Ok(GatewayMessage::RevokeTurn { seat_key }) => state.revoke_local_turn(&seat_key),
                Err(e) => tracing::warn!(error = %e, "cluster: unknown gateway message"),
            },
            Inbound::Resubscribed => node.reassert().await,
            Inbound::Relay { .. } => {}
        }
    }
}

/// Gives back the seats of peers that left this node's rooms, and stops watching rooms it no longer has peers
/// in.
pub async fn releases(node: Arc<ClusterNode>, mut events: broadcast::Receiver<RoomEvent>, shutdown: CancellationToken) {
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(RoomEvent { room_id, client_id, kind: RoomEventKind::Left { .. }, .. }) => {
                node.seat_unused(room_id, &client_id).await;
            }
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => {
                // Seats of peers that left meanwhile stay claimed until a resync; say so loudly.
                tracing::error!(missed, "cluster: room events lagged; some seats may stay claimed");
            }
            Err(RecvError::Closed) => return,
        }
    }
}
