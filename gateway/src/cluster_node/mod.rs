//! This gateway as one node of several (`[cluster]`), through the `cluster` crate on one Redis.
//!
//! Without `[cluster]` nothing here runs: the hub relays in process ([`signaling::LocalFanout`]) and counts
//! capacity in memory. With it:
//!
//! - **Seats.** Before [`signaling::Hub::try_admit`], the seat is claimed cluster-wide ([`ClusterNode::claim_seat`]):
//!   the broker's count is the room's capacity, and a newer session of the same ticket supersedes the older
//!   wherever it is (its node closes it with 4000 on a [`Control::Close`]). A peer that leaves gives its seat back
//!   (the hub's `Left` events, [`events`]).
//! - **Relay.** The hub's fan-out is [`cluster::RedisFanout`]: every envelope goes to this node's peers at once
//!   and to the room's channel for the others; what other nodes publish reaches [`signaling::Hub::deliver_remote`],
//!   which also keeps the mirror of their peers (`signaling/src/mirror.rs`). The mirror is loaded from the
//!   broker's roster when this node starts watching a room, and reconciled with it periodically and after the
//!   broker comes back.
//! - **Liveness.** [`liveness`] beats, caches the live nodes for the join endpoint, and reaps dead nodes: their
//!   seats are freed, their peers leave every room (`peer_left` to this node's peers and the other nodes'), and
//!   their attendance sessions close at the last heartbeat.
//! - **Moderation.** Kick, ban and mute of a peer held by another node go to that node's control channel.
//! - **Shards.** A joiner's shard and stage place are decided by its seat's claim, in Redis, so shard numbers
//!   mean the same people on every node and no shard overfills across nodes; `switch_shard` and the stage go
//!   through the broker too and are applied by the node holding the peer ([`placement`]).
//!
//! When the broker is away, local peers are still served and relayed among themselves; new joins are refused
//! with 1013 (capacity can't be checked), cross-node envelopes are dropped and counted, and `/readyz` says so.

mod events;
mod liveness;
mod placement;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cluster::{
    Broker, Claim, ClaimRequest, ClusterConfig, Control, Inbound, Member, NodeInfo, Nodes, Placements, Relay,
    SeatPlacement, Seats,
};
use parking_lot::Mutex;
use signaling::protocol::{OccupantView, ServerMessage};
use signaling::{Admission, Delivery, Envelope, Hub, LeaveReason, Recipients, RemoteOccupant, Role, RoomId};

use crate::configuration::ClusterSettings;
use crate::rooms::Denied;
use crate::state::AppState;

/// The close code a supersede sends (docs/PROTOCOL.md): the one the hub uses on a single node.
const SUPERSEDED: u16 = 4000;
const KICKED: u16 = 4001;
const BANNED: u16 = 4003;

/// A room this node has peers in: how many, its capacity (to claim again after a broker restart) and its
/// shard size (for moves between shards).
#[derive(Debug, Clone, Copy)]
struct Watched {
    peers: usize,
    capacity: u32,
    shard_size: u32,
}

pub struct ClusterNode {
    pub broker: Broker,
    pub relay: Arc<Relay>,
    pub seats: Seats,
    pub nodes: Nodes,
    pub placements: Placements,
    hub: Arc<OnceLock<Hub>>,
    watched: Mutex<HashMap<RoomId, Watched>>,
    /// The live nodes as of the last heartbeat, for the join endpoint.
    live: Mutex<Vec<NodeInfo>>,
    inbound: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Inbound>>>,
    /// Placement changes peers asked for, to decide through the broker ([`placement`]).
    placement_requests: placement::Requests,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode").field("node", &self.broker.node_id()).finish_non_exhaustive()
    }
}

