//! Ticketing: creators, events, quotes, tickets, the money ledger, attendance and the audit log, and the store
//! they live in.
//!
//! Architecture invariant: this crate decides every state change of money and seats. Watchers report payments
//! to it and the gateway asks it to admit attendees; neither writes these tables on its own. It knows no
//! HTTP, no WebSocket and no particular chain's RPC.

pub mod analytics;
pub mod attendance;
pub mod audit;
pub mod creator_login;
pub mod creators;
pub mod cursors;
pub mod events;
pub mod new_rows;
pub mod pairings;
pub mod payouts;
pub mod privacy;
pub mod purchases;
pub mod rates;
pub mod ratings;
pub mod replay;
pub mod room_state;
pub mod sales_totals;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;

pub use store::{now_ms, Backend, Store, StoreError};
