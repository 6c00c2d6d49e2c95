//! The web files for people — pages, the example scene, the SDK, vendored A-Frame and networked-aframe — served
//! for any GET path no API route claims, from a copy of `web/` compiled into the binary, so the gateway serves them
//! whatever its working directory. `web_dir` replaces the embedded copy with a directory read at each request
//! (for editing pages without rebuilding). A missing file, or another method than GET or HEAD, gets the JSON 404.

use std::path::Path;

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::MethodRouter;
use include_dir::{include_dir, Dir};
use tower_http::services::ServeDir;

use crate::error::ApiError;
use crate::state::AppState;

/// `web/` as it was when the binary was built (`build.rs` rebuilds when it changes).
static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../web");

/// The fallback service: the embedded files, or those under `web_dir` when one is configured.
pub fn fallback(web_dir: Option<&Path>) -> MethodRouter<AppState> {
    match web_dir {
        // `ServeDir` refuses `..`, so nothing outside `web_dir` is reachable.
        Some(dir) => axum::routing::any_service(
            ServeDir::new(dir)
                .call_fallback_on_method_not_allowed(true)
                .fallback(axum::handler::HandlerWithoutStateExt::into_service(not_found)),
        ),
        None => axum::routing::any(embedded),
    }
}

/// Answers what neither a route nor a web file does.
pub async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such route")
}

/// One embedded file: `/` and paths ending in `/` are their `index.html`; a directory without its `/` is
/// redirected to it, as `ServeDir` does.
async fn embedded(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return not_found().await.into_response();
    }
    let path = uri.path().trim_start_matches('/');
    if path.split('/').any(|part| part == "..") {
        return not_found().await.into_response();
    }
    let file = if path.is_empty() || path.ends_with('/') {
        WEB.get_file(format!("{path}index.html"))
    } else if WEB.get_dir(path).is_some() {
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        return Redirect::permanent(&format!("/{path}/{query}")).into_response();
    } else {
        WEB.get_file(path)
    };
    let Some(file) = file else { return not_found().await.into_response() };
    let mime = mime_guess::from_path(file.path()).first_or_octet_stream();
    let content_type = match mime.type_() == mime_guess::mime::TEXT || mime.subtype() == mime_guess::mime::JAVASCRIPT {
        true => format!("{mime}; charset=utf-8"),
        false => mime.to_string(),
    };
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
    ];
    // For HEAD the server sends the length and no body.
    (StatusCode::OK, headers, file.contents()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_scene_and_vendored_bundle_is_embedded() {
        for path in [
            "index.html",
            "pages/index.html",
            "pages/event.html",
            "pages/tickets.html",
            "pages/join.html",
            "pages/dashboard.html",
            "scenes/event.html",
            "sdk/events.js",
            "vendor/aframe/aframe-v1.7.1.min.js",
            "vendor/networked-aframe/networked-aframe.min.js",
        ] {
            assert!(WEB.get_file(path).is_some_and(|f| !f.contents().is_empty()), "{path}");
        }
    }
}
