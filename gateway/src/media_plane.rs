//! The media plane: which rooms carry voice through the embedded SFU ([`media`]), and the SFU's signalling over
//! the room WebSocket (docs/PROTOCOL.md, "SFU").
//!
//! The room connection (`rooms/`) attaches each seated peer here and gets a [`MediaLink`]: the frames the
//! SFU owes that connection (`sfu_session`, `sfu_answer`, `sfu_tracks`) arrive on it, and the connection hands
//! `sfu_*` frames it reads to [`MediaPlane::handle`] instead of to the hub. Everything else is decided from
//! the hub's room events and the SFU's events, by two tasks ([`MediaPlane::spawn`]):
//!
//! - who may publish is the server's decision, never the browser's claim: hosts, and the attendees a host
//!   invited onto the stage (`signaling::shards`), for as long as they are on it; everyone else listens. A
//!   change of stage (the hub's `Placed` events) is applied at once: the SFU's role first (a removed speaker's
//!   packets stop being forwarded there and then), then the browser is told a new `sfu_session` and its SFU
//!   session is closed, so its next offer joins again with the transceivers of its new role;
//! - a host's mute (`mute` frame or HTTP) is applied in the SFU, so a muted browser's packets are dropped
//!   there whatever it sends; leaving, a kick or a ban closes the peer's SFU session;
//! - voice and screen time measured from what the SFU forwarded go to the attendance rows (engagement) and
//!   the live feed (`voice`/`screen_share` items with `"measured": "sfu"`), beside the adapter's own reports.
//!
//! A room in `auto` mode uses mesh until it holds more than `auto_threshold` people; then every peer in it is
//! told `sfu_session` and moves to the SFU, and the room stays there while anyone is in it on this node.

mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use media::{FlowKind, ParticipantId, Role as SfuRole, Sfu, SfuEvent};
use signaling::protocol::{SfuClientMessage, SfuScreenLayer, SfuServerMessage};
use signaling::{Hub, Role, RoomEventKind};
use tokio::sync::{broadcast, mpsc};

use crate::live::attendance::{FeedItem, Intake};
pub use settings::{MediaMode, MediaSettings};

/// Frames for one room connection, written beside the hub's (outside the resume count, like `feed`).
pub type Frames = mpsc::UnboundedReceiver<String>;

struct Member {
    frames: mpsc::UnboundedSender<String>,
    publish: bool,
    /// Has an SFU session (its first offer was accepted).
    joined: bool,
}

#[derive(Default)]
struct RoomMedia {
    sfu: bool,
    members: HashMap<String, Member>,
    audio: Vec<Option<ParticipantId>>,
    screen: Option<ParticipantId>,
}

impl RoomMedia {
    fn tracks_frame(&self) -> String {
        SfuServerMessage::SfuTracks {
            audio: self.audio.iter().map(|a| a.as_deref()).collect(),
            screen: self.screen.as_deref(),
        }
        .encode()
    }
}

pub struct MediaPlane {
    settings: MediaSettings,
    sfu: Option<Sfu>,
    rooms: Mutex<HashMap<i64, RoomMedia>>,
}

/// A room connection's side of the media plane.
pub struct MediaLink {
    pub room: i64,
    pub client_id: String,
    frames: Option<Frames>,
}

impl MediaLink {
    /// The next frame the SFU owes this connection; never resolves when the room is mesh and stays so.
    pub async fn next_frame(&mut self) -> Option<String> {
        match self.frames.as_mut() {
            Some(frames) => frames.recv().await,
            None => std::future::pending().await,
        }
    }
}

impl std::fmt::Debug for MediaPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaPlane").field("mode", &self.settings.mode).field("sfu", &self.sfu).finish_non_exhaustive()
    }
}

impl MediaPlane {
    /// Starts the SFU when the mode may use it. The returned receiver carries its events for [`Self::spawn`].
    pub async fn start(
        settings: MediaSettings,
    ) -> std::io::Result<(Arc<Self>, Option<mpsc::UnboundedReceiver<SfuEvent>>)> {
        let (sfu, events) = if settings.uses_sfu() {
            let (sfu, events) = Sfu::start(settings.sfu_config()).await?;
            tracing::info!(address = %sfu.local_addr(), mode = ?settings.mode, "sfu listening");
            (Some(sfu), Some(events))
        } else {
            (None, None)
        };
        Ok((Arc::new(Self { settings, sfu, rooms: Mutex::new(HashMap::new()) }), events))
    }

