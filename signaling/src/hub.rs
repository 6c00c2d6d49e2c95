//! The handle the gateway holds: admits peers, moderates rooms, shuts everything down.
//!
//! `Hub` is cheap to clone (one `Arc`) and is shared by every connection task, like
//! mini-redis's `Db`. Rooms live in a sharded registry: a shard's lock is taken only to
//! find, create or drop a room on join and leave. Relaying never touches it, because each
//! [`Peer`] holds its room directly.

use crate::admission::{Admission, PeerInfo, Role, RoomId};
use crate::close::{CloseCode, CloseFrame};
use crate::config::SignalingConfig;
use crate::event::{LeaveReason, RoomEvent, RoomEventKind};
use crate::fanout::{Envelope, LocalFanout, Recipients, RoomFanout};
use crate::outbox::{Delivery, Outbox, PeerQueue, Pushed};
use crate::peer::Peer;
use crate::protocol::{OccupantView, ServerMessage};
use crate::room::{Member, Occupancy, Room};
use crate::shards::Placement;
use crate::stats::{Stats, StatsSnapshot};
use crate::turn::{TurnGrant, TurnIssuer};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

const SHARDS: usize = 16;

/// One slice of the room registry.
type Shard = Mutex<HashMap<RoomId, Arc<Room>>>;

/// Server time in ms since the Unix epoch: what NAF's clock sync compares against.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Why an admission was refused. The gateway closes the socket with [`AdmitError::close_frame`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("room full: {capacity} attendees")]
    RoomFull { capacity: u32 },
    #[error("seat banned from this room")]
    Banned,
    #[error("server shutting down")]
    ShuttingDown,
    #[error("client id already in use in this room")]
    DuplicateClientId,
}

impl AdmitError {
    pub fn close_frame(&self) -> CloseFrame {
        match self {
            AdmitError::RoomFull { .. } => CloseCode::RoomFull.into(),
            AdmitError::Banned => CloseCode::Banned.into(),
            AdmitError::ShuttingDown => CloseCode::Shutdown.into(),
            // A gateway bug (client ids must be unique), not the client's fault.
            AdmitError::DuplicateClientId => CloseFrame { code: 1011, reason: "duplicate client id".into() },
        }
    }
}

/// One occupant, owned, for the gateway's live feed and resynchronisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccupantSummary {
    pub info: PeerInfo,
    pub mic: bool,
    pub screen: bool,
    pub muted: bool,
    /// The shard it sees, and whether it is on the stage (`shards.rs`).
    pub shard: u32,
    pub stage: bool,
}

pub struct HubBuilder {
    config: SignalingConfig,
    fanout: Box<dyn RoomFanout>,
    turn: Option<Box<dyn TurnIssuer>>,
    bans: Option<Box<dyn crate::moderation::BanHandler>>,
    resume: Option<Box<dyn crate::resume::ResumeIssuer>>,
    entities: Option<Box<dyn crate::persistent::EntitySink>>,
    remote_moderator: Option<Box<dyn crate::moderation::RemoteModerator>>,
    placement: Option<Box<dyn crate::shards::PlacementAuthority>>,
}

impl HubBuilder {
    /// Hands placement changes (`switch_shard`, the stage) to `authority` instead of deciding them in the room
    /// (see [`crate::shards::PlacementAuthority`]).
    pub fn placement_authority(mut self, authority: impl crate::shards::PlacementAuthority) -> Self {
        self.placement = Some(Box::new(authority));
        self
    }

    /// Puts a resume token, made by `issuer`, in every `welcome` and `resumed` frame (see [`crate::resume`]).
    pub fn resume_issuer(mut self, issuer: impl crate::resume::ResumeIssuer) -> Self {
        self.resume = Some(Box::new(issuer));
        self
    }

    /// Hands every change of a room's persistent entities to `sink`, to be stored (see [`crate::persistent`]).
    pub fn entity_sink(mut self, sink: impl crate::persistent::EntitySink) -> Self {
        self.entities = Some(Box::new(sink));
        self
    }

