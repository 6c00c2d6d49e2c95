//! Rules every HTTP response follows, whichever handler or layer made it.
//!
//! - **One error shape.** Rejections made below our handlers (axum's body limit answering 413, a method the
//!   router does not serve answering 405, an upgrade that is not a WebSocket) come as `text/plain`. They are
//!   rewritten as [`ApiError`]s, so a client parses every error the same way.
//! - **Browser hardening.** Every response says `X-Content-Type-Options: nosniff`. Our own pages (`/` and
//!   `/pages/…`) also get [`PAGE_CSP`] (this origin's scripts, styles and API; images also from any `https:`
//!   host, for creators' covers), `X-Frame-Options: DENY` and `Referrer-Policy: same-origin`. Scenes (`/scenes/…`) are meant to be embedded and carry their own
//!   inline A-Frame setup, so they get only `nosniff`.
//! - **No request waits forever.** The request timeout's bare 503 becomes `request_timeout` ([`timed_out`]).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The policy of our own pages: their own scripts, styles and API only; images also from any https host (event
/// covers may live elsewhere) and as data/blob URLs (the charts); nothing may frame them. The 3D scene
/// (`/scenes/`) is left out: A-Frame injects styles and its vendored bundles are not ours to vouch for line by
/// line.
pub const PAGE_CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data: blob:; \
    connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Longest plain-text rejection kept as the error message.
const MESSAGE_MAX: usize = 200;

pub async fn apply(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let page = path == "/" || path == "/index.html" || path.starts_with("/pages/");
    let response = next.run(request).await;
    let mut response = json_errors(response).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let html = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    if page && html {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    response
}

/// The answer to a request dropped by the request timeout (`TimeoutLayer`'s bare 503, which only it makes: our
/// handlers' 503s are `ApiError`s, in JSON): `request_timeout`, with `Retry-After`.
pub async fn timed_out(State(timeout): State<Duration>, response: Response) -> Response {
    let bare = response.status() == StatusCode::SERVICE_UNAVAILABLE && !response.headers().contains_key(CONTENT_TYPE);
    if !bare {
        return response;
    }
    ApiError::unavailable(
        "request_timeout",
        format!(
            "the request took longer than {} s and was abandoned; it may or may not have taken effect",
            timeout.as_secs()
        ),
    )
    .into_response()
}

/// A 4xx or 5xx that is not JSON becomes the JSON error shape, keeping its status and headers.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().chars().take(MESSAGE_MAX).collect::<String>(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    let mut rebuilt = ApiError::new(status, code_for(status), message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH && !rebuilt.headers().contains_key(name) {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::UPGRADE_REQUIRED => "upgrade_required",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}
