//! What the gateway tells us about a connection it has authenticated.
//!
//! Signalling never sees a wallet, a chain or a ticket: the gateway turns those into an
//! [`Admission`] — an event id, a server-chosen client id, an opaque display identity, a
//! role and an opaque seat key (the ticket id) — and we only enforce room rules on it.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A room is an event; its id is the event's id.
pub type RoomId = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Holds a seat; counted against the room's capacity.
    Attendee,
    /// The event's creator or staff: not counted against capacity, may mute/kick/ban.
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub room_id: RoomId,
    /// Server-assigned and unique per connection (e.g. a UUID). Peers address each other
    /// by it; the server stamps it as `from` on everything the peer sends.
    pub client_id: String,
    /// Opaque display identity, e.g. a shortened wallet address.
    pub identity: String,
    pub role: Role,
    /// One seat per key (the ticket id). A second admission with the same key supersedes
    /// the first connection.
    pub seat_key: String,
    /// Maximum attendees in the room; hosts are not counted.
    pub capacity: u32,
}

/// An admitted peer as the rest of the crate sees it: immutable for the connection's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub room_id: RoomId,
    pub client_id: Arc<str>,
    pub identity: Arc<str>,
    pub role: Role,
    pub seat_key: Arc<str>,
    /// Server time (ms since the Unix epoch) at admission; NAF orders peers by it.
    pub joined_at: i64,
}

impl PeerInfo {
    pub(crate) fn from_admission(admission: &Admission, joined_at: i64) -> Self {
        Self {
            room_id: admission.room_id,
            client_id: admission.client_id.as_str().into(),
            identity: admission.identity.as_str().into(),
            role: admission.role,
            seat_key: admission.seat_key.as_str().into(),
            joined_at,
        }
    }
}
