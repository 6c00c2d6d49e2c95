//! Which web origins may use the gateway from a browser: CORS for the HTTP API, and the `Origin` check of room
//! WebSocket upgrades (cross-site WebSocket hijacking), both from one [`OriginPolicy`].
//!
//! A browser on another origin may read an API answer only when the answer names its origin
//! (`Access-Control-Allow-Origin`); for anything but a simple request it first asks with an `OPTIONS` preflight.
//! `new WebSocket(...)` has no such protection: the browser connects cross-origin and only sends `Origin`, so the
//! server must check it. The gateway's own origin is always allowed — `server.public_url`, and the origin a request
//! names in its `Host` (the page the gateway served itself) —, then whatever `server.allowed_origins` lists.
//! `"*"` in that list opens the public reads (GET and HEAD: events, pages, the SDK, the adapter) to every origin;
//! writes and WebSockets still need a listed origin. Credentials (cookies) are never allowed cross-origin: the API
//! authenticates with bearer tokens and signatures, which a page sends explicitly.
//!
//! Requests that carry no `Origin` (native apps, servers, `curl`) are not browsers' and are not refused here.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;

/// The origins allowed to use this gateway from a browser.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    own: Option<String>,
    listed: Vec<String>,
    any_reads: bool,
}

impl OriginPolicy {
    /// `public_url` is the gateway's own origin; `list` is `server.allowed_origins`.
    pub fn new(public_url: &str, list: &[String]) -> anyhow::Result<OriginPolicy> {
        let (listed, any_reads) = Self::parse_list(list)?;
        Ok(OriginPolicy { own: origin_of(public_url), listed, any_reads })
    }

    /// Checks `server.allowed_origins`: each entry `"*"` or `scheme://host[:port]` (no path), normalised.
    pub fn parse_list(list: &[String]) -> anyhow::Result<(Vec<String>, bool)> {
        let mut listed = Vec::new();
        let mut any = false;
        for entry in list {
            if entry.trim() == "*" {
                any = true;
                continue;
            }
            let origin = normalise(entry).ok_or_else(|| {
                anyhow::anyhow!("`{entry}` is not an origin: write `https://host` or `https://host:port`, or `*`")
            })?;
            listed.push(origin);
        }
        Ok((listed, any))
    }

    /// Whether a browser page on `origin` may make this request. `host` is the request's `Host`; `read` says
    /// the request (or the one a preflight announces) is a GET or HEAD.
    pub fn allows(&self, origin: &HeaderValue, host: Option<&HeaderValue>, read: bool) -> bool {
        let Some(origin) = origin.to_str().ok().and_then(normalise) else { return false };
        if self.own.as_deref() == Some(origin.as_str()) || self.listed.contains(&origin) {
            return true;
        }
        if let Some(host) = host.and_then(|h| h.to_str().ok()) {
            let scheme = origin.split("://").next().unwrap_or_default();
            if normalise(&format!("{scheme}://{host}")).as_deref() == Some(origin.as_str()) {
                return true;
            }
        }
        read && self.any_reads
    }

    /// [`Self::allows`] for a request, reading its method (or, for a preflight, the method it announces).
    fn allows_request(&self, origin: &HeaderValue, parts: &axum::http::request::Parts) -> bool {
        let method = match parts.method {
            Method::OPTIONS => parts
                .headers
                .get(header::ACCESS_CONTROL_REQUEST_METHOD)
                .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
                .unwrap_or(Method::OPTIONS),
            ref m => m.clone(),
        };
        let read = (method == Method::GET || method == Method::HEAD) && !is_websocket_upgrade(&parts.headers);
        self.allows(origin, parts.headers.get(header::HOST), read)
    }

    /// The CORS layer: answers preflights on every route and names allowed origins in answers.
    pub fn cors_layer(self: &Arc<Self>) -> CorsLayer {
        let policy = self.clone();
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, parts| policy.allows_request(origin, parts)))
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([header::RETRY_AFTER, header::LOCATION, HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600))
    }
}

/// Refuses, with 403 and the JSON error shape, a preflight or a WebSocket upgrade from an origin that is not
/// allowed (a plain cross-origin request goes on: without `Access-Control-Allow-Origin` the browser hides the
/// answer). Runs before the CORS layer.
pub async fn refuse_foreign_origins(State(policy): State<Arc<OriginPolicy>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let preflight = request.method() == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if !(preflight || is_websocket_upgrade(headers)) {
        return next.run(request).await;
    }
    let Some(origin) = headers.get(header::ORIGIN).cloned() else { return next.run(request).await };
    let (parts, body) = request.into_parts();
    if !policy.allows_request(&origin, &parts) {
        let shown = origin.to_str().unwrap_or("(not text)");
        return ApiError::forbidden(
            "origin_not_allowed",
            format!("pages on {shown} may not use this gateway: add the origin to `[server] allowed_origins`"),
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

fn is_websocket_upgrade(headers: &axum::http::HeaderMap) -> bool {
    headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// `scheme://host[:port]` lower-cased, without a default port or a trailing `/`; `None` for anything else.
fn normalise(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/');
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || authority.is_empty() {
        return None;
    }
    if authority.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// The origin part of a URL (`https://host:port/path` → `https://host:port`).
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    normalise(&format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(list: &[&str]) -> OriginPolicy {
        OriginPolicy::new("https://presence.example/", &list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn allows(p: &OriginPolicy, origin: &str, host: Option<&str>, read: bool) -> bool {
        p.allows(
            &HeaderValue::from_str(origin).unwrap(),
            host.map(|h| HeaderValue::from_str(h).unwrap()).as_ref(),
            read,
        )
    }

    #[test]
    fn own_and_listed_origins_are_allowed_and_nothing_else() {
        let p = policy(&["https://scenes.dlux.io", "http://localhost:3000/"]);
        assert!(allows(&p, "https://presence.example", None, false));
        assert!(allows(&p, "HTTPS://Presence.Example:443", None, false), "case and default port");
        assert!(allows(&p, "https://scenes.dlux.io", None, false));
        assert!(allows(&p, "http://localhost:3000", None, false));
        assert!(!allows(&p, "http://localhost:3001", None, true));
        assert!(!allows(&p, "https://evil.example", None, true));
        assert!(!allows(&p, "null", None, true));
        assert!(!allows(&p, "https://scenes.dlux.io.evil.example", None, false));
    }

    #[test]
    fn the_origin_named_by_host_is_the_gateways_own() {
        let p = policy(&[]);
        assert!(allows(&p, "http://127.0.0.1:8080", Some("127.0.0.1:8080"), false));
        assert!(allows(&p, "https://gw.local", Some("gw.local:443"), false));
        assert!(!allows(&p, "http://127.0.0.1:8081", Some("127.0.0.1:8080"), false));
        assert!(!allows(&p, "https://evil.example", Some("gw.local"), false));
    }

    #[test]
    fn a_wildcard_opens_reads_only() {
        let p = policy(&["*"]);
        assert!(allows(&p, "https://anyone.example", None, true));
        assert!(!allows(&p, "https://anyone.example", None, false));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in ["scenes.dlux.io", "https://x/path", "ftp://x", "https://", "https://u@x"] {
            assert!(OriginPolicy::parse_list(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
