//! A room's persistent NAF entities, kept by the server so that a late joiner sees them.
//!
//! networked-aframe keeps a scene's state in its peers: an entity lives while its owner is connected, a
//! newcomer gets it from the owner's full sync, and a `persistent: true` entity whose owner leaves is taken
//! over by one of the others (`NAF.utils.takeOwnership`). When everyone has left, or before anyone else came,
//! nobody holds it. So the room keeps what its peers broadcast about persistent entities and sends it to
//! every joiner in one `snapshot` frame right after `welcome`, before live traffic.
//!
//! What is kept follows NAF's own rules, as `networked.networkUpdate` applies them:
//! * a `u` (or each entry of an `um`) with `persistent: true` is kept, its `components` merged into what is
//!   kept (an update carries only the components that changed);
//! * an update whose `lastOwnerTime` is older than the kept one, or equal with a greater kept `owner`, is
//!   ignored, as NAF ignores it; otherwise its `owner` and `lastOwnerTime` win (ownership transfer);
//! * an `r` for a kept entity removes it; an update with `persistent: false` stops keeping it.
//!
//! Each room keeps at most `max_persistent_entities` of at most `max_persistent_entity_bytes` each (JSON);
//! beyond that the sender gets an `error` frame and the entity is relayed but not kept. The entities outlive
//! the [`crate::Room`] (the hub holds them in its registry until the room is closed) and are handed to
//! an [`EntitySink`] — the gateway's store writer — so they also survive a restart; the gateway loads them
//! back with [`crate::Hub::load_entities`] before the first admission.
//!
//! The relay path pays one field lookup for a non-persistent update, and takes the room's entity lock only
//! for persistent ones or while the room keeps any.

use crate::admission::RoomId;
use crate::hub::Hub;
use crate::protocol::ServerMessage;
use crate::room::Room;
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A change to a room's persistent entities, for the store.
#[derive(Debug, Clone, PartialEq)]
pub enum EntityChange {
    /// The entity as kept now: NAF's sync data with every component seen so far.
    Upsert {
        network_id: String,
        owner: String,
        data: Value,
    },
    Removed {
        network_id: String,
    },
}

/// Receives every change of every room's persistent entities. Called on a connection's task with no lock
/// held: hand the work to another task (a channel) rather than wait for a database here.
pub trait EntitySink: Send + Sync + 'static {
    fn changed(&self, room: RoomId, change: EntityChange);
}

impl<F> EntitySink for F
where
    F: Fn(RoomId, EntityChange) + Send + Sync + 'static,
{
    fn changed(&self, room: RoomId, change: EntityChange) {
        self(room, change)
    }
}

/// Why a persistent entity was not kept (it is still relayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntityRefused {
    #[error("this room keeps at most {0} persistent entities")]
    RoomFull(usize),
    #[error("a persistent entity may be at most {0} bytes of JSON")]
    TooBig(usize),
}

/// One room's kept entities, by network id.
#[derive(Debug, Default)]
pub struct RoomEntities {
    entities: Mutex<BTreeMap<String, Map<String, Value>>>,
    /// How many are kept, readable without the lock.
    len: AtomicUsize,
    /// The gateway loaded what its store holds for this room (or there was nothing to load).
    loaded: AtomicBool,
}

impl RoomEntities {
    /// Whether any entity is kept: when none is, an update that isn't persistent needs no look.
    pub(crate) fn any(&self) -> bool {
        self.len.load(Ordering::Acquire) > 0
    }
}

/// Every room's kept entities, from first use until the room is closed.
pub(crate) struct Registry {
    rooms: Mutex<HashMap<RoomId, Arc<RoomEntities>>>,
    sink: Option<Box<dyn EntitySink>>,
}

impl Registry {
    pub(crate) fn new(sink: Option<Box<dyn EntitySink>>) -> Self {
        Self { rooms: Mutex::default(), sink }
    }

    /// The room's entities, created empty on first use. Taken when a `Room` is created, never to relay.
    pub(crate) fn room(&self, room: RoomId) -> Arc<RoomEntities> {
        self.rooms.lock().entry(room).or_default().clone()
    }

    pub(crate) fn forget(&self, room: RoomId) {
        self.rooms.lock().remove(&room);
    }

