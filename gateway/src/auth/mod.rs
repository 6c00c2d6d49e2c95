//! Who is calling, and what they may do: every credential the gateway accepts, in one place.
//!
//! - [`admin`]: operators, by the admin token ([`AdminUser`], an extractor).
//! - [`creator`]: creators, by a Hive signature over a sign-in challenge, then a creator session token.
//! - [`access`]: wallets, by a signature over an access challenge ([`access::AccessGuard`]: replay, rate limits,
//!   audit), for tickets, RSVPs, payout addresses and data rights.
//! - [`session_token`]: the single-use room session token a proven seat (or host) gets to open the room socket;
//!   [`resume_token`]: the token that takes a dropped seat back.
//! - [`token`]: the one signed envelope all of these tokens share, each kind under its own domain tag, so one
//!   kind can never stand for another.
//!
//! Whether a session may host a given event: `host::require_host` (the event's creator, or an operator).

pub mod access;
pub mod admin;
pub mod creator;
pub mod host;
pub mod resume_token;
pub mod session_token;
pub mod token;

pub use admin::{bearer, AdminUser};
pub use host::require_host;
