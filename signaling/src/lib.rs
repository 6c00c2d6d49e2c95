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
//! All state is in memory and rebuilt by reconnecting clients; nothing here has to
//! survive a restart.

mod admission;
mod close;
mod config;
mod event;
mod fanout;
mod hub;
mod outbox;
mod peer;
pub mod protocol;
mod rate_limit;
mod room;
mod sdp;
mod stats;
mod turn;

pub use admission::{Admission, PeerInfo, Role, RoomId};
pub use close::{CloseCode, CloseFrame};
pub use config::SignalingConfig;
pub use event::{LeaveReason, RoomEvent, RoomEventKind};
pub use fanout::{Envelope, LocalFanout, Recipients, RoomFanout};
pub use hub::{now_ms, AdmitError, Hub, HubBuilder, OccupantSummary};
pub use outbox::{Delivery, Outbound, Outbox};
pub use peer::{Flow, Peer};
pub use room::{Occupancy, Room};
pub use stats::{Stats, StatsSnapshot};
pub use turn::{IceServer, TurnGrant, TurnIssuer};

/// The browser adapter for networked-aframe. The gateway serves it at
/// `/naf-dlux-adapter.js` (`Content-Type: text/javascript`).
pub const NAF_ADAPTER_JS: &str = include_str!("../js/naf-dlux-adapter.js");
