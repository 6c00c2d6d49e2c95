//! A WebRTC client made of str0m, for tests and the load generator: full ICE (the SFU is
//! ICE-lite), its own UDP socket on loopback (or one TCP connection to the SFU's ICE-TCP
//! port, as a browser behind a UDP-blocking firewall), driven by a task. Not used by the gateway.

use parking_lot_free::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// `std::sync::Mutex` that shrugs off poisoning (a panicking test thread already failed the test).
mod parking_lot_free {
    pub struct Mutex<T>(std::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub fn new(value: T) -> Self {
            Self(std::sync::Mutex::new(value))
        }
        pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

/// What a client saw arrive.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub connected: bool,
    /// Per receiving mid: frames, bytes, and the last audio level.
    pub audio_frames: u64,
    pub audio_bytes: u64,
    pub video_frames: u64,
    pub levels: Vec<i8>,
    /// The payloads' first byte (tests write the publisher's tag there).
    pub tags: Vec<u8>,
    pub by_mid: std::collections::HashMap<String, u64>,
}

enum Write {
    Audio { level: i8, data: Vec<u8> },
    Video { tag: u8, len: usize, rid: Option<&'static str>, keyframe: bool },
}

/// Called with every media payload received (the load generator measures delay with it).
pub type OnMedia = Arc<dyn Fn(MediaKind, &[u8]) + Send + Sync>;

pub struct TestClient {
    seen: Arc<Mutex<Seen>>,
    writes: mpsc::UnboundedSender<Write>,
}

pub struct Transceivers {
    pub send_audio: bool,
    pub send_video: bool,
    pub recv_audio: usize,
    pub recv_video: bool,
    /// The send-only video is a simulcast of these RIDs (empty: one stream).
    pub video_layers: &'static [&'static str],
}

impl TestClient {
    /// Offers the transceivers, joins through `join` (which returns the SFU's answer), and starts driving.
    pub async fn connect<F, Fut>(transceivers: Transceivers, join: F) -> Self
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<String, crate::SfuError>>,
    {
        Self::connect_with(transceivers, None, join).await.expect("the SFU accepts the offer")
    }

    /// As [`TestClient::connect`], handing every received payload to `on_media` instead of recording it.
    pub async fn connect_with<F, Fut>(
        transceivers: Transceivers,
        on_media: Option<OnMedia>,
        join: F,
    ) -> Result<Self, crate::SfuError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<String, crate::SfuError>>,
    {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        let candidate = Candidate::host(local, "udp").unwrap();
        Self::connect_on(Link::Udp(socket), local, candidate, transceivers, on_media, join).await
    }

    /// As [`TestClient::connect`], over one TCP connection to the SFU's ICE-TCP address `server`: the
    /// client's only candidate is an active TCP one (RFC 6544), so media can flow over nothing else.
    pub async fn connect_over_tcp<F, Fut>(
        transceivers: Transceivers,
        server: SocketAddr,
        join: F,
    ) -> Result<Self, crate::SfuError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<String, crate::SfuError>>,
    {
        let stream = TcpStream::connect(server).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let local = stream.local_addr().unwrap();
        let candidate = Candidate::builder().tcp().host(local).tcptype(TcpType::Active).build().unwrap();
        let (mut read, write) = stream.into_split();
        let (packets_tx, packets) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(bytes) = crate::tcp::read_frame(&mut read).await {
                if packets_tx.send(bytes).is_err() {
                    return;
                }
            }
        });
        Self::connect_on(Link::Tcp { server, write, packets }, local, candidate, transceivers, None, join).await
    }

    async fn connect_on<F, Fut>(
        link: Link,
        local: SocketAddr,
        candidate: Candidate,
        transceivers: Transceivers,
        on_media: Option<OnMedia>,
        join: F,
    ) -> Result<Self, crate::SfuError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<String, crate::SfuError>>,
    {
        let mut rtc =
            Rtc::builder().set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags())).build(Instant::now());
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        let audio_out =
            transceivers.send_audio.then(|| api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let simulcast = (!transceivers.video_layers.is_empty()).then(|| {
            let mut simulcast = str0m::media::Simulcast::new();
            for rid in transceivers.video_layers {
                simulcast.add_send_layer(str0m::media::SimulcastLayer::new(rid));
            }
            simulcast
        });
        let video_out = transceivers
            .send_video
            .then(|| api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast));
        for _ in 0..transceivers.recv_audio {
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        if transceivers.recv_video {
            api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = api.apply().unwrap();
        let answer = join(offer.to_sdp_string()).await?;
        let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| crate::SfuError::BadSdp(e.to_string()))?;
        rtc.sdp_api().accept_answer(pending, answer).map_err(|e| crate::SfuError::Rejected(e.to_string()))?;

        let seen = Arc::new(Mutex::new(Seen::default()));
        let (writes, writes_rx) = mpsc::unbounded_channel();
        tokio::spawn(drive(rtc, link, local, seen.clone(), on_media, writes_rx, audio_out, video_out));
        Ok(Self { seen, writes })
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().clone()
    }

    /// Sends one 20 ms Opus-sized frame whose first byte is `tag`, with an RFC 6464 level.
    pub fn speak(&self, level: i8, tag: u8) {
        let mut data = vec![0u8; 80];
        data[0] = tag;
        let _ = self.writes.send(Write::Audio { level, data });
    }

    /// Sends one audio frame with the given payload.
    pub fn speak_payload(&self, level: i8, data: Vec<u8>) {
        let _ = self.writes.send(Write::Audio { level, data });
    }

    pub fn share_screen_frame(&self, tag: u8) {
        let _ = self.writes.send(Write::Video { tag, len: 900, rid: None, keyframe: true });
    }

    /// One frame of simulcast layer `rid` (its transceivers' `video_layers`), `len` bytes, a VP8 keyframe or
    /// an interframe.
    pub fn share_screen_layer(&self, rid: &'static str, tag: u8, len: usize, keyframe: bool) {
        let _ = self.writes.send(Write::Video { tag, len, rid: Some(rid), keyframe });
    }
}

