//! Peers of a room connected to other nodes, as this node knows them.
//!
//! When a room spreads over several gateway nodes (see `fanout.rs`), each node holds its own
//! peers' connections and a *mirror* of the others: enough to list them in a joiner's
//! `welcome`, to accept a `send` or signalling frame addressed to one of them (the envelope
//! then reaches it through the broker), and to route a host's moderation to the node that
//! holds it. The mirror follows the presence frames other nodes publish (`peer_joined`,
//! `peer_left`, `media`, `muted`) as they pass through [`Hub::deliver_remote`], and the gateway
//! replaces it from the broker's roster when it starts watching a room or the broker comes
//! back ([`Hub::set_remote_occupants`]).
//!
//! Only presence frames are decoded, recognised by their first bytes (serde writes the `type`
//! tag first); NAF traffic passes through untouched. The mirror is sharded by room like the
//! registry, and read on the relay path only for a frame addressed to a peer this node does not
//! hold.

use crate::admission::{Role, RoomId};
use crate::event::LeaveReason;
use crate::fanout::{Envelope, Recipients};
use crate::hub::Hub;
use crate::outbox::Delivery;
use crate::protocol::{OccupantView, ServerMessage};
use parking_lot::Mutex;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

const SHARDS: usize = 16;

/// A peer of the room held by another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOccupant {
    pub client_id: Arc<str>,
    pub identity: Arc<str>,
    pub role: Role,
    pub joined_at: i64,
    pub mic: bool,
    pub screen: bool,
    pub muted: bool,
    /// Its shard and whether it is on the stage: the broker's roster (`cluster::placement`), then the
    /// recipients of its `peer_joined` and its `shard_changed` frames.
    pub shard: u32,
    pub stage: bool,
}

impl RemoteOccupant {
    pub(crate) fn placed(&self) -> crate::shards::Placed {
        crate::shards::Placed::new(self.shard, self.stage)
    }

    pub(crate) fn view(&self) -> OccupantView<'_> {
        OccupantView {
            client_id: &self.client_id,
            identity: &self.identity,
            role: self.role,
            joined_at: self.joined_at,
            mic: self.mic,
            screen: self.screen,
            muted: self.muted,
        }
    }
}

type Occupants = HashMap<Arc<str>, RemoteOccupant>;

/// Client ids remembered as gone per room: a roster read just before a departure was written must not bring
/// the peer back (client ids are never reused, so remembering is always right; the set is bounded).
const DEPARTED_MAX: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct RoomMirror {
    occupants: Occupants,
    departed: std::collections::HashSet<Arc<str>>,
}

impl RoomMirror {
    fn depart(&mut self, client_id: Arc<str>) {
        if self.departed.len() >= DEPARTED_MAX {
            self.departed.clear();
        }
        self.departed.insert(client_id);
    }
}

#[derive(Debug)]
pub(crate) struct Mirror {
    shards: Box<[Mutex<HashMap<RoomId, RoomMirror>>]>,
}

impl Default for Mirror {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }
}

impl Mirror {
    fn shard(&self, room: RoomId) -> &Mutex<HashMap<RoomId, RoomMirror>> {
        &self.shards[room.rem_euclid(SHARDS as i64) as usize]
    }

    pub(crate) fn role_of(&self, room: RoomId, client_id: &str) -> Option<Role> {
        self.shard(room).lock().get(&room).and_then(|m| m.occupants.get(client_id)).map(|o| o.role)
    }

    pub(crate) fn placement_of(&self, room: RoomId, client_id: &str) -> Option<(u32, bool)> {
        self.shard(room).lock().get(&room).and_then(|m| m.occupants.get(client_id)).map(|o| (o.shard, o.stage))
    }

    pub(crate) fn snapshot(&self, room: RoomId) -> Vec<RemoteOccupant> {
        self.shard(room).lock().get(&room).map(|m| m.occupants.values().cloned().collect()).unwrap_or_default()
    }
}

