//! The presence gateway: configuration, the HTTP API, WebSocket rooms, and the wiring of every other crate.
//! Only this crate depends on more than one of the others (see ARCHITECTURE.md).

pub mod auth;
pub mod certificates;
pub mod cli;
pub mod cluster_node;
pub mod configuration;
pub mod error;
pub mod exporters;
pub mod geo;
pub mod http;
pub mod live;
pub mod media_plane;
pub mod metrics;
pub mod payments;
pub mod privacy;
pub mod rate_limit;
pub mod rooms;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
