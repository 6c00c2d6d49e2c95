//! Shards and the stage: one event, many scenes of a comfortable size, one stage every scene sees.
//!
//! A room is still an event: admission, capacity, one live session per seat, bans, mutes and the event's end are
//! decided once, under the room's lock, whatever the shard. Inside the room each member has a *placement*: the
//! shard it sees and whether it is on the stage. Who receives what follows from two rules:
//!
//! * a member **sees** another when they are in the same shard, or the other is on the stage;
//! * an attendee's traffic (NAF updates, chat, media, joins and leaves) goes to the members of its shard — the
//!   attendees placed there and the stage members looking at it —, a stage member's to everyone.
//!
//! So the host and invited speakers are present in every shard while each attendee's browser renders at most
//! `shard_size` other attendees. Placement is decided under the room's lock, like capacity, so concurrent joins
//! never overfill a shard: fill the fullest open shard that has room (fewer, livelier scenes), keep a `group`
//! together when its shard has room, open the lowest closed shard when every open one is full. A shard is open
//! while an attendee is placed in it; an empty one is reclaimed by that count alone and its index is reused.
//!
//! A newcomer in another shard than a stage member never gets that member's NAF full sync (the stage member does
//! not see it), so the room keeps the latest sync data of every stage member's entities ([`StageEntities`], NAF's
//! merge rules from `persistent.rs`) and sends them in the joiner's `snapshot`.

use crate::admission::{PeerInfo, Role, RoomId};
use crate::event::{LeaveReason, RoomEventKind};
use crate::fanout::{Envelope, Recipients};
use crate::hub::{now_ms, Hub};
use crate::mirror::RemoteOccupant;
use crate::outbox::Delivery;
use crate::protocol::{OccupantView, ServerMessage};
use crate::room::{Room, RoomState};
use crate::stats::Stats;
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Longest `group` code kept; a longer one is cut (it is only compared).
pub const MAX_GROUP_CHARS: usize = 64;

/// How the gateway wants a connection placed. The default places nothing: one shard, nobody on stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Most attendees off stage in one shard; 0 means the event is not sharded.
    pub shard_size: u32,
    /// Friends who join with the same code land in the same shard while it has room.
    pub group: Option<String>,
    /// The event's hosts are always on stage; attendees get there by a host's invitation.
    pub stage: bool,
    /// The shard and stage flag already decided elsewhere — by the cluster's broker, for every node at once
    /// (`cluster::placement`) —: taken as they are, the room's own table only counts them.
    pub decided: Option<(u32, bool)>,
}

/// A member's placement, written under the room's lock and read without it on the relay path.
#[derive(Debug, Default)]
pub(crate) struct Placed(AtomicU64);

const STAGE_BIT: u64 = 1 << 32;

impl Placed {
    pub(crate) fn new(shard: u32, stage: bool) -> Self {
        let placed = Placed::default();
        placed.set(shard, stage);
        placed
    }

    pub(crate) fn shard(&self) -> u32 {
        self.0.load(Ordering::Acquire) as u32
    }

    pub(crate) fn stage(&self) -> bool {
        self.0.load(Ordering::Acquire) & STAGE_BIT != 0
    }

    /// Only under the room's lock, so that the shard counts and this stay in step.
    pub(crate) fn set(&self, shard: u32, stage: bool) {
        self.0.store(u64::from(shard) | if stage { STAGE_BIT } else { 0 }, Ordering::Release);
    }

    /// Whether a member placed here receives what a member placed at `other` sends.
    pub(crate) fn sees(&self, other: &Placed) -> bool {
        other.stage() || self.shard() == other.shard()
    }

    /// Who receives what this member sends to the room (optionally not itself).
    pub(crate) fn audience(&self, except: Option<Arc<str>>) -> Recipients {
        match (self.stage(), except) {
            (true, None) => Recipients::All,
            (true, Some(me)) => Recipients::AllExcept(me),
            (false, except) => Recipients::Shard { shard: self.shard(), except },
        }
    }
}

/// The room's shards: how many attendees off stage each holds, and where each group went.
#[derive(Debug, Default)]
pub(crate) struct ShardTable {
    pub(crate) size: u32,
    counts: Vec<u32>,
    groups: HashMap<Arc<str>, u32>,
}

