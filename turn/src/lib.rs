//! The TURN relay attendees fall back to when a direct WebRTC path fails.
//!
//! This crate wraps the webrtc-rs `turn` server with the policy a public relay needs and the
//! upstream crate leaves to its users:
//!
//! - **Credentials** in coturn's REST-API style ([`credentials`]): `username = "<expiry>:<session-id>"`,
//!   `password = base64(HMAC-SHA1(secret, username))`. The gateway hands them out; any TURN client
//!   (browsers included) presents them unchanged.
//! - **Sessions** ([`sessions`]): a credential only works while its session id is registered.
//!   Revoking a session (ban, kick, logout) refuses its credentials and tears down its allocations.
//! - **Peer policy** ([`peer_policy`]): relaying to loopback, private, link-local, multicast and the
//!   other special-purpose ranges coturn's `denied-peer-ip` examples list is refused with 403, so the
//!   relay cannot be used to reach the hosts around it.
//! - **Quotas** ([`ledger`]): allocations per credential (486 beyond it) and a byte rate per
//!   credential (excess datagrams are dropped, as coturn's `max-bps` does).
//! - **Stats** ([`stats`]): plain atomics the gateway exports; this crate knows no metrics library.
//!
//! # Use from the gateway
//!
//! ```no_run
//! use std::time::SystemTime;
//! use turn_relay::{SessionId, SessionRegistry, TurnConfig, TurnRelay};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = TurnConfig {
//!     shared_secret: "a secret of at least 16 bytes".into(),
//!     public_ip: Some("203.0.113.7".parse()?),
//!     turn_urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
//!     ..TurnConfig::default()
//! };
//! let sessions = SessionRegistry::new(); // clone it into whatever admits and kicks attendees
//! let relay = TurnRelay::start(config, sessions.clone()).await?;
//!
//! let session = SessionId::parse("session-42")?;
//! sessions.register(session.clone()); // on admission
//! let creds = relay.issue(&session); // JSON-serialisable: { username, credential, ttl, urls }
//! # let _ = (creds, SystemTime::now());
//!
//! relay.revoke_session(&session).await; // on ban/kick: 401 from now on, allocations closed
//! let snapshot = relay.stats().snapshot(); // export to Prometheus
//! # let _ = snapshot;
//! relay.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Architecture invariant: this crate knows nothing of tickets, chains or signaling. It is told
//! which sessions are live through [`SessionRegistry`] and nothing else.
//!
//! The upstream server answers bad credentials with 400 and has no hook for quotas or peer checks,
//! so those decisions are made by [`gatekeeper`], a `Conn` wrapper around each listening socket
//! that sees every request before the server does and answers refusals itself.

pub mod auth;
pub mod config;
pub mod credentials;
mod error;
pub mod gatekeeper;
pub mod ledger;
pub mod peer_policy;
pub mod relay;
pub mod server;
pub mod sessions;
pub mod stats;
mod stun_util;
pub mod tcp;
mod tls;

pub use auth::{AuthFailure, Authenticator};
pub use config::{PortRange, TurnConfig};
pub use credentials::{issue, SessionId, TurnCredentials};
pub use error::TurnError;
pub use peer_policy::{Cidr, PeerPolicy};
pub use server::TurnRelay;
pub use sessions::SessionRegistry;
pub use stats::{StatsSnapshot, TurnStats};
