//! The hook through which a host's ban over the WebSocket reaches the gateway.
//!
//! A kick or a mute lives as long as the room, so the hub applies them itself. A ban must outlive the room and
//! the process: the ticket is invalidated in the store, so no node seats it again, and only then is the peer
//! closed. Signalling knows no store, so a hub built with a [`BanHandler`] hands the host's `ban` to it and the
//! gateway runs the same operation as its HTTP ban endpoint. Without a handler (the crate's own tests) the ban
//! is applied in memory.

use crate::admission::{PeerInfo, RoomId};

/// Carries out a ban a host asked for. Called on the host's connection task: hand the work to another task
/// rather than wait for a database here.
pub trait BanHandler: Send + Sync + 'static {
    fn ban(&self, room: RoomId, target: &PeerInfo, by: &PeerInfo);
}

impl<F> BanHandler for F
where
    F: Fn(RoomId, &PeerInfo, &PeerInfo) + Send + Sync + 'static,
{
    fn ban(&self, room: RoomId, target: &PeerInfo, by: &PeerInfo) {
        self(room, target, by)
    }
}

/// What a host asked to be done to a peer another node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moderation {
    Kick,
    Ban,
    Mute(bool),
}

/// Carries out a host's kick, ban or mute of a peer held by another node (see `mirror.rs`): the gateway routes
/// it to that node. Called on the host's connection task: hand the work to another task.
pub trait RemoteModerator: Send + Sync + 'static {
    fn moderate(&self, room: RoomId, target: &str, action: Moderation, by: &PeerInfo);
}

impl<F> RemoteModerator for F
where
    F: Fn(RoomId, &str, Moderation, &PeerInfo) + Send + Sync + 'static,
{
    fn moderate(&self, room: RoomId, target: &str, action: Moderation, by: &PeerInfo) {
        self(room, target, action, by)
    }
}