/// The presence frames the mirror follows; anything else in an envelope is not decoded.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Presence {
    PeerJoined {
        client_id: String,
        identity: String,
        role: Role,
        joined_at: i64,
        #[serde(default)]
        mic: bool,
        #[serde(default)]
        screen: bool,
        #[serde(default)]
        muted: bool,
    },
    PeerLeft {
        client_id: String,
        /// `moved`: out of some peers' view, still in the event (`shards.rs`).
        #[serde(default)]
        reason: String,
    },
    /// Addressed to the peer that moved (`shards.rs`): where it is now.
    ShardChanged {
        shard: u32,
        stage: bool,
    },
    Media {
        from: String,
        mic: bool,
        screen: bool,
    },
    Muted {
        client_id: String,
        muted: bool,
    },
}

const PRESENCE_PREFIXES: [&[u8]; 5] = [
    br#"{"type":"peer_joined""#,
    br#"{"type":"peer_left""#,
    br#"{"type":"media""#,
    br#"{"type":"muted""#,
    br#"{"type":"shard_changed""#,
];

/// What an envelope did to the mirror: whether local peers should see it.
enum Applied {
    Deliver,
    /// A presence change the mirror already had (the roster got there first): not told twice.
    Duplicate,
}

impl Hub {
    /// Entry point for a broker subscriber: an envelope another node published in `room_id`. Presence frames
    /// update the mirror of that node's peers; then the envelope goes to this node's peers of the room.
    pub fn deliver_remote(&self, room_id: RoomId, envelope: &Envelope) {
        let presence = PRESENCE_PREFIXES
            .iter()
            .any(|p| envelope.payload.starts_with(p))
            .then(|| serde_json::from_slice::<Presence>(&envelope.payload).ok())
            .flatten();
        if let Some(presence) = presence {
            if let Applied::Duplicate = self.apply_presence(room_id, &envelope.to, presence) {
                return;
            }
        }
        self.keep_remote_entities(room_id, &envelope.payload);
        self.deliver_local(room_id, envelope);
        if let Recipients::AllExcept(from) = &envelope.to {
            self.observe_remote_stage(room_id, from, envelope);
        }
    }

