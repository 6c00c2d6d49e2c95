//! Operators: the admin token (`admin_token`), sent as `Authorization: Bearer <token>`.
//!
//! A handler that only operators may call takes an [`AdminUser`] argument; axum runs the check before the
//! handler, so no operator route can forget it. Routes open to a creator *or* an operator ask
//! [`AdminUser::from_headers`] themselves.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// The token from `Authorization: Bearer <token>`, if present.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Compares digests so the time taken does not depend on where the tokens differ.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Proof that the request carries the configured admin token: 403 `admin_disabled` when none is configured,
/// 401 `missing_token` without one, 403 `bad_admin_token` for another.
#[derive(Debug, Clone, Copy)]
pub struct AdminUser(());

impl AdminUser {
    pub fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<AdminUser, ApiError> {
        let Some(expected) = state.settings.admin_token.as_deref() else {
            return Err(ApiError::forbidden("admin_disabled", "no admin token is configured on this gateway"));
        };
        match bearer(headers) {
            Some(token) if constant_time_eq(token, expected) => Ok(AdminUser(())),
            Some(_) => Err(ApiError::forbidden("bad_admin_token", "the admin token is not valid")),
            None => Err(ApiError::unauthorized("missing_token", "send Authorization: Bearer <admin token>")),
        }
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        AdminUser::from_headers(state, &parts.headers)
    }
}
