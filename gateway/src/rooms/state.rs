//! Rooms' persistent NAF entities in the store (issue 26): written behind the relay, loaded before a room's
//! first admission on this node.
//!
//! The hub keeps the entities and decides what is kept (`signaling::persistent`); its [`signaling::EntitySink`]
//! is the sending half of a channel to [`spawn_writer`], which coalesces changes per entity (an entity moved at
//! 15 Hz is written at most once per flush) and writes each flush in one transaction. A failed write is logged
//! and retried with the next flush, newer changes winning. A room's rows are read back once per process
//! ([`ensure_loaded`]), so a late joiner sees what the host placed even after a restart.

use std::collections::HashMap;
use std::time::Duration;

use signaling::{EntityChange, RoomId};
use ticketing::room_state::EntityWrite;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// How often kept entities are written.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

pub type EntityChanges = mpsc::UnboundedReceiver<(RoomId, EntityChange)>;

/// The hub's sink and the writer's receiver.
pub fn channel() -> (impl signaling::EntitySink, EntityChanges) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = move |room: RoomId, change: EntityChange| {
        let _ = tx.send((room, change));
    };
    (sink, rx)
}

/// Writes changes until shutdown, then what is left. Await the handle before closing the store.
pub fn spawn_writer(
    store: ticketing::Store,
    mut changes: EntityChanges,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pending: HashMap<(RoomId, String), EntityWrite> = HashMap::new();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Some((room, change)) => coalesce(&mut pending, room, change),
                    None => break,
                },
                _ = tick.tick() => flush(&store, &mut pending).await,
                _ = shutdown.cancelled() => break,
            }
        }
        while let Ok((room, change)) = changes.try_recv() {
            coalesce(&mut pending, room, change);
        }
        flush(&store, &mut pending).await;
    })
}

fn coalesce(pending: &mut HashMap<(RoomId, String), EntityWrite>, room: RoomId, change: EntityChange) {
    let (network_id, write) = match change {
        EntityChange::Upsert { network_id, owner, data } => {
            (network_id.clone(), EntityWrite::Upsert { event_id: room, network_id, owner, data })
        }
        EntityChange::Removed { network_id } => {
            (network_id.clone(), EntityWrite::Remove { event_id: room, network_id })
        }
    };
    pending.insert((room, network_id), write);
}

async fn flush(store: &ticketing::Store, pending: &mut HashMap<(RoomId, String), EntityWrite>) {
    if pending.is_empty() {
        return;
    }
    let writes: Vec<EntityWrite> = pending.values().cloned().collect();
    match store.write_room_entities(&writes, ticketing::now_ms()).await {
        Ok(()) => pending.clear(),
        Err(error) => tracing::warn!(%error, entities = writes.len(), "room entities not written; retrying"),
    }
}

/// Loads the room's kept entities from the store into the hub, once per room and process. A store that does
/// not answer is logged: the room opens without them and the next admission tries again.
pub async fn ensure_loaded(state: &AppState, event_id: i64) {
    if state.hub.entities_loaded(event_id) {
        return;
    }
    match state.store.room_entities(event_id, state.hub.config().max_persistent_entities).await {
        Ok(stored) => state.hub.load_entities(event_id, stored),
        Err(error) => tracing::warn!(event_id, %error, "room entities not loaded"),
    }
}