/// Why a placement change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("no such peer in this event")]
    NotInRoom,
    #[error("shard {0} is full")]
    ShardFull(u32),
    #[error("shard {0} is not open")]
    NoSuchShard(u32),
    #[error("no other shard has room")]
    NoOtherShard,
    #[error("only hosts may do that, and not to other hosts")]
    Forbidden,
}

impl ShardError {
    /// The `error` frame's code for this refusal.
    pub(crate) fn error_code(&self) -> crate::protocol::ErrorCode {
        use crate::protocol::ErrorCode;
        match self {
            ShardError::NotInRoom => ErrorCode::NotInRoom,
            ShardError::Forbidden => ErrorCode::Forbidden,
            ShardError::ShardFull(_) | ShardError::NoOtherShard => ErrorCode::ShardFull,
            ShardError::NoSuchShard(_) => ErrorCode::Invalid,
        }
    }
}

impl ShardTable {
    fn limit(&self) -> u32 {
        if self.size == 0 {
            u32::MAX
        } else {
            self.size
        }
    }

    pub(crate) fn count(&self, shard: u32) -> u32 {
        self.counts.get(shard as usize).copied().unwrap_or(0)
    }

    pub(crate) fn add(&mut self, shard: u32) {
        let at = shard as usize;
        if self.counts.len() <= at {
            self.counts.resize(at + 1, 0);
        }
        self.counts[at] += 1;
    }

    pub(crate) fn sub(&mut self, shard: u32) {
        if let Some(count) = self.counts.get_mut(shard as usize) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Reclaimed: its groups start afresh wherever they land next.
                self.groups.retain(|_, at| *at != shard);
                while self.counts.last() == Some(&0) {
                    self.counts.pop();
                }
            }
        }
    }

    fn has_room(&self, shard: u32) -> bool {
        self.count(shard) < self.limit()
    }

    /// The shard for a new attendee: its group's while that has room, else the fullest open shard with room,
    /// else the lowest closed one. `prefer` (a superseded connection's shard) wins while it has room.
    pub(crate) fn place(&mut self, group: Option<&str>, prefer: Option<u32>) -> u32 {
        let grouped = group.and_then(|g| self.groups.get(g).copied()).filter(|s| self.has_room(*s));
        let shard = prefer
            .filter(|s| self.has_room(*s))
            .or(grouped)
            .or_else(|| self.fullest_with_room(None))
            .unwrap_or_else(|| self.lowest_closed());
        if let Some(group) = group {
            self.groups.insert(group.into(), shard);
        }
        shard
    }

    /// The open shard (not `except`) with most attendees and room for one more; ties to the lowest index.
    pub(crate) fn fullest_with_room(&self, except: Option<u32>) -> Option<u32> {
        let limit = self.limit();
        (0..self.counts.len() as u32)
            .filter(|s| Some(*s) != except)
            .map(|s| (s, self.count(s)))
            .filter(|(_, n)| *n > 0 && *n < limit)
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(s, _)| s)
    }

    pub(crate) fn lowest_closed(&self) -> u32 {
        (0..).find(|s| self.count(*s) == 0).unwrap_or(0)
    }

    /// The shard a stage member looks at when it joins: its group's, else the fullest open one, else 0.
    fn view_for_stage(&self, group: Option<&str>) -> u32 {
        group
            .and_then(|g| self.groups.get(g).copied())
            .or_else(|| (0..self.counts.len() as u32).max_by(|a, b| self.count(*a).cmp(&self.count(*b)).then(b.cmp(a))))
            .filter(|s| self.count(*s) > 0)
            .unwrap_or(0)
    }

    /// Open shards and their attendees off stage.
    pub(crate) fn open(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(s, n)| (s as u32, *n))
    }
}

/// Where a new member goes, decided under the room's lock. `prefer` is the shard of the connection it supersedes.
pub(crate) fn place_member(
    state: &mut RoomState,
    role: Role,
    placement: &Placement,
    prefer: Option<u32>,
) -> (u32, bool) {
    state.shards.size = placement.shard_size;
    if let Some(decided) = placement.decided {
        return decided;
    }
    let group: Option<String> = placement.group.as_deref().map(|g| g.chars().take(MAX_GROUP_CHARS).collect());
    let stage = placement.stage || role == Role::Host;
    if stage {
        (prefer.unwrap_or_else(|| state.shards.view_for_stage(group.as_deref())), true)
    } else {
        (state.shards.place(group.as_deref(), prefer), false)
    }
}

