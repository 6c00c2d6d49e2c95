//! The engine: one task owning the UDP socket and every peer connection.
//!
//! Each turn of the loop takes one input — a command, a datagram or the earliest timeout
//! — hands it to the one `Rtc` it concerns, then drains that connection's output until it
//! asks for a timeout: datagrams are sent (`try_send_to`: UDP semantics, a full socket
//! buffer drops the packet rather than stalling every room), media is forwarded to the
//! room's listeners, and each listener written to is drained in turn. Nothing blocks and
//! nothing is shared, as str0m's sans-IO design intends.

use crate::loudest::Loudest;
use crate::{Command, FlowKind, ParticipantId, Role, RoomKey, SfuError, SfuEvent, SfuStats, Usage};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::SdpOffer;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A gap longer than this between two forwarded packets ends a stretch of voice or screen time.
const FLOW_GAP: Duration = Duration::from_millis(1000);
/// At most one keyframe request per publisher per this interval.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

struct Participant {
    id: ParticipantId,
    room: RoomKey,
    rtc: Rtc,
    role: Role,
    muted: bool,
    connected: bool,
    /// Media the browser sends us (its microphone, its screen).
    audio_in: Option<Mid>,
    video_in: Option<Mid>,
    /// Media we send the browser: the N loudest speakers, and the screen share.
    audio_slots: Vec<Mid>,
    video_slot: Option<Mid>,
    /// When its next timeout is due.
    due: Instant,
    usage: Usage,
    last_voice: Option<Instant>,
    last_screen: Option<Instant>,
    last_keyframe_request: Option<Instant>,
}

#[derive(Default)]
struct Room {
    members: Vec<ParticipantId>,
    speakers: Option<Loudest<ParticipantId>>,
    presenter: Option<ParticipantId>,
    /// What the last [`SfuEvent::Tracks`] said, so only changes are announced.
    announced_audio: Vec<Option<ParticipantId>>,
    announced_screen: Option<ParticipantId>,
}

impl Room {
    /// The track map if it changed since it was last announced.
    fn tracks_changed(&mut self) -> Option<(Vec<Option<ParticipantId>>, Option<ParticipantId>)> {
        let audio: &[Option<ParticipantId>] = self.speakers.as_ref().map_or(&[], |s| s.holders());
        if audio == self.announced_audio.as_slice() && self.presenter == self.announced_screen {
            return None;
        }
        self.announced_audio = audio.to_vec();
        self.announced_screen = self.presenter.clone();
        Some((self.announced_audio.clone(), self.announced_screen.clone()))
    }
}

pub(crate) struct Engine {
    socket: UdpSocket,
    announce: SocketAddr,
    loudest: usize,
    participants: HashMap<ParticipantId, Participant>,
    by_source: HashMap<SocketAddr, ParticipantId>,
    rooms: HashMap<RoomKey, Room>,
    events: mpsc::UnboundedSender<SfuEvent>,
    stats: Arc<SfuStats>,
    /// Connections with output to drain.
    dirty: VecDeque<ParticipantId>,
    crypto: Arc<str0m::crypto::CryptoProvider>,
}

