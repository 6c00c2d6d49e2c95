//! Helpers shared by the attendance tests: events and tickets seeded through the real money path, room
//! clients, and a reader for the SSE feed.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chains::{Amount, Chain, Currency};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use ticketing::creators::{AccountName, Tier};
use ticketing::purchases::{PaymentOutcome, PaymentReport, PaymentSettings, Purchases, QuoteRequest};
use ticketing::rates::StaticRates;
use ticketing::testing::SeedEvent;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The tests' server secret (`"11" * 32` in `common::test_settings`).
pub const SECRET: [u8; 32] = [0x11; 32];
pub const MIN: i64 = 60_000;

/// An event of creator `alice` with `seats`, starting `starts_in` ms from now, lasting two hours.
pub async fn event(store: &ticketing::Store, seats: i64, starts_in: i64) -> i64 {
    store.set_tier(&AccountName::parse("alice").unwrap(), Tier::Pro, None, "test").await.unwrap();
    let now = ticketing::now_ms();
    SeedEvent::new(now - MIN)
        .title("Room")
        .price("1000", "HIVE")
        .accepts("HIVE")
        .capacity(seats)
        .starts(now + starts_in)
        .ends(now + starts_in + 120 * MIN)
        .sales(now - MIN, Some(now + starts_in + 120 * MIN))
        .insert(store)
        .await
}

/// A ticket for `wallet` (Hive), paid 1 HIVE through the real purchase path.
pub async fn ticket(store: &ticketing::Store, event_id: i64, wallet: &str) -> i64 {
    let p = Purchases::new(
        store.clone(),
        Arc::new(StaticRates::development()),
        PaymentSettings::new("dlux-tickets"),
        &SECRET,
    );
    let now = ticketing::now_ms();
    let quote = p
        .create_quote(QuoteRequest { event_id, currency: Currency::Hive, wallet_address: wallet.into() }, now)
        .await
        .unwrap();
    let report = PaymentReport {
        chain: Chain::Hive,
        txid: format!("tx-{}", quote.id),
        output_index: 0,
        quote_id: Some(quote.id.clone()),
        memo: None,
        amount: Amount::new(Currency::Hive, 1000),
        to_address: "dlux-tickets".into(),
        from_address: None,
        block_height: Some(1),
        block_hash: None,
        confirmations: 1,
        is_final: true,
    };
    match p.report_payment(report, now).await.unwrap() {
        PaymentOutcome::TicketIssued { ticket_id } => ticket_id,
        other => panic!("{other:?}"),
    }
}

pub fn token(event_id: i64, ticket_id: i64, wallet: &str) -> String {
    gateway::auth::session_token::issue(
        &SECRET,
        event_id,
        Some(ticket_id),
        None,
        wallet.into(),
        ticketing::now_ms() + MIN,
    )
    .0
}

/// A creator session token for `account`.
pub fn creator_token(account: &str) -> String {
    gateway::auth::creator::issue_session(&SECRET, &AccountName::parse(account).unwrap(), ticketing::now_ms()).0
}

pub async fn connect(base: &str, event_id: i64, token: &str) -> Ws {
    let url = format!("{}/event/{event_id}?token={token}", base.replacen("http://", "ws://", 1));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Next JSON frame of `kind`, skipping others; panics on close or timeout.
pub async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("frame in time")
            .expect("open")
            .unwrap();
        if let Message::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] == kind {
                return v;
            }
        } else if let Message::Close(frame) = msg {
            panic!("closed while waiting for {kind}: {frame:?}");
        }
    }
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// One SSE event as received: its `event:` name, its JSON data, and when it arrived (unix ms).
#[derive(Debug, Clone)]
pub struct Received {
    pub name: String,
    pub data: Value,
    pub received_at: i64,
}

/// Subscribes to `/api/events/{id}/attendees/stream` and forwards each event, parsed, in order.
pub async fn sse(client: &reqwest::Client, url: String, bearer: &str) -> mpsc::UnboundedReceiver<Received> {
    let mut res = client.get(url).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = res.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let (mut name, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                if tx.send(Received { name, data, received_at: ticketing::now_ms() }).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Waits until `check` holds for the event's attendance rows (polling the store), or panics with the rows.
pub async fn rows_until(
    store: &ticketing::Store,
    event_id: i64,
    check: impl Fn(&[ticketing::attendance::AttendanceRow]) -> bool,
) -> Vec<ticketing::attendance::AttendanceRow> {
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = store.attendance_sessions(event_id).await.unwrap();
        if check(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("attendance rows never matched: {rows:#?}");
}