    /// Hands hosts' WebSocket bans to `handler` instead of applying them in memory (see [`crate::moderation`]).
    pub fn ban_handler(mut self, handler: impl crate::moderation::BanHandler) -> Self {
        self.bans = Some(Box::new(handler));
        self
    }

    /// Hands hosts' moderation of peers held by other nodes to `moderator` (see [`crate::mirror`]).
    pub fn remote_moderator(mut self, moderator: impl crate::moderation::RemoteModerator) -> Self {
        self.remote_moderator = Some(Box::new(moderator));
        self
    }

    pub fn fanout(mut self, fanout: impl RoomFanout) -> Self {
        self.fanout = Box::new(fanout);
        self
    }

    pub fn turn_issuer(mut self, issuer: impl TurnIssuer) -> Self {
        self.turn = Some(Box::new(issuer));
        self
    }

    pub fn build(self) -> Hub {
        let (events, _) = broadcast::channel(self.config.event_buffer.max(1));
        Hub {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                config: self.config,
                stats: Stats::default(),
                events,
                fanout: self.fanout,
                turn: self.turn,
                bans: self.bans,
                remote_moderator: self.remote_moderator,
                placement: self.placement,
                mirror: crate::mirror::Mirror::default(),
                resume: self.resume,
                persistent: crate::persistent::Registry::new(self.entities),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }
}

#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: SignalingConfig,
    stats: Stats,
    events: broadcast::Sender<RoomEvent>,
    fanout: Box<dyn RoomFanout>,
    turn: Option<Box<dyn TurnIssuer>>,
    bans: Option<Box<dyn crate::moderation::BanHandler>>,
    pub(crate) remote_moderator: Option<Box<dyn crate::moderation::RemoteModerator>>,
    /// Decides placement changes when the broker holds the shard table (`shards.rs`).
    pub(crate) placement: Option<Box<dyn crate::shards::PlacementAuthority>>,
    /// Peers of rooms held by other nodes (`mirror.rs`).
    pub(crate) mirror: crate::mirror::Mirror,
    pub(crate) resume: Option<Box<dyn crate::resume::ResumeIssuer>>,
    pub(crate) persistent: crate::persistent::Registry,
    shards: Box<[Shard]>,
    shutting_down: AtomicBool,
}

