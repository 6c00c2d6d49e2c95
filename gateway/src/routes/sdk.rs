//! The browser client for web frontends, `GET /sdk/events.js` (and its types, `/sdk/events.d.ts`).
//!
//! Both are compiled into the binary from `web/sdk/`, like the NAF adapter, so a page can import the client from
//! any gateway whatever its working directory or static-file settings, and the client's default base URL (the
//! origin it was loaded from) is always a gateway.

use axum::http::header;
use axum::response::IntoResponse;

pub const EVENTS_JS: &str = include_str!("../../../web/sdk/events.js");
pub const EVENTS_DTS: &str = include_str!("../../../web/sdk/events.d.ts");

pub fn router() -> super::Table {
    super::Table::new().get("/sdk/events.js", events_js).get("/sdk/events.d.ts", events_dts)
}

/// `GET /sdk/events.js`
async fn events_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")],
        EVENTS_JS,
    )
}

/// `GET /sdk/events.d.ts`
async fn events_dts() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")], EVENTS_DTS)
}
