//! One room: its members, its seats and its capacity counter.
//!
//! A room's state sits behind its own mutex, so rooms never contend with each other and
//! the registry (see `hub.rs`) is touched only when peers join or leave, never to relay.
//! Critical sections are short and never await: look up, push into queues, return.

use crate::admission::{PeerInfo, Role, RoomId};
use crate::fanout::{Envelope, Recipients};
use crate::outbox::{PeerQueue, Pushed};
use crate::protocol::OccupantView;
use crate::stats::Stats;
use parking_lot::{Mutex, MutexGuard};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::{self, Relaxed};
use std::sync::Arc;

#[derive(Debug)]
pub struct Room {
    id: RoomId,
    state: Mutex<RoomState>,
    /// The room's persistent NAF entities; they outlive this `Room` (see `persistent.rs`).
    pub(crate) entities: Arc<crate::persistent::RoomEntities>,
    /// The stage members' entities, for joiners of shards they are not looking at (`shards.rs`).
    pub(crate) stage: crate::shards::StageEntities,
    /// Whether the event is sharded: only then are stage entities kept for joiners of other shards.
    sharded: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) info: Arc<PeerInfo>,
    pub(crate) queue: Arc<PeerQueue>,
    pub(crate) mic: bool,
    pub(crate) screen: bool,
    pub(crate) muted: bool,
    /// Whether the peer's latest offer or answer negotiated an audio track it sends.
    pub(crate) audio_sending: bool,
    /// Set while the peer's connection is gone and its seat waits for a resume (`resume.rs`).
    pub(crate) away: Option<crate::resume::Away>,
    /// Frames this session's peer sent that were applied, over all its connections (`resume.rs`).
    pub(crate) inbound: Arc<std::sync::atomic::AtomicU64>,
    /// The shard this member sees and whether it is on the stage (`shards.rs`).
    pub(crate) placed: Arc<crate::shards::Placed>,
}

impl Member {
    pub(crate) fn view(&self) -> OccupantView<'_> {
        OccupantView {
            client_id: &self.info.client_id,
            identity: &self.info.identity,
            role: self.info.role,
            joined_at: self.info.joined_at,
            mic: self.mic,
            screen: self.screen,
            muted: self.muted,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct RoomState {
    pub(crate) members: HashMap<Arc<str>, Member>,
    /// seat key → the client id holding it.
    pub(crate) seats: HashMap<Arc<str>, Arc<str>>,
    pub(crate) attendees: u32,
    pub(crate) hosts: u32,
    pub(crate) capacity: u32,
    /// Seat keys a host banned while this room was open. A cache: the gateway persists
    /// bans and refuses banned tickets before admission; this only closes the window.
    pub(crate) banned: HashSet<Arc<str>>,
    /// Seat keys a host muted: a muted attendee stays muted when it reconnects.
    pub(crate) muted: HashSet<Arc<str>>,
    /// Attendees off stage per shard, and where each group went (`shards.rs`).
    pub(crate) shards: crate::shards::ShardTable,
}

/// A room's head count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    pub attendees: u32,
    pub hosts: u32,
    pub capacity: u32,
}

impl RoomState {
    pub(crate) fn insert(&mut self, member: Member) {
        let info = member.info.clone();
        match info.role {
            Role::Attendee => self.attendees += 1,
            Role::Host => self.hosts += 1,
        }
        if info.role == Role::Attendee && !member.placed.stage() {
            self.shards.add(member.placed.shard());
        }
        self.seats.insert(info.seat_key.clone(), info.client_id.clone());
        self.members.insert(info.client_id.clone(), member);
    }

    pub(crate) fn remove(&mut self, client_id: &str) -> Option<Member> {
        let member = self.members.remove(client_id)?;
        match member.info.role {
            Role::Attendee => self.attendees -= 1,
            Role::Host => self.hosts -= 1,
        }
        if member.info.role == Role::Attendee && !member.placed.stage() {
            self.shards.sub(member.placed.shard());
        }
        if self.seats.get(&member.info.seat_key).is_some_and(|holder| **holder == *client_id) {
            self.seats.remove(&member.info.seat_key);
        }
        Some(member)
    }

