//! Browsers on other origins: CORS preflights on every API route, `Access-Control-Allow-Origin` for allowed
//! origins only, `*` for public reads only, and the room WebSocket's `Origin` check (cross-site WebSocket
//! hijacking), refused with 403 and the JSON error shape.

use crate::common;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

const SCENES: &str = "https://scenes.example";
const EVIL: &str = "https://evil.example";

async fn app_allowing(origins: &[&str]) -> common::TestApp {
    let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
    common::spawn_app_with(ticketing::Backend::Sqlite, move |s| s.server.allowed_origins = origins).await
}

async fn preflight(app: &common::TestApp, path: &str, origin: &str, method: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "content-type,authorization")
        .send()
        .await
        .unwrap()
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_origins_pass_preflight_on_every_api_route_and_others_are_refused() {
    let app = app_allowing(&[SCENES]).await;
    for (path, method) in [
        ("/api/events/1/join", "POST"),
        ("/api/events/1/challenge", "GET"),
        ("/api/events/purchase", "POST"),
        ("/api/events/1", "PATCH"),
        ("/api/creators/me/profile", "PUT"),
        ("/api/admin/creators/alice/tier", "PUT"),
        ("/naf-dlux-adapter.js", "GET"),
    ] {
        let res = preflight(&app, path, SCENES, method).await;
        assert_eq!(res.status(), StatusCode::OK, "{method} {path}");
        assert_eq!(header(&res, "access-control-allow-origin"), Some(SCENES), "{method} {path}");
        assert!(header(&res, "access-control-allow-methods").unwrap().contains(method), "{method} {path}");
        let allowed_headers = header(&res, "access-control-allow-headers").unwrap().to_ascii_lowercase();
        assert!(allowed_headers.contains("content-type") && allowed_headers.contains("authorization"));
        assert_eq!(header(&res, "access-control-allow-credentials"), None, "never credentials");

        let refused = preflight(&app, path, EVIL, method).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(header(&refused, "access-control-allow-origin"), None);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "origin_not_allowed");
        assert!(body["error"]["message"].as_str().unwrap().contains("allowed_origins"), "{body}");
    }

    // Answers name the allowed origin (and vary by it); another origin's answer names none, so its page can't read it.
    let res = app.client.get(app.url("/api/events")).header("origin", SCENES).send().await.unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), Some(SCENES));
    assert!(header(&res, "vary").unwrap_or_default().to_ascii_lowercase().contains("origin"));
    let res = app.client.get(app.url("/api/events")).header("origin", EVIL).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    // The gateway's own origin is always allowed.
    let own = app.address.clone();
    let res = preflight(&app, "/api/events/1/join", &own, "POST").await;
    assert_eq!(header(&res, "access-control-allow-origin"), Some(own.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_opens_public_reads_but_not_writes() {
    let app = app_allowing(&["*"]).await;
    let res = app.client.get(app.url("/api/events")).header("origin", EVIL).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "access-control-allow-origin"), Some(EVIL));
    assert_eq!(header(&res, "access-control-allow-credentials"), None);
    let res = preflight(&app, "/naf-dlux-adapter.js", EVIL, "GET").await;
    assert_eq!((res.status(), header(&res, "access-control-allow-origin")), (StatusCode::OK, Some(EVIL)));
    let res = preflight(&app, "/api/events/1/join", EVIL, "POST").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_websocket_checks_the_origin() {
    let app = app_allowing(&[SCENES]).await;
    let url = app.url("/event/1").replacen("http://", "ws://", 1);
    let with_origin = |origin: Option<&str>| {
        let mut request = url.as_str().into_client_request().unwrap();
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", origin.parse().unwrap());
        }
        request
    };
    match tokio_tungstenite::connect_async(with_origin(Some(EVIL))).await {
        Err(WsError::Http(res)) => {
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
            let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "origin_not_allowed", "{body}");
        }
        other => panic!("a foreign origin's upgrade must be refused, got {:?}", other.map(|(_, r)| r.status())),
    }
    // A listed origin, the gateway's own, and clients that send no Origin (apps, servers) are let through.
    for origin in [Some(SCENES), Some(app.address.as_str()), None] {
        let (_, res) = tokio_tungstenite::connect_async(with_origin(origin)).await.expect("upgrade");
        assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS, "{origin:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_allowed_origins_refuse_to_start() {
    let db = ticketing::testing::TestDb::new(ticketing::Backend::Sqlite).await;
    let mut settings = common::test_settings(&db.url, std::env::temp_dir().join("gateway-bad-origins"));
    settings.server.allowed_origins = vec!["scenes.example".into()];
    let err = gateway::startup::Application::build(settings).await.err().expect("refused");
    assert!(format!("{err:#}").contains("allowed_origins"), "{err:#}");
}
