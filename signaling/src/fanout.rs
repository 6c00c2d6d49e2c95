//! The one seam between a room and the nodes its peers are connected to.
//!
//! Today every peer of a room is on this process and [`LocalFanout`] hands envelopes
//! straight to the room's queues. When rooms spread over several gateway nodes, a broker
//! implementation (Redis pub/sub, NATS) publishes the [`Envelope`] — plain data: recipients,
//! delivery class, already-serialised bytes — on a per-room subject, and each node's
//! subscriber hands what it receives to [`crate::Hub::deliver_local`]. Nothing else in the
//! crate sends a frame to more than one peer, so nothing else has to change.
//!
//! One thing a broker implementation must add: the room checks (`send` and signalling go
//! only to admitted peers of the sender's room, capacity, supersede) read this node's
//! room state. Across nodes, that state has to be mirrored — the `peer_joined`/`peer_left`
//! envelopes already carry every change — and capacity claimed in the shared store the
//! gateway rebuilds counters from.

use crate::admission::RoomId;
use crate::outbox::Delivery;
use bytes::Bytes;
use std::sync::Arc;

/// Who in the room gets an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    All,
    AllExcept(Arc<str>),
    One(Arc<str>),
    /// The members placed in one shard of the room (its attendees and the stage members looking at it),
    /// but `except` (see `shards.rs`). In an unsharded room every member is in shard 0.
    Shard {
        shard: u32,
        except: Option<Arc<str>>,
    },
}

/// A frame on its way to some of a room's peers, serialised once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub to: Recipients,
    pub delivery: Delivery,
    pub payload: Bytes,
}

pub trait RoomFanout: Send + Sync + 'static {
    /// Deliver `envelope` to the peers of `room` on every node. `local` delivers it to
    /// this node's peers without a registry lookup; an implementation calls it for local
    /// recipients (or relies on its own subscription echoing the message back, then
    /// calling [`crate::Hub::deliver_local`] instead).
    fn publish(&self, room: RoomId, envelope: Envelope, local: &dyn Fn(&Envelope));
}

/// Every peer is on this process.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalFanout;

impl RoomFanout for LocalFanout {
    fn publish(&self, _room: RoomId, envelope: Envelope, local: &dyn Fn(&Envelope)) {
        local(&envelope);
    }
}