/// One shard's head count, for the creator's live feed and charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShardOccupancy {
    pub shard: u32,
    /// Attendees placed in this shard (stage members are not counted here: they are in every shard).
    pub attendees: u32,
}

/// The latest sync data of the stage members' entities, so a joiner of any shard can create them.
#[derive(Debug, Default)]
pub(crate) struct StageEntities {
    /// network id → (owner's client id, NAF sync data with every component seen so far).
    kept: Mutex<BTreeMap<String, KeptEntity>>,
}

/// A kept stage entity: its owner's client id and its NAF sync data.
type KeptEntity = (Arc<str>, Map<String, Value>);

/// Most stage entities a room keeps, and their largest size as JSON; beyond that they are relayed, not kept.
const MAX_STAGE_ENTITIES: usize = 256;
const MAX_STAGE_ENTITY_BYTES: usize = 16 * 1024;

impl StageEntities {
    /// Keeps what a stage member's broadcast says about its entities (NAF's `u`, `um` and `r`).
    pub(crate) fn observe(&self, owner: &Arc<str>, data_type: &str, data: &Value) {
        match data_type {
            "u" => self.keep(owner, data),
            "um" => {
                if let Some(updates) = data.get("d").and_then(Value::as_array) {
                    updates.iter().for_each(|update| self.keep(owner, update));
                }
            }
            "r" => {
                if let Some(id) = data.get("networkId").and_then(Value::as_str) {
                    self.kept.lock().remove(id);
                }
            }
            _ => {}
        }
    }

    fn keep(&self, owner: &Arc<str>, update: &Value) {
        let Value::Object(update) = update else { return };
        let Some(id) = update.get("networkId").and_then(Value::as_str) else { return };
        let mut kept = self.kept.lock();
        let merged = match kept.get(id) {
            Some((_, current)) => crate::persistent::merge(current.clone(), update),
            None if kept.len() >= MAX_STAGE_ENTITIES => return,
            None => crate::persistent::merge(Map::new(), update),
        };
        if Value::Object(merged.clone()).to_string().len() <= MAX_STAGE_ENTITY_BYTES {
            kept.insert(id.to_owned(), (owner.clone(), merged));
        }
    }

    /// Forgets a member's entities when it leaves the stage or the room (its peers remove them on `peer_left`).
    pub(crate) fn forget_owner(&self, owner: &str) {
        self.kept.lock().retain(|_, (held_by, _)| &**held_by != owner);
    }

    /// The kept entities as first syncs, not those of `except` (the joiner itself).
    pub(crate) fn first_syncs(&self, except: &str) -> Vec<Value> {
        let kept = self.kept.lock();
        kept.values()
            .filter(|(owner, _)| &**owner != except)
            .map(|(_, data)| {
                let mut data = data.clone();
                data.insert("isFirstSync".into(), Value::Bool(true));
                Value::Object(data)
            })
            .collect()
    }
}

/// Frames owed after one member's placement changed: who now sees it, who no longer does, and its own new view.
struct Moved {
    joined_for: Vec<Arc<str>>,
    left_for: Vec<Arc<str>>,
    joined: Bytes,
    left: Bytes,
    own: Option<Bytes>,
    info: Arc<PeerInfo>,
    shard: u32,
    stage: bool,
}

/// Moves `client_id` to (`shard`, `stage`) under the lock and works out what everyone must be told. `remote`
/// (the peers of other nodes, `mirror.rs`) are in its new view; they learn of the move from its
/// `shard_changed`, which their nodes read as it passes.
fn relocate(
    state: &mut RoomState,
    remote: &[RemoteOccupant],
    client_id: &str,
    shard: u32,
    stage: bool,
) -> Option<Moved> {
    let member = state.members.get(client_id)?;
    let placed = member.placed.clone();
    let info = member.info.clone();
    let before = Placed::new(placed.shard(), placed.stage());
    let after = Placed::new(shard, stage);
    let attendee = info.role == Role::Attendee;
    if attendee && !before.stage() {
        state.shards.sub(before.shard());
    }
    if attendee && !stage {
        state.shards.add(shard);
    }
    placed.set(shard, stage);
    let (mut joined_for, mut left_for) = (Vec::new(), Vec::new());
    let mut view_changed = false;
    for (id, other) in &state.members {
        if **id == *client_id {
            continue;
        }
        let (saw_me, sees_me) = (other.placed.sees(&before), other.placed.sees(&after));
        if sees_me && !saw_me {
            joined_for.push(id.clone());
        } else if saw_me && !sees_me {
            left_for.push(id.clone());
        }
        view_changed |= before.sees(&other.placed) != after.sees(&other.placed);
    }
    let member = state.members.get(client_id)?;
    let joined = ServerMessage::PeerJoined { occupant: member.view() }.encode();
    let left = ServerMessage::PeerLeft { client_id: &info.client_id, reason: LeaveReason::Moved }.encode();
    let own = (view_changed || before.shard() != shard || before.stage() != stage).then(|| {
        let mut occupants = visible_remote(remote, &after);
        occupants.extend(visible_to(state, client_id, &after));
        ServerMessage::ShardChanged { shard, stage, occupants }.encode()
    });
    Some(Moved { joined_for, left_for, joined, left, own, info, shard, stage })
}

