//! The relay between nodes: [`RedisFanout`] publishes every envelope of a room on the
//! room's channel (and [`Relay::publish_feed`] creators' feed items on one channel every node
//! hears); each node subscribes to the channels of the rooms it has peers in and
//! hands what other nodes published to its hub ([`Inbound::Relay`] →
//! `signaling::Hub::deliver_local`).
//!
//! Order: one publisher task per node sends its envelopes through one connection, in the
//! order the hub produced them, so per-sender order holds across nodes as it does on one.
//!
//! When the broker is away, local delivery goes on; envelopes for other nodes are dropped
//! and counted (there is no one to deliver them to in time), the subscriber reconnects
//! with backoff, resubscribes, and reports [`Inbound::Resubscribed`] so the gateway can
//! resynchronise what it mirrors. Envelopes lost meanwhile show as sequence gaps.

use crate::codec;
use crate::{Broker, ClusterError, ClusterStats, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use signaling::{Envelope, RoomFanout, RoomId};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How many envelopes may wait for the publisher before new ones are dropped.
const PUBLISH_QUEUE: usize = 65_536;
/// Envelopes sent in one pipeline.
const PUBLISH_BATCH: usize = 512;

/// A message for one node: act on a peer it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// Close this peer's connection (a newer session took its seat, or it was kicked or banned).
    Close { room: RoomId, client_id: String, code: u16, reason: String },
    /// Mute or unmute this peer.
    Mute { room: RoomId, client_id: String, muted: bool },
    /// The broker placed this peer here (`placement.rs`): apply it and tell the room. `by`: the host who put
    /// it on or off the stage.
    Place { room: RoomId, client_id: String, shard: u32, stage: bool, by: Option<String> },
    /// Something the gateway defines (TURN revocation, feed items, ...).
    Gateway { body: serde_json::Value },
}

/// An item on the feed channel: which node published it (a node ignores its own) and what.
#[derive(Debug, Serialize, Deserialize)]
struct FeedMessage {
    #[serde(rename = "o")]
    origin: String,
    #[serde(rename = "b")]
    body: serde_json::Value,
}

/// What the subscriber hands to the gateway.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// An envelope another node published in a room this node has peers in.
    Relay {
        room: RoomId,
        envelope: Envelope,
    },
    Control(Control),
    /// The subscription was re-established after the broker went away.
    Resubscribed,
}

pub type InboundHandler = Arc<dyn Fn(Inbound) + Send + Sync>;

enum Subscription {
    Room(RoomId),
    Drop(RoomId),
}