impl Inner {
    /// The room registry's slices.
    pub(crate) fn shards_registry(&self) -> impl Iterator<Item = &Shard> {
        self.shards.iter()
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("stats", &self.inner.stats.snapshot()).finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub with in-process fan-out and no TURN issuer.
    pub fn new(config: SignalingConfig) -> Self {
        Self::builder(config).build()
    }

    pub fn builder(config: SignalingConfig) -> HubBuilder {
        HubBuilder {
            config,
            fanout: Box::new(LocalFanout),
            turn: None,
            bans: None,
            resume: None,
            entities: None,
            remote_moderator: None,
            placement: None,
        }
    }

    pub fn config(&self) -> &SignalingConfig {
        &self.inner.config
    }

    /// Live counters; export them as gauges/counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    pub fn stats_snapshot(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Joined/left/chat/voice/screen-share/mute events from every room.
    pub fn subscribe(&self) -> broadcast::Receiver<RoomEvent> {
        self.inner.events.subscribe()
    }

    pub(crate) fn shard(&self, room_id: RoomId) -> &Shard {
        &self.inner.shards[room_id.rem_euclid(SHARDS as i64) as usize]
    }

    pub(crate) fn room(&self, room_id: RoomId) -> Option<Arc<Room>> {
        self.shard(room_id).lock().get(&room_id).cloned()
    }

    /// Admits an authenticated connection into its room.
    ///
    /// On success the peer's [`Outbox`] already holds its `welcome` frame, and the other
    /// peers have been told (`peer_joined`). If the seat key is held by another
    /// connection, that one is closed with 4000 "superseded" and the seat passes to this
    /// one (counted once). Attendees beyond the room's capacity are refused; hosts are
    /// never counted.
    pub fn try_admit(&self, admission: Admission) -> Result<(Peer, Outbox), AdmitError> {
        self.try_admit_placed(admission, &Placement::default())
    }

    /// [`Hub::try_admit`] into a sharded event: the peer is placed in a shard (or on the stage) under the same
    /// lock that counts capacity, so concurrent joins never overfill a shard (see [`crate::shards`]).
    pub fn try_admit_placed(&self, admission: Admission, placement: &Placement) -> Result<(Peer, Outbox), AdmitError> {
        let inner = &*self.inner;
        if inner.shutting_down.load(Ordering::Acquire) {
            Stats::inc(&inner.stats.admissions_refused);
            return Err(AdmitError::ShuttingDown);
        }
        let info = Arc::new(PeerInfo::from_admission(&admission, now_ms()));
        // Ask for TURN credentials before taking any lock: the issuer is the gateway's code.
        let turn = inner.turn.as_ref().and_then(|issuer| issuer.issue(&info));
        let queue = crate::resume::session_queue(&inner.config);
        let resume_token = inner.resume.as_ref().and_then(|issuer| issuer.issue(&info));
        // Peers of the room on other nodes are listed in the welcome beside this node's (`mirror.rs`).
        let remote = inner.mirror.snapshot(admission.room_id);

        let mut shard = self.shard(admission.room_id).lock();
        let room = shard
            .entry(admission.room_id)
            .or_insert_with(|| {
                Stats::inc(&inner.stats.rooms);
                Arc::new(Room::with_entities(admission.room_id, inner.persistent.room(admission.room_id)))
            })
            .clone();
        let mut state = room.lock();
        state.capacity = admission.capacity;
        let refusal = if state.banned.contains(admission.seat_key.as_str()) {
            Some(AdmitError::Banned)
        } else {
            let previous = state.seats.get(admission.seat_key.as_str()).cloned();
            let freed = match previous.as_ref().and_then(|id| state.members.get(id)) {
                Some(member) if member.info.role == Role::Attendee => 1,
                _ => 0,
            };
            if state.members.contains_key(admission.client_id.as_str())
                && previous.as_deref() != Some(&*admission.client_id)
            {
                Some(AdmitError::DuplicateClientId)
            } else if admission.role == Role::Attendee && state.attendees - freed >= state.capacity {
                Some(AdmitError::RoomFull { capacity: state.capacity })
            } else {
                None
            }
        };
        if let Some(refusal) = refusal {
            if state.is_idle() {
                drop(state);
                shard.remove(&admission.room_id);
                Stats::dec(&inner.stats.rooms);
            }
            Stats::inc(&inner.stats.admissions_refused);
            return Err(refusal);
        }

        let superseded = state.seats.get(admission.seat_key.as_str()).cloned().and_then(|holder| state.remove(&holder));
        let muted = state.muted.contains(&*info.seat_key);
        // A superseding connection keeps the seat's shard and its place on the stage.
        let (prefer, was_on_stage) =
            superseded.as_ref().map_or((None, false), |old| (Some(old.placed.shard()), old.placed.stage()));
        let mut placement_now = placement.clone();
        placement_now.stage |= was_on_stage;
        let (in_shard, on_stage) = crate::shards::place_member(&mut state, info.role, &placement_now, prefer);
        room.set_sharded(placement.shard_size > 0);
        let placed = Arc::new(crate::shards::Placed::new(in_shard, on_stage));
        let welcome = {
            // Peers held by other nodes and the local ones this peer sees.
            let mut occupants: BTreeMap<&str, OccupantView<'_>> = crate::shards::visible_remote(&remote, &placed);
            occupants.extend(crate::shards::visible_to(&state, &info.client_id, &placed));
            ServerMessage::Welcome {
                client_id: &info.client_id,
                room_id: info.room_id,
                role: info.role,
                identity: &info.identity,
                joined_at: info.joined_at,
                muted,
                server_time: now_ms(),
                shard: in_shard,
                stage: on_stage,
                occupants,
                turn: turn.as_ref(),
                resume_token: resume_token.as_deref(),
                resume_window_secs: resume_token.as_ref().map(|_| inner.config.resume_window_secs),
            }
            .encode()
        };
        // First frame in a fresh queue: cannot be refused. The persistent entities follow it, taken under the
        // room's lock so that no change to them falls between the snapshot and live traffic.
        queue.push(welcome, Delivery::Guaranteed);
        if let Some(snapshot) = inner.persistent.snapshot(admission.room_id) {
            queue.push(snapshot, Delivery::Guaranteed);
        }
        if room.is_sharded() {
            let stage_entities = room.stage.first_syncs(&info.client_id);
            if !stage_entities.is_empty() {
                queue.push(
                    ServerMessage::Snapshot { entities: stage_entities.iter().collect() }.encode(),
                    Delivery::Guaranteed,
                );
            }
        }
        let inbound = Arc::default();
        let member = Member {
            info: info.clone(),
            queue: queue.clone(),
            mic: false,
            screen: false,
            muted,
            audio_sending: false,
            away: None,
            inbound: Arc::clone(&inbound),
            placed: placed.clone(),
        };
        let joined = ServerMessage::PeerJoined { occupant: member.view() }.encode();
        state.insert(member);
        drop(state);
        drop(shard);

        Stats::inc(&inner.stats.peers);
        if let Some(old) = superseded {
            self.after_removal(&room, &old.info, &old.queue, &old.placed, LeaveReason::Superseded);
        }
        self.emit(&info, RoomEventKind::Joined);
        self.emit(&info, RoomEventKind::Placed { shard: in_shard, stage: on_stage });
        self.publish(
            &room,
            Envelope {
                to: placed.audience(Some(info.client_id.clone())),
                delivery: Delivery::Guaranteed,
                payload: joined,
            },
        );
        tracing::debug!(room = info.room_id, client = %info.client_id, role = ?info.role, shard = in_shard, stage = on_stage, "admitted");
        let peer = Peer::new(self.clone(), room, info, queue.clone(), inbound, placed);
        Ok((peer, Outbox::new(queue)))
    }

    /// Closes a peer with 4001 "kicked". It may rejoin. `false` if it is not in the room.
    pub fn kick(&self, room_id: RoomId, client_id: &str) -> bool {
        self.room(room_id).is_some_and(|room| self.kick_in(&room, client_id, false))
    }

    /// Closes a peer with 4003 "banned" and refuses its seat key while the room is open.
    /// The gateway must persist the ban (the `Left { reason: Banned }` event carries the
    /// seat key) and refuse the ticket at its own admission step.
    pub fn ban(&self, room_id: RoomId, client_id: &str) -> bool {
        self.room(room_id).is_some_and(|room| self.kick_in(&room, client_id, true))
    }

    /// Closes a peer of this node for `reason` (a supersede, kick or ban decided on another node). `false` if
    /// it is not here.
    pub fn close_peer(&self, room_id: RoomId, client_id: &str, reason: LeaveReason) -> bool {
        match reason {
            LeaveReason::Banned => self.ban(room_id, client_id),
            _ => self.room(room_id).is_some_and(|room| self.remove_member(&room, client_id, reason)),
        }
    }

    /// Mutes (or unmutes) a peer on the gateway's behalf (`by` is null in the `muted` frame).
    pub fn mute(&self, room_id: RoomId, client_id: &str, muted: bool) -> bool {
        self.room(room_id).is_some_and(|room| self.set_muted(&room, client_id, muted, None))
    }

    pub fn occupancy(&self, room_id: RoomId) -> Option<Occupancy> {
        self.room(room_id).map(|room| room.lock().occupancy())
    }

    pub fn occupants(&self, room_id: RoomId) -> Vec<OccupantSummary> {
        let Some(room) = self.room(room_id) else { return Vec::new() };
        let state = room.lock();
        state
            .members
            .values()
            .map(|m| OccupantSummary {
                info: (*m.info).clone(),
                mic: m.mic,
                screen: m.screen,
                muted: m.muted,
                shard: m.placed.shard(),
                stage: m.placed.stage(),
            })
            .collect()
    }

    /// Closes every connection with 1001 and refuses new admissions.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        let rooms: Vec<Arc<Room>> =
            self.inner.shards.iter().flat_map(|shard| shard.lock().values().cloned().collect::<Vec<_>>()).collect();
        for room in rooms {
            self.empty_room(&room, LeaveReason::Shutdown);
        }
    }

