//! The embedded SFU: a selective forwarding unit for stage audio and screen share.
//!
//! Built on str0m, a sans-IO WebRTC stack: this crate owns the UDP socket (and a TCP listener
//! for ICE over TCP, [`tcp`]) and the clock, str0m does ICE-lite, DTLS-SRTP and RTP. Media is
//! forwarded packet by packet as it arrives, never decoded nor even depacketized: str0m's RTP
//! mode, each listener slot rewriting SSRC, sequence numbers and timestamps ([`slot`]).
//!
//! - Who may publish is decided by the caller ([`Role`]); a muted publisher's packets are
//!   dropped here, whatever its browser does ([`Sfu::set_muted`]).
//! - Each listener's browser offers N receive-only audio transceivers and one
//!   receive-only video transceiver at join; the SFU fills the audio slots with the N
//!   loudest speakers ([`loudest`]) and the video slot with the current screen share. No
//!   renegotiation is needed when speakers change, so a stage heard by a thousand
//!   listeners costs each of them at most N audio streams.
//! - Voice and screen-share time are measured from what was forwarded ([`Usage`]).
//!
//! The engine is one task that owns every peer connection ([`engine`]); callers talk to it
//! through [`Sfu`], a cheap handle. This crate depends on no crate of the workspace: the
//! gateway carries its SDP over the room WebSocket.

mod engine;
pub mod loudest;
mod outbox;
pub mod simulcast;
mod slot;
mod tcp;
#[doc(hidden)]
pub mod testing;

pub use simulcast::ScreenLayer;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Where the SFU listens and what it tells browsers.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The UDP socket every peer connection shares (one port: ICE-lite, demultiplexed by ICE username).
    pub udp_bind: SocketAddr,
    /// The address announced as the host candidate (the host's public IP). `None`: the bound address, which
    /// must then not be unspecified.
    pub announce_ip: Option<IpAddr>,
    /// Audio slots per listener: the N loudest speakers are forwarded.
    pub loudest: usize,
    /// ICE over TCP: where the passive TCP candidate listens.
    pub ice_tcp: IceTcp,
}

/// Whether and where the SFU accepts ICE over TCP (RFC 6544, a `tcptype passive` host candidate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceTcp {
    Off,
    /// The UDP socket's address and port (with an ephemeral UDP port, any free TCP port on that address).
    SamePort,
    /// An address of its own (port 0: any free port).
    Bind(SocketAddr),
}

impl SfuConfig {
    /// Loopback, any free ports, TCP included.
    pub fn local(loudest: usize) -> Self {
        Self {
            udp_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            announce_ip: None,
            loudest,
            ice_tcp: IceTcp::Bind(SocketAddr::from(([127, 0, 0, 1], 0))),
        }
    }
}

/// A room: the SFU forwards only between participants of the same room.
pub type RoomKey = i64;

/// Who a participant is, unique in the SFU (the gateway uses the room's client id).
pub type ParticipantId = Arc<str>;

/// What a participant may do, decided by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Hosts and stage speakers: their microphone and screen are forwarded.
    Publisher,
    /// Everyone else: receives only; anything it sends is dropped.
    Listener,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SfuError {
    #[error("bad SDP: {0}")]
    BadSdp(String),
    #[error("the offer could not be accepted: {0}")]
    Rejected(String),
    #[error("no such participant")]
    UnknownParticipant,
    #[error("participant id already in use")]
    DuplicateParticipant,
    #[error("the SFU has stopped")]
    Stopped,
}

/// Media a participant's publishing produced, as forwarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Time its microphone audio was forwarded, ms.
    pub voice_ms: u64,
    /// Time its screen share was forwarded, ms.
    pub screen_ms: u64,
    /// Packets of its media forwarded to listeners (one per listener).
    pub forwarded_packets: u64,
}

/// What happened, for the gateway (live feed, attendance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEvent {
    /// ICE and DTLS completed: media can flow.
    Connected { room: RoomKey, participant: ParticipantId },
    /// The peer connection ended (closed, failed or timed out); its usage so far.
    Left { room: RoomKey, participant: ParticipantId, usage: Usage },
    /// A publisher's voice or screen started or stopped flowing.
    Flow { room: RoomKey, participant: ParticipantId, kind: FlowKind, flowing: bool },
    /// Who the room's forwarded tracks carry now: `audio[i]` is the speaker in every listener's i-th audio
    /// slot (the i-th receive-only audio transceiver it offered), `screen` the presenter in its video slot.
    /// Sent when either changes, so a browser can tell which stream is whose.
    Tracks { room: RoomKey, audio: Vec<Option<ParticipantId>>, screen: Option<ParticipantId> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    Voice,
    Screen,
}

/// Counters for /metrics and benchmarks.
#[derive(Debug, Default)]
pub struct SfuStats {
    pub participants: AtomicU64,
    pub packets_received: AtomicU64,
    /// Media packets written to listeners.
    pub packets_forwarded: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    /// Media dropped because its sender was muted or is not a publisher.
    pub packets_refused: AtomicU64,
}