/// How the client reaches the SFU.
enum Link {
    Udp(UdpSocket),
    /// RFC 4571 framing on one connection; a task reads the frames into `packets`.
    Tcp {
        server: SocketAddr,
        write: OwnedWriteHalf,
        packets: mpsc::UnboundedReceiver<Vec<u8>>,
    },
}

impl Link {
    fn proto(&self) -> Protocol {
        match self {
            Link::Udp(_) => Protocol::Udp,
            Link::Tcp { .. } => Protocol::Tcp,
        }
    }

    async fn send(&mut self, bytes: &[u8], destination: SocketAddr) {
        match self {
            Link::Udp(socket) => {
                let _ = socket.try_send_to(bytes, destination);
            }
            Link::Tcp { write, .. } => {
                let _ = crate::tcp::write_frame(write, bytes).await;
            }
        }
    }

    /// The next packet into `buf`: its length and source; `None` once a TCP connection closed.
    async fn recv(&mut self, buf: &mut [u8]) -> Option<std::io::Result<(usize, SocketAddr)>> {
        match self {
            Link::Udp(socket) => Some(socket.recv_from(buf).await),
            Link::Tcp { server, packets, .. } => {
                let bytes = packets.recv().await?;
                let len = bytes.len().min(buf.len());
                buf[..len].copy_from_slice(&bytes[..len]);
                Some(Ok((len, *server)))
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    mut rtc: Rtc,
    mut link: Link,
    local: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    on_media: Option<OnMedia>,
    mut writes: mpsc::UnboundedReceiver<Write>,
    audio_out: Option<Mid>,
    video_out: Option<Mid>,
) {
    let mut buf = vec![0u8; 2048];
    let started = Instant::now();
    let mut audio_ts: u64 = 0;
    let mut video_ts: u64 = 0;
    loop {
        let timeout = loop {
            if !rtc.is_alive() {
                return;
            }
            match rtc.poll_output() {
                Ok(Output::Timeout(at)) => break at,
                Ok(Output::Transmit(t)) => link.send(&t.contents, t.destination).await,
                Ok(Output::Event(event)) => {
                    if let (Some(on_media), Event::MediaData(data)) = (&on_media, &event) {
                        let kind =
                            if data.params.spec().codec == Codec::Opus { MediaKind::Audio } else { MediaKind::Video };
                        on_media(kind, &data.data);
                        continue;
                    }
                    let mut seen = seen.lock();
                    match event {
                        Event::Connected => seen.connected = true,
                        Event::MediaData(data) => {
                            *seen.by_mid.entry(data.mid.to_string()).or_default() += 1;
                            seen.tags.push(data.data.first().copied().unwrap_or(0));
                            if data.params.spec().codec == Codec::Opus {
                                seen.audio_frames += 1;
                                seen.audio_bytes += data.data.len() as u64;
                                if let Some(level) = data.ext_vals.audio_level {
                                    seen.levels.push(level);
                                }
                            } else {
                                seen.video_frames += 1;
                            }
                        }
                        _ => {}
                    }
                }
                Err(_) => return,
            }
        };
        let sleep = tokio::time::sleep_until(timeout.max(Instant::now()).into());
        tokio::select! {
            received = link.recv(&mut buf) => {
                let Some(received) = received else { return };
                let Ok((len, source)) = received else { continue };
                let Ok(contents) = buf[..len].try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive { proto: link.proto(), source, destination: local, contents });
                if rtc.handle_input(input).is_err() {
                    return;
                }
            }
            write = writes.recv() => {
                let Some(write) = write else { return };
                let now = Instant::now();
                match write {
                    Write::Audio { level, data } => {
                        let Some(mid) = audio_out else { continue };
                        let Some(writer) = rtc.writer(mid) else { continue };
                        let Some(pt) = writer.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt()) else { continue };
                        audio_ts += 960;
                        let _ = writer.audio_level(level, true).write(pt, now, MediaTime::new(audio_ts, Frequency::FORTY_EIGHT_KHZ), data);
                    }
                    Write::Video { tag, len, rid, keyframe } => {
                        let Some(mid) = video_out else { continue };
                        let Some(writer) = rtc.writer(mid) else { continue };
                        let Some(pt) = writer.payload_params().find(|p| p.spec().codec == Codec::Vp8).map(|p| p.pt()) else { continue };
                        let writer = match rid {
                            Some(rid) => writer.rid(rid.into()),
                            None => writer,
                        };
                        // A VP8-shaped frame: its first bit is the P bit of the frame tag (0: a keyframe). The
                        // packetizer puts the payload descriptor in front; the tag is the frame's first byte.
                        let mut data = vec![0u8; len];
                        data[0] = (tag & 0xFE) | u8::from(!keyframe);
                        video_ts += 3000;
                        let _ = writer.write(pt, now, MediaTime::new(video_ts, Frequency::NINETY_KHZ), data);
                    }
                }
            }
            _ = sleep => {
                if rtc.handle_input(Input::Timeout(Instant::now())).is_err() {
                    return;
                }
            }
        }
        if started.elapsed() > Duration::from_secs(600) {
            return;
        }
    }
}
