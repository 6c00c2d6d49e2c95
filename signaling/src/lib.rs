//! Rooms, presence, the NAF relay protocol and WebRTC signalling for live events.
//!
//! **Architecture invariant:** this crate knows no chain, no ticket, no database and no
//! HTTP framework. The gateway authenticates a WebSocket, turns the ticket into an
//! [`Admission`] and hands it to [`Hub::try_admit`]; from then on it only moves frames:
//!
//! ```text
//!   socket text frame ──► Peer::handle_text ──► rooms / RoomFanout ──► Outbox::recv ──► socket
//! ```
//!
//! * [`protocol`] — the JSON messages both ways (docs/PROTOCOL.md documents them).
//! * [`Hub`] — admission, capacity, supersede, kick/ban/mute, shutdown, events, stats.
//! * [`Peer`] — one connection's inbound side: limits, `from`-stamping, room checks.
//! * [`Outbox`] — one connection's bounded outgoing queue (guaranteed vs unguaranteed).
//! * [`RoomFanout`] — the single seam for spreading a room over several nodes.
//!
//! All state is in memory and rebuilt by reconnecting clients; the one exception, rooms'
//! persistent NAF entities, is handed to the gateway's [`EntitySink`] to be stored, and
//! loaded back with [`Hub::load_entities`] (see [`persistent`]). A dropped connection
//! keeps its seat for a while and resumes on a new one (see [`resume`]).
//!
//! # Driving a connection (the gateway's side)
//!
//! One `Hub` per process (`Hub::new(config)` or `Hub::builder(config).turn_issuer(f).build()`),
//! cloned into every connection task. After authenticating the socket:
//!
//! ```ignore
//! let (mut peer, mut outbox) = match hub.try_admit(admission) {
//!     Ok(admitted) => admitted,
//!     Err(refused) => return close(socket, refused.close_frame()).await, // 4409, 4003, 1001
//! };
//! let mut batch = Vec::new();
//! loop {
//!     tokio::select! {
//!         // Everything queued since the last write, written with one flush (one syscall).
//!         taken = outbox.recv_many(&mut batch, 128) => {
//!             if taken == 0 { break }
//!             for out in batch.drain(..) {
//!                 match out {
//!                     Outbound::Text(bytes) => {
//!                         let text = Utf8Bytes::try_from(bytes).expect("signaling frames are UTF-8");
//!                         socket.feed(Message::Text(text)).await?;
//!                     }
//!                     Outbound::Close(frame) => {
//!                         socket.send(Message::Close(Some(CloseFrame {
//!                             code: frame.code, reason: frame.reason.into() }))).await?;
//!                         return Ok(());
//!                     }
//!                 }
//!             }
//!             socket.flush().await?;
//!         }
//!         inbound = socket.recv() => match inbound {
//!             Some(Ok(Message::Text(text))) => { let _ = peer.handle_text(&text); }
//!             Some(Ok(Message::Binary(data))) => { let _ = peer.handle_binary(data.len()); }
//!             Some(Ok(_)) => {}                     // ping/pong: the WebSocket layer's business
//!             Some(Err(_)) | None => break,         // gone: `peer.suspend(LeaveReason::Left)` keeps
//!                                                   // the seat for a resume; dropping `peer` leaves
//!         },
//!         _ = idle_timeout.tick() => { peer.leave(LeaveReason::TimedOut); }
//!     }
//! }
//! ```
//!
//! When `handle_text` breaks, the close frame is already queued: keep looping and the
//! outbox yields it next. Set the WebSocket layer's message limit above
//! [`SignalingConfig::max_frame_bytes`] so oversized frames get our precise 1009.

mod admission;
pub mod batch;
mod close;
mod config;
mod event;
mod fanout;
mod flush;
mod hub;
mod mirror;
pub mod moderation;
mod outbox;
mod peer;
pub mod persistent;
pub mod protocol;
mod rate_limit;
mod relay_frame;
pub mod resume;
mod room;
mod sdp;
pub mod shards;
mod stats;
mod turn;

pub use admission::{Admission, PeerInfo, Role, RoomId};
pub use close::{CloseCode, CloseFrame};
pub use config::SignalingConfig;
pub use event::{LeaveReason, RoomEvent, RoomEventKind};
pub use fanout::{Envelope, LocalFanout, Recipients, RoomFanout};
pub use flush::Flusher;
pub use hub::{now_ms, AdmitError, Hub, HubBuilder, OccupantSummary};
pub use mirror::RemoteOccupant;
pub use moderation::{BanHandler, Moderation, RemoteModerator};
pub use outbox::{Delivery, Outbound, Outbox};
pub use peer::{Flow, Peer};
pub use persistent::{EntityChange, EntitySink};
pub use resume::{Resume, ResumeError, ResumeIssuer, Resumed};
pub use room::{Occupancy, Room};
pub use shards::{Placement, PlacementAuthority, PlacementChange, ShardError, ShardOccupancy};
pub use stats::{Stats, StatsSnapshot};
pub use turn::{IceServer, TurnGrant, TurnIssuer};

/// The browser adapter for networked-aframe. The gateway serves it at
/// `/naf-dlux-adapter.js` (`Content-Type: text/javascript`).
pub const NAF_ADAPTER_JS: &str = include_str!("../js/naf-dlux-adapter.js");
