//! Limits of the signalling layer.
//!
//! The gateway embeds [`SignalingConfig`] in its own layered configuration (it derives
//! `Deserialize` with every field defaulted), so an operator can tighten one limit without
//! restating the others.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct SignalingConfig {
    /// Largest text frame a client may send, in bytes. Larger ones close the connection
    /// with 1009. SDP offers with screen share run to ~10 KiB, so keep this well above that.
    /// The WebSocket layer's own limit must be set higher than this one, or the client
    /// gets the framework's generic error instead of our precise 1009.
    pub max_frame_bytes: usize,
    /// Sustained messages per second a peer may send (token bucket refill rate). NAF sends
    /// one `u` per networked entity per tick (15 Hz by default), so an avatar with a head
    /// and two hands alone is ~45/s; leave headroom for scene objects.
    pub messages_per_second: u32,
    /// Bucket size: how many messages a peer may send in one burst. Exceeding the bucket
    /// closes the connection with 4429.
    pub burst: u32,
    /// Guaranteed frames that may wait in one peer's outgoing queue. A peer that falls this
    /// far behind is closed with 4008 and its seat freed: we never silently drop them.
    pub guaranteed_queue: usize,
    /// Unguaranteed frames (NAF `u`/`um` updates) that may wait in one peer's queue. Past
    /// this, new unguaranteed frames for that peer are dropped; the next update supersedes
    /// them anyway.
    pub unguaranteed_queue: usize,
    /// Longest chat message, in characters.
    pub max_chat_chars: usize,
    /// Capacity of the [`crate::RoomEvent`] broadcast channel. A subscriber that falls
    /// further behind sees `RecvError::Lagged`.
    pub event_buffer: usize,
    /// How long a dropped peer keeps its seat, client id and queued frames for a resume (see `resume.rs`).
    /// 0 turns resuming off: a drop leaves the room at once, as a close does.
    pub resume_window_secs: u64,
    /// Guaranteed frames kept for a peer while it is away; one more ends its resume (the seat is freed).
    pub replay_frames: usize,
    /// Frames a connected peer was last written, kept so that what a drop lost in flight can be written again.
    pub unacked_frames: usize,
    /// Persistent NAF entities the server keeps per room (see `persistent.rs`); more are refused.
    pub max_persistent_entities: usize,
    /// Largest persistent entity, in bytes of its JSON; larger ones are not kept.
    pub max_persistent_entity_bytes: usize,
    /// How often each connection's writer flushes, in milliseconds: frames queued for a peer
    /// wait for the next tick and leave together, one write per interval (see `flush.rs`).
    /// 0 writes as soon as anything is queued.
    pub flush_interval_ms: u64,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            messages_per_second: 150,
            burst: 300,
            guaranteed_queue: 1024,
            unguaranteed_queue: 256,
            max_chat_chars: 500,
            event_buffer: 4096,
            resume_window_secs: 30,
            replay_frames: 512,
            unacked_frames: 128,
            max_persistent_entities: 256,
            max_persistent_entity_bytes: 16 * 1024,
            flush_interval_ms: 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SignalingConfig;

    /// docs/PROTOCOL.md states the default limits; they must be the ones in force.
    #[test]
    fn the_protocol_document_states_the_default_limits() {
        let doc = include_str!("../../docs/PROTOCOL.md");
        let c = SignalingConfig::default();
        let rate = format!("default {}/s with bursts of {}", c.messages_per_second, c.burst);
        assert!(doc.contains(&rate), "PROTOCOL.md does not say `{rate}`");
        let frame = format!("frame size (default {} KiB", c.max_frame_bytes / 1024);
        assert!(doc.contains(&frame), "PROTOCOL.md does not say `{frame}`");
        let chat = format!("chat length (default {} characters", c.max_chat_chars);
        assert!(doc.contains(&chat), "PROTOCOL.md does not say `{chat}`");
    }
}
