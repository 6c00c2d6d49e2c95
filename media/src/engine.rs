//! The engine: one task owning the UDP socket, the ICE-TCP connections ([`crate::tcp`]) and
//! every peer connection.
//!
//! Each turn of the loop takes its input — a command, the datagrams waiting (up to 32), a
//! packet from a TCP connection or the timeouts due — hands each to the one `Rtc` it
//! concerns, then drains that connection's output until it asks for a timeout: RTP packets
//! are forwarded to the room's listeners, each listener written to is drained once at the
//! end of the turn, and the turn's UDP datagrams leave together ([`crate::outbox`]:
//! `sendmmsg`, UDP semantics, a full socket buffer drops them rather than stalling every
//! room). Nothing blocks and nothing is shared, as str0m's sans-IO design intends.
//!
//! A listener's connection negotiates no transport-wide congestion feedback
//! ([`listener_extensions`]): the SFU estimates no send-side bandwidth, and parsing that
//! feedback for every forwarded packet was the largest single item of its profile.
//!
//! Every `Rtc` runs in str0m's RTP mode: a speaker's packets arrive as RTP packets
//! (`Event::RtpPacket`, decrypted but not depacketized) and go out to each listener as the
//! same payload (`StreamTx::write_rtp`, the payload shared, not copied), rewritten by the
//! listener's slot ([`crate::slot`]) so the browser sees one continuous stream per slot.