impl ClusterNode {
    /// Connects (lazily: a node starts while the broker is away) and starts the relay. `name` is
    /// `server.node_id`; a random incarnation is appended so a restarted node is never taken for its dead
    /// predecessor.
    pub fn start(settings: &ClusterSettings, name: &str, public_url: &str) -> anyhow::Result<Arc<Self>> {
        let incarnation: u32 = rand::random();
        let node_id = format!("{name}.{incarnation:08x}");
        let public_url = if settings.public_url.is_empty() { public_url } else { settings.public_url.as_str() };
        let mut config = ClusterConfig::new(&settings.redis_url, node_id, public_url.trim_end_matches('/'));
        config.namespace = settings.namespace.clone();
        config.heartbeat = std::time::Duration::from_millis(settings.heartbeat_ms.max(50));
        config.node_ttl = std::time::Duration::from_millis(settings.node_ttl_ms.max(settings.heartbeat_ms * 2));
        let broker = Broker::new(config)?;
        let hub: Arc<OnceLock<Hub>> = Arc::default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let relay_hub = hub.clone();
        // Envelopes go to the hub on the subscriber's task, in order; control messages to `events::control`.
        let handler: cluster::relay::InboundHandler = Arc::new(move |inbound| match inbound {
            Inbound::Relay { room, envelope } => {
                if let Some(hub) = relay_hub.get() {
                    hub.deliver_remote(room, &envelope);
                }
            }
            other => {
                let _ = tx.send(other);
            }
        });
        let relay = Relay::start(broker.clone(), handler);
        tracing::info!(node_id = broker.node_id(), public_url, "cluster: joining through the broker");
        Ok(Arc::new(Self {
            seats: Seats::new(broker.clone()),
            nodes: Nodes::new(broker.clone()),
            placements: Placements::new(broker.clone()),
            broker,
            relay,
            hub,
            watched: Mutex::default(),
            live: Mutex::default(),
            inbound: Mutex::new(Some(rx)),
            placement_requests: placement::Requests::default(),
        }))
    }

    /// The hub's fan-out.
    pub fn fanout(&self) -> cluster::RedisFanout {
        cluster::RedisFanout::new(self.relay.clone())
    }

    /// Starts the tasks that need the whole application: control messages, seat releases, heartbeat and reaper.
    pub fn run(self: &Arc<Self>, state: &AppState) {
        let _ = self.hub.set(state.hub.clone());
        if let Some(inbound) = self.inbound.lock().take() {
            tokio::spawn(events::control(self.clone(), state.clone(), inbound));
        }
        tokio::spawn(events::releases(self.clone(), state.hub.subscribe(), state.shutdown.clone()));
        tokio::spawn(events::feed(self.clone(), state.feed.subscribe(), state.shutdown.clone()));
        tokio::spawn(liveness::run(self.clone(), state.clone()));
        if let Some(requests) = self.placement_requests.take() {
            tokio::spawn(placement::run(self.clone(), requests));
        }
    }

    pub fn node_id(&self) -> &str {
        self.broker.node_id()
    }

    /// The live nodes this node knows of from the heartbeats, itself included (what items are relayed to).
    pub fn live_nodes(&self) -> usize {
        self.live.lock().len()
    }

    pub fn broker_up(&self) -> bool {
        self.broker.stats().is_broker_up()
    }

    /// Where the join endpoint sends a new peer: the least loaded live node (this one when none is known).
    ///
    /// Why not the room's home node: a room's traffic crosses the broker once per envelope whatever the number
    /// of nodes holding its peers (each node receives the room's channel once), so spreading a room costs
    /// little, while piling a large event onto one home node is what outgrowing a machine means.
    pub fn websocket_base(&self) -> String {
        let live = self.live.lock();
        Nodes::least_loaded(&live).map_or_else(|| self.broker.config().public_url.clone(), |n| n.public_url.clone())
    }

