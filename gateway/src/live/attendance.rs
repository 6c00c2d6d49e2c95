//! The attendance recorder: turns the rooms' events into attendance rows and engagement counters, written in
//! batches off the hot path, and republishes them as the creators' live feed.
//!
//! One task subscribes to the hub's event stream. It keeps, per connected client, when its microphone and
//! screen share went live, and queues [`AttendanceChange`]s; every `flush_interval` (or every `max_batch`
//! changes) the queue is written in one transaction. A crash loses at most one interval; a graceful
//! shutdown drains the stream and flushes everything before the store closes.
//!
//! Changes measured elsewhere (the SFU's voice and screen time, `media_plane.rs`) come in through the same
//! queue ([`Intake`]) rather than straight to the store: a session shorter than one interval has no row until
//! the flush that inserts it, and an update written before that would find nothing. The rooms' events are
//! taken first (`biased`), and a session's `Joined` is on the hub's stream before its SFU session can even
//! start, so a measured change always lands in the batch after the change that opens its row.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use signaling::{Hub, Role, RoomEvent, RoomEventKind};
use ticketing::attendance::AttendanceChange;
use tokio::sync::{broadcast, mpsc, oneshot};

/// Where changes measured outside the rooms' events enter the recorder's queue (see the module docs).
pub type Intake = mpsc::UnboundedSender<AttendanceChange>;

/// The recorder's end of an [`Intake`].
pub type IntakeReceiver = mpsc::UnboundedReceiver<AttendanceChange>;

pub fn intake() -> (Intake, IntakeReceiver) {
    mpsc::unbounded_channel()
}

/// One item of a creator's live feed (`/api/events/{id}/attendees/stream`).
#[derive(Debug, Clone, Serialize)]
pub struct FeedItem {
    pub event_id: i64,
    /// joined, left, chat, voice, screen_share, muted, capacity, shard, announcement, ticket_sold, payment_reversed
    pub kind: &'static str,
    pub client_id: Option<String>,
    pub identity: Option<String>,
    pub role: Option<Role>,
    pub at: i64,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
    /// Told by another node (`cluster_node::feed`): shown to this node's creators, not sent on again, and not
    /// a webhook here (the node where it happened sends that).
    #[serde(skip)]
    pub relayed: bool,
}

/// Handle to the running recorder.
pub struct Recorder {
    finish: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Drains what the rooms already reported, writes it, and stops.
    pub async fn finish(self) {
        let _ = self.finish.send(());
        let _ = self.done.await;
    }
}

/// What the recorder knows of one connected client.
///
/// Voice time is cross-checked with the signalling: it runs only while the adapter reports the microphone
/// live (`media` `mic: true`) *and* the peer's latest relayed offer/answer sends audio (a live `m=audio`
/// section, `sendrecv` or `sendonly`; the signaling crate's `AudioTrack` event). A client that claims a live
/// microphone without ever negotiating an audio track accrues no voice time.
#[derive(Default)]
struct Live {
    room_id: i64,
    attendee: bool,
    mic: bool,
    audio: bool,
    voice_since: Option<i64>,
    screen_since: Option<i64>,
    /// Its screen share went through the SFU, which measures its time: the adapter's report only cross-checks.
    screen_measured: bool,
    /// Where the session is placed: `None` until the first placement (`signaling::shards`).
    placed: Option<(u32, bool)>,
}

pub struct RecorderConfig {
    pub node_id: String,
    pub flush_interval: Duration,
    pub max_batch: usize,
    /// Store a hash of the wallet instead of the address (privacy option).
    pub anonymise: bool,
    /// Countries of arriving connections, when the IP lookup is enabled.
    pub geo: Option<std::sync::Arc<crate::geo::Geo>>,
    /// The media plane: in SFU rooms voice and screen time come from what the SFU forwarded.
    pub media: Option<std::sync::Arc<crate::media_plane::MediaPlane>>,
    /// Changes measured outside the rooms' events (the SFU's usage), queued with them.
    pub intake: Option<IntakeReceiver>,
}

