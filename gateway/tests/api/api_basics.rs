//! Health, readiness, metrics, errors and the admin API, end to end over HTTP.

use crate::common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

app_test!(healthz_and_readyz_answer, |app| async move {
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["checks"]["database"], true);
    assert!(app.get("/healthz").await.headers().contains_key("x-request-id"));
});

app_test!(unknown_route_is_a_json_404, |app| async move {
    let res = app.get("/nope").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
});

app_test!(metrics_are_valid_prometheus_text, |app| async move {
    app.get("/healthz").await;
    app.get("/nope").await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parsable exposition format");
    let names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    assert!(names.contains(&"gateway_build_info"), "{names:?}");
    let healthz = scrape
        .samples
        .iter()
        .find(|s| s.metric == "gateway_http_requests_total" && s.labels.get("route") == Some("/healthz"))
        .expect("healthz counted");
    // OpenMetrics names the counter family without `_total`; the parser then reports the sample as untyped.
    assert!(
        matches!(healthz.value, prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) if v >= 1.0)
    );
    assert!(scrape.samples.iter().any(|s| s.metric == "gateway_http_requests_total"
        && s.labels.get("route") == Some("unmatched")
        && s.labels.get("status") == Some("404")));
    assert!(names.iter().any(|n| n.starts_with("gateway_http_request_duration_seconds")));
    assert!(text.trim_end().ends_with("# EOF"));
});

