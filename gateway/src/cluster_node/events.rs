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
    /// A seat's TURN session was registered by another node's join: this node's relay accepts it too.
    TurnSession { seat_key: String },
    /// An item of a creator's live feed from another node's rooms (`feed`).
    Feed { item: serde_json::Value },
}

/// The feed kinds a node's rooms produce that creators connected to other nodes must see too (sales come from
/// the store on every node; `capacity` is this node's head count).
fn relayed_kind(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "joined" => "joined",
        "left" => "left",
        "chat" => "chat",
        "voice" => "voice",
        "screen_share" => "screen_share",
        "muted" => "muted",
        _ => return None,
    })
}

/// Sends this node's room feed items to the other nodes, whose creators' SSE streams and host sockets show them:
/// on the namespace's feed channel, which every node subscribes to from its start (a node that started after
/// this one is not missed, as it would be by sending to the nodes this one knows).
pub async fn feed(
    node: Arc<ClusterNode>,
    mut items: broadcast::Receiver<crate::live::attendance::FeedItem>,
    shutdown: CancellationToken,
) {
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => return,
            item = items.recv() => item,
        };
        match item {
            Ok(item) if !item.relayed && relayed_kind(item.kind).is_some() => {
                if let Ok(item) = serde_json::to_value(&item) {
                    let body = serde_json::json!({ "kind": "feed", "item": item });
                    if let Err(e) = node.relay.publish_feed(&body).await {
                        tracing::debug!(error = %e, "cluster: a feed item did not reach the other nodes");
                    }
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "cluster: feed items not sent to other nodes"),
            Err(RecvError::Closed) => return,
        }
    }
}

/// A feed item another node sent, as this node's feed carries it.
fn relayed_item(item: serde_json::Value) -> Option<crate::live::attendance::FeedItem> {
    let kind = relayed_kind(item.get("kind")?.as_str()?)?;
    let text = |key: &str| item.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Some(crate::live::attendance::FeedItem {
        event_id: item.get("event_id")?.as_i64()?,
        kind,
        client_id: text("client_id"),
        identity: text("identity"),
        role: item.get("role").and_then(|r| serde_json::from_value(r.clone()).ok()),
        at: item.get("at")?.as_i64()?,
        detail: item.get("detail").cloned().unwrap_or(serde_json::Value::Null),
        relayed: true,
    })
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
            Inbound::Control(Control::Place { room, client_id, shard, stage, by }) => {
                state.hub.apply_placement(room, &client_id, shard, stage, by.as_deref());
            }
            Inbound::Control(Control::Gateway { body }) => match serde_json::from_value::<GatewayMessage>(body) {
                Ok(GatewayMessage::RevokeTurn { seat_key }) => state.revoke_local_turn(&seat_key),
                Ok(GatewayMessage::TurnSession { seat_key }) => state.register_local_turn(&seat_key),
                Ok(GatewayMessage::Feed { item }) => match relayed_item(item) {
                    Some(item) => {
                        let _ = state.feed.send(item);
                    }
                    None => tracing::warn!("cluster: unreadable feed item from another node"),
                },
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