/// The occupants a member placed at `viewer` sees, keyed by client id.
pub(crate) fn visible_to<'a>(state: &'a RoomState, me: &str, viewer: &Placed) -> BTreeMap<&'a str, OccupantView<'a>> {
    state
        .members
        .iter()
        .filter(|(id, member)| ***id != *me && viewer.sees(&member.placed))
        .map(|(id, member)| (&**id, member.view()))
        .collect()
}

/// The peers of other nodes a member placed at `viewer` sees.
pub(crate) fn visible_remote<'a>(remote: &'a [RemoteOccupant], viewer: &Placed) -> BTreeMap<&'a str, OccupantView<'a>> {
    remote.iter().filter(|o| viewer.sees(&o.placed())).map(|o| (&*o.client_id, o.view())).collect()
}

/// A change of placement a member or a host asked for over the WebSocket (`switch_shard`, `invite_to_stage`,
/// `remove_from_stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementChange {
    /// To this shard, or the fullest other one with room.
    Switch(Option<u32>),
    /// On the stage, or off it.
    Stage(bool),
}

/// Decides placement changes when it is not this room's to decide: with several nodes the broker holds the
/// shard table (`cluster::placement`). Called on the connection task of the peer that asked (`by`): hand the
/// work to another task, which applies the outcome with [`Hub::apply_placement`] on the node holding the
/// target, or answers `by` with [`Hub::refuse_placement`].
pub trait PlacementAuthority: Send + Sync + 'static {
    fn request(&self, room: RoomId, client_id: &str, change: PlacementChange, by: &PeerInfo);
}

impl<F> PlacementAuthority for F
where
    F: Fn(RoomId, &str, PlacementChange, &PeerInfo) + Send + Sync + 'static,
{
    fn request(&self, room: RoomId, client_id: &str, change: PlacementChange, by: &PeerInfo) {
        self(room, client_id, change, by)
    }
}

impl Hub {
    /// Whether placement changes are decided elsewhere ([`PlacementAuthority`]).
    pub(crate) fn placement_authority(&self) -> Option<&dyn PlacementAuthority> {
        self.inner.placement.as_deref()
    }

    /// Places `client_id` at (`shard`, `stage`) as decided elsewhere (the broker), telling everyone as a move
    /// decided here would. `by` is the host who put it on or off the stage. `false` when it is not here.
    pub fn apply_placement(&self, room_id: RoomId, client_id: &str, shard: u32, stage: bool, by: Option<&str>) -> bool {
        let Some(room) = self.room(room_id) else { return false };
        let remote = self.inner.mirror.snapshot(room_id);
        let (moved, stage_changed) = {
            let mut state = room.lock();
            let Some(member) = state.members.get(client_id) else { return false };
            let (current, was_on_stage) = (member.placed.shard(), member.placed.stage());
            if (current, was_on_stage) == (shard, stage) {
                return true;
            }
            let Some(moved) = relocate(&mut state, &remote, client_id, shard, stage) else { return false };
            (moved, was_on_stage != stage)
        };
        if stage_changed && !stage {
            room.stage.forget_owner(client_id);
        }
        self.tell(&room, moved);
        if stage_changed {
            let frame = ServerMessage::Stage { client_id, on_stage: stage, by }.encode();
            self.publish(&room, Envelope { to: Recipients::All, delivery: Delivery::Guaranteed, payload: frame });
        }
        true
    }