    /// The event is over: closes everyone in the room with 4410 "event ended" and forgets
    /// the room (bans and mutes included; the gateway refuses new joins itself). Returns
    /// how many connections were closed.
    pub fn close_room(&self, room_id: RoomId) -> usize {
        self.end_room(room_id, LeaveReason::EventEnded)
    }

    /// The event was cancelled while live: as [`Hub::close_room`], with 4410 "event cancelled".
    pub fn cancel_room(&self, room_id: RoomId) -> usize {
        self.end_room(room_id, LeaveReason::EventCancelled)
    }

    fn end_room(&self, room_id: RoomId, reason: LeaveReason) -> usize {
        let Some(room) = self.room(room_id) else { return 0 };
        let closed = self.empty_room(&room, reason);
        let mut shard = self.shard(room_id).lock();
        if shard.get(&room_id).is_some_and(|held| Arc::ptr_eq(held, &room)) {
            let mut state = room.lock();
            state.banned.clear();
            state.muted.clear();
            self.inner.persistent.forget(room_id);
            if state.is_idle() {
                drop(state);
                shard.remove(&room_id);
                Stats::dec(&self.inner.stats.rooms);
            }
        }
        closed
    }

    fn empty_room(&self, room: &Arc<Room>, reason: LeaveReason) -> usize {
        let members: Vec<(Arc<str>, Arc<PeerQueue>)> =
            room.lock().members.iter().map(|(id, m)| (id.clone(), m.queue.clone())).collect();
        // Close every queue first so departures are not fanned out to peers that are
        // about to go too.
        for (_, queue) in &members {
            queue.close(reason.close_frame());
        }
        members.into_iter().filter(|(id, queue)| self.remove_connection(room, id, queue, reason)).count()
    }

