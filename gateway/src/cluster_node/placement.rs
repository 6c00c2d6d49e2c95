//! Placement changes through the broker: `switch_shard`, `invite_to_stage` and `remove_from_stage` when the
//! shard table lives in Redis (`cluster::placement`).
//!
//! The hub hands a peer's request to [`ClusterNode::placement_authority`] on the connection task; a task here
//! runs the move script (the same rules as on one node, decided once for every node) and then:
//!
//! - the target is on this node: [`signaling::Hub::apply_placement`] moves it and tells this node's peers;
//!   its `shard_changed` passes through the broker, and every other node's mirror reads it and tells their
//!   peers who now sees it and who no longer does (`signaling/src/mirror.rs`);
//! - the target is on another node: that node gets a [`Control::Place`] and does the same there;
//! - refused: the peer that asked gets the `error` frame it would get on one node.

use std::sync::Arc;

use cluster::{Control, Moved};
use parking_lot::Mutex;
use signaling::{PeerInfo, PlacementChange, RoomId, ShardError};
use tokio::sync::mpsc;

use super::ClusterNode;

/// A placement change a peer asked for.
#[derive(Debug)]
pub(super) struct Request {
    room: RoomId,
    target: String,
    change: PlacementChange,
    /// The peer that asked: answered on refusal; a host's id goes in the `stage` frame.
    by: String,
}

/// The two ends of the request queue; the receiving end is taken once by [`run`].
pub(super) struct Requests {
    sender: mpsc::UnboundedSender<Request>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Request>>>,
}

impl Default for Requests {
    fn default() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self { sender, receiver: Mutex::new(Some(receiver)) }
    }
}

impl Requests {
    pub(super) fn take(&self) -> Option<mpsc::UnboundedReceiver<Request>> {
        self.receiver.lock().take()
    }
}

impl ClusterNode {
    /// The hub's [`signaling::PlacementAuthority`]: queues the request for [`run`].
    pub fn placement_authority(&self) -> impl signaling::PlacementAuthority {
        let sender = self.placement_requests.sender.clone();
        move |room: RoomId, target: &str, change: PlacementChange, by: &PeerInfo| {
            let _ = sender.send(Request { room, target: target.to_owned(), change, by: by.client_id.to_string() });
        }
    }

    /// Moves `target` as `change` asks, through the broker, and has the node holding it apply the outcome.
    /// `by`: the host who put it on or off the stage (`None`: the creator's tools).
    pub async fn change_placement(
        &self,
        room: RoomId,
        target: &str,
        change: PlacementChange,
        by: Option<&str>,
    ) -> Result<(), ShardError> {
        let decided = match change {
            PlacementChange::Switch(to) => self.placements.switch_shard(room, target, to).await,
            PlacementChange::Stage(on) => self.placements.set_stage(room, target, on).await,
        };
        let moved: Moved = match decided {
            Ok(outcome) => outcome?,
            Err(e) => {
                tracing::warn!(event_id = room, client_id = target, error = %e, "cluster: placement not changed, the broker is away");
                return Err(ShardError::NotInRoom);
            }
        };
        if !moved.changed {
            return Ok(());
        }
        let (shard, stage) = (moved.placed.shard, moved.placed.stage);
        let applied_here = self.hub.get().is_some_and(|hub| hub.apply_placement(room, target, shard, stage, by));
        if !applied_here {
            if let Some(member) = self.locate(room, target).await {
                let place =
                    Control::Place { room, client_id: target.to_owned(), shard, stage, by: by.map(str::to_owned) };
                if let Err(e) = self.relay.send_control(&member.node, &place).await {
                    tracing::warn!(event_id = room, client_id = target, error = %e, "cluster: placement not delivered");
                }
            }
        }
        Ok(())
    }
}

/// Carries out the peers' placement requests, one at a time (each is a short script).
pub(super) async fn run(node: Arc<ClusterNode>, mut requests: mpsc::UnboundedReceiver<Request>) {
    while let Some(Request { room, target, change, by }) = requests.recv().await {
        let stage_by = matches!(change, PlacementChange::Stage(_)).then_some(by.as_str());
        if let Err(refused) = node.change_placement(room, &target, change, stage_by).await {
            if let Some(hub) = node.hub.get() {
                hub.refuse_placement(room, &by, refused);
            }
        }
    }
}