    /// Answers the peer that asked for a placement change with why it was refused (an `error` frame).
    pub fn refuse_placement(&self, room_id: RoomId, client_id: &str, refused: ShardError) {
        let Some(room) = self.room(room_id) else { return };
        let target = room.lock().members.get(client_id).map(|m| (m.info.clone(), m.queue.clone()));
        if let Some((info, queue)) = target {
            Stats::inc(&self.stats().messages_refused);
            let frame = ServerMessage::Error { code: refused.error_code(), message: refused.to_string() }.encode();
            self.reply(&room, &info, &queue, frame);
        }
    }

    /// Open shards and their attendees off stage of every room on this node, for /metrics.
    pub fn shard_occupancy_all(&self) -> Vec<(RoomId, Vec<ShardOccupancy>)> {
        let rooms: Vec<Arc<Room>> =
            self.inner.shards_registry().flat_map(|shard| shard.lock().values().cloned().collect::<Vec<_>>()).collect();
        rooms
            .iter()
            .filter(|room| room.is_sharded())
            .map(|room| {
                let state = room.lock();
                (room.id(), state.shards.open().map(|(shard, attendees)| ShardOccupancy { shard, attendees }).collect())
            })
            .collect()
    }

    /// Moves an attendee to another shard with room (`to`, or the fullest other open one, else a new one); a
    /// stage member just looks at another open shard. Returns the shard it is in now.
    pub fn switch_shard(&self, room_id: RoomId, client_id: &str, to: Option<u32>) -> Result<u32, ShardError> {
        let room = self.room(room_id).ok_or(ShardError::NotInRoom)?;
        self.switch_in(&room, client_id, to)
    }

    pub(crate) fn switch_in(&self, room: &Arc<Room>, client_id: &str, to: Option<u32>) -> Result<u32, ShardError> {
        let remote = self.inner.mirror.snapshot(room.id());
        let moved = {
            let mut state = room.lock();
            let member = state.members.get(client_id).ok_or(ShardError::NotInRoom)?;
            let (current, stage) = (member.placed.shard(), member.placed.stage());
            let table = &state.shards;
            let target = match to {
                Some(shard) if shard == current => return Ok(current),
                // A stage member looks at an open shard; it takes no room there.
                Some(shard) if stage => {
                    if table.count(shard) == 0 {
                        return Err(ShardError::NoSuchShard(shard));
                    }
                    shard
                }
                // An attendee may open the next closed shard, not an arbitrary index.
                Some(shard) if table.count(shard) == 0 && shard != table.lowest_closed() => {
                    return Err(ShardError::NoSuchShard(shard))
                }
                Some(shard) if !table.has_room(shard) => return Err(ShardError::ShardFull(shard)),
                Some(shard) => shard,
                None if stage => table
                    .open()
                    .map(|(s, _)| s)
                    .find(|s| *s > current)
                    .or_else(|| table.open().map(|(s, _)| s).next())
                    .filter(|s| *s != current)
                    .ok_or(ShardError::NoOtherShard)?,
                None => match table.fullest_with_room(Some(current)) {
                    Some(shard) => shard,
                    // Alone in its shard, a new one would be the same scene.
                    None if table.count(current) <= 1 => return Err(ShardError::NoOtherShard),
                    None => table.lowest_closed(),
                },
            };
            relocate(&mut state, &remote, client_id, target, stage).ok_or(ShardError::NotInRoom)?
        };
        let shard = moved.shard;
        self.tell(room, moved);
        Ok(shard)
    }

    /// Puts an attendee on the stage (`on`) or takes it off, on a host's behalf (`by`, or the gateway's with
    /// `None`). Off stage it goes back to the shard it was looking at if that has room, else where a join would.
    pub fn set_stage(&self, room_id: RoomId, client_id: &str, on: bool, by: Option<&str>) -> Result<(), ShardError> {
        let room = self.room(room_id).ok_or(ShardError::NotInRoom)?;
        self.set_stage_in(&room, client_id, on, by)
    }