impl Engine {
    pub(crate) fn new(
        socket: UdpSocket,
        announce: SocketAddr,
        loudest: usize,
        events: mpsc::UnboundedSender<SfuEvent>,
        stats: Arc<SfuStats>,
    ) -> Self {
        Self {
            socket,
            announce,
            loudest,
            participants: HashMap::new(),
            by_source: HashMap::new(),
            rooms: HashMap::new(),
            events,
            stats,
            dirty: VecDeque::new(),
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 2048];
        let mut last_sweep = Instant::now();
        loop {
            let next_due = self.participants.values().map(|p| p.due).min();
            let sleep_until =
                next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(1)).min(last_sweep + FLOW_GAP);
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { break };
                    self.command(command);
                }
                received = self.socket.recv_from(&mut buf) => {
                    match received {
                        Ok((len, source)) => self.datagram(&buf[..len], source),
                        // ICMP port unreachable from a departed browser surfaces here on Linux; not fatal.
                        Err(e) => tracing::debug!(error = %e, "sfu: receive failed"),
                    }
                }
                _ = tokio::time::sleep_until(sleep_until.into()) => {
                    let now = Instant::now();
                    let due: Vec<ParticipantId> =
                        self.participants.values().filter(|p| p.due <= now).map(|p| p.id.clone()).collect();
                    for id in due {
                        if let Some(p) = self.participants.get_mut(&id) {
                            if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                                tracing::debug!(participant = %id, error = %e, "sfu: timeout input failed");
                                p.rtc.disconnect();
                            }
                        }
                        self.dirty.push_back(id);
                    }
                }
            }
            self.drain();
            let now = Instant::now();
            if now.saturating_duration_since(last_sweep) >= FLOW_GAP / 2 {
                self.sweep_flows(now);
                last_sweep = now;
            }
        }
        for id in self.participants.keys().cloned().collect::<Vec<_>>() {
            self.remove(&id);
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Join { room, participant, role, offer, reply } => {
                let _ = reply.send(self.join(room, participant, role, &offer));
            }
            Command::Offer { participant, offer, reply } => {
                let result = match self.participants.get_mut(&participant) {
                    None => Err(SfuError::UnknownParticipant),
                    Some(p) => accept(&mut p.rtc, &offer),
                };
                if result.is_ok() {
                    self.dirty.push_back(participant);
                }
                let _ = reply.send(result);
            }
            Command::Leave { participant } => {
                if let Some(p) = self.participants.get_mut(&participant) {
                    p.rtc.disconnect();
                    self.dirty.push_back(participant);
                }
            }
            Command::Muted { participant, muted } => {
                if let Some(p) = self.participants.get_mut(&participant) {
                    p.muted = muted;
                }
                if muted {
                    self.stop_forwarding(&participant);
                }
            }
            Command::Role { participant, role } => {
                if let Some(p) = self.participants.get_mut(&participant) {
                    p.role = role;
                }
                if role == Role::Listener {
                    self.stop_forwarding(&participant);
                }
            }
            Command::Usage { participant, reply } => {
                let _ = reply.send(self.participants.get(&participant).map(|p| p.usage));
            }
        }
    }

    fn join(&mut self, room: RoomKey, id: ParticipantId, role: Role, offer: &str) -> Result<String, SfuError> {
        if self.participants.contains_key(&id) {
            return Err(SfuError::DuplicateParticipant);
        }
        let now = Instant::now();
        let mut rtc = Rtc::builder().set_ice_lite(true).set_crypto_provider(self.crypto.clone()).build(now);
        let candidate = Candidate::host(self.announce, "udp").map_err(|e| SfuError::Rejected(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer = accept(&mut rtc, offer)?;
        let participant = Participant {
            id: id.clone(),
            room,
            rtc,
            role,
            muted: false,
            connected: false,
            audio_in: None,
            video_in: None,
            audio_slots: Vec::new(),
            video_slot: None,
            due: now,
            usage: Usage::default(),
            last_voice: None,
            last_screen: None,
            last_keyframe_request: None,
        };
        self.participants.insert(id.clone(), participant);
        self.rooms.entry(room).or_default().members.push(id.clone());
        self.stats.participants.fetch_add(1, Ordering::Relaxed);
        self.dirty.push_back(id);
        Ok(answer)
    }

    fn datagram(&mut self, bytes: &[u8], source: SocketAddr) {
        let Ok(contents) = bytes.try_into() else { return };
        let input = Input::Receive(
            Instant::now(),
            Receive { proto: Protocol::Udp, source, destination: self.announce, contents },
        );
        let known =
            self.by_source.get(&source).filter(|id| self.participants.get(*id).is_some_and(|p| p.rtc.accepts(&input)));
        let id = match known {
            Some(id) => id.clone(),
            None => {
                let Some(p) = self.participants.values().find(|p| p.rtc.accepts(&input)) else {
                    return;
                };
                self.by_source.insert(source, p.id.clone());
                p.id.clone()
            }
        };
        self.stats.packets_received.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = self.participants.get_mut(&id) {
            if let Err(e) = p.rtc.handle_input(input) {
                tracing::debug!(participant = %id, error = %e, "sfu: input refused; disconnecting");
                p.rtc.disconnect();
            }
        }
        self.dirty.push_back(id);
    }

    /// Drains the output of every connection that has some, including those that forwarding wrote to.
    fn drain(&mut self) {
        while let Some(id) = self.dirty.pop_front() {
            let mut forwards = Vec::new();
            let mut keyframe_requests = Vec::new();
            let mut gone = false;
            {
                let Some(p) = self.participants.get_mut(&id) else { continue };
                loop {
                    if !p.rtc.is_alive() {
                        gone = true;
                        break;
                    }
                    let output = match p.rtc.poll_output() {
                        Ok(output) => output,
                        Err(e) => {
                            tracing::debug!(participant = %id, error = %e, "sfu: connection failed");
                            p.rtc.disconnect();
                            gone = true;
                            break;
                        }
                    };
                    match output {
                        Output::Timeout(at) => {
                            p.due = at;
                            break;
                        }
                        Output::Transmit(transmit) => {
                            let _ = self.socket.try_send_to(&transmit.contents, transmit.destination);
                        }
                        Output::Event(event) => match event {
                            Event::Connected => {
                                p.connected = true;
                                let _ = self.events.send(SfuEvent::Connected { room: p.room, participant: id.clone() });
                            }
                            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                                p.rtc.disconnect();
                            }
                            Event::MediaAdded(added) => {
                                let sends = matches!(added.direction, Direction::SendOnly | Direction::SendRecv);
                                let receives = matches!(added.direction, Direction::RecvOnly | Direction::SendRecv);
                                match added.kind {
                                    MediaKind::Audio => {
                                        if receives && p.audio_in.is_none() {
                                            p.audio_in = Some(added.mid);
                                        } else if sends && p.audio_slots.len() < self.loudest {
                                            p.audio_slots.push(added.mid);
                                        }
                                    }
                                    MediaKind::Video => {
                                        if receives && p.video_in.is_none() {
                                            p.video_in = Some(added.mid);
                                        } else if sends && p.video_slot.is_none() {
                                            p.video_slot = Some(added.mid);
                                            keyframe_requests.push(p.room);
                                        }
                                    }
                                }
                            }
                            Event::MediaData(data) => forwards.push(data),
                            Event::KeyframeRequest(request) if Some(request.mid) == p.video_slot => {
                                keyframe_requests.push(p.room);
                            }
                            _ => {}
                        },
                    }
                }
            }
            if gone {
                self.remove(&id);
                continue;
            }
            for data in forwards {
                self.forward(&id, data);
            }
            for room in keyframe_requests {
                self.request_keyframe(room);
            }
        }
    }

    fn forward(&mut self, from: &ParticipantId, data: MediaData) {
        let now = Instant::now();
        let Some(sender) = self.participants.get_mut(from) else { return };
        let kind = if Some(data.mid) == sender.audio_in {
            FlowKind::Voice
        } else if Some(data.mid) == sender.video_in {
            FlowKind::Screen
        } else {
            return;
        };
        if sender.muted || sender.role != Role::Publisher {
            self.stats.packets_refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let room_key = sender.room;
        // Time flowing, counted from what passes the gate.
        let last = match kind {
            FlowKind::Voice => &mut sender.last_voice,
            FlowKind::Screen => &mut sender.last_screen,
        };
        let started = match *last {
            Some(at) if now.saturating_duration_since(at) < FLOW_GAP => {
                let ms = now.saturating_duration_since(at).as_millis() as u64;
                match kind {
                    FlowKind::Voice => sender.usage.voice_ms += ms,
                    FlowKind::Screen => sender.usage.screen_ms += ms,
                }
                false
            }
            _ => true,
        };
        *last = Some(now);
        if started {
            let _ = self.events.send(SfuEvent::Flow { room: room_key, participant: from.clone(), kind, flowing: true });
        }
        let needs_keyframe = kind == FlowKind::Screen && !data.contiguous;

        let Some(room) = self.rooms.get_mut(&room_key) else { return };
        let loudest = self.loudest;
        let slot = match kind {
            FlowKind::Voice => {
                let speakers = room.speakers.get_or_insert_with(|| Loudest::new(loudest));
                match speakers.observe(from, data.ext_vals.audio_level, now) {
                    Some(slot) => slot,
                    None => return,
                }
            }
            FlowKind::Screen => {
                if room.presenter.as_ref().is_some_and(|p| p != from) {
                    return;
                }
                room.presenter = Some(from.clone());
                0
            }
        };
        if let Some((audio, screen)) = room.tracks_changed() {
            let _ = self.events.send(SfuEvent::Tracks { room: room_key, audio, screen });
        }
        let members = room.members.clone();
        let mut written = 0u64;
        for member in &members {
            if member == from {
                continue;
            }
            let Some(listener) = self.participants.get_mut(member) else { continue };
            if !listener.connected {
                continue;
            }
            let mid = match kind {
                FlowKind::Voice => listener.audio_slots.get(slot).copied(),
                FlowKind::Screen => listener.video_slot,
            };
            let Some(mid) = mid else { continue };
            let Some(writer) = listener.rtc.writer(mid) else { continue };
            let Some(pt) = writer.match_params(data.params) else { continue };
            let writer = match (kind, data.ext_vals.audio_level) {
                (FlowKind::Voice, Some(level)) => {
                    writer.audio_level(level, data.ext_vals.voice_activity.unwrap_or(true))
                }
                _ => writer,
            };
            if let Err(e) = writer.write(pt, data.network_time, data.time, data.data.clone()) {
                tracing::debug!(participant = %member, error = %e, "sfu: write failed; disconnecting");
                listener.rtc.disconnect();
            }
            written += 1;
            self.dirty.push_back(member.clone());
        }
        self.stats.packets_forwarded.fetch_add(written, Ordering::Relaxed);
        self.stats.bytes_forwarded.fetch_add(written * data.data.len() as u64, Ordering::Relaxed);
        if let Some(sender) = self.participants.get_mut(from) {
            sender.usage.forwarded_packets += written;
        }
        if needs_keyframe {
            self.request_keyframe(room_key);
        }
    }

    /// Asks the room's presenter for a keyframe (a listener joined or lost packets), at most every 500 ms.
    fn request_keyframe(&mut self, room: RoomKey) {
        let Some(presenter) = self.rooms.get(&room).and_then(|r| r.presenter.clone()) else { return };
        let Some(p) = self.participants.get_mut(&presenter) else { return };
        let now = Instant::now();
        if p.last_keyframe_request.is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_INTERVAL) {
            return;
        }
        let Some(mid) = p.video_in else { return };
        if let Some(mut writer) = p.rtc.writer(mid) {
            if writer.request_keyframe(None, KeyframeRequestKind::Pli).is_ok() {
                p.last_keyframe_request = Some(now);
                self.dirty.push_back(presenter);
            }
        }
    }

    /// A publisher was muted or left the stage: free its slot and its screen.
    fn stop_forwarding(&mut self, id: &ParticipantId) {
        let Some(p) = self.participants.get(id) else { return };
        let room_key = p.room;
        if let Some(room) = self.rooms.get_mut(&room_key) {
            if let Some(speakers) = room.speakers.as_mut() {
                speakers.remove(id);
            }
            if room.presenter.as_ref() == Some(id) {
                room.presenter = None;
            }
            if let Some((audio, screen)) = room.tracks_changed() {
                let _ = self.events.send(SfuEvent::Tracks { room: room_key, audio, screen });
            }
        }
        self.end_flows(id, None);
    }

    /// Ends `id`'s voice and screen flows (or those idle since before `idle_since`).
    fn end_flows(&mut self, id: &ParticipantId, idle_since: Option<Instant>) {
        let Some(p) = self.participants.get_mut(id) else { return };
        for (kind, last) in [(FlowKind::Voice, &mut p.last_voice), (FlowKind::Screen, &mut p.last_screen)] {
            let ends = match (*last, idle_since) {
                (Some(_), None) => true,
                (Some(at), Some(before)) => at < before,
                (None, _) => false,
            };
            if ends {
                *last = None;
                let _ =
                    self.events.send(SfuEvent::Flow { room: p.room, participant: id.clone(), kind, flowing: false });
            }
        }
    }

    fn remove(&mut self, id: &ParticipantId) {
        self.stop_forwarding(id);
        let Some(p) = self.participants.remove(id) else { return };
        self.by_source.retain(|_, owner| owner != id);
        if let Some(room) = self.rooms.get_mut(&p.room) {
            room.members.retain(|m| m != id);
            if room.members.is_empty() {
                self.rooms.remove(&p.room);
            }
        }
        self.stats.participants.fetch_sub(1, Ordering::Relaxed);
        let _ = self.events.send(SfuEvent::Left { room: p.room, participant: id.clone(), usage: p.usage });
    }

    /// Ends the flows whose media stopped arriving.
    fn sweep_flows(&mut self, now: Instant) {
        let Some(before) = now.checked_sub(FLOW_GAP) else { return };
        let stale: Vec<ParticipantId> = self
            .participants
            .values()
            .filter(|p| [p.last_voice, p.last_screen].iter().flatten().any(|at| *at < before))
            .map(|p| p.id.clone())
            .collect();
        for id in stale {
            self.end_flows(&id, Some(before));
        }
    }
}

fn accept(rtc: &mut Rtc, offer: &str) -> Result<String, SfuError> {
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| SfuError::BadSdp(e.to_string()))?;
    let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| SfuError::Rejected(e.to_string()))?;
    Ok(answer.to_sdp_string())
}