app_test!(admin_sets_tiers_with_the_token_only, |app| async move {
    let path = "/api/admin/creators/alice/tier";
    let res = app.client.put(app.url(path)).json(&json!({ "tier": "premium" })).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res =
        app.client.put(app.url(path)).bearer_auth("wrong").json(&json!({ "tier": "premium" })).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .admin(Method::PUT, path)
        .json(&json!({ "tier": "premium", "until": "2030-01-01T00:00:00Z" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tier"], "premium");
    assert_eq!(body["tier_until"], "2030-01-01T00:00:00.000Z");
    let creator = app.store.creator(&ticketing::creators::AccountName::parse("alice").unwrap()).await.unwrap().unwrap();
    assert_eq!(creator.tier, ticketing::creators::Tier::Premium);
});

app_test!(bad_input_gets_precise_errors, |app| async move {
    let cases = [
        (
            "/api/admin/creators/Bad%20Name/tier",
            json!({ "tier": "pro" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_account",
        ),
        ("/api/admin/creators/alice/tier", json!({ "tier": "gold" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_tier"),
        (
            "/api/admin/creators/alice/tier",
            json!({ "tier": "pro", "until": "tomorrow" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_time",
        ),
        (
            "/api/admin/creators/alice/tier",
            json!({ "tier": "pro", "until": "2020-01-01T00:00:00Z" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "until_in_past",
        ),
        ("/api/admin/creators/alice/tier", json!({ "tier": 5 }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (
            "/api/admin/creators/alice/tier",
            json!({ "tier": "pro", "extra": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (path, body, status, code) in cases {
        let res = app.admin(Method::PUT, path).json(&body).send().await.unwrap();
        assert_eq!(res.status(), status, "{path} {body}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
    }
    let res = app
        .admin(Method::PUT, "/api/admin/creators/alice/tier")
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app.admin(Method::PUT, "/api/admin/creators/alice/tier").body("{}").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
});

/// The rooms' numbers are exported; a configured watcher whose node is unreachable shows in /readyz (without
/// making the gateway unready) and in its metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_and_rooms_are_visible_in_readyz_and_metrics() {
    // A port nothing listens on: bind, learn it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.watchers.hive = Some(
            serde_json::from_value(serde_json::json!({
                "rpc_url": format!("http://127.0.0.1:{port}"),
                "account": "dlux-tickets",
                "poll_interval_ms": 50,
                "request_timeout_ms": 200,
            }))
            .unwrap(),
        );
    })
    .await;
    let mut errors = 0.0;
    for _ in 0..100 {
        let text = app.get("/metrics").await.text().await.unwrap();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        assert!(scrape.samples.iter().any(|s| s.metric == "gateway_rooms_active"), "{text}");
        if let Some(sample) = scrape
            .samples
            .iter()
            .find(|s| s.metric.starts_with("gateway_watcher_rpc_errors") && s.labels.get("chain") == Some("hive"))
        {
            if let prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) = sample.value {
                errors = v;
            }
        }
        if errors > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(errors > 0.0, "the unreachable node's RPC errors are counted");
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["watchers"][0]["chain"], "hive");
}

app_test!(every_error_is_json_and_pages_carry_security_headers, |app| async move {
    // A body over the limit on an endpoint that reads raw bytes: 413 in the JSON error shape.
    let big = vec![b'x'; 3 * 1024 * 1024];
    // Its own connection: the server answers before reading the body and then closes the connection.
    let once = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let res = once
        .post(app.url("/api/events/1/attendees/c/mute"))
        .bearer_auth(common::ADMIN_TOKEN)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "body_too_large");
    // A method a route does not serve: 405, JSON too.
    let res = app.client.delete(app.url("/api/events/1/join")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "method_not_allowed");
    // Every response: nosniff. Our pages: a CSP that refuses foreign scripts and framing.
    assert_eq!(app.get("/healthz").await.headers()["x-content-type-options"], "nosniff");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let pages = common::spawn_app_with(ticketing::Backend::Sqlite, |s| s.web_dir = Some(dir)).await;
    for path in ["/", "/pages/index.html", "/pages/event.html"] {
        let res = pages.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("img-src 'self' https:"), "covers from https hosts show: {csp}");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    }
});

/// A request that is not answered within `server.request_timeout_secs` (here: a quote waiting on a price feed
/// that accepts the connection and never answers) is dropped with 503 `request_timeout` in the JSON error shape,
/// while the rest of the API keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_stalled_upstream_times_out_with_a_json_503() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}/simple/price", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket); // read nothing, answer nothing
        }
    });
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.server.request_timeout_secs = 1;
        s.rates.source = gateway::configuration::RateSourceKind::Coingecko;
        s.rates.url = upstream;
    })
    .await;
    let event_id = app.usd_event_on_sale("Stalled", 10, "HIVE").await;

    let started = std::time::Instant::now();
    let res = app
        .client
        .post(app.url("/api/events/purchase"))
        .json(&json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": "bob" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    // The price feed's own client would have waited 10 s; the request timeout cut it at about 1 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    held.abort();
}

/// Every time in a JSON answer is RFC 3339 UTC with a `Z` and milliseconds (`gateway::http::time`).
fn assert_api_time(value: &Value, what: &str) {
    let text = value.as_str().unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{what}: {text}");
    assert!(text.ends_with('Z') && text.len() == "2026-01-01T00:00:00.000Z".len(), "{what}: {text}");
}

app_test!(json_times_are_rfc3339_utc_with_milliseconds, |app| async move {
    let wallet = "0x8ba1f109551bd432803012645ac136ddd64dba72";
    let privacy: Value =
        app.get(&format!("/api/privacy/challenge?chain=eth&wallet={wallet}")).await.json().await.unwrap();
    assert_api_time(&privacy["expires_at"], "privacy challenge expires_at");
    let login: Value = app.get("/api/creators/login/challenge?account=alice").await.json().await.unwrap();
    assert_api_time(&login["expires_at"], "login challenge expires_at");
    let res = app
        .admin(Method::PUT, "/api/admin/creators/alice/tier")
        .json(&json!({ "tier": "pro", "until": "2031-02-03T04:05:06+02:00" }))
        .send()
        .await
        .unwrap();
    let creator: Value = res.json().await.unwrap();
    assert_api_time(&creator["tier_until"], "tier_until");
    assert_eq!(creator["tier_until"], "2031-02-03T02:05:06.000Z");
});
