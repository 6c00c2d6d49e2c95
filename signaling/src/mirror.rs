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
use crate::fanout::Envelope;
use crate::hub::Hub;
use crate::protocol::OccupantView;
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
}

impl RemoteOccupant {
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

const PRESENCE_PREFIXES: [&[u8]; 4] =
    [br#"{"type":"peer_joined""#, br#"{"type":"peer_left""#, br#"{"type":"media""#, br#"{"type":"muted""#];

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
            if let Applied::Duplicate = self.apply_presence(room_id, presence) {
                return;
            }
        }
        self.keep_remote_entities(room_id, &envelope.payload);
        self.deliver_local(room_id, envelope);
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

    fn apply_presence(&self, room_id: RoomId, presence: Presence) -> Applied {
        let mut shard = self.inner.mirror.shard(room_id).lock();
        let mirror = shard.entry(room_id).or_default();
        let applied = match presence {
            // A departure told first (a survivor reaping a dead node) keeps the peer gone.
            Presence::PeerJoined { client_id, .. } if mirror.departed.contains(client_id.as_str()) => {
                Applied::Duplicate
            }
            Presence::PeerJoined { client_id, identity, role, joined_at, mic, screen, muted } => {
                let occupant = RemoteOccupant {
                    client_id: client_id.as_str().into(),
                    identity: identity.into(),
                    role,
                    joined_at,
                    mic,
                    screen,
                    muted,
                };
                match mirror.occupants.insert(occupant.client_id.clone(), occupant) {
                    Some(_) => Applied::Duplicate,
                    None => Applied::Deliver,
                }
            }
            Presence::PeerLeft { client_id } => match mirror.occupants.remove(client_id.as_str()) {
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
        };
        applied
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LeaveReason;
    use crate::fanout::Recipients;
    use crate::outbox::Delivery;
    use crate::protocol::ServerMessage;
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
