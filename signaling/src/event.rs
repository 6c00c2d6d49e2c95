//! What happens in rooms, told to whoever listens outside the crate.
//!
//! The gateway's attendance recorder and the creator's live feed subscribe through
//! [`crate::Hub::subscribe`]. Events are sent on a `tokio::sync::broadcast` channel: a
//! subscriber that falls more than `event_buffer` events behind gets `Lagged` and should
//! resynchronise from [`crate::Hub::occupants`] rather than block the rooms.

use crate::admission::{PeerInfo, Role, RoomId};
use crate::close::{CloseCode, CloseFrame};
use serde::Serialize;

/// Why a peer left its room. Sent to the other peers in `peer_left` and to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The connection closed normally.
    Left,
    Kicked,
    Banned,
    Superseded,
    /// The gateway saw the connection go silent (missed WebSocket pings).
    TimedOut,
    Shutdown,
    SlowConsumer,
    /// The event ended and the gateway closed its room.
    EventEnded,
    /// The creator (or an operator) cancelled the event while it was live.
    EventCancelled,
    RateLimited,
    FrameTooBig,
    Malformed,
    /// Not a departure from the event: the peer moved to another shard, or off the stage, out of this view.
    Moved,
}

impl LeaveReason {
    /// The close frame the leaving peer is sent, if it is still there to receive one.
    pub fn close_frame(self) -> Option<CloseFrame> {
        let code = match self {
            LeaveReason::Left | LeaveReason::TimedOut | LeaveReason::Moved => return None,
            LeaveReason::Kicked => CloseCode::Kicked,
            LeaveReason::Banned => CloseCode::Banned,
            LeaveReason::Superseded => CloseCode::Superseded,
            LeaveReason::Shutdown => CloseCode::Shutdown,
            LeaveReason::SlowConsumer => CloseCode::SlowConsumer,
            LeaveReason::EventEnded => return Some(CloseFrame::new(CloseCode::NotLive, "event ended")),
            LeaveReason::EventCancelled => return Some(CloseFrame::new(CloseCode::NotLive, "event cancelled")),
            LeaveReason::RateLimited => CloseCode::RateLimited,
            LeaveReason::FrameTooBig => CloseCode::FrameTooBig,
            LeaveReason::Malformed => CloseCode::Malformed,
        };
        Some(code.into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomEvent {
    pub room_id: RoomId,
    pub client_id: String,
    /// The ticket id the gateway admitted this peer with.
    pub seat_key: String,
    pub identity: String,
    pub role: Role,
    /// Server time, ms since the Unix epoch.
    pub at_ms: i64,
    #[serde(flatten)]
    pub kind: RoomEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoomEventKind {
    Joined,
    /// Also ends any voice or screen share of the peer: no separate `Voice { on: false }`
    /// is sent for a departure.
    Left {
        reason: LeaveReason,
    },
    Chat {
        text: String,
    },
    Voice {
        on: bool,
    },
    ScreenShare {
        on: bool,
    },
    /// The peer's signalling now does (or no longer does) negotiate an audio track it sends: an offer or
    /// answer it relayed has a live `m=audio` section that is `sendrecv`/`sendonly`. Emitted on change only.
    /// Lets a listener cross-check the adapter's `Voice` reports against what WebRTC actually set up.
    AudioTrack {
        sending: bool,
    },
    /// A host (or the gateway, `by: None`) muted or unmuted this peer.
    Muted {
        muted: bool,
        by: Option<String>,
    },
    /// Where the peer is now: after `Joined`, and after each move between shards or on or off the stage.
    Placed {
        shard: u32,
        stage: bool,
    },
    /// A host's event-wide announcement.
    Announcement {
        text: String,
    },
}

impl RoomEvent {
    pub(crate) fn new(peer: &PeerInfo, at_ms: i64, kind: RoomEventKind) -> Self {
        Self {
            room_id: peer.room_id,
            client_id: peer.client_id.to_string(),
            seat_key: peer.seat_key.to_string(),
            identity: peer.identity.to_string(),
            role: peer.role,
            at_ms,
            kind,
        }
    }
}