    /// Entry point for a broker subscriber: deliver an envelope published by another node
    /// to this node's peers of `room_id`.
    pub fn deliver_local(&self, room_id: RoomId, envelope: &Envelope) {
        if let Some(room) = self.room(room_id) {
            self.deliver(&room, envelope);
        }
    }

    pub(crate) fn publish(&self, room: &Arc<Room>, envelope: Envelope) {
        self.inner.fanout.publish(room.id(), envelope, &|envelope| self.deliver(room, envelope));
    }

    fn deliver(&self, room: &Arc<Room>, envelope: &Envelope) {
        for (id, queue) in room.deliver(envelope, &self.inner.stats) {
            self.close_slow_consumer(room, &id, &queue);
        }
    }

    fn close_slow_consumer(&self, room: &Arc<Room>, client_id: &str, queue: &Arc<PeerQueue>) {
        if self.remove_connection(room, client_id, queue, LeaveReason::SlowConsumer) {
            Stats::inc(&self.inner.stats.slow_consumers_closed);
            tracing::info!(room = room.id(), client = %client_id, "closed slow consumer");
        }
    }

    fn remove_member(&self, room: &Arc<Room>, client_id: &str, reason: LeaveReason) -> bool {
        let queue = room.lock().members.get(client_id).map(|m| m.queue.clone());
        queue.is_some_and(|queue| self.remove_connection(room, client_id, &queue, reason))
    }

    /// Takes the connection owning `queue` out of the room, closes its queue with the
    /// reason's close code and tells everyone. Idempotent: `false` if it was already gone.
    pub(crate) fn remove_connection(
        &self,
        room: &Arc<Room>,
        client_id: &str,
        queue: &Arc<PeerQueue>,
        reason: LeaveReason,
    ) -> bool {
        let removed = room.lock().remove_connection(client_id, queue);
        match removed {
            Some(member) => {
                self.after_removal(room, &member.info, queue, &member.placed, reason);
                self.drop_room_if_idle(room);
                true
            }
            None => {
                queue.close(reason.close_frame());
                false
            }
        }
    }

