//! The TURN relay's integration tests, in one binary: coturn's own test client, a Rust TURN client, and the
//! error codes.

// Support shared by the modules below.
#[path = "../common/mod.rs"]
mod common;

mod coturn_uclient;
mod error_codes;
mod rust_client;
