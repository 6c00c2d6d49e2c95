//! The presence gateway: configuration, the HTTP API, WebSocket rooms, and the wiring of every other crate.
//! Only this crate depends on more than one of the others (see ARCHITECTURE.md).

pub mod access;
pub mod attendance;
pub mod auth;
pub mod certificates;
pub mod cli;
pub mod client_address;
pub mod cluster_node;
pub mod creator_auth;
pub mod configuration;
pub mod error;
pub mod exporters;
pub mod geo;
pub mod http_policy;
pub mod metrics;
pub mod origins;
pub mod payability;
pub mod price_feed;
pub mod payout_export;
pub mod privacy;
pub mod resume_token;
pub mod room_resume;
pub mod room_state;
pub mod rooms;
pub mod sales_feed;
pub mod server;
pub mod settlement;
pub mod routes;
pub mod session_token;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod web;
pub mod webhooks;
