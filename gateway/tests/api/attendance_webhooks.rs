//! Creators' webhooks against a local receiver that fails the first attempt: signed bodies, retries with
//! back-off, and `ticket_sold`, `joined`, `left` delivered in order.

use crate::{attendance_support, common};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attendance_support::*;
use axum::http::{HeaderMap, StatusCode};
use reqwest::StatusCode as Status;
use serde_json::{json, Value};

/// One delivery as the receiver saw it: when, the headers, the body.
type Delivery = (Instant, HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
}

async fn receive(
    axum::extract::State(r): axum::extract::State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let mut got = r.got.lock().unwrap();
    got.push((Instant::now(), headers, body.to_vec()));
    // The very first delivery attempt fails.
    if got.len() == 1 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

async fn webhooks_are_signed_and_retried(backend: ticketing::Backend) {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let app = common::spawn_app_with(backend, |s| {
        s.webhooks.initial_backoff_ms = 300;
        s.webhooks.max_backoff_ms = 2000;
    })
    .await;
    let event_id = event(&app.store, 10, 0).await;
    let secret = "creator-webhook-secret-0001";
    let put = |body: Value| {
        app.client.put(app.url("/api/creators/me/webhook")).bearer_auth(creator_token("alice")).json(&body).send()
    };
    assert_eq!(
        put(json!({ "url": "ftp://x", "secret": secret })).await.unwrap().status(),
        Status::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        put(json!({ "url": hook_url, "secret": "short" })).await.unwrap().status(),
        Status::UNPROCESSABLE_ENTITY
    );
    let res = app
        .client
        .put(app.url("/api/creators/me/webhook"))
        .json(&json!({ "url": hook_url, "secret": secret }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), Status::UNAUTHORIZED);
    assert_eq!(put(json!({ "url": hook_url, "secret": secret })).await.unwrap().status(), Status::NO_CONTENT);

    let t = ticket(&app.store, event_id, "hooked-w").await;
    // The sale first (its first attempt fails, the retry succeeds), then a visit.
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.got.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the sale was not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ws = connect(&app.address, event_id, &token(event_id, t, "hooked-w")).await;
    next_of(&mut ws, "welcome").await;
    // A visit that ends with a goodbye (a dropped connection would keep the seat for a resume first).
    ws.close(None).await.unwrap();

    // ticket_sold (500, then retried), joined, left: four requests.
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.got.lock().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "only {} webhook requests arrived", receiver.got.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "no extra deliveries");
    let mut kinds = Vec::new();
    for (_, headers, body) in &got {
        let header = headers["x-dlux-signature"].to_str().unwrap();
        assert_eq!(header, gateway::live::webhooks::signature(secret.as_bytes(), body), "signature over the raw body");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["event_id"], event_id);
        assert_eq!(headers["x-dlux-event"].to_str().unwrap(), v["type"].as_str().unwrap());
        kinds.push((
            v["type"].as_str().unwrap().to_owned(),
            headers["x-dlux-attempt"].to_str().unwrap().to_owned(),
            v["id"].as_str().unwrap().to_owned(),
        ));
    }
    let summary: Vec<(&str, &str)> = kinds.iter().map(|(k, a, _)| (k.as_str(), a.as_str())).collect();
    assert_eq!(summary, vec![("ticket_sold", "1"), ("ticket_sold", "2"), ("joined", "1"), ("left", "1")]);
    assert_eq!(kinds[0].2, kinds[1].2, "a retry carries the same delivery id");
    let waited = got[1].0 - got[0].0;
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_millis(1500), "back-off {waited:?}");
    let sold: Value = serde_json::from_slice(&got[1].2).unwrap();
    assert_eq!(sold["data"]["detail"]["ticket_id"], t);
    let left: Value = serde_json::from_slice(&got[3].2).unwrap();
    assert_eq!(left["data"]["detail"]["reason"], "left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_retried_sqlite() {
    webhooks_are_signed_and_retried(ticketing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_retried_postgres() {
    webhooks_are_signed_and_retried(ticketing::Backend::Postgres).await;
}
