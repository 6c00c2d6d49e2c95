//! Every Redis key and channel the cluster uses, in one place.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{ns}:nodes` | sorted set | node id → heartbeat deadline (ms, Redis clock) |
//! | `{ns}:node:{id}` | hash | the node's public URL and load; expires with the node |
//! | `{ns}:node:{id}:members` | set | `room␟client` of every peer the node holds |
//! | `{ns}:room:{room}:seats` | hash | seat key → client id holding it |
//! | `{ns}:room:{room}:members` | hash | client id → member JSON (node, seat, counted, info) |
//! | `{ns}:room:{room}:count` | string | seats counted against capacity |
//! | `{ns}:room:{room}:shards` | hash | shard → attendees off stage placed there (`placement.rs`) |
//! | `{ns}:room:{room}:groups` | hash | group code → the shard its friends are in |
//! | `{ns}:room:{room}:shard_size` | string | the event's shard size, as its latest claim said |
//! | `{ns}:rl:{key}` | string | a rate limiter's theoretical arrival time (µs) |
//!
//! Channels: `{ns}:relay:{room}` (envelopes), `{ns}:ctl:{node}` (control for one node), `{ns}:feed` (creators'
//! live feed items, every node).

use signaling::RoomId;

#[derive(Debug, Clone)]
pub struct Keys {
    ns: String,
}

impl Keys {
    pub fn new(namespace: &str) -> Self {
        Self { ns: namespace.to_owned() }
    }

    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.ns)
    }

    pub fn node_info(&self, node: &str) -> String {
        format!("{}:node:{node}", self.ns)
    }

    pub fn node_members(&self, node: &str) -> String {
        format!("{}:node:{node}:members", self.ns)
    }

    /// The prefix of [`Keys::node_members`], for scripts that build it from a node id they read.
    pub fn node_prefix(&self) -> String {
        format!("{}:node:", self.ns)
    }

    pub fn room_prefix(&self) -> String {
        format!("{}:room:", self.ns)
    }

    pub fn room_seats(&self, room: RoomId) -> String {
        format!("{}:room:{room}:seats", self.ns)
    }

    pub fn room_members(&self, room: RoomId) -> String {
        format!("{}:room:{room}:members", self.ns)
    }

    pub fn room_count(&self, room: RoomId) -> String {
        format!("{}:room:{room}:count", self.ns)
    }

    pub fn room_shards(&self, room: RoomId) -> String {
        format!("{}:room:{room}:shards", self.ns)
    }

    pub fn room_groups(&self, room: RoomId) -> String {
        format!("{}:room:{room}:groups", self.ns)
    }

    pub fn room_shard_size(&self, room: RoomId) -> String {
        format!("{}:room:{room}:shard_size", self.ns)
    }

    pub fn feed_channel(&self) -> String {
        format!("{}:feed", self.ns)
    }

    pub fn rate(&self, key: &str) -> String {
        format!("{}:rl:{key}", self.ns)
    }

    pub fn relay_channel(&self, room: RoomId) -> String {
        format!("{}:relay:{room}", self.ns)
    }

    pub fn relay_prefix(&self) -> String {
        format!("{}:relay:", self.ns)
    }

    pub fn control_channel(&self, node: &str) -> String {
        format!("{}:ctl:{node}", self.ns)
    }

    /// The room a relay channel name is for.
    pub fn room_of_channel(&self, channel: &str) -> Option<RoomId> {
        channel.strip_prefix(&self.relay_prefix())?.parse().ok()
    }
}
