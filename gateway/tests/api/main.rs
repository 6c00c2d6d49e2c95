//! The gateway's integration tests, in one binary (zero2prod's `tests/api/main.rs`): each module is one area,
//! driving the real gateway (in process or as the built binary) over HTTP and WebSocket against SQLite and
//! PostgreSQL. One binary links the gateway once instead of once per file; nextest still runs every test in its
//! own process.

#[macro_use]
mod common;
#[macro_use]
mod creator_support;
mod attendance_support;
mod browser;
mod cluster_support;
mod nginx_support;

// Test servers shared with the watchers' tests.
#[allow(dead_code)] // the watchers' tests use the rest
#[path = "../../../watchers/tests/support/anvil.rs"]
mod anvil;
#[path = "../../../watchers/tests/support/esplora.rs"]
mod esplora;
#[path = "../../../watchers/tests/support/jsonrpc_replay.rs"]
mod jsonrpc_replay;

mod access_api;
mod api_basics;
mod attendance_analytics;
mod attendance_certificates;
mod attendance_crash;
mod attendance_flow;
mod attendance_webhooks;
mod behind_nginx;
mod browser_cluster;
mod browser_free;
mod browser_naf;
mod browser_pages;
mod browser_resume;
mod browser_sdk;
mod browser_sfu;
mod browser_shards;
mod cluster_entities;
mod cluster_nginx;
mod cluster_nodes;
mod creators_api;
mod cross_origin;
mod events_api;
mod graceful_shutdown;
mod join_api;
mod pages_api;
mod payment_faults;
mod payment_reversal;
mod payouts_api;
mod payouts_cli;
mod payouts_export;
mod privacy_api;
mod purchases_api;
mod quote_events;
mod relay_batching;
mod rescan_cli;
mod resilience;
mod resume_ws;
mod rooms_ws;
mod rsvp_api;
mod self_contained;
mod sfu_ws;
mod shards_ws;
mod token_purchases;
mod turn_cli;
mod verify_cli;
