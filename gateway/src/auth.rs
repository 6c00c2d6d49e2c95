//! Bearer-token checks shared by the API's protected routes.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// The token from `Authorization: Bearer <token>`, if present.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Compares digests so the time taken does not depend on where the tokens differ.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Admits operators holding the configured admin token.
pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.settings.admin_token.as_deref() else {
        return Err(ApiError::forbidden("admin_disabled", "no admin token is configured on this gateway"));
    };
    match bearer(headers) {
        Some(token) if constant_time_eq(token, expected) => Ok(()),
        Some(_) => Err(ApiError::forbidden("bad_admin_token", "the admin token is not valid")),
        None => Err(ApiError::unauthorized("missing_token", "send Authorization: Bearer <admin token>")),
    }
}