    pub(crate) fn after_removal(
        &self,
        room: &Arc<Room>,
        info: &PeerInfo,
        queue: &PeerQueue,
        placed: &crate::shards::Placed,
        reason: LeaveReason,
    ) {
        queue.close(reason.close_frame());
        Stats::dec(&self.inner.stats.peers);
        self.emit(info, RoomEventKind::Left { reason });
        if placed.stage() {
            room.stage.forget_owner(&info.client_id);
        }
        let left = ServerMessage::PeerLeft { client_id: &info.client_id, reason }.encode();
        // Those who saw it: its shard, or everyone for a stage member.
        self.publish(room, Envelope { to: placed.audience(None), delivery: Delivery::Guaranteed, payload: left });
        tracing::debug!(room = info.room_id, client = %info.client_id, ?reason, "left");
    }

    pub(crate) fn drop_room_if_idle(&self, room: &Arc<Room>) {
        let mut shard = self.shard(room.id()).lock();
        let idle = shard.get(&room.id()).is_some_and(|held| Arc::ptr_eq(held, room)) && room.lock().is_idle();
        if idle {
            shard.remove(&room.id());
            Stats::dec(&self.inner.stats.rooms);
        }
    }

    pub(crate) fn set_muted(&self, room: &Arc<Room>, client_id: &str, muted: bool, by: Option<&str>) -> bool {
        let (info, mic_cut) = {
            let mut state = room.lock();
            let Some(member) = state.members.get_mut(client_id) else { return false };
            let mic_cut = muted && member.mic;
            member.muted = muted;
            if mic_cut {
                member.mic = false;
            }
            let info = member.info.clone();
            if muted {
                state.muted.insert(info.seat_key.clone());
            } else {
                state.muted.remove(&*info.seat_key);
            }
            (info, mic_cut)
        };
        let frame = ServerMessage::Muted { client_id: &info.client_id, muted, by }.encode();
        self.publish(room, Envelope { to: Recipients::All, delivery: Delivery::Guaranteed, payload: frame });
        if mic_cut {
            self.emit(&info, RoomEventKind::Voice { on: false });
        }
        self.emit(&info, RoomEventKind::Muted { muted, by: by.map(str::to_owned) });
        true
    }

    /// A host's `ban` over the WebSocket: to the gateway's handler when there is one, in memory otherwise.
    pub(crate) fn ban_requested(&self, room: &Arc<Room>, client_id: &str, by: &PeerInfo) {
        let Some(handler) = &self.inner.bans else {
            self.kick_in(room, client_id, true);
            return;
        };
        let target = room.lock().members.get(client_id).map(|m| m.info.clone());
        if let Some(target) = target {
            handler.ban(room.id(), &target, by);
        }
    }

    pub(crate) fn kick_in(&self, room: &Arc<Room>, client_id: &str, ban: bool) -> bool {
        if ban {
            let mut state = room.lock();
            let Some(seat) = state.members.get(client_id).map(|m| m.info.seat_key.clone()) else { return false };
            state.banned.insert(seat);
        }
        self.remove_member(room, client_id, if ban { LeaveReason::Banned } else { LeaveReason::Kicked })
    }

    pub(crate) fn issue_turn(&self, info: &PeerInfo) -> Option<TurnGrant> {
        self.inner.turn.as_ref().and_then(|issuer| issuer.issue(info))
    }

    pub(crate) fn emit(&self, info: &PeerInfo, kind: RoomEventKind) {
        self.emit_at(info, now_ms(), kind);
    }

    pub(crate) fn emit_at(&self, info: &PeerInfo, at_ms: i64, kind: RoomEventKind) {
        // No subscriber is not an error: the gateway may not record attendance in tests.
        let _ = self.inner.events.send(RoomEvent::new(info, at_ms, kind));
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Queues one frame for one peer, closing it if it is too far behind.
    pub(crate) fn reply(&self, room: &Arc<Room>, info: &PeerInfo, queue: &Arc<PeerQueue>, frame: bytes::Bytes) {
        if queue.push(frame, Delivery::Guaranteed) == Pushed::Overflow {
            self.close_slow_consumer(room, &info.client_id, queue);
        } else {
            Stats::inc(&self.inner.stats.frames_queued);
        }
    }
}
