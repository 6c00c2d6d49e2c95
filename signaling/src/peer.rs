//! The reading half of an admitted connection: every inbound frame goes through here.
//!
//! Each client message is checked and applied in `apply`: the server, not the client,
//! decides who a message is from (`from` is always this peer's id), who may receive it
//! (only admitted peers of the same room), and whether the sender may say it at all (host
//! moderation, mute). Violations of the framing — too big, too fast, not our JSON — close
//! the connection; refusals of content answer with an `error` frame and keep it open.

use crate::admission::{PeerInfo, Role};
use crate::close::{CloseCode, CloseFrame};
use crate::event::{LeaveReason, RoomEventKind};
use crate::fanout::{Envelope, Recipients};
use crate::hub::{now_ms, Hub};
use crate::moderation::Moderation;
use crate::outbox::{Delivery, PeerQueue};
use crate::protocol::{ClientMessage, ErrorCode, ServerMessage};
use crate::rate_limit::PeerLimiter;
use crate::relay_frame::{RelayFrame, RelayKind};
use crate::room::Room;
use crate::sdp;
use crate::shards::{Placed, PlacementChange, ShardError};
use crate::stats::Stats;
use bytes::Bytes;
use std::ops::ControlFlow;
use std::sync::Arc;

/// An admitted peer. Owned by the connection's reader; dropping it leaves the room
/// (reason `left`), so a task that ends for any reason cannot leak a seat.
#[derive(Debug)]
pub struct Peer {
    hub: Hub,
    room: Arc<Room>,
    info: Arc<PeerInfo>,
    queue: Arc<PeerQueue>,
    bucket: PeerLimiter,
    /// Frames of this session applied so far, over all its connections (`resume.rs`).
    inbound: Arc<std::sync::atomic::AtomicU64>,
    /// This member's shard and stage flag, shared with its `Member` (`shards.rs`).
    placed: Arc<Placed>,
}

/// What becomes of a message addressed to one peer.
enum Target {
    Deliver,
    /// The target is seen by the sender but does not see it (a stage member looking at another shard, which
    /// networked-aframe's full sync addresses on joining): dropped without an error.
    Drop,
    Refuse,
}

/// `ControlFlow::Break(())`: stop reading. The outbox ends with the close frame (if any).
pub type Flow = ControlFlow<()>;

impl Peer {
    pub(crate) fn new(
        hub: Hub,
        room: Arc<Room>,
        info: Arc<PeerInfo>,
        queue: Arc<PeerQueue>,
        inbound: Arc<std::sync::atomic::AtomicU64>,
        placed: Arc<Placed>,
    ) -> Self {
        let config = hub.config();
        let bucket = PeerLimiter::new(config.messages_per_second, config.burst);
        Self { hub, room, info, queue, bucket, inbound, placed }
    }

    /// The connection dropped without a goodbye: the peer keeps its seat for the resume window instead of
    /// leaving (`reason` is what its departure records if it does not come back). See [`crate::resume`].
    pub fn suspend(self, reason: LeaveReason) {
        self.hub.suspend(&self.room, &self.info, &self.queue, reason);
        // Dropping `self` now finds the seat's queue moved on and leaves nothing.
    }

    pub fn info(&self) -> &PeerInfo {
        &self.info
    }

    pub fn client_id(&self) -> &str {
        &self.info.client_id
    }