    pub(crate) fn set_stage_in(
        &self,
        room: &Arc<Room>,
        client_id: &str,
        on: bool,
        by: Option<&str>,
    ) -> Result<(), ShardError> {
        let remote = self.inner.mirror.snapshot(room.id());
        let moved = {
            let mut state = room.lock();
            let member = state.members.get(client_id).ok_or(ShardError::NotInRoom)?;
            if member.info.role == Role::Host {
                return Err(ShardError::Forbidden);
            }
            let (current, stage) = (member.placed.shard(), member.placed.stage());
            if stage == on {
                return Ok(());
            }
            let shard = if on || state.shards.has_room(current) {
                current
            } else {
                state.shards.fullest_with_room(None).unwrap_or_else(|| state.shards.lowest_closed())
            };
            relocate(&mut state, &remote, client_id, shard, on).ok_or(ShardError::NotInRoom)?
        };
        if !on {
            room.stage.forget_owner(client_id);
        }
        let frame = ServerMessage::Stage { client_id, on_stage: on, by }.encode();
        self.tell(room, moved);
        self.publish(room, Envelope { to: Recipients::All, delivery: Delivery::Guaranteed, payload: frame });
        Ok(())
    }

    /// An event-wide announcement to every shard: from a host's connection, or from the creator's tools (`None`).
    pub fn announce(&self, room_id: RoomId, from: Option<&PeerInfo>, text: &str) -> bool {
        let Some(room) = self.room(room_id) else { return false };
        let frame = ServerMessage::Announcement {
            from: from.map(|f| &*f.client_id),
            identity: from.map(|f| &*f.identity),
            text,
            server_time: now_ms(),
        }
        .encode();
        self.publish(&room, Envelope { to: Recipients::All, delivery: Delivery::Guaranteed, payload: frame });
        if let Some(from) = from {
            self.emit(from, RoomEventKind::Announcement { text: text.to_owned() });
        }
        true
    }

    /// Open shards and their attendees off stage, lowest index first; empty when the room is closed.
    pub fn shard_occupancy(&self, room_id: RoomId) -> Vec<ShardOccupancy> {
        let Some(room) = self.room(room_id) else { return Vec::new() };
        let state = room.lock();
        state.shards.open().map(|(shard, attendees)| ShardOccupancy { shard, attendees }).collect()
    }

    /// Where a peer is: its shard and whether it is on stage.
    pub fn placement_of(&self, room_id: RoomId, client_id: &str) -> Option<(u32, bool)> {
        let room = self.room(room_id)?;
        let state = room.lock();
        state.members.get(client_id).map(|m| (m.placed.shard(), m.placed.stage()))
    }

    fn tell(&self, room: &Arc<Room>, moved: Moved) {
        let Moved { joined_for, left_for, joined, left, own, info, shard, stage } = moved;
        if let Some(own) = own {
            self.publish(
                room,
                Envelope { to: Recipients::One(info.client_id.clone()), delivery: Delivery::Guaranteed, payload: own },
            );
        }
        for id in left_for {
            self.publish(
                room,
                Envelope { to: Recipients::One(id), delivery: Delivery::Guaranteed, payload: left.clone() },
            );
        }
        for id in joined_for {
            self.publish(
                room,
                Envelope { to: Recipients::One(id), delivery: Delivery::Guaranteed, payload: joined.clone() },
            );
        }
        self.emit(&info, RoomEventKind::Placed { shard, stage });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_fullest_shard_with_room_then_opens_the_lowest_closed() {
        let mut table = ShardTable { size: 2, ..ShardTable::default() };
        let mut placed = Vec::new();
        for _ in 0..5 {
            let shard = table.place(None, None);
            table.add(shard);
            placed.push(shard);
        }
        assert_eq!(placed, [0, 0, 1, 1, 2]);
        table.sub(0);
        table.sub(0);
        // Shard 0 closed: the next joiner fills shard 2 (open, with room) before reopening 0.
        let shard = table.place(None, None);
        assert_eq!(shard, 2);
        table.add(shard);
        assert_eq!(table.place(None, None), 0);
    }

    #[test]
    fn a_group_stays_together_while_its_shard_has_room() {
        let mut table = ShardTable { size: 3, ..ShardTable::default() };
        for _ in 0..2 {
            let shard = table.place(None, None);
            table.add(shard);
        }
        let friend = table.place(Some("g"), None);
        table.add(friend);
        assert_eq!(friend, 0);
        // Shard 0 is full now: the group moves on together to a new shard.
        let second = table.place(Some("g"), None);
        table.add(second);
        let third = table.place(Some("g"), None);
        table.add(third);
        assert_eq!((second, third), (1, 1));
    }

    #[test]
    fn unsharded_rooms_keep_everyone_in_shard_zero() {
        let mut table = ShardTable::default();
        for _ in 0..1000 {
            let shard = table.place(None, None);
            assert_eq!(shard, 0);
            table.add(shard);
        }
    }
}
