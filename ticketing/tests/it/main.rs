//! ticketing's integration tests, in one binary: the store's rules on SQLite and PostgreSQL (events, purchases,
//! payouts, derivation, privacy, room state) and the rule that only this crate runs SQL.

mod derivation;
mod events;
mod payouts;
mod privacy;
mod purchases;
mod room_state;
mod sql_owner;
mod store;
