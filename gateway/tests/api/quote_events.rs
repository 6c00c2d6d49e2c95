//! A quote's progress over Server-Sent Events (`GET /api/quotes/{id}/events`): one event per change as a watcher
//! reports the payment (seen, confirming, paid with the ticket), expiry on time, and the stream's end after a
//! terminal status. Both databases.

use crate::{common, creator_support};

use std::time::{Duration, Instant};

use chains::{Amount, Chain, Currency};
use creator_support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use ticketing::purchases::{PaymentReport, PaymentSettings, Purchases};
use ticketing::rates::StaticRates;

/// A published HIVE-priced event on sale now, created through the creators' API.
async fn hive_event(app: &common::TestApp, seats: i64) -> i64 {
    set_tier(app, "alice", "pro", None).await;
    let mut body = event_body(1);
    body["ticket_price"] = json!("10");
    body["ticket_currency"] = json!("HIVE");
    body["supported_crypto"] = json!(["HIVE"]);
    body["max_attendees"] = json!(seats);
    create_event(app, "alice", &body).await["id"].as_i64().unwrap()
}

async fn quote(app: &common::TestApp, event_id: i64, wallet: &str) -> Value {
    let res = app
        .client
        .post(app.url("/api/events/purchase"))
        .json(&json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": wallet }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// What a watcher reports for `quote`: `confirmations` so far, final or not.
fn report(quote: &Value, wallet: &str, confirmations: i64, is_final: bool) -> PaymentReport {
    PaymentReport {
        chain: Chain::Hive,
        txid: format!("tx-{}", quote["quote_id"].as_str().unwrap()),
        output_index: 0,
        quote_id: None,
        memo: quote["memo"].as_str().map(str::to_owned),
        amount: Amount::parse(Currency::Hive, quote["amount"].as_str().unwrap()).unwrap(),
        to_address: quote["payment_address"].as_str().unwrap().to_owned(),
        from_address: Some(wallet.to_owned()),
        block_height: Some(5),
        block_hash: None,
        confirmations,
        is_final,
    }
}

fn watcher(app: &common::TestApp) -> Purchases {
    Purchases::new(
        app.store.clone(),
        std::sync::Arc::new(StaticRates::development()),
        PaymentSettings::new("dlux-tickets"),
        &[0x11; 32],
    )
}

/// Reads `event: quote` frames off a streaming response.
struct QuoteStream {
    response: reqwest::Response,
    buffer: String,
}

impl QuoteStream {
    async fn open(app: &common::TestApp, quote_id: &str) -> QuoteStream {
        let response = app.get(&format!("/api/quotes/{quote_id}/events")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        QuoteStream { response, buffer: String::new() }
    }

    /// The next quote, or None once the server ended the stream.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let event = frame.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim);
                let data: Vec<&str> =
                    frame.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                if event == Some("quote") {
                    return Some(serde_json::from_str(&data.join("\n")).unwrap());
                }
                continue; // keep-alive comments
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s");
            match chunk.unwrap() {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }
}

app_test!(stream_follows_a_payment_to_the_ticket, |app| async move {
    let event_id = hive_event(&app, 3).await;
    let q = quote(&app, event_id, "bob").await;
    let id = q["quote_id"].as_str().unwrap();
    let mut stream = QuoteStream::open(&app, id).await;
    let first = stream.next().await.unwrap();
    assert_eq!(first["status"], "awaiting_payment");
    assert_eq!(first["quote_id"], id);
    assert_eq!(first["ticket"], Value::Null);

    let watcher = watcher(&app);
    let started = Instant::now();
    watcher.report_payment(report(&q, "bob", 0, false), ticketing::now_ms()).await.unwrap();
    let seen = stream.next().await.unwrap();
    assert_eq!(seen["status"], "seen");
    // The poll is every 500 ms: a change shows within about that.
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());

    watcher.report_payment(report(&q, "bob", 1, false), ticketing::now_ms()).await.unwrap();
    let confirming = stream.next().await.unwrap();
    assert_eq!(confirming["status"], "confirming");
    assert_eq!(confirming["confirmations"], 1);
    // Hive needs 1 confirmation and credits irreversible blocks only: counted, but not final yet.
    assert_eq!(confirming["confirmations_required"], 1);
    assert_eq!(confirming["progress"], "waiting for finality");

    watcher.report_payment(report(&q, "bob", 3, true), ticketing::now_ms()).await.unwrap();
    let paid = stream.next().await.unwrap();
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["ticket"]["wallet_address"], "bob");
    assert_eq!(paid["ticket"]["status"], "valid");
    // Terminal: the server ends the stream.
    assert!(stream.next().await.is_none());

    // A paid quote's stream says so once and ends.
    let mut again = QuoteStream::open(&app, id).await;
    assert_eq!(again.next().await.unwrap()["status"], "paid");
    assert!(again.next().await.is_none());
});

app_test!(unchanged_quote_sends_nothing_new_and_unknown_is_404, |app| async move {
    let event_id = hive_event(&app, 3).await;
    let q = quote(&app, event_id, "carol").await;
    let mut stream = QuoteStream::open(&app, q["quote_id"].as_str().unwrap()).await;
    assert_eq!(stream.next().await.unwrap()["status"], "awaiting_payment");
    // No change for two seconds: no event (keep-alives are comments, skipped).
    assert!(tokio::time::timeout(Duration::from_secs(2), stream.next()).await.is_err());

    let res = app.get("/api/quotes/no-such-quote/events").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "quote_not_found");
});

async fn expires_on_time(backend: ticketing::Backend) {
    let app = common::spawn_app_with(backend, |s| s.payments.quote_ttl_secs = 1).await;
    let event_id = hive_event(&app, 1).await;
    let q = quote(&app, event_id, "dave").await;
    let started = Instant::now();
    let mut stream = QuoteStream::open(&app, q["quote_id"].as_str().unwrap()).await;
    assert_eq!(stream.next().await.unwrap()["status"], "awaiting_payment");
    let expired = stream.next().await.unwrap();
    assert_eq!(expired["status"], "expired");
    // Expired by the stream itself, not five seconds later by the sweeper.
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
    assert!(stream.next().await.is_none());
    // The seat went back on sale.
    let event: Value = app.get(&format!("/api/events/{event_id}")).await.json().await.unwrap();
    assert_eq!(event["seats_left"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_quote_expires_on_time_sqlite() {
    expires_on_time(ticketing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_quote_expires_on_time_postgres() {
    expires_on_time(ticketing::Backend::Postgres).await;
}