/// This node's relay: the publisher and the subscriber, and which rooms it watches.
pub struct Relay {
    broker: Broker,
    publish: mpsc::Sender<(RoomId, Envelope)>,
    subscriptions: mpsc::UnboundedSender<Subscription>,
    watched: Arc<Mutex<HashMap<RoomId, usize>>>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("node", &self.broker.node_id()).finish_non_exhaustive()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Relay {
    /// Starts the publisher and subscriber tasks; `handler` receives what other nodes send.
    pub fn start(broker: Broker, handler: InboundHandler) -> Arc<Self> {
        let (publish, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (subscriptions, subscriptions_rx) = mpsc::unbounded_channel();
        let watched = Arc::new(Mutex::new(HashMap::new()));
        let stop = CancellationToken::new();
        tokio::spawn(publisher(broker.clone(), publish_rx));
        tokio::spawn(subscriber(broker.clone(), subscriptions_rx, watched.clone(), handler, stop.clone()));
        Arc::new(Self { broker, publish, subscriptions, watched, stop })
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// A peer of `room` is on this node: receive the room's envelopes (counted per call).
    pub fn watch_room(&self, room: RoomId) {
        let mut watched = self.watched.lock();
        let count = watched.entry(room).or_insert(0);
        *count += 1;
        if *count == 1 {
            let _ = self.subscriptions.send(Subscription::Room(room));
        }
    }

    /// One peer of `room` left this node; after the last, stop receiving the room.
    pub fn unwatch_room(&self, room: RoomId) {
        let mut watched = self.watched.lock();
        if let Some(count) = watched.get_mut(&room) {
            *count -= 1;
            if *count == 0 {
                watched.remove(&room);
                let _ = self.subscriptions.send(Subscription::Drop(room));
            }
        }
    }

    /// Queues `envelope` for the other nodes; never waits. Returns false when it was dropped.
    pub fn publish(&self, room: RoomId, envelope: Envelope) -> bool {
        let stats = &self.broker.stats;
        if !stats.is_broker_up() {
            ClusterStats::add(&stats.dropped, 1);
            return false;
        }
        match self.publish.try_send((room, envelope)) {
            Ok(()) => true,
            Err(_) => {
                ClusterStats::add(&stats.dropped, 1);
                false
            }
        }
    }

    /// Publishes `body` on the namespace's feed channel, which every node subscribes to (the creators' live
    /// feed): it reaches each other node as [`Control::Gateway`], whenever that node started. At most once,
    /// like the rest of pub/sub.
    pub async fn publish_feed(&self, body: &serde_json::Value) -> Result<()> {
        let message = FeedMessage { origin: self.broker.node_id().to_owned(), body: body.clone() };
        let bytes = serde_json::to_vec(&message).map_err(|e| ClusterError::Protocol(e.to_string()))?;
        let mut con = self.broker.connection();
        let result = redis::cmd("PUBLISH")
            .arg(self.broker.keys.feed_channel())
            .arg(bytes)
            .query_async::<i64>(&mut con)
            .await
            .map_err(ClusterError::from);
        self.broker.observe(result)?;
        ClusterStats::add(&self.broker.stats.published, 1);
        Ok(())
    }

    /// Sends `control` to `node`. Returns whether the node is listening.
    pub async fn send_control(&self, node: &str, control: &Control) -> Result<bool> {
        let body = serde_json::to_vec(control).map_err(|e| ClusterError::Protocol(e.to_string()))?;
        let mut con = self.broker.connection();
        let result = redis::cmd("PUBLISH")
            .arg(self.broker.keys.control_channel(node))
            .arg(body)
            .query_async::<i64>(&mut con)
            .await
            .map_err(ClusterError::from);
        let receivers = self.broker.observe(result)?;
        ClusterStats::add(&self.broker.stats.published, 1);
        Ok(receivers > 0)
    }
}

/// The hub's fan-out when peers of a room may be on several nodes.
pub struct RedisFanout {
    relay: Arc<Relay>,
}

impl RedisFanout {
    pub fn new(relay: Arc<Relay>) -> Self {
        Self { relay }
    }
}

impl RoomFanout for RedisFanout {
    fn publish(&self, room: RoomId, envelope: Envelope, local: &dyn Fn(&Envelope)) {
        local(&envelope);
        self.relay.publish(room, envelope);
    }
}

async fn publisher(broker: Broker, mut queue: mpsc::Receiver<(RoomId, Envelope)>) {
    let mut sequences: HashMap<RoomId, u64> = HashMap::new();
    let mut batch: Vec<(String, Bytes)> = Vec::with_capacity(PUBLISH_BATCH);
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some((room, envelope)) = next.take() {
            let seq = sequences.entry(room).or_insert(0);
            *seq += 1;
            batch.push((broker.keys.relay_channel(room), codec::encode(broker.node_id(), *seq, &envelope)));
            if batch.len() < PUBLISH_BATCH {
                next = queue.try_recv().ok();
            }
        }
        let mut pipe = redis::pipe();
        for (channel, bytes) in &batch {
            pipe.cmd("PUBLISH").arg(channel).arg(bytes.as_ref()).ignore();
        }
        let mut con = broker.connection();
        let sent = batch.len() as u64;
        let result = pipe.query_async::<()>(&mut con).await.map_err(ClusterError::from);
        match broker.observe(result) {
            Ok(()) => ClusterStats::add(&broker.stats.published, sent),
            Err(e) => {
                ClusterStats::add(&broker.stats.dropped, sent);
                tracing::warn!(error = %e, dropped = sent, "cluster relay: publish failed");
            }
        }
        batch.clear();
    }
}

async fn subscriber(
    broker: Broker,
    mut commands: mpsc::UnboundedReceiver<Subscription>,
    watched: Arc<Mutex<HashMap<RoomId, usize>>>,
    handler: InboundHandler,
    stop: CancellationToken,
) {
    let mut last_seq: HashMap<(Arc<str>, RoomId), u64> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    let mut connected_before = false;
    let control_channel = broker.keys.control_channel(broker.node_id());
    let feed_channel = broker.keys.feed_channel();
    while !stop.is_cancelled() {
        let pubsub = match broker.client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(e) => {
                broker.stats.broker_up.store(false, Ordering::Relaxed);
                tracing::debug!(error = %e, "cluster relay: broker unreachable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let rooms: Vec<RoomId> = watched.lock().keys().copied().collect();
        let mut ok = sink.subscribe(&control_channel).await.is_ok();
        ok = ok && sink.subscribe(&feed_channel).await.is_ok();
        for room in rooms {
            ok = ok && sink.subscribe(broker.keys.relay_channel(room)).await.is_ok();
        }
        if !ok {
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        broker.stats.broker_up.store(true, Ordering::Relaxed);
        if connected_before {
            ClusterStats::add(&broker.stats.reconnects, 1);
            tracing::info!("cluster relay: resubscribed after the broker came back");
            handler(Inbound::Resubscribed);
        }
        connected_before = true;
        let mut ping = tokio::time::interval(broker.config.heartbeat);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    let result = match command {
                        Subscription::Room(room) => sink.subscribe(broker.keys.relay_channel(room)).await,
                        Subscription::Drop(room) => {
                            if watched.lock().contains_key(&room) {
                                Ok(())
                            } else {
                                last_seq.retain(|(_, r), _| *r != room);
                                sink.unsubscribe(broker.keys.relay_channel(room)).await
                            }
                        }
                    };
                    if result.is_err() {
                        break;
                    }
                }
                message = stream.next() => {
                    let Some(message) = message else { break };
                    dispatch(&broker, [&control_channel, &feed_channel], message, &mut last_seq, &handler);
                }
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(broker.config.command_timeout, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        broker.stats.broker_up.store(false, Ordering::Relaxed);
        tracing::warn!("cluster relay: lost the broker; local peers are still served");
    }
}

fn dispatch(
    broker: &Broker,
    [control_channel, feed_channel]: [&str; 2],
    message: redis::Msg,
    last_seq: &mut HashMap<(Arc<str>, RoomId), u64>,
    handler: &InboundHandler,
) {
    let channel = message.get_channel_name();
    if channel == control_channel {
        match serde_json::from_slice::<Control>(message.get_payload_bytes()) {
            Ok(control) => handler(Inbound::Control(control)),
            Err(e) => tracing::warn!(error = %e, "cluster relay: unreadable control message"),
        }
        return;
    }
    if channel == feed_channel {
        match serde_json::from_slice::<FeedMessage>(message.get_payload_bytes()) {
            Ok(feed) if feed.origin == broker.node_id() => {}
            Ok(feed) => handler(Inbound::Control(Control::Gateway { body: feed.body })),
            Err(e) => tracing::warn!(error = %e, "cluster relay: unreadable feed item"),
        }
        return;
    }
    let Some(room) = broker.keys.room_of_channel(channel) else { return };
    let wire = match codec::decode(Bytes::copy_from_slice(message.get_payload_bytes())) {
        Ok(wire) => wire,
        Err(e) => {
            tracing::warn!(error = %e, room, "cluster relay: unreadable envelope");
            return;
        }
    };
    if &*wire.origin == broker.node_id() {
        return;
    }
    let previous = last_seq.insert((wire.origin.clone(), room), wire.seq);
    if let Some(previous) = previous {
        if wire.seq > previous + 1 {
            ClusterStats::add(&broker.stats.gaps, wire.seq - previous - 1);
        }
    }
    ClusterStats::add(&broker.stats.received, 1);
    handler(Inbound::Relay { room, envelope: wire.envelope });
}