    /// Claims `admission`'s seat cluster-wide, places it in the event's shards (`placement`, decided with the
    /// seat) and starts watching its room. On success the caller must admit into the hub at the returned
    /// place (`Placement::decided`), or give the seat back with [`ClusterNode::seat_unused`].
    pub(crate) async fn claim_seat(
        &self,
        admission: &Admission,
        placement: &signaling::Placement,
    ) -> Result<(u32, bool), Denied> {
        let room = admission.room_id;
        let member = Member {
            node: self.node_id().to_owned(),
            client_id: admission.client_id.clone(),
            seat_key: admission.seat_key.clone(),
            counted: admission.role == Role::Attendee,
            info: member_info(&admission.identity, admission.role, signaling::now_ms()),
            shard: 0,
            stage: false,
        };
        let seat_placement = SeatPlacement {
            shard_size: placement.shard_size,
            group: placement.group.clone(),
            stage: placement.stage || admission.role == Role::Host,
            prefer: None,
        };
        let request = ClaimRequest { room, capacity: admission.capacity, member, placement: seat_placement };
        let claim = self.seats.claim(&request).await.map_err(|e| {
            tracing::warn!(event_id = room, error = %e, "cluster: cannot claim a seat, the broker is away");
            Denied(1013, "the cluster broker is unavailable; try again shortly".into())
        })?;
        let placed = match &claim {
            Claim::Granted { placed, .. } => (placed.shard, placed.stage),
            Claim::Full { .. } => (0, false),
        };
        match claim {
            Claim::Full { capacity } => {
                return Err(Denied::code(signaling::CloseCode::RoomFull, format!("room full: {capacity} attendees")))
            }
            Claim::Granted { superseded: Some(older), .. } if older.node != self.node_id() => {
                let close = Control::Close {
                    room,
                    client_id: older.client_id.clone(),
                    code: SUPERSEDED,
                    reason: "superseded".into(),
                };
                if let Err(e) = self.relay.send_control(&older.node, &close).await {
                    tracing::warn!(event_id = room, client_id = %older.client_id, error = %e, "cluster: supersede not delivered");
                }
            }
            // On this node the hub supersedes the older connection itself (same seat key).
            Claim::Granted { .. } => {}
        }
        self.watch(room, admission.capacity, placement.shard_size).await;
        Ok(placed)
    }

    /// Whether the peer just admitted still holds its seat. A newer session of the same ticket may have claimed it
    /// on another node between this node's claim and its admission, and that node's close found nobody here yet:
    /// checked after admission, any later supersede finds the peer seated. The broker away: assumed held.
    pub async fn still_holds(&self, room: RoomId, client_id: &str) -> bool {
        self.seats.holds(room, client_id).await.unwrap_or(true)
    }

    /// The hub refused a peer whose seat was claimed: give it back.
    pub async fn seat_unused(&self, room: RoomId, client_id: &str) {
        if let Err(e) = self.seats.release(room, client_id).await {
            tracing::warn!(event_id = room, client_id, error = %e, "cluster: seat not released");
        }
        self.unwatch(room);
    }

    /// One more peer of `room` here; the first one subscribes to the room and loads its roster.
    async fn watch(&self, room: RoomId, capacity: u32, shard_size: u32) {
        let first = {
            let mut watched = self.watched.lock();
            let entry = watched.entry(room).or_insert(Watched { peers: 0, capacity, shard_size });
            entry.peers += 1;
            entry.capacity = capacity;
            entry.shard_size = shard_size;
            entry.peers == 1
        };
        if first {
            self.relay.watch_room(room);
            self.reconcile(room).await;
        }
    }

    /// One peer of `room` fewer here; after the last, stop receiving the room and forget its mirror.
    fn unwatch(&self, room: RoomId) {
        let last = {
            let mut watched = self.watched.lock();
            match watched.get_mut(&room) {
                Some(entry) => {
                    entry.peers = entry.peers.saturating_sub(1);
                    let last = entry.peers == 0;
                    if last {
                        watched.remove(&room);
                    }
                    last
                }
                None => false,
            }
        };
        if last {
            self.relay.unwatch_room(room);
            if let Some(hub) = self.hub.get() {
                hub.clear_remote_occupants(room);
            }
        }
    }