    pub fn sfu(&self) -> Option<&Sfu> {
        self.sfu.as_ref()
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<i64, RoomMedia>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A seated connection (a join or a resume): it gets `sfu_session` now if its room uses the SFU.
    /// `occupants` counts everyone in the room, the joiner included.
    pub fn attach(&self, hub: &Hub, room: i64, client_id: &str, role: Role, occupants: usize) -> MediaLink {
        if self.sfu.is_none() {
            return MediaLink { room, client_id: client_id.to_owned(), frames: None };
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut rooms = self.rooms();
        // Read under this lock: a `Placed` event the event task applies before the member exists here was
        // emitted after the move, so the hub already answers with it.
        let stage = hub.placement_of(room, client_id).is_some_and(|(_, stage)| stage);
        let publish = publishes(role, stage);
        let media = rooms.entry(room).or_default();
        if media.audio.is_empty() {
            media.audio = vec![None; self.settings.loudest.max(1)];
        }
        let flips = !media.sfu && self.settings.sfu_for(occupants);
        let resumed = media.members.get(client_id).is_some_and(|m| m.joined);
        media.members.insert(client_id.to_owned(), Member { frames: tx, publish, joined: resumed });
        if flips {
            media.sfu = true;
            tracing::info!(event_id = room, occupants, "room moves its voice to the SFU");
            for (id, member) in &media.members {
                if id != client_id {
                    let _ = member.frames.send(session_frame(member.publish, self.settings.loudest));
                }
            }
        }
        if media.sfu {
            let member = &media.members[client_id];
            let _ = member.frames.send(session_frame(publish, self.settings.loudest));
            let _ = member.frames.send(media.tracks_frame());
        }
        MediaLink { room, client_id: client_id.to_owned(), frames: Some(rx) }
    }

    /// An `sfu_*` frame the connection read. `muted`: the seat is muted by a host now.
    pub async fn handle(&self, link: &MediaLink, message: SfuClientMessage, muted: bool) {
        let Some(sfu) = &self.sfu else { return self.reply(link, error_frame("this server runs no SFU")) };
        let participant: ParticipantId = link.client_id.as_str().into();
        let sdp = match message {
            SfuClientMessage::SfuCandidate { .. } => return,
            SfuClientMessage::SfuLeave => {
                sfu.leave(participant);
                if let Some(member) = self.rooms().get_mut(&link.room).and_then(|r| r.members.get_mut(&link.client_id))
                {
                    member.joined = false;
                }
                return;
            }
            SfuClientMessage::SfuLayer { screen } => {
                let layer = match screen {
                    SfuScreenLayer::High => media::ScreenLayer::High,
                    SfuScreenLayer::Low => media::ScreenLayer::Low,
                };
                return sfu.set_screen_layer(participant, layer);
            }
            SfuClientMessage::SfuOffer { sdp } => sdp,
        };
        let state = {
            let rooms = self.rooms();
            rooms.get(&link.room).map(|r| (r.sfu, r.members.get(&link.client_id).map(|m| (m.publish, m.joined))))
        };
        let Some((true, Some((publish, joined)))) = state else {
            return self.reply(link, error_frame("this room's voice is not on the SFU"));
        };
        let answer = if joined {
            sfu.offer(participant.clone(), &sdp).await
        } else {
            let role = if publish { SfuRole::Publisher } else { SfuRole::Listener };
            let answer = sfu.join(link.room, participant.clone(), role, &sdp).await;
            if answer.is_ok() {
                if muted {
                    sfu.set_muted(participant.clone(), true);
                }
                if let Some(member) = self.rooms().get_mut(&link.room).and_then(|r| r.members.get_mut(&link.client_id))
                {
                    member.joined = true;
                }
            }
            answer
        };
        match answer {
            Ok(answer) => self.reply(link, SfuServerMessage::SfuAnswer { sdp: &answer }.encode()),
            Err(e) => {
                tracing::debug!(client_id = %link.client_id, error = %e, "sfu refused an offer");
                self.reply(link, error_frame(&e.to_string()))
            }
        }
    }

    fn reply(&self, link: &MediaLink, frame: String) {
        if let Some(member) = self.rooms().get(&link.room).and_then(|r| r.members.get(&link.client_id)) {
            let _ = member.frames.send(frame);
        }
    }

    /// The peer left the room for good (left, kicked, banned, its resume window passed).
    fn left(&self, room: i64, client_id: &str) {
        let mut rooms = self.rooms();
        if let Some(media) = rooms.get_mut(&room) {
            media.members.remove(client_id);
            if media.members.is_empty() {
                rooms.remove(&room);
            }
        }
        drop(rooms);
        if let Some(sfu) = &self.sfu {
            sfu.leave(client_id.into());
        }
    }

    /// The peer's placement changed (`Placed`): invited onto the stage, it may publish; taken off, it may not.
    fn placed(&self, room: i64, client_id: &str, role: Role, stage: bool) {
        let publish = publishes(role, stage);
        let mut rooms = self.rooms();
        let Some(media) = rooms.get_mut(&room) else { return };
        let (on_sfu, tracks) = (media.sfu, media.tracks_frame());
        let Some(member) = media.members.get_mut(client_id) else { return };
        if member.publish == publish {
            return;
        }
        member.publish = publish;
        let had_session = std::mem::replace(&mut member.joined, false);
        let frames = member.frames.clone();
        drop(rooms);
        tracing::info!(event_id = room, client_id, publish, "stage change: the SFU role follows");
        if let Some(sfu) = &self.sfu {
            let participant: ParticipantId = client_id.into();
            // The gate first: from this command on the SFU forwards nothing of a removed speaker's.
            sfu.set_role(participant.clone(), if publish { SfuRole::Publisher } else { SfuRole::Listener });
            if had_session {
                // Its offer had the transceivers of its old role: the browser negotiates a new session.
                sfu.leave(participant);
            }
        }
        if on_sfu {
            let _ = frames.send(session_frame(publish, self.settings.loudest));
            let _ = frames.send(tracks);
        }
    }

    fn tracks(&self, room: i64, audio: Vec<Option<ParticipantId>>, screen: Option<ParticipantId>) {
        let mut rooms = self.rooms();
        let Some(media) = rooms.get_mut(&room) else { return };
        media.audio = audio;
        media.screen = screen;
        if !media.sfu {
            return;
        }
        // Every member, also one seated but not yet through its SFU offer: its browser keeps the last map it
        // was told and applies it once connected, and a change in that window would otherwise never reach it.
        let frame = media.tracks_frame();
        for member in media.members.values() {
            let _ = member.frames.send(frame.clone());
        }
    }

    /// The two tasks that apply the rooms' events to the SFU and the SFU's events to attendance and the feed.
    pub fn spawn(
        self: &Arc<Self>,
        hub: &Hub,
        attendance: Intake,
        feed: broadcast::Sender<FeedItem>,
        events: Option<mpsc::UnboundedReceiver<SfuEvent>>,
    ) {
        let Some(mut events) = events else { return };
        let plane = self.clone();
        let mut room_events = hub.subscribe();
        tokio::spawn(async move {
            loop {
                match room_events.recv().await {
                    Ok(event) => match event.kind {
                        RoomEventKind::Left { .. } => plane.left(event.room_id, &event.client_id),
                        RoomEventKind::Placed { stage, .. } => {
                            plane.placed(event.room_id, &event.client_id, event.role, stage)
                        }
                        RoomEventKind::Muted { muted, .. } => {
                            if let Some(sfu) = &plane.sfu {
                                sfu.set_muted(event.client_id.as_str().into(), muted);
                            }
                        }
                        _ => {}
                    },
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::error!(missed = n, "media plane fell behind the rooms' events");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        let plane = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    SfuEvent::Tracks { room, audio, screen } => plane.tracks(room, audio, screen),
                    SfuEvent::Flow { room, participant, kind, flowing } => {
                        let (kind, name) = match kind {
                            FlowKind::Voice => ("voice", "voice"),
                            FlowKind::Screen => ("screen_share", "screen"),
                        };
                        let _ = feed.send(FeedItem {
                            event_id: room,
                            kind,
                            client_id: Some(participant.to_string()),
                            identity: None,
                            role: None,
                            at: ticketing::now_ms(),
                            detail: serde_json::json!({ "on": flowing, "measured": "sfu", "flow": name }),
                            relayed: false,
                        });
                    }
                    SfuEvent::Left { room, participant, usage } => {
                        let (voice_secs, screen_secs) = (usage.voice_ms / 1000, usage.screen_ms / 1000);
                        // Through the recorder's queue, after the change that opens the session's row (a session
                        // shorter than one flush has no row yet); queued before the feed item that reports it.
                        if voice_secs > 0 || screen_secs > 0 {
                            let change = ticketing::attendance::AttendanceChange::Engagement {
                                session_id: participant.to_string(),
                                chat_messages: 0,
                                voice_secs: voice_secs as i64,
                                screen_share_secs: screen_secs as i64,
                            };
                            if attendance.send(change).is_err() {
                                tracing::error!(client_id = %participant, "sfu usage not recorded: the recorder stopped");
                            }
                        }
                        let _ = feed.send(FeedItem {
                            event_id: room,
                            kind: "media_usage",
                            client_id: Some(participant.to_string()),
                            identity: None,
                            role: None,
                            at: ticketing::now_ms(),
                            detail: serde_json::json!({
                                "voice_ms": usage.voice_ms,
                                "screen_ms": usage.screen_ms,
                                "forwarded_packets": usage.forwarded_packets,
                            }),
                            relayed: false,
                        });
                    }
                    SfuEvent::Connected { .. } => {}
                }
            }
        });
    }

    /// Whether `client_id`'s voice and screen time are measured by the SFU (its own reports then only
    /// cross-check them).
    pub fn measures(&self, room: i64, client_id: &str) -> bool {
        self.rooms().get(&room).is_some_and(|r| r.sfu && r.members.contains_key(client_id))
    }
}

/// Who publishes: hosts always, attendees while on the stage.
fn publishes(role: Role, stage: bool) -> bool {
    role == Role::Host || stage
}

fn session_frame(publish: bool, audio_slots: usize) -> String {
    SfuServerMessage::SfuSession { publish, audio_slots: audio_slots.max(1) }.encode()
}

fn error_frame(message: &str) -> String {
    SfuServerMessage::SfuError { message }.encode()
}