    /// The `snapshot` frame for a joiner, `None` when the room keeps nothing.
    pub(crate) fn snapshot(&self, room: RoomId) -> Option<Bytes> {
        let entities = self.rooms.lock().get(&room).cloned()?;
        let kept = entities.entities.lock();
        if kept.is_empty() {
            return None;
        }
        let values: Vec<Value> = kept.values().map(|data| first_sync(data.clone())).collect();
        drop(kept);
        Some(ServerMessage::Snapshot { entities: values.iter().collect() }.encode())
    }
}

/// A kept entity as a joiner's NAF must read it: a first sync (so it is created, or held for the scene's own
/// persistent element).
fn first_sync(mut data: Map<String, Value>) -> Value {
    data.insert("isFirstSync".into(), Value::Bool(true));
    Value::Object(data)
}

impl Hub {
    /// Whether the gateway still has to load this room's kept entities from its store.
    pub fn entities_loaded(&self, room: RoomId) -> bool {
        self.inner.persistent.room(room).loaded.load(Ordering::Acquire)
    }

    /// Loads a room's kept entities (from the store, after a restart). Entities the room already keeps win:
    /// they are newer. Bounded like live ones.
    pub fn load_entities(&self, room: RoomId, stored: impl IntoIterator<Item = Value>) {
        let config = self.config();
        let entities = self.inner.persistent.room(room);
        let mut kept = entities.entities.lock();
        for value in stored {
            let Value::Object(data) = value else { continue };
            let Some(id) = data.get("networkId").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            if kept.len() >= config.max_persistent_entities {
                break;
            }
            kept.entry(id).or_insert(data);
        }
        entities.len.store(kept.len(), Ordering::Release);
        entities.loaded.store(true, Ordering::Release);
    }

    /// The persistent entities a room keeps now (NAF sync data), for tests and the operator.
    pub fn persistent_entities(&self, room: RoomId) -> Vec<Value> {
        let entities = self.inner.persistent.room(room);
        let kept = entities.entities.lock();
        kept.values().map(|data| Value::Object(data.clone())).collect()
    }

    /// Keeps what a broadcast says about persistent entities (see the module's rules).
    pub(crate) fn observe_entities(&self, room: &Room, data_type: &str, data: &Value) -> Result<(), EntityRefused> {
        self.observe(room, data_type, data, Origin::Here)
    }

    /// The same for a broadcast relayed from a peer on another node (`mirror.rs`): this node keeps the entities
    /// too, so that its joiners' snapshots hold them, but does not store them — the sender's node did.
    pub(crate) fn observe_remote_entities(&self, room: &Room, data_type: &str, data: &Value) {
        let _ = self.observe(room, data_type, data, Origin::OtherNode);
    }