    /// A remote peer's broadcast about persistent entities is kept here too (not stored again), so that a peer
    /// joining on this node gets them in its snapshot — as on one node. Decoded only when it may concern them, as
    /// on the sending node.
    fn keep_remote_entities(&self, room_id: RoomId, payload: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Broadcast<'a> {
            #[serde(borrow)]
            data_type: std::borrow::Cow<'a, str>,
            #[serde(default)]
            data: serde_json::Value,
        }
        if !payload.starts_with(br#"{"type":"broadcast""#) {
            return;
        }
        let Some(room) = self.room(room_id) else { return };
        let Ok(text) = std::str::from_utf8(payload) else { return };
        if !room.entities.any() && !crate::peer::says_persistent(text) {
            return;
        }
        if let Ok(frame) = serde_json::from_str::<Broadcast<'_>>(text) {
            if matches!(&*frame.data_type, "u" | "um" | "r") {
                self.observe_remote_entities(&room, &frame.data_type, &frame.data);
            }
        }
    }

    fn apply_presence(&self, room_id: RoomId, to: &Recipients, presence: Presence) -> Applied {
        // `peer_joined` and `peer_left` addressed to one peer are a move's news for that peer's node, not
        // arrivals or departures (`shards.rs`); a move reaches the mirror as the mover's `shard_changed`.
        if matches!(to, Recipients::One(_))
            && matches!(presence, Presence::PeerJoined { .. } | Presence::PeerLeft { .. })
        {
            return Applied::Deliver;
        }
        let mut shard = self.inner.mirror.shard(room_id).lock();
        let mirror = shard.entry(room_id).or_default();
        let applied = match presence {
            // A departure told first (a survivor reaping a dead node) keeps the peer gone.
            Presence::PeerJoined { client_id, .. } if mirror.departed.contains(client_id.as_str()) => {
                Applied::Duplicate
            }
            Presence::PeerJoined { client_id, identity, role, joined_at, mic, screen, muted } => {
                // Where it is placed follows from who its arrival was told to: one shard for an attendee, all
                // for a stage member (the shard a stage member looks at only matters on its own node).
                let (shard, stage) = match to {
                    Recipients::Shard { shard, .. } => (*shard, false),
                    _ => (0, true),
                };
                let occupant = RemoteOccupant {
                    client_id: client_id.as_str().into(),
                    identity: identity.into(),
                    role,
                    joined_at,
                    mic,
                    screen,
                    muted,
                    shard,
                    stage,
                };
                match mirror.occupants.insert(occupant.client_id.clone(), occupant) {
                    Some(_) => Applied::Duplicate,
                    None => Applied::Deliver,
                }
            }
            Presence::PeerLeft { reason, .. } if reason == "moved" => Applied::Deliver,
            Presence::PeerLeft { client_id, .. } => match mirror.occupants.remove(client_id.as_str()) {
                Some(gone) => {
                    mirror.depart(gone.client_id);
                    Applied::Deliver
                }
                // A peer of this node (its own departure is never echoed back) or one already gone.
                None => Applied::Duplicate,
            },
            Presence::Media { from, mic, screen } => {
                if let Some(o) = mirror.occupants.get_mut(from.as_str()) {
                    (o.mic, o.screen) = (mic, screen);
                }
                Applied::Deliver
            }
            Presence::Muted { client_id, muted } => {
                if let Some(o) = mirror.occupants.get_mut(client_id.as_str()) {
                    o.muted = muted;
                }
                Applied::Deliver
            }
            Presence::ShardChanged { shard: to_shard, stage } => {
                let Recipients::One(mover) = to else { return Applied::Deliver };
                let Some(occupant) = mirror.occupants.get_mut(mover) else { return Applied::Deliver };
                let before = occupant.placed();
                (occupant.shard, occupant.stage) = (to_shard, stage);
                let moved = occupant.clone();
                drop(shard);
                self.remote_moved(room_id, &moved, &before);
                Applied::Deliver
            }
        };
        applied
    }

    /// A peer of another node moved: this node's peers that now see it are told it joined, those that no
    /// longer do that it left (`moved`), as its own node told its peers.
    fn remote_moved(&self, room_id: RoomId, moved: &RemoteOccupant, before: &crate::shards::Placed) {
        let Some(room) = self.room(room_id) else { return };
        let after = moved.placed();
        let (mut joined_for, mut left_for) = (Vec::new(), Vec::new());
        {
            let state = room.lock();
            for (id, member) in &state.members {
                match (member.placed.sees(before), member.placed.sees(&after)) {
                    (false, true) => joined_for.push(id.clone()),
                    (true, false) => left_for.push(id.clone()),
                    _ => {}
                }
            }
        }
        let joined = ServerMessage::PeerJoined { occupant: moved.view() }.encode();
        let left = ServerMessage::PeerLeft { client_id: &moved.client_id, reason: LeaveReason::Moved }.encode();
        for (ids, payload) in [(left_for, left), (joined_for, joined)] {
            for id in ids {
                let envelope =
                    Envelope { to: Recipients::One(id), delivery: Delivery::Guaranteed, payload: payload.clone() };
                self.deliver_local(room_id, &envelope);
            }
        }
    }

    /// A stage member on another node broadcast NAF sync data: kept, as its own node keeps it, for joiners
    /// here of the shards it does not look at (`shards.rs`, `StageEntities`). Only stage members' broadcasts
    /// reach every shard, so only they are decoded.
    fn observe_remote_stage(&self, room_id: RoomId, from: &Arc<str>, envelope: &Envelope) {
        if !envelope.payload.starts_with(br#"{"type":"broadcast""#) {
            return;
        }
        let Some(room) = self.room(room_id) else { return };
        if !room.is_sharded() || self.inner.mirror.placement_of(room_id, from).is_none_or(|(_, stage)| !stage) {
            return;
        }
        #[derive(Deserialize)]
        struct Broadcast {
            data_type: String,
            #[serde(default)]
            data: serde_json::Value,
        }
        if let Ok(frame) = serde_json::from_slice::<Broadcast>(&envelope.payload) {
            room.stage.observe(from, &frame.data_type, &frame.data);
        }
    }

    /// Replaces the mirror of `room_id` with `occupants` (the broker's roster, this node's own peers left out
    /// by the caller). Returns who appeared and who disappeared compared with what the mirror held, so the
    /// caller can tell this node's peers (`peer_joined`/`peer_left`) what the presence frames did not.
    pub fn set_remote_occupants(
        &self,
        room_id: RoomId,
        occupants: Vec<RemoteOccupant>,
    ) -> (Vec<RemoteOccupant>, Vec<RemoteOccupant>) {
        let mut shard = self.inner.mirror.shard(room_id).lock();
        let mirror = shard.entry(room_id).or_default();
        let fresh: Occupants = occupants
            .into_iter()
            .filter(|o| !mirror.departed.contains(&o.client_id))
            .map(|o| (o.client_id.clone(), o))
            .collect();
        let old = std::mem::replace(&mut mirror.occupants, fresh);
        let appeared = mirror.occupants.values().filter(|o| !old.contains_key(&o.client_id)).cloned().collect();
        let gone: Vec<RemoteOccupant> =
            old.into_values().filter(|o| !mirror.occupants.contains_key(&o.client_id)).collect();
        for o in &gone {
            mirror.depart(o.client_id.clone());
        }
        (appeared, gone)
    }

    /// Forgets the mirror of a room this node no longer has peers in.
    pub fn clear_remote_occupants(&self, room_id: RoomId) {
        self.inner.mirror.shard(room_id).lock().remove(&room_id);
    }

    /// The peers of `room_id` held by other nodes, as mirrored here.
    pub fn remote_occupants(&self, room_id: RoomId) -> Vec<RemoteOccupant> {
        self.inner.mirror.snapshot(room_id)
    }

    /// Whether `client_id` is a peer of `room_id` on another node.
    pub fn is_remote(&self, room_id: RoomId, client_id: &str) -> bool {
        self.inner.mirror.role_of(room_id, client_id).is_some()
    }

    pub(crate) fn remote_role(&self, room_id: RoomId, client_id: &str) -> Option<Role> {
        self.inner.mirror.role_of(room_id, client_id)
    }

    /// Where a peer of another node is placed, as mirrored here.
    pub fn remote_placement(&self, room_id: RoomId, client_id: &str) -> Option<(u32, bool)> {
        self.inner.mirror.placement_of(room_id, client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SignalingConfig;

    fn joined(id: &str) -> Envelope {
        let view = OccupantView {
            client_id: id,
            identity: "w",
            role: Role::Attendee,
            joined_at: 1,
            mic: false,
            screen: false,
            muted: false,
        };
        Envelope {
            to: Recipients::All,
            delivery: Delivery::Guaranteed,
            payload: ServerMessage::PeerJoined { occupant: view }.encode(),
        }
    }

    #[test]
    fn presence_frames_from_other_nodes_keep_the_mirror() {
        let hub = Hub::new(SignalingConfig::default());
        hub.deliver_remote(7, &joined("r1"));
        hub.deliver_remote(7, &joined("r2"));
        assert!(hub.is_remote(7, "r1") && hub.is_remote(7, "r2") && !hub.is_remote(8, "r1"));
        let left = ServerMessage::PeerLeft { client_id: "r1", reason: LeaveReason::Left }.encode();
        hub.deliver_remote(7, &Envelope { to: Recipients::All, delivery: Delivery::Guaranteed, payload: left });
        assert!(!hub.is_remote(7, "r1"));
        let muted = ServerMessage::Muted { client_id: "r2", muted: true, by: None }.encode();
        hub.deliver_remote(7, &Envelope { to: Recipients::All, delivery: Delivery::Guaranteed, payload: muted });
        assert!(hub.remote_occupants(7)[0].muted);
        let (appeared, gone) = hub.set_remote_occupants(7, Vec::new());
        assert_eq!((appeared.len(), gone.len()), (0, 1));
        assert!(hub.remote_occupants(7).is_empty());
    }
}

#[cfg(test)]
mod placement_tests {
    use super::*;
    use crate::outbox::Outbound;
    use crate::shards::Placement;
    use crate::{Admission, SignalingConfig};
    use std::collections::BTreeMap;

    fn frames(outbox: &mut crate::Outbox) -> Vec<serde_json::Value> {
        std::iter::from_fn(|| outbox.try_recv())
            .filter_map(|out| match out {
                Outbound::Text(bytes) => serde_json::from_slice(&bytes).ok(),
                Outbound::Close(_) => None,
            })
            .collect()
    }

    fn arrival(id: &str, to: Recipients) -> Envelope {
        let view = OccupantView {
            client_id: id,
            identity: "w",
            role: Role::Attendee,
            joined_at: 1,
            mic: false,
            screen: false,
            muted: false,
        };
        Envelope { to, delivery: Delivery::Guaranteed, payload: ServerMessage::PeerJoined { occupant: view }.encode() }
    }

    #[test]
    fn a_remote_peer_s_place_follows_its_frames_and_its_moves_reach_the_peers_that_now_see_it() {
        let hub = Hub::new(SignalingConfig::default());
        let admission = Admission {
            room_id: 7,
            client_id: "here".into(),
            identity: "w".into(),
            role: Role::Attendee,
            seat_key: "here".into(),
            capacity: 10,
        };
        // Placed in shard 1 by the broker: the room's table does not decide again.
        let placement = Placement { shard_size: 2, decided: Some((1, false)), ..Placement::default() };
        let (_peer, mut outbox) = hub.try_admit_placed(admission, &placement).unwrap();
        assert_eq!(hub.placement_of(7, "here"), Some((1, false)));
        frames(&mut outbox);

        // A peer of another node arrives in shard 0: mirrored there, not told to shard 1.
        hub.deliver_remote(7, &arrival("there", Recipients::Shard { shard: 0, except: None }));
        assert_eq!(hub.remote_placement(7, "there"), Some((0, false)));
        assert!(frames(&mut outbox).is_empty());
        // Its move to shard 1, told to it by its node, brings it into this peer's view...
        let moved = |shard: u32| Envelope {
            to: Recipients::One("there".into()),
            delivery: Delivery::Guaranteed,
            payload: ServerMessage::ShardChanged { shard, stage: false, occupants: BTreeMap::new() }.encode(),
        };
        hub.deliver_remote(7, &moved(1));
        assert_eq!(hub.remote_placement(7, "there"), Some((1, false)));
        let seen = frames(&mut outbox);
        assert_eq!((seen.len(), &seen[0]["type"], &seen[0]["client_id"]), (1, &"peer_joined".into(), &"there".into()));
        // ...a `peer_left` (moved) addressed to one of its node's peers is no departure...
        let left = ServerMessage::PeerLeft { client_id: "there", reason: LeaveReason::Moved }.encode();
        hub.deliver_remote(
            7,
            &Envelope { to: Recipients::One("x".into()), delivery: Delivery::Guaranteed, payload: left },
        );
        assert!(hub.is_remote(7, "there"));
        // ...and its move away takes it out again.
        hub.deliver_remote(7, &moved(2));
        let seen = frames(&mut outbox);
        assert_eq!((&seen[0]["type"], &seen[0]["reason"]), (&"peer_left".into(), &"moved".into()));
        // A stage member of another node arrives for everyone and is on the stage here too.
        hub.deliver_remote(7, &arrival("speaker", Recipients::AllExcept("speaker".into())));
        assert_eq!(hub.remote_placement(7, "speaker").map(|(_, stage)| stage), Some(true));
        assert_eq!(frames(&mut outbox)[0]["client_id"], "speaker");
    }
}