use crate::loudest::Loudest;
use crate::outbox::Outbox;
use crate::simulcast::{starts_keyframe, Layers, ScreenLayer};
use crate::slot::SlotStream;
use crate::tcp::TcpEvent;
use crate::{Command, FlowKind, ParticipantId, Role, RoomKey, SfuError, SfuEvent, SfuStats, Usage};
use foldhash::{HashMap, HashMapExt};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::SdpOffer;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::rtp::{Extension, ExtensionMap, ExtensionValues, RtpPacket, RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A gap longer than this between two forwarded packets ends a stretch of voice or screen time.
const FLOW_GAP: Duration = Duration::from_millis(1000);
/// At most one keyframe request per publisher per this interval.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// RTP clock rates: Opus, and every video codec browsers send.
const AUDIO_CLOCK: u32 = 48_000;
const VIDEO_CLOCK: u32 = 90_000;
/// Datagrams taken from the socket in one turn when several are waiting.
const BATCH: usize = 32;

struct Participant {
    id: ParticipantId,
    /// Unique for the engine's life (ids may come back): tells a slot's sources apart.
    serial: u64,
    room: RoomKey,
    rtc: Rtc,
    role: Role,
    muted: bool,
    connected: bool,
    /// Media the browser sends us (its microphone, its screen).
    audio_in: Option<Mid>,
    video_in: Option<Mid>,
    /// Media we send the browser: the N loudest speakers, and the screen share.
    audio_slots: Vec<SlotStream>,
    video_slot: Option<SlotStream>,
    /// The last screen-share packet received per SSRC (a simulcast share has one per layer), to notice loss
    /// (then the listeners need a keyframe).
    last_video_seq: HashMap<u32, u64>,
    /// The simulcast layer of a screen share this listener asked for, and the SSRC of the one it gets now.
    screen_want: ScreenLayer,
    screen_ssrc: Option<u32>,
    /// How many simulcast layers its screen share's SDP announced (0: one stream).
    video_layers: usize,
    /// When its next timeout is due.
    due: Instant,
    /// In `dirty`, to be drained at the end of the turn.
    queued: bool,
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
    /// The presenter's simulcast layers, when its browser sends several.
    layers: Option<Layers>,
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
    /// The announced passive TCP candidate's address, and the TCP connections' packets.
    tcp_announce: Option<SocketAddr>,
    tcp_events: Option<mpsc::Receiver<TcpEvent>>,
    /// Open TCP connections by peer address: where to write their packets (dropping one closes it).
    tcp_conns: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    participants: HashMap<ParticipantId, Participant>,
    /// Which participant a source address (UDP, or a TCP connection) belongs to, learnt from its ICE username.
    by_source: HashMap<(Protocol, SocketAddr), ParticipantId>,
    rooms: HashMap<RoomKey, Room>,
    events: mpsc::UnboundedSender<SfuEvent>,
    stats: Arc<SfuStats>,
    /// Connections with output to drain.
    dirty: VecDeque<ParticipantId>,
    crypto: Arc<str0m::crypto::CryptoProvider>,
    serials: u64,
    /// This turn's UDP datagrams, sent together at its end.
    outbox: Outbox,
}

impl Engine {
    pub(crate) fn new(
        socket: UdpSocket,
        announce: SocketAddr,
        tcp: Option<(SocketAddr, mpsc::Receiver<TcpEvent>)>,
        loudest: usize,
        events: mpsc::UnboundedSender<SfuEvent>,
        stats: Arc<SfuStats>,
    ) -> Self {
        let (tcp_announce, tcp_events) = tcp.unzip();
        Self {
            socket,
            announce,
            tcp_announce,
            tcp_events,
            tcp_conns: HashMap::new(),
            loudest,
            participants: HashMap::new(),
            by_source: HashMap::new(),
            rooms: HashMap::new(),
            events,
            stats,
            dirty: VecDeque::new(),
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            serials: 0,
            outbox: Outbox::default(),
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 2048];
        let mut last_sweep = Instant::now();
        let mut tcp_events = self.tcp_events.take();
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
                        Ok((len, source)) => {
                            self.input(&buf[..len], source, Protocol::Udp);
                            // Under load more are waiting: take them in this turn, so a listener written to by
                            // several of them is drained once.
                            for _ in 1..BATCH {
                                let Ok((len, source)) = self.socket.try_recv_from(&mut buf) else { break };
                                self.input(&buf[..len], source, Protocol::Udp);
                            }
                        }
                        // ICMP port unreachable from a departed browser surfaces here on Linux; not fatal.
                        Err(e) => tracing::debug!(error = %e, "sfu: receive failed"),
                    }
                }
                event = next_tcp_event(&mut tcp_events) => match event {
                    Some(event) => self.tcp_event(event),
                    None => tcp_events = None,
                },
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
                        self.mark(&id);
                    }
                }
            }
            self.drain();
            self.outbox.flush(&self.socket);
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
            Command::ScreenLayer { participant, layer } => {
                let Some(p) = self.participants.get_mut(&participant) else { return };
                if p.screen_want != layer {
                    p.screen_want = layer;
                    let room = p.room;
                    self.request_keyframe(room);
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
        let mut config = Rtc::builder().set_ice_lite(true).set_rtp_mode(true).set_crypto_provider(self.crypto.clone());
        if role == Role::Listener {
            config = config.set_extension_map(listener_extensions());
        }
        let mut rtc = config.build(now);
        let candidate = Candidate::host(self.announce, "udp").map_err(|e| SfuError::Rejected(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        if let Some(tcp) = self.tcp_announce {
            let candidate = Candidate::builder()
                .tcp()
                .host(tcp)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| SfuError::Rejected(e.to_string()))?;
            rtc.add_local_candidate(candidate);
        }
        let answer = accept(&mut rtc, offer)?;
        self.serials += 1;
        let participant = Participant {
            id: id.clone(),
            serial: self.serials,
            room,
            rtc,
            role,
            muted: false,
            connected: false,
            audio_in: None,
            video_in: None,
            audio_slots: Vec::new(),
            video_slot: None,
            last_video_seq: HashMap::new(),
            screen_want: ScreenLayer::default(),
            screen_ssrc: None,
            video_layers: 0,
            due: now,
            queued: false,
            usage: Usage::default(),
            last_voice: None,
            last_screen: None,
            last_keyframe_request: None,
        };
        self.participants.insert(id.clone(), participant);
        self.rooms.entry(room).or_default().members.push(id.clone());
        self.stats.participants.fetch_add(1, Ordering::Relaxed);
        self.mark(&id);
        Ok(answer)
    }

    /// A packet from `source`, handed to the connection it belongs to. `false`: it belongs to none.
    fn input(&mut self, bytes: &[u8], source: SocketAddr, proto: Protocol) -> bool {
        let Ok(contents) = bytes.try_into() else { return false };
        let destination = match proto {
            Protocol::Udp => self.announce,
            _ => self.tcp_announce.unwrap_or(self.announce),
        };
        let input = Input::Receive(Instant::now(), Receive { proto, source, destination, contents });
        let known = self
            .by_source
            .get(&(proto, source))
            .filter(|id| self.participants.get(*id).is_some_and(|p| p.rtc.accepts(&input)));
        let id = match known {
            Some(id) => id.clone(),
            None => {
                // A new source: the participant whose ICE credentials its STUN request carries.
                let Some(p) = self.participants.values().find(|p| p.rtc.accepts(&input)) else {
                    return false;
                };
                self.by_source.insert((proto, source), p.id.clone());
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
        // At once: str0m holds one received RTP packet until it is polled.
        self.drain_one(id);
        true
    }

    fn tcp_event(&mut self, event: TcpEvent) {
        match event {
            TcpEvent::Opened { peer, packets } => {
                self.tcp_conns.insert(peer, packets);
            }
            TcpEvent::Packet { peer, bytes } => {
                // A connection whose packets belong to nobody is closed (dropping its sender ends its task).
                if self.tcp_conns.contains_key(&peer) && !self.input(&bytes, peer, Protocol::Tcp) {
                    self.tcp_conns.remove(&peer);
                }
            }
            TcpEvent::Closed { peer } => {
                self.tcp_conns.remove(&peer);
                self.by_source.remove(&(Protocol::Tcp, peer));
            }
        }
    }

    fn mark(&mut self, id: &ParticipantId) {
        if let Some(p) = self.participants.get_mut(id) {
            if !p.queued {
                p.queued = true;
                self.dirty.push_back(id.clone());
            }
        }
    }

    /// Drains the output of every connection that has some, including those that forwarding wrote to: each
    /// once, however many packets were written to it this turn.
    fn drain(&mut self) {
        while let Some(id) = self.dirty.pop_front() {
            if let Some(p) = self.participants.get_mut(&id) {
                p.queued = false;
            }
            self.drain_one(id);
        }
    }

    fn drain_one(&mut self, id: ParticipantId) {
        {
            let mut forwards = Vec::new();
            let mut keyframe_requests = Vec::new();
            let mut gone = false;
            {
                let Some(p) = self.participants.get_mut(&id) else { return };
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
                        Output::Transmit(transmit) => transmit_to(&mut self.outbox, &self.tcp_conns, transmit),
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
                                            p.audio_slots.push(SlotStream::new(added.mid));
                                        }
                                    }
                                    MediaKind::Video => {
                                        if receives && p.video_in.is_none() {
                                            p.video_in = Some(added.mid);
                                            p.video_layers =
                                                added.simulcast.as_ref().map_or(0, |s| s.recv.len().max(s.send.len()));
                                        } else if sends && p.video_slot.is_none() {
                                            p.video_slot = Some(SlotStream::new(added.mid));
                                            keyframe_requests.push(p.room);
                                        }
                                    }
                                }
                            }
                            Event::RtpPacket(packet) => {
                                let stream =
                                    p.rtc.direct_api().stream_rx(&packet.header.ssrc).map(|s| (s.mid(), s.rid()));
                                let (mid, rid) = stream.unzip();
                                if mid.is_some() && mid == p.audio_in {
                                    forwards.push((FlowKind::Voice, packet, None));
                                } else if mid.is_some() && mid == p.video_in {
                                    forwards.push((FlowKind::Screen, packet, rid.flatten()));
                                }
                            }
                            Event::KeyframeRequest(request)
                                if p.video_slot.as_ref().is_some_and(|slot| slot.mid == request.mid) =>
                            {
                                keyframe_requests.push(p.room);
                            }
                            _ => {}
                        },
                    }
                }
            }
            if gone {
                self.remove(&id);
                return;
            }
            for (kind, packet, rid) in forwards {
                self.forward(&id, kind, packet, rid);
            }
            for room in keyframe_requests {
                self.request_keyframe(room);
            }
        }
    }

    /// `rid`: the simulcast layer a screen-share packet belongs to, when its browser sends several.
    fn forward(&mut self, from: &ParticipantId, kind: FlowKind, packet: RtpPacket, rid: Option<Rid>) {
        let now = Instant::now();
        let Some(sender) = self.participants.get_mut(from) else { return };
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
        let seq = *packet.seq_no;
        // A screen-share packet lost on the way in leaves listeners with a frame they cannot decode.
        let ssrc = *packet.header.ssrc;
        let mut needs_keyframe =
            kind == FlowKind::Screen && sender.last_video_seq.insert(ssrc, seq).is_some_and(|last| seq > last + 1);
        let Some(params) = sender.rtc.codec_config().find(|p| p.pt() == packet.header.payload_type).copied() else {
            return;
        };
        let source = (sender.serial, *packet.header.ssrc);
        let announced_layers = sender.video_layers;

        let Some(room) = self.rooms.get_mut(&room_key) else { return };
        let loudest = self.loudest;
        let ext = &packet.header.ext_vals;
        let slot = match kind {
            FlowKind::Voice => {
                let speakers = room.speakers.get_or_insert_with(|| Loudest::new(loudest));
                match speakers.observe(from, ext.audio_level, now) {
                    Some(slot) => slot,
                    None => return,
                }
            }
            FlowKind::Screen => {
                if room.presenter.as_ref().is_some_and(|p| p != from) {
                    return;
                }
                // A new presenter: listeners start from its next keyframe.
                if room.presenter.replace(from.clone()).is_none() {
                    needs_keyframe = true;
                    room.layers = None;
                }
                0
            }
        };
        // A simulcast share: the layers a listener wanting high or low gets now, and whether this packet starts
        // a keyframe of its layer (where a listener may move onto it).
        let simulcast = rid.map(|rid| {
            let layers = room.layers.get_or_insert_with(|| Layers::new(now, announced_layers));
            layers.observe(rid, ssrc, packet.payload.len(), now);
            let targets = (layers.target(ScreenLayer::High, now), layers.target(ScreenLayer::Low, now));
            (targets, starts_keyframe(params.spec().codec, &packet.payload))
        });
        if let Some((audio, screen)) = room.tracks_changed() {
            let _ = self.events.send(SfuEvent::Tracks { room: room_key, audio, screen });
        }
        // What the listeners' packets carry besides the payload: the speaker's level (the browser's own
        // transport extensions are the listener connection's, str0m writes them).
        let (clock_rate, ext) = match kind {
            FlowKind::Voice => (
                AUDIO_CLOCK,
                ExtensionValues {
                    audio_level: ext.audio_level,
                    voice_activity: ext.voice_activity,
                    ..Default::default()
                },
            ),
            FlowKind::Screen => {
                (VIDEO_CLOCK, ExtensionValues { video_orientation: ext.video_orientation, ..Default::default() })
            }
        };
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
            if let Some(((high, low), keyframe)) = simulcast {
                let target = match listener.screen_want {
                    ScreenLayer::High => high,
                    ScreenLayer::Low => low,
                };
                if listener.screen_ssrc != Some(ssrc) {
                    // Not this listener's layer: it moves onto it only if it is the one it wants, where a
                    // keyframe starts (an unknown codec: at once, the keyframe requested repairs the picture).
                    if target != Some(ssrc) || listener.video_slot.is_none() {
                        continue;
                    }
                    if keyframe == Some(false) {
                        needs_keyframe = true;
                        continue;
                    }
                    listener.screen_ssrc = Some(ssrc);
                } else if target != Some(ssrc) {
                    // Its layer is no longer the one it wants: a keyframe of that one lets it move.
                    needs_keyframe = true;
                }
            }
            let out = match kind {
                FlowKind::Voice => listener.audio_slots.get_mut(slot),
                FlowKind::Screen => listener.video_slot.as_mut(),
            };
            let Some(out) = out else { continue };
            let Some(rewritten) = out.rewrite(source, seq, packet.header.timestamp, clock_rate, now) else { continue };
            let rtc = &mut listener.rtc;
            let Some(pt) = out.payload_type(params.pt(), || rtc.codec_config().match_params(params).map(|p| p.pt()))
            else {
                continue;
            };
            let mut api = rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(out.mid, None) else { continue };
            let marker = packet.header.marker || (kind == FlowKind::Voice && rewritten.switched);
            stream.write_rtp(
                RtpWrite::new(
                    pt,
                    SeqNo::from(rewritten.seq),
                    rewritten.timestamp,
                    packet.timestamp,
                    packet.payload.clone(),
                )
                .marker(marker)
                .ext_vals(ext.clone())
                .nackable(kind == FlowKind::Screen),
            );
            written += 1;
            if !listener.queued {
                listener.queued = true;
                self.dirty.push_back(member.clone());
            }
        }
        self.stats.packets_forwarded.fetch_add(written, Ordering::Relaxed);
        self.stats.bytes_forwarded.fetch_add(written * packet.payload.len() as u64, Ordering::Relaxed);
        if let Some(sender) = self.participants.get_mut(from) {
            sender.usage.forwarded_packets += written;
        }
        if needs_keyframe {
            self.request_keyframe(room_key);
        }
    }

    /// Asks the room's presenter for a keyframe (a listener joined or lost packets), at most every 500 ms.
    fn request_keyframe(&mut self, room_key: RoomKey) {
        let room = self.rooms.get(&room_key);
        let Some(presenter) = room.and_then(|r| r.presenter.clone()) else { return };
        let Some(p) = self.participants.get_mut(&presenter) else { return };
        let now = Instant::now();
        if p.last_keyframe_request.is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_INTERVAL) {
            return;
        }
        let Some(mid) = p.video_in else { return };
        // Every layer of a simulcast share (a listener may be moving onto any), or the one stream.
        let rids: Vec<Option<Rid>> = match room.and_then(|r| r.layers.as_ref()) {
            Some(layers) => layers.rids().map(Some).collect(),
            None => vec![None],
        };
        let mut asked = false;
        for rid in rids {
            if let Some(stream) = p.rtc.direct_api().stream_rx_by_mid(mid, rid) {
                stream.request_keyframe(KeyframeRequestKind::Pli);
                asked = true;
            }
        }
        if asked {
            p.last_keyframe_request = Some(now);
            self.mark(&presenter);
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
                room.layers = None;
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
        let tcp_conns = &mut self.tcp_conns;
        self.by_source.retain(|(proto, source), owner| {
            let mine = owner == id;
            if mine && *proto == Protocol::Tcp {
                tcp_conns.remove(source);
            }
            !mine
        });
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

/// Sends a packet the way its connection came: UDP (with the turn's other datagrams at its end, [`Outbox`]: a
/// full socket buffer drops them), or the TCP connection's queue (full: dropped likewise).
fn transmit_to(outbox: &mut Outbox, tcp_conns: &HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>, transmit: Transmit) {
    match transmit.proto {
        Protocol::Udp => outbox.push(transmit.destination, transmit.contents.into()),
        _ => {
            if let Some(conn) = tcp_conns.get(&transmit.destination) {
                let _ = conn.try_send(transmit.contents.into());
            }
        }
    }
}

/// The RTP header extensions a listener's connection negotiates: the speaker's audio level (the browser shows
/// it), the MID (bundle demultiplexing) and the screen's orientation. Not the transport-wide sequence number nor
/// the absolute send time: they serve send-side bandwidth estimation, which the SFU does not do, and with them
/// every listener's browser sends congestion feedback the SFU would parse for every packet it forwarded (the
/// largest single item of its profile). A listener put on the stage gets a new connection, as a publisher,
/// with Chromium's standard set.
fn listener_extensions() -> ExtensionMap {
    let mut exts = ExtensionMap::empty();
    exts.set(1, Extension::AudioLevel);
    exts.set(4, Extension::RtpMid);
    exts.set(13, Extension::VideoOrientation);
    exts
}

async fn next_tcp_event(events: &mut Option<mpsc::Receiver<TcpEvent>>) -> Option<TcpEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

fn accept(rtc: &mut Rtc, offer: &str) -> Result<String, SfuError> {
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| SfuError::BadSdp(e.to_string()))?;
    let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| SfuError::Rejected(e.to_string()))?;
    Ok(answer.to_sdp_string())
}
