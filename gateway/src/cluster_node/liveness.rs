//! The heartbeat, and cleaning up after nodes that stopped beating.
//!
//! Every `heartbeat_ms` this node refreshes its deadline (with its peer count, the load the join endpoint
//! balances on), reads the live nodes, and claims dead ones. `Nodes::claim_dead` hands each dead node to exactly
//! one survivor, which then:
//!
//! 1. takes its seats back (`Seats::evict_node`), so the same tickets can join again on any node;
//! 2. tells every room it had peers in that they left: `peer_left` (reason `left`) published on the room's
//!    channel for the other nodes, and delivered to this node's own peers (a node never receives its own
//!    envelopes);
//! 3. closes their attendance sessions at the dead node's last heartbeat, the last moment they were seen.
//!
//! Every few beats each watched room's mirror is reconciled with the roster, which repairs what a lost
//! presence frame left wrong.

use std::sync::Arc;

use signaling::LeaveReason;
use tracing::Instrument;

use super::ClusterNode;
use crate::state::AppState;

/// Rooms are reconciled with the roster every this many beats.
const RECONCILE_EVERY: u64 = 5;

pub async fn run(node: Arc<ClusterNode>, state: AppState) {
    let mut tick = tokio::time::interval(node.broker.config().heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beats: u64 = 0;
    let mut was_up = true;
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        beats += 1;
        let load = state.hub.stats_snapshot().peers;
        let up = node.nodes.heartbeat(load).await.is_ok();
        if !up {
            if was_up {
                tracing::warn!(node_id = node.node_id(), "cluster: broker unreachable; serving local peers only");
            }
            was_up = false;
            continue;
        }
        if !was_up {
            tracing::info!(node_id = node.node_id(), "cluster: broker reachable again");
        }
        was_up = true;
        if let Ok(live) = node.nodes.live().await {
            *node.live.lock() = live;
        }
        reap(&node, &state).await;
        if beats.is_multiple_of(RECONCILE_EVERY) {
            for (room, _) in node.watched_rooms() {
                node.reconcile(room).await;
            }
        }
    }
    // A clean stop: the others take this node's seats back at once instead of after the TTL.
    if let Err(e) = node.nodes.leave().await {
        tracing::warn!(error = %e, "cluster: could not leave the cluster cleanly");
    }
}

async fn reap(node: &ClusterNode, state: &AppState) {
    let dead = match node.nodes.claim_dead(8).await {
        Ok(dead) => dead,
        Err(e) => {
            tracing::debug!(error = %e, "cluster: dead-node claim failed");
            return;
        }
    };
    for dead in dead {
        let span = tracing::info_span!("reap", dead_node = %dead.id);
        reap_one(node, state, dead).instrument(span).await;
    }
}

async fn reap_one(node: &ClusterNode, state: &AppState, dead: cluster::DeadNode) {
    let seats = match node.seats.evict_node(&dead.id).await {
        Ok(seats) => seats,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: could not take a dead node's seats back");
            Vec::new()
        }
    };
    for seat in &seats {
        let envelope = super::peer_left(&seat.member, LeaveReason::Left);
        // This node's peers of the room, if it has any (a room it does not watch has no mirror to update).
        if node.watched.lock().contains_key(&seat.room) {
            state.hub.deliver_remote(seat.room, &envelope);
        }
        node.relay.publish(seat.room, envelope);
    }
    let closed = state.store.close_interrupted_sessions(&dead.id, dead.last_seen_ms).await;
    cluster::ClusterStats::add(&node.broker.stats().reaped_nodes, 1);
    tracing::warn!(
        seats = seats.len(),
        sessions_closed = closed.as_ref().map_or(0, |n| *n),
        last_seen_ms = dead.last_seen_ms,
        "cluster: a node died; its peers left their rooms"
    );
}