impl SfuStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

pub(crate) enum Command {
    Join {
        room: RoomKey,
        participant: ParticipantId,
        role: Role,
        offer: String,
        reply: oneshot::Sender<Result<String, SfuError>>,
    },
    Offer {
        participant: ParticipantId,
        offer: String,
        reply: oneshot::Sender<Result<String, SfuError>>,
    },
    Leave {
        participant: ParticipantId,
    },
    Muted {
        participant: ParticipantId,
        muted: bool,
    },
    Role {
        participant: ParticipantId,
        role: Role,
    },
    ScreenLayer {
        participant: ParticipantId,
        layer: ScreenLayer,
    },
    Usage {
        participant: ParticipantId,
        reply: oneshot::Sender<Option<Usage>>,
    },
}

/// The handle: cheap to clone; the engine stops when the last handle is dropped.
#[derive(Clone)]
pub struct Sfu {
    commands: mpsc::UnboundedSender<Command>,
    local_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    stats: Arc<SfuStats>,
}

impl std::fmt::Debug for Sfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sfu")
            .field("local_addr", &self.local_addr)
            .field("tcp_addr", &self.tcp_addr)
            .finish_non_exhaustive()
    }
}

impl Sfu {
    /// Binds the UDP socket (and the TCP listener) and starts the engine. Events arrive on the returned receiver.
    pub async fn start(config: SfuConfig) -> std::io::Result<(Self, mpsc::UnboundedReceiver<SfuEvent>)> {
        let socket = tokio::net::UdpSocket::bind(config.udp_bind).await?;
        let bound = socket.local_addr()?;
        let announce_ip = config.announce_ip.unwrap_or(bound.ip());
        if announce_ip.is_unspecified() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the SFU binds an unspecified address: set the address to announce",
            ));
        }
        let announce = SocketAddr::new(announce_ip, bound.port());
        let tcp_bind = match config.ice_tcp {
            IceTcp::Off => None,
            // An ephemeral UDP port's number may be taken for TCP: then any free TCP port (it is announced).
            IceTcp::SamePort if config.udp_bind.port() == 0 => Some(SocketAddr::new(bound.ip(), 0)),
            IceTcp::SamePort => Some(bound),
            IceTcp::Bind(addr) => Some(addr),
        };
        let (tcp, tcp_announce) = match tcp_bind {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let port = listener.local_addr()?.port();
                let (events, events_rx) = mpsc::channel(4096);
                tokio::spawn(tcp::accept(listener, events));
                (Some(events_rx), Some(SocketAddr::new(announce_ip, port)))
            }
            None => (None, None),
        };
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(SfuStats::default());
        let engine = engine::Engine::new(
            socket,
            announce,
            tcp.map(|events| (tcp_announce.unwrap_or(announce), events)),
            config.loudest.max(1),
            events,
            stats.clone(),
        );
        tokio::spawn(engine.run(commands_rx));
        Ok((Self { commands, local_addr: announce, tcp_addr: tcp_announce, stats }, events_rx))
    }

    /// The announced address (UDP host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The announced ICE-TCP address (passive TCP host candidate), when TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    pub fn stats(&self) -> &Arc<SfuStats> {
        &self.stats
    }

    /// Accepts a participant's first offer and returns the SDP answer.
    pub async fn join(
        &self,
        room: RoomKey,
        participant: ParticipantId,
        role: Role,
        offer: &str,
    ) -> Result<String, SfuError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Join { room, participant, role, offer: offer.to_owned(), reply })?;
        answer.await.map_err(|_| SfuError::Stopped)?
    }

    /// A later offer from the participant (it added a screen share): the answer.
    pub async fn offer(&self, participant: ParticipantId, offer: &str) -> Result<String, SfuError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Offer { participant, offer: offer.to_owned(), reply })?;
        answer.await.map_err(|_| SfuError::Stopped)?
    }

    pub fn leave(&self, participant: ParticipantId) {
        let _ = self.send(Command::Leave { participant });
    }

    /// Server-side mute: the participant's media is no longer forwarded.
    pub fn set_muted(&self, participant: ParticipantId, muted: bool) {
        let _ = self.send(Command::Muted { participant, muted });
    }

    /// Invited to or removed from the stage.
    pub fn set_role(&self, participant: ParticipantId, role: Role) {
        let _ = self.send(Command::Role { participant, role });
    }

    /// The layer of a simulcast screen share this listener gets (it moves onto it at the layer's next keyframe).
    pub fn set_screen_layer(&self, participant: ParticipantId, layer: ScreenLayer) {
        let _ = self.send(Command::ScreenLayer { participant, layer });
    }

    pub async fn usage(&self, participant: ParticipantId) -> Option<Usage> {
        let (reply, usage) = oneshot::channel();
        self.send(Command::Usage { participant, reply }).ok()?;
        usage.await.ok().flatten()
    }

    fn send(&self, command: Command) -> Result<(), SfuError> {
        self.commands.send(command).map_err(|_| SfuError::Stopped)
    }
}