    /// Whether this connection has been closed (kicked, superseded, evicted, shut down).
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Handles one inbound text frame.
    pub fn handle_text(&mut self, text: &str) -> Flow {
        self.admit(text.len())?;
        let stats = self.hub.stats();
        // NAF's updates, nearly all of the traffic, are relayed without decoding `data` (relay_frame.rs).
        if let Some(frame) = RelayFrame::parse(text) {
            self.inbound.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.relay_frame(frame);
            return if self.queue.is_closed() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) };
        }
        match ClientMessage::parse(text) {
            Ok(message) => {
                self.inbound.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.apply(message);
                if self.queue.is_closed() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
            Err(error) => {
                Stats::inc(&stats.malformed_closed);
                tracing::debug!(client = %self.info.client_id, %error, "malformed frame");
                // Close with the parser's words, which tell a client author what was wrong;
                // the removal below then finds the queue closed and keeps this frame.
                self.queue.close(Some(CloseFrame::new(CloseCode::Malformed, error.to_string())));
                self.close(LeaveReason::Malformed)
            }
        }
    }

    /// The checks every inbound text frame passes first: the size limit and the rate bucket. The gateway calls
    /// it for the frames it reads itself (the SFU's signalling), so they cannot flood the SFU past the limits
    /// NAF's traffic has. `Break`: the peer was closed for it.
    pub fn admit(&mut self, len: usize) -> Flow {
        if self.queue.is_closed() {
            return ControlFlow::Break(());
        }
        let stats = self.hub.stats();
        if len > self.hub.config().max_frame_bytes {
            Stats::inc(&stats.oversized_closed);
            return self.close(LeaveReason::FrameTooBig);
        }
        if !self.bucket.try_take() {
            Stats::inc(&stats.rate_limited_closed);
            return self.close(LeaveReason::RateLimited);
        }
        ControlFlow::Continue(())
    }

    /// Handles one inbound binary frame: the protocol has none, so it is malformed.
    pub fn handle_binary(&mut self, len: usize) -> Flow {
        if len > self.hub.config().max_frame_bytes {
            Stats::inc(&self.hub.stats().oversized_closed);
            return self.close(LeaveReason::FrameTooBig);
        }
        Stats::inc(&self.hub.stats().malformed_closed);
        self.close(LeaveReason::Malformed)
    }

    /// Leaves the room: `Left` when the socket closed, `TimedOut` when it went silent.
    pub fn leave(&mut self, reason: LeaveReason) {
        self.hub.remove_connection(&self.room, &self.info.client_id, &self.queue, reason);
    }

    fn close(&mut self, reason: LeaveReason) -> Flow {
        self.leave(reason);
        ControlFlow::Break(())
    }

    fn apply(&mut self, message: ClientMessage) {
        let me = &*self.info.client_id;
        match message {
            ClientMessage::Ping { client_time } => {
                self.reply(ServerMessage::Pong { client_time, server_time: now_ms() }.encode());
            }
            ClientMessage::Send { to, data_type, data, guaranteed } => {
                if !self.deliverable(&to) {
                    return;
                }
                let frame = ServerMessage::Send { from: me, data_type: &data_type, data: &data }.encode();
                self.relay(Recipients::One(to.into()), delivery(guaranteed), frame);
            }
            ClientMessage::Broadcast { data_type, data, guaranteed } => {
                // Kept before it is relayed, so a peer joining in between gets it in its snapshot or live.
                let kept = self.hub.observe_entities(&self.room, &data_type, &data);
                if self.keeps_stage_entities() {
                    self.room.stage.observe(&self.info.client_id, &data_type, &data);
                }
                let frame = ServerMessage::Broadcast { from: me, data_type: &data_type, data: &data }.encode();
                self.relay(self.placed.audience(Some(self.info.client_id.clone())), delivery(guaranteed), frame);
                if let Err(refused) = kept {
                    self.refuse(ErrorCode::Invalid, refused.to_string());
                }
            }
            ClientMessage::Chat { text } => self.chat(&text),
            ClientMessage::Media { mic, screen } => self.media(mic, screen),
            ClientMessage::Offer { to, sdp } => {
                if !self.deliverable(&to) || self.refuse_muted_audio(&sdp) {
                    return;
                }
                let frame = ServerMessage::Offer { from: me, sdp: &sdp }.encode();
                self.relay(Recipients::One(to.into()), Delivery::Guaranteed, frame);
                self.note_audio(&sdp);
            }
            ClientMessage::Answer { to, sdp } => {
                if !self.deliverable(&to) || self.refuse_muted_audio(&sdp) {
                    return;
                }
                let frame = ServerMessage::Answer { from: me, sdp: &sdp }.encode();
                self.relay(Recipients::One(to.into()), Delivery::Guaranteed, frame);
                self.note_audio(&sdp);
            }
            ClientMessage::Candidate { to, candidate } => {
                if !self.deliverable(&to) {
                    return;
                }
                let frame = ServerMessage::Candidate { from: me, candidate: &candidate }.encode();
                self.relay(Recipients::One(to.into()), Delivery::Guaranteed, frame);
            }
            ClientMessage::TurnRefresh => match self.hub.issue_turn(&self.info) {
                Some(grant) => self.reply(ServerMessage::Turn { grant: &grant }.encode()),
                None => self.refuse(ErrorCode::Unavailable, "no TURN relay is configured".into()),
            },
            ClientMessage::Mute { target, muted } => {
                if self.may_moderate(&target, Moderation::Mute(muted)) {
                    self.hub.set_muted(&self.room, &target, muted, Some(me));
                }
            }
            ClientMessage::Kick { target } => {
                if self.may_moderate(&target, Moderation::Kick) {
                    self.hub.kick_in(&self.room, &target, false);
                }
            }
            ClientMessage::Ban { target } => {
                if self.may_moderate(&target, Moderation::Ban) {
                    self.hub.ban_requested(&self.room, &target, &self.info);
                }
            }
            ClientMessage::SwitchShard { shard } => {
                if self.defer_placement(me, PlacementChange::Switch(shard)) {
                    return;
                }
                if let Err(refused) = self.hub.switch_in(&self.room, me, shard) {
                    self.refuse_placement(refused);
                }
            }
            ClientMessage::InviteToStage { target } => self.stage(&target, true),
            ClientMessage::RemoveFromStage { target } => self.stage(&target, false),
            ClientMessage::Announce { text } => self.announce(&text),
        }
    }

    /// `send`/`broadcast` from the fast path: the same checks and recipients as in `apply`.
    fn relay_frame(&self, frame: RelayFrame<'_>) {
        let to = match (frame.kind, &frame.to) {
            (RelayKind::Send, Some(to)) => {
                if !self.deliverable(to) {
                    return;
                }
                Recipients::One(Arc::from(&**to))
            }
            _ => self.placed.audience(Some(self.info.client_id.clone())),
        };
        // Persistent entities (persistent.rs) are kept before the broadcast is relayed, as in `apply`; `data` is
        // decoded only when it may concern them: it says `"persistent":true`, or the room already keeps some.
        let mut kept = Ok(());
        if frame.kind == RelayKind::Broadcast && matches!(&*frame.data_type, "u" | "um" | "r") {
            let raw = frame.data.map_or("null", |d| d.get());
            if self.room.entities.any() || says_persistent(raw) {
                if let Ok(data) = serde_json::from_str::<serde_json::Value>(raw) {
                    kept = self.hub.observe_entities(&self.room, &frame.data_type, &data);
                }
            }
            // A stage member's entities are kept for joiners of the shards it is not looking at (`shards.rs`).
            if self.keeps_stage_entities() {
                if let Ok(data) = serde_json::from_str::<serde_json::Value>(raw) {
                    self.room.stage.observe(&self.info.client_id, &frame.data_type, &data);
                }
            }
        }
        self.relay(to, delivery(frame.guaranteed), frame.encode(&self.info.client_id));
        if let Err(refused) = kept {
            self.refuse(ErrorCode::Invalid, refused.to_string());
        }
    }

    fn relay(&self, to: Recipients, delivery: Delivery, payload: Bytes) {
        Stats::inc(&self.hub.stats().messages_relayed);
        self.hub.publish(&self.room, Envelope { to, delivery, payload });
    }

    fn reply(&self, frame: Bytes) {
        self.hub.reply(&self.room, &self.info, &self.queue, frame);
    }

    fn refuse(&self, code: ErrorCode, message: String) {
        Stats::inc(&self.hub.stats().messages_refused);
        self.reply(ServerMessage::Error { code, message }.encode());
    }

    /// Whether a message to `to` is delivered: both must see each other (same shard, or both on stage).
    /// Refuses (with an `error` frame) a target this peer does not see at all, or one outside the room.
    fn deliverable(&self, to: &str) -> bool {
        let target = {
            let state = self.room.lock();
            match state.members.get(to) {
                // A peer held by another node: its placement as mirrored here (`mirror.rs`). The shard a remote
                // stage member looks at may not be known yet, so what it receives is its node's to filter.
                None => match self.hub.remote_placement(self.room.id(), to) {
                    Some((shard, stage)) if !self.placed.sees(&Placed::new(shard, stage)) => Target::Refuse,
                    Some(_) => Target::Deliver,
                    None => Target::Refuse,
                },
                Some(other) if !self.placed.sees(&other.placed) => Target::Refuse,
                Some(other) if !other.placed.sees(&self.placed) => Target::Drop,
                Some(_) => Target::Deliver,
            }
        };
        match target {
            Target::Deliver => true,
            Target::Drop => false,
            Target::Refuse => {
                self.refuse(ErrorCode::NotInRoom, format!("{to} is not in this room"));
                false
            }
        }
    }

    fn keeps_stage_entities(&self) -> bool {
        self.placed.stage() && self.room.is_sharded()
    }

    fn refuse_placement(&self, refused: ShardError) {
        self.refuse(refused.error_code(), refused.to_string());
    }

    /// A placement change decided elsewhere (the cluster's broker): handed over, answered later.
    fn defer_placement(&self, target: &str, change: PlacementChange) -> bool {
        match self.hub.placement_authority() {
            Some(authority) => {
                authority.request(self.room.id(), target, change, &self.info);
                true
            }
            None => false,
        }
    }

    fn announce(&self, text: &str) {
        if self.info.role != Role::Host {
            self.refuse(ErrorCode::Forbidden, "only hosts may announce".into());
            return;
        }
        let text = text.trim();
        let max = self.hub.config().max_chat_chars;
        if text.is_empty() || text.chars().count() > max {
            self.refuse(ErrorCode::Invalid, format!("an announcement must be 1 to {max} characters"));
            return;
        }
        Stats::inc(&self.hub.stats().messages_relayed);
        self.hub.announce(self.room.id(), Some(&self.info), text);
    }

    fn is_muted(&self) -> bool {
        self.room.lock().members.get(&*self.info.client_id).is_some_and(|m| m.muted)
    }

    /// A muted peer may still negotiate (to receive audio, or share a screen) but not
    /// send audio.
    fn refuse_muted_audio(&self, sdp_text: &str) -> bool {
        if sdp::sends_audio(sdp_text) && self.is_muted() {
            self.refuse(ErrorCode::Muted, "muted by a host: audio may not be sent".into());
            return true;
        }
        false
    }

    /// A host's `invite_to_stage` (`on`) or `remove_from_stage`.
    fn stage(&self, target: &str, on: bool) {
        if !self.may_stage(target) {
            return;
        }
        if self.defer_placement(target, PlacementChange::Stage(on)) {
            return;
        }
        if let Err(refused) = self.hub.set_stage_in(&self.room, target, on, Some(&self.info.client_id)) {
            self.refuse_placement(refused);
        }
    }

    /// Hosts invite attendees of their room to the stage and take them off it. Without a cluster the stage is
    /// placed by this room, so a peer held by another node is refused as not in this room; with one the
    /// broker places it and its node applies that.
    fn may_stage(&self, target: &str) -> bool {
        if self.info.role != Role::Host {
            self.refuse(ErrorCode::Forbidden, "only hosts may invite to the stage".into());
            return false;
        }
        let local = self.room.lock().members.get(target).map(|m| m.info.role);
        let role = match local {
            Some(role) => Some(role),
            None if self.hub.placement_authority().is_some() => self.hub.remote_role(self.room.id(), target),
            None => None,
        };
        match role {
            None => {
                self.refuse(ErrorCode::NotInRoom, format!("{target} is not in this room"));
                false
            }
            Some(Role::Host) => {
                self.refuse(ErrorCode::Forbidden, "hosts are always on the stage".into());
                false
            }
            Some(Role::Attendee) => true,
        }
    }

    /// Hosts moderate attendees of their own room; nobody moderates hosts. A peer held by another node is
    /// moderated there: the action goes to the gateway's [`crate::RemoteModerator`] and `false` is returned.
    fn may_moderate(&self, target: &str, action: Moderation) -> bool {
        if self.info.role != Role::Host {
            self.refuse(ErrorCode::Forbidden, "only hosts may moderate".into());
            return false;
        }
        let local_role = self.room.lock().members.get(target).map(|m| m.info.role);
        let remote_role = match local_role {
            Some(_) => None,
            None => self.hub.remote_role(self.room.id(), target),
        };
        if remote_role == Some(Role::Attendee) {
            if let Some(moderator) = &self.hub.inner.remote_moderator {
                moderator.moderate(self.room.id(), target, action, &self.info);
                return false;
            }
        }
        match local_role.or(remote_role) {
            None => {
                self.refuse(ErrorCode::NotInRoom, format!("{target} is not in this room"));
                false
            }
            Some(Role::Host) => {
                self.refuse(ErrorCode::Forbidden, "hosts cannot be moderated".into());
                false
            }
            Some(Role::Attendee) => true,
        }
    }

    /// Records whether this peer's latest relayed SDP sends audio, and tells listeners when that changes.
    /// (With several peers a mesh has one negotiation per pair; the latest one stands for the peer.)
    fn note_audio(&self, sdp_text: &str) {
        let sending = sdp::sends_audio(sdp_text);
        let changed = {
            let mut state = self.room.lock();
            let Some(member) = state.members.get_mut(&*self.info.client_id) else { return };
            let changed = member.audio_sending != sending;
            member.audio_sending = sending;
            changed
        };
        if changed {
            self.hub.emit(&self.info, RoomEventKind::AudioTrack { sending });
        }
    }

    fn chat(&self, text: &str) {
        let text = text.trim();
        let max = self.hub.config().max_chat_chars;
        if text.is_empty() || text.chars().count() > max {
            self.refuse(ErrorCode::Invalid, format!("chat text must be 1 to {max} characters"));
            return;
        }
        Stats::inc(&self.hub.stats().chat_messages);
        let frame = ServerMessage::Chat {
            from: &self.info.client_id,
            identity: &self.info.identity,
            text,
            server_time: now_ms(),
        }
        .encode();
        self.relay(self.placed.audience(None), Delivery::Guaranteed, frame);
        self.hub.emit(&self.info, RoomEventKind::Chat { text: text.to_owned() });
    }

    fn media(&self, mic: Option<bool>, screen: Option<bool>) {
        let (refused, mic_changed, screen_changed, now) = {
            let mut state = self.room.lock();
            let Some(member) = state.members.get_mut(&*self.info.client_id) else { return };
            let refused = mic == Some(true) && member.muted;
            let new_mic = if refused { member.mic } else { mic.unwrap_or(member.mic) };
            let new_screen = screen.unwrap_or(member.screen);
            let changes = (new_mic != member.mic, new_screen != member.screen);
            member.mic = new_mic;
            member.screen = new_screen;
            (refused, changes.0, changes.1, (new_mic, new_screen))
        };
        if refused {
            self.refuse(ErrorCode::Muted, "muted by a host: the microphone stays off".into());
        }
        if !(mic_changed || screen_changed) {
            return;
        }
        let frame = ServerMessage::Media { from: &self.info.client_id, mic: now.0, screen: now.1 }.encode();
        self.relay(self.placed.audience(Some(self.info.client_id.clone())), Delivery::Guaranteed, frame);
        if mic_changed {
            self.hub.emit(&self.info, RoomEventKind::Voice { on: now.0 });
        }
        if screen_changed {
            self.hub.emit(&self.info, RoomEventKind::ScreenShare { on: now.1 });
        }
    }
}

fn delivery(guaranteed: bool) -> Delivery {
    if guaranteed {
        Delivery::Guaranteed
    } else {
        Delivery::Unguaranteed
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.leave(LeaveReason::Left);
    }
}

/// Whether raw JSON has a `"persistent"` key set to `true` (whitespace allowed around the colon), without
/// decoding it: NAF sends `"persistent":false` in every update, so the key alone says nothing.
pub(crate) fn says_persistent(raw: &str) -> bool {
    raw.match_indices("\"persistent\"").any(|(at, key)| {
        let rest = raw[at + key.len()..].trim_start();
        rest.strip_prefix(':').is_some_and(|value| value.trim_start().starts_with("true"))
    })
}