    fn watched_rooms(&self) -> Vec<(RoomId, Watched)> {
        self.watched.lock().iter().map(|(room, w)| (*room, *w)).collect()
    }

    /// Replaces the mirror of `room` with the broker's roster, telling this node's peers about whoever the
    /// presence frames missed (a subscription not yet live, the broker away), and puts this node's peers where
    /// the roster places them.
    async fn reconcile(&self, room: RoomId) {
        let Some(hub) = self.hub.get() else { return };
        let members = match self.seats.members(room).await {
            Ok(members) => members,
            Err(e) => {
                tracing::debug!(event_id = room, error = %e, "cluster: roster unavailable");
                return;
            }
        };
        // This node's peers where the broker placed them: a `Control::Place` lost while the broker was away is
        // made good here (a move applied meanwhile is read again at the next reconciliation).
        for member in members.iter().filter(|m| m.node == self.node_id()) {
            if hub.placement_of(room, &member.client_id).is_some_and(|here| here != (member.shard, member.stage)) {
                hub.apply_placement(room, &member.client_id, member.shard, member.stage, None);
            }
        }
        let remote = members.iter().filter(|m| m.node != self.node_id()).filter_map(remote_occupant).collect();
        let (appeared, gone) = hub.set_remote_occupants(room, remote);
        for occupant in &appeared {
            let frame = ServerMessage::PeerJoined { occupant: view(occupant) }.encode();
            let to = audience_of(occupant);
            hub.deliver_local(room, &Envelope { to, delivery: Delivery::Guaranteed, payload: frame });
        }
        for occupant in &gone {
            let frame = ServerMessage::PeerLeft { client_id: &occupant.client_id, reason: LeaveReason::Left }.encode();
            let to = audience_of(occupant);
            hub.deliver_local(room, &Envelope { to, delivery: Delivery::Guaranteed, payload: frame });
        }
    }

    /// After the broker came back (possibly empty): claim this node's peers' seats again, then reconcile.
    async fn reassert(&self) {
        let Some(hub) = self.hub.get() else { return };
        let rooms = self.watched_rooms();
        for (room, watched) in &rooms {
            let claims: Vec<ClaimRequest> = hub
                .occupants(*room)
                .into_iter()
                .map(|o| ClaimRequest {
                    room: *room,
                    capacity: watched.capacity,
                    member: Member {
                        node: self.node_id().to_owned(),
                        client_id: o.info.client_id.to_string(),
                        seat_key: o.info.seat_key.to_string(),
                        counted: o.info.role == Role::Attendee,
                        info: member_info(&o.info.identity, o.info.role, o.info.joined_at),
                        shard: 0,
                        stage: false,
                    },
                    // Each peer keeps its place while its shard has room (the broker's table was lost).
                    placement: SeatPlacement {
                        shard_size: watched.shard_size,
                        group: None,
                        stage: o.stage,
                        prefer: Some(o.shard),
                    },
                })
                .collect();
            match self.seats.reassert(&claims).await {
                Ok(results) => {
                    for (request, claim) in results {
                        if let Claim::Full { .. } = claim {
                            tracing::warn!(event_id = room, client_id = %request.member.client_id, "cluster: seat over capacity after the broker restarted");
                        }
                    }
                }
                Err(e) => tracing::warn!(event_id = room, error = %e, "cluster: seats not reasserted"),
            }
        }
        for (room, _) in rooms {
            self.reconcile(room).await;
        }
    }

    /// The peer `client_id` of `room` wherever it is connected, from the broker's roster.
    pub async fn locate(&self, room: RoomId, client_id: &str) -> Option<Member> {
        self.seats.members(room).await.ok()?.into_iter().find(|m| m.client_id == client_id)
    }

