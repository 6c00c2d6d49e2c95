//! The HTTP API, one module per resource.

pub mod admin;
pub mod health;
pub mod purchases;