pub fn spawn(
    hub: &Hub,
    store: ticketing::Store,
    feed: broadcast::Sender<FeedItem>,
    mut config: RecorderConfig,
) -> Recorder {
    let mut events = hub.subscribe();
    let hub = hub.clone();
    let (finish_tx, mut finish_rx) = oneshot::channel();
    let mut intake = config.intake.take();
    let done = tokio::spawn(async move {
        let mut state = RecorderState { live: HashMap::new(), batch: Vec::new(), config, feed, hub: hub.clone() };
        let mut tick = tokio::time::interval(state.config.flush_interval);
        loop {
            tokio::select! {
                biased;
                event = events.recv() => match event {
                    Ok(event) => {
                        state.apply(event);
                        if state.batch.len() >= state.config.max_batch {
                            state.flush(&store).await;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::error!(missed = n, "attendance recorder fell behind the rooms; events lost");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                change = next_measured(&mut intake) => match change {
                    Some(change) => {
                        state.batch.push(change);
                        if state.batch.len() >= state.config.max_batch {
                            state.flush(&store).await;
                        }
                    }
                    None => intake = None,
                },
                _ = tick.tick() => state.flush(&store).await,
                _ = &mut finish_rx => {
                    while let Ok(event) = events.try_recv() {
                        state.apply(event);
                    }
                    while let Some(change) = intake.as_mut().and_then(|i| i.try_recv().ok()) {
                        state.batch.push(change);
                    }
                    break;
                }
            }
        }
        state.flush(&store).await;
    });
    Recorder { finish: finish_tx, done }
}

/// The next measured change; never resolves once the intake is gone (or when there is none).
async fn next_measured(intake: &mut Option<IntakeReceiver>) -> Option<AttendanceChange> {
    match intake {
        Some(intake) => intake.recv().await,
        None => std::future::pending().await,
    }
}

struct RecorderState {
    live: HashMap<String, Live>,
    batch: Vec<AttendanceChange>,
    config: RecorderConfig,
    feed: broadcast::Sender<FeedItem>,
    hub: Hub,
}

impl RecorderState {
    fn apply(&mut self, event: RoomEvent) {
        let session_id = event.client_id.clone();
        let at = event.at_ms;
        let mut capacity_changed = false;
        let (kind, detail) = match &event.kind {
            RoomEventKind::Joined => {
                let attendee = event.role == Role::Attendee;
                self.live.insert(session_id.clone(), Live { room_id: event.room_id, attendee, ..Live::default() });
                let wallet = if self.config.anonymise { wallet_hash(&event.identity) } else { event.identity.clone() };
                self.batch.push(AttendanceChange::Opened {
                    session_id: session_id.clone(),
                    event_id: event.room_id,
                    ticket_id: event.seat_key.parse().ok(),
                    wallet,
                    role: if event.role == Role::Host { "host" } else { "attendee" },
                    client_id: event.client_id.clone(),
                    node_id: self.config.node_id.clone(),
                    at,
                });
                if let Some(country) = self.config.geo.as_ref().and_then(|g| g.take(&session_id)) {
                    self.batch.push(AttendanceChange::Located { session_id: session_id.clone(), country });
                }
                capacity_changed = attendee;
                ("joined", serde_json::Value::Null)
            }
            RoomEventKind::Left { reason } => {
                let live = self.live.remove(&session_id).unwrap_or_default();
                let screen = live.screen_since.filter(|_| !live.screen_measured).map(|s| at - s);
                self.add_time(&session_id, live.voice_since.map(|s| at - s), screen);
                let reason =
                    serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
                self.batch.push(AttendanceChange::Closed {
                    session_id: session_id.clone(),
                    at,
                    reason: reason.clone(),
                });
                capacity_changed = live.attendee;
                ("left", serde_json::json!({ "reason": reason }))
            }
            RoomEventKind::Chat { text } => {
                self.batch.push(AttendanceChange::Engagement {
                    session_id: session_id.clone(),
                    chat_messages: 1,
                    voice_secs: 0,
                    screen_share_secs: 0,
                });
                ("chat", serde_json::json!({ "text": text }))
            }
            RoomEventKind::Voice { on } => {
                self.live.entry(session_id.clone()).or_default().mic = *on;
                self.update_voice(&session_id, at);
                ("voice", serde_json::json!({ "on": on }))
            }
            RoomEventKind::AudioTrack { sending } => {
                // Not a feed item: it only decides whether reported voice time counts.
                self.live.entry(session_id.clone()).or_default().audio = *sending;
                self.update_voice(&session_id, at);
                return;
            }
            RoomEventKind::ScreenShare { on } => {
                let since = self.live.entry(session_id.clone()).or_default().screen_since.take();
                let measured = self.config.media.as_ref().is_some_and(|m| m.measures(event.room_id, &session_id));
                self.live.entry(session_id.clone()).or_default().screen_measured = measured;
                if measured {
                    // The SFU's own `screen_share` items and its usage carry the time; this report stays in the feed.
                } else if *on {
                    self.live.entry(session_id.clone()).or_default().screen_since = Some(since.unwrap_or(at));
                    self.batch.push(AttendanceChange::ScreenShared { session_id: session_id.clone() });
                } else {
                    self.add_time(&session_id, None, since.map(|s| at - s));
                }
                ("screen_share", serde_json::json!({ "on": on }))
            }
            RoomEventKind::Muted { muted, by } => ("muted", serde_json::json!({ "muted": muted, "by": by })),
            RoomEventKind::Placed { shard, stage } => {
                let live = self.live.entry(session_id.clone()).or_default();
                let moved = live.placed.is_some();
                live.placed = Some((*shard, *stage));
                let attendee = live.attendee;
                if attendee {
                    let shard = (!*stage).then_some(i64::from(*shard));
                    self.batch.push(AttendanceChange::Placed { session_id: session_id.clone(), shard });
                }
                // The first placement is part of the join (its `capacity` item already counts the shards).
                if !moved {
                    return;
                }
                capacity_changed = attendee;
                ("shard", serde_json::json!({ "shard": shard, "stage": stage }))
            }
            RoomEventKind::Announcement { text } => ("announcement", serde_json::json!({ "text": text })),
        };
        let _ = self.feed.send(FeedItem {
            event_id: event.room_id,
            kind,
            client_id: Some(event.client_id),
            identity: Some(event.identity),
            role: Some(event.role),
            at,
            detail,
            relayed: false,
        });
        if capacity_changed {
            self.publish_capacity(event.room_id, at);
        }
    }

    /// Starts or stops the voice clock: it runs while the microphone is reported live and audio is negotiated.
    fn update_voice(&mut self, session_id: &str, at: i64) {
        let Some(live) = self.live.get_mut(session_id) else { return };
        let speaking = live.mic && live.audio;
        match (speaking, live.voice_since) {
            (true, None) => live.voice_since = Some(at),
            (false, Some(since)) => {
                live.voice_since = None;
                self.add_time(session_id, Some(at - since), None);
            }
            _ => {}
        }
    }

    /// A `capacity` feed item: attendees in the room now (as this recorder has seen them) and its capacity.
    fn publish_capacity(&mut self, room_id: i64, at: i64) {
        let attendees = self.live.values().filter(|l| l.room_id == room_id && l.attendee).count();
        let capacity = self.hub.occupancy(room_id).map(|o| o.capacity);
        let shards = self.hub.shard_occupancy(room_id);
        let _ = self.feed.send(FeedItem {
            event_id: room_id,
            kind: "capacity",
            client_id: None,
            identity: None,
            role: None,
            at,
            detail: serde_json::json!({ "attendees": attendees, "capacity": capacity, "shards": shards }),
            relayed: false,
        });
    }

    fn add_time(&mut self, session_id: &str, voice_ms: Option<i64>, screen_ms: Option<i64>) {
        let (voice, screen) = (voice_ms.unwrap_or(0).max(0) / 1000, screen_ms.unwrap_or(0).max(0) / 1000);
        if voice > 0 || screen > 0 {
            self.batch.push(AttendanceChange::Engagement {
                session_id: session_id.to_owned(),
                chat_messages: 0,
                voice_secs: voice,
                screen_share_secs: screen,
            });
        }
    }

    async fn flush(&mut self, store: &ticketing::Store) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        // A failed write is retried with the next flush rather than dropped.
        if let Err(err) = store.record_attendance(&batch).await {
            tracing::error!(error = %err, changes = batch.len(), "attendance flush failed; will retry");
            let mut retry = batch;
            retry.append(&mut self.batch);
            self.batch = retry;
        }
    }
}

/// The anonymised form of a wallet: hex SHA-256, so repeat visits still group together.
pub fn wallet_hash(wallet: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(wallet.as_bytes())))
}
