//! The watchers' integration tests, in one binary: each chain's watcher against a real node (anvil, Monero regtest)
//! or a local server replaying recorded real RPC responses, on SQLite and PostgreSQL.

// Support shared by the modules below.
#[allow(dead_code)] // the gateway's tests use the rest
#[path = "../support/anvil.rs"]
mod anvil;
#[path = "../support/esplora.rs"]
mod esplora;
#[path = "../support/ticketing_fixtures.rs"]
mod fixtures;
#[path = "../support/jsonrpc_replay.rs"]
mod jsonrpc_replay;
#[path = "../support/monero_regtest.rs"]
mod monero_regtest;

mod btc;
mod evm;
mod hive;
mod hive_keys;
mod lookup;
mod monero;
mod solana;
mod supervisor;