    /// Removes the member only if it is still the connection that owns `queue` (a
    /// superseded or kicked connection may try to leave after its seat moved on).
    pub(crate) fn remove_connection(&mut self, client_id: &str, queue: &Arc<PeerQueue>) -> Option<Member> {
        match self.members.get(client_id) {
            Some(member) if Arc::ptr_eq(&member.queue, queue) => self.remove(client_id),
            _ => None,
        }
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.members.is_empty() && self.banned.is_empty() && self.muted.is_empty()
    }

    pub(crate) fn occupancy(&self) -> Occupancy {
        Occupancy { attendees: self.attendees, hosts: self.hosts, capacity: self.capacity }
    }
}

pub(crate) type Overflowed = Vec<(Arc<str>, Arc<PeerQueue>)>;

impl Room {
    pub(crate) fn with_entities(id: RoomId, entities: Arc<crate::persistent::RoomEntities>) -> Self {
        Self {
            id,
            state: Mutex::new(RoomState::default()),
            entities,
            stage: Default::default(),
            sharded: Default::default(),
        }
    }

    pub(crate) fn set_sharded(&self, sharded: bool) {
        self.sharded.store(sharded, Ordering::Release);
    }

    pub(crate) fn is_sharded(&self) -> bool {
        self.sharded.load(Ordering::Acquire)
    }

    pub fn id(&self) -> RoomId {
        self.id
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock()
    }

    /// Pushes the envelope's shared bytes into each recipient's queue. Returns the peers
    /// whose guaranteed queue overflowed; the caller closes them once the lock is released
    /// (closing announces a departure, which is itself a delivery into this room).
    ///
    /// The hot path of the relay: per recipient one reference-count increment and one
    /// short queue lock, no allocation, and the shared counters are added to once per
    /// envelope, not once per recipient.
    pub(crate) fn deliver(&self, envelope: &Envelope, stats: &Stats) -> Overflowed {
        let state = self.state.lock();
        let mut overflowed = Vec::new();
        let (mut queued, mut dropped) = (0, 0);
        let mut push =
            |id: &Arc<str>, member: &Member| match member.queue.push(envelope.payload.clone(), envelope.delivery) {
                Pushed::Queued => queued += 1,
                Pushed::Dropped => dropped += 1,
                Pushed::Overflow => overflowed.push((id.clone(), member.queue.clone())),
                Pushed::Closed => {}
            };
        match &envelope.to {
            Recipients::One(target) => {
                if let Some((id, member)) = state.members.get_key_value(target) {
                    push(id, member);
                }
            }
            Recipients::All => state.members.iter().for_each(|(id, member)| push(id, member)),
            Recipients::AllExcept(skip) => {
                // One lookup for the sender's key, then a pointer comparison per member rather than
                // a string comparison.
                let skip = state.members.get_key_value(skip).map(|(id, _)| id);
                state
                    .members
                    .iter()
                    .filter(|(id, _)| !skip.is_some_and(|skip| Arc::ptr_eq(id, skip)))
                    .for_each(|(id, member)| push(id, member))
            }
            // One shard's attendees and the stage members looking at it: one atomic load per member.
            Recipients::Shard { shard, except } => {
                let skip = except.as_ref().and_then(|skip| state.members.get_key_value(skip)).map(|(id, _)| id);
                state
                    .members
                    .iter()
                    .filter(|(id, member)| {
                        member.placed.shard() == *shard && !skip.is_some_and(|skip| Arc::ptr_eq(id, skip))
                    })
                    .for_each(|(id, member)| push(id, member))
            }
        }
        drop(state);
        stats.frames_queued.fetch_add(queued, Relaxed);
        stats.unguaranteed_dropped.fetch_add(dropped, Relaxed);
        overflowed
    }
}
