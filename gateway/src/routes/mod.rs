//! The HTTP API, one module per resource.

pub mod access;
pub mod analytics;
pub mod admin;
pub mod admin_payouts;
pub mod certificates;
pub mod charts;
pub mod creators;
pub mod events;
pub mod health;
pub mod privacy;
pub mod pairings;
pub mod payout_addresses;
pub mod purchases;
pub mod rsvp;
pub mod qr;
pub mod quote_events;
pub mod rooms;
pub mod sdk;
pub mod stage;
pub mod webhooks;