    fn observe(&self, room: &Room, data_type: &str, data: &Value, origin: Origin) -> Result<(), EntityRefused> {
        match data_type {
            "u" => self.observe_update(room, data, origin),
            "um" => {
                let Some(updates) = data.get("d").and_then(Value::as_array) else {
                    return Ok(());
                };
                updates.iter().try_for_each(|update| self.observe_update(room, update, origin))
            }
            "r" if room.entities.len.load(Ordering::Acquire) > 0 => {
                let Some(id) = data.get("networkId").and_then(Value::as_str) else {
                    return Ok(());
                };
                let removed = {
                    let mut kept = room.entities.entities.lock();
                    let removed = kept.remove(id).is_some();
                    room.entities.len.store(kept.len(), Ordering::Release);
                    removed
                };
                if removed && origin == Origin::Here {
                    self.entity_changed(room.id(), EntityChange::Removed { network_id: id.to_owned() });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn observe_update(&self, room: &Room, update: &Value, origin: Origin) -> Result<(), EntityRefused> {
        let persistent = update.get("persistent").and_then(Value::as_bool);
        if persistent != Some(true) && room.entities.len.load(Ordering::Acquire) == 0 {
            return Ok(()); // the common case: nothing kept, nothing to keep
        }
        let Value::Object(update) = update else {
            return Ok(());
        };
        let Some(id) = update.get("networkId").and_then(Value::as_str) else {
            return Ok(());
        };
        let config = self.config();
        let change = {
            let mut kept = room.entities.entities.lock();
            if persistent != Some(true) {
                // No longer persistent (or never was): stop keeping it.
                let removed = kept.remove(id).is_some();
                room.entities.len.store(kept.len(), Ordering::Release);
                if !removed {
                    return Ok(());
                }
                EntityChange::Removed { network_id: id.to_owned() }
            } else {
                let merged = match kept.get(id) {
                    Some(current) if !newer_owner_or_same(current, update) => return Ok(()),
                    Some(current) => merge(current.clone(), update),
                    None if kept.len() >= config.max_persistent_entities => {
                        return Err(EntityRefused::RoomFull(config.max_persistent_entities))
                    }
                    None => without_first_sync(update.clone()),
                };
                let value = Value::Object(merged);
                // `Value`'s Display is its compact JSON: the size the store and the snapshot pay.
                if value.to_string().len() > config.max_persistent_entity_bytes {
                    return Err(EntityRefused::TooBig(config.max_persistent_entity_bytes));
                }
                let Value::Object(merged) = value else { unreachable!("built as an object") };
                let owner = merged.get("owner").and_then(Value::as_str).unwrap_or_default().to_owned();
                kept.insert(id.to_owned(), merged.clone());
                room.entities.len.store(kept.len(), Ordering::Release);
                EntityChange::Upsert { network_id: id.to_owned(), owner, data: Value::Object(merged) }
            }
        };
        if origin == Origin::Here {
            self.entity_changed(room.id(), change);
        }
        Ok(())
    }

    fn entity_changed(&self, room: RoomId, change: EntityChange) {
        if let Some(sink) = &self.inner.persistent.sink {
            sink.changed(room, change);
        }
    }
}

/// Where a broadcast about entities came from: a peer of this node (kept and stored) or of another (kept only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Here,
    OtherNode,
}

fn owner_time(data: &Map<String, Value>) -> f64 {
    data.get("lastOwnerTime").and_then(Value::as_f64).unwrap_or(0.0)
}

fn owner(data: &Map<String, Value>) -> &str {
    data.get("owner").and_then(Value::as_str).unwrap_or_default()
}

/// NAF's `networkUpdate` test: an update is applied unless its `lastOwnerTime` is older, or equal while the
/// current owner's id sorts after the update's.
fn newer_owner_or_same(current: &Map<String, Value>, update: &Map<String, Value>) -> bool {
    let (now, new) = (owner_time(current), owner_time(update));
    !(new < now || (new == now && owner(current) > owner(update)))
}

/// The kept entity with an update applied: its fields replace the kept ones, its components are merged.
pub(crate) fn merge(mut current: Map<String, Value>, update: &Map<String, Value>) -> Map<String, Value> {
    for (key, value) in update {
        match (key.as_str(), value) {
            ("isFirstSync", _) => {}
            ("components", Value::Object(changed)) => {
                let components = current.entry("components").or_insert_with(|| Value::Object(Map::new()));
                match components {
                    Value::Object(components) => {
                        for (index, component) in changed {
                            components.insert(index.clone(), component.clone());
                        }
                    }
                    other => *other = Value::Object(changed.clone()),
                }
            }
            _ => {
                current.insert(key.clone(), value.clone());
            }
        }
    }
    current
}

fn without_first_sync(mut data: Map<String, Value>) -> Map<String, Value> {
    data.remove("isFirstSync");
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!(),
        }
    }

    #[test]
    fn ownership_follows_nafs_network_update_rule() {
        let kept = obj(json!({"owner": "b", "lastOwnerTime": 10}));
        assert!(newer_owner_or_same(&kept, &obj(json!({"owner": "a", "lastOwnerTime": 11}))));
        assert!(!newer_owner_or_same(&kept, &obj(json!({"owner": "z", "lastOwnerTime": 9}))));
        // Equal times: the greater owner id wins, as in NAF (`this.data.owner > e.owner` is ignored).
        assert!(!newer_owner_or_same(&kept, &obj(json!({"owner": "a", "lastOwnerTime": 10}))));
        assert!(newer_owner_or_same(&kept, &obj(json!({"owner": "c", "lastOwnerTime": 10}))));
    }

    #[test]
    fn updates_merge_their_components_into_the_kept_entity() {
        let kept = obj(json!({"networkId": "n", "owner": "a", "components": {"0": [1, 2, 3], "1": "red"}}));
        let merged = merge(kept, &obj(json!({"owner": "a", "isFirstSync": false, "components": {"0": [4, 5, 6]}})));
        assert_eq!(
            Value::Object(merged),
            json!({"networkId": "n", "owner": "a", "components": {"0": [4, 5, 6], "1": "red"}})
        );
    }
}