    /// Closes a peer held by another node (kick: 4001, ban: 4003). `false` when it is nowhere.
    pub async fn close_remote(&self, room: RoomId, client_id: &str, reason: LeaveReason) -> Option<Member> {
        let member = self.locate(room, client_id).await?;
        let code = match reason {
            LeaveReason::Banned => BANNED,
            LeaveReason::Superseded => SUPERSEDED,
            _ => KICKED,
        };
        let close = Control::Close {
            room,
            client_id: client_id.to_owned(),
            code,
            reason: format!("{reason:?}").to_lowercase(),
        };
        match self.relay.send_control(&member.node, &close).await {
            Ok(_) => Some(member),
            Err(e) => {
                tracing::warn!(event_id = room, client_id, error = %e, "cluster: close not delivered");
                None
            }
        }
    }

    /// Mutes a peer held by another node.
    pub async fn mute_remote(&self, room: RoomId, client_id: &str, muted: bool) -> bool {
        let Some(member) = self.locate(room, client_id).await else { return false };
        let control = Control::Mute { room, client_id: client_id.to_owned(), muted };
        self.relay.send_control(&member.node, &control).await.is_ok()
    }

    /// Sends a gateway-defined message to every other live node (TURN revocation).
    pub async fn broadcast(&self, body: serde_json::Value) {
        let nodes = self.live.lock().clone();
        for node in nodes.iter().filter(|n| n.id != self.node_id()) {
            let _ = self.relay.send_control(&node.id, &Control::Gateway { body: body.clone() }).await;
        }
    }
}

/// What the roster says about a peer beside its node and seat (`cluster::Member::info`).
fn member_info(identity: &str, role: Role, joined_at: i64) -> serde_json::Value {
    serde_json::json!({ "identity": identity, "role": role, "joined_at": joined_at })
}

fn remote_occupant(member: &Member) -> Option<RemoteOccupant> {
    let info = &member.info;
    Some(RemoteOccupant {
        client_id: member.client_id.as_str().into(),
        identity: info.get("identity")?.as_str()?.into(),
        role: serde_json::from_value(info.get("role")?.clone()).ok()?,
        joined_at: info.get("joined_at")?.as_i64()?,
        mic: false,
        screen: false,
        muted: false,
        shard: member.shard,
        stage: member.stage,
    })
}

fn view(occupant: &RemoteOccupant) -> OccupantView<'_> {
    OccupantView {
        client_id: &occupant.client_id,
        identity: &occupant.identity,
        role: occupant.role,
        joined_at: occupant.joined_at,
        mic: occupant.mic,
        screen: occupant.screen,
        muted: occupant.muted,
    }
}

/// Who is told of a peer of another node arriving or leaving: its shard, or everyone for a stage member.
fn audience_of(occupant: &RemoteOccupant) -> Recipients {
    if occupant.stage {
        Recipients::All
    } else {
        Recipients::Shard { shard: occupant.shard, except: None }
    }
}

/// A departure from another node's room, as the hub would have published it: to the peer's shard, or to
/// everyone for a stage member.
fn peer_left(member: &Member, reason: LeaveReason) -> Envelope {
    let frame = ServerMessage::PeerLeft { client_id: &member.client_id, reason }.encode();
    let to = if member.stage { Recipients::All } else { Recipients::Shard { shard: member.shard, except: None } };
    Envelope { to, delivery: Delivery::Guaranteed, payload: frame }
}

/// A host's moderation frame naming a peer held by another node (`signaling::RemoteModerator`).
pub async fn moderate(state: &AppState, room: RoomId, target: &str, action: signaling::Moderation, actor: &str) {
    let Some(node) = &state.cluster else { return };
    let done = match action {
        signaling::Moderation::Ban => crate::routes::rooms::ban_occupant(state, room, target, actor).await.is_ok(),
        signaling::Moderation::Kick => node.close_remote(room, target, LeaveReason::Kicked).await.is_some(),
        signaling::Moderation::Mute(muted) => node.mute_remote(room, target, muted).await,
    };
    tracing::info!(event_id = room, client_id = target, ?action, done, "cluster: moderation routed to another node");
}
