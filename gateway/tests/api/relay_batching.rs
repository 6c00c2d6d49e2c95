//! Coalesced writes and `batch` frames (protocol 2) end to end, with real WebSocket clients: frames inside
//! batches arrive in order, a client that does not announce protocol 2 still gets one message per frame, and a
//! slow peer still loses only unguaranteed frames — on both databases.

use crate::{attendance_support, common};

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use attendance_support::{next_of, send, token, Ws};

async fn app(
    backend: ticketing::Backend,
    configure: impl FnOnce(&mut gateway::configuration::Settings),
) -> common::TestApp {
    common::spawn_app_with(backend, |s| {
        s.signaling.messages_per_second = 100_000;
        s.signaling.burst = 100_000;
        configure(s);
    })
    .await
}

/// A ticket holder's connection; `protocol` is what it announces (`None`: nothing, as older adapters).
async fn join(app: &common::TestApp, event_id: i64, wallet: &str, protocol: Option<u32>) -> Ws {
    let ticket = attendance_support::ticket(&app.store, event_id, wallet).await;
    let mut url = format!(
        "{}/event/{event_id}?token={}",
        app.address.replacen("http://", "ws://", 1),
        token(event_id, ticket, wallet)
    );
    if let Some(v) = protocol {
        url += &format!("&protocol={v}");
    }
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    next_of(&mut ws, "welcome").await;
    ws
}

/// Reads frames until `done` says enough; returns each WebSocket frame's messages (a `batch` unpacked).
async fn read_until(ws: &mut Ws, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Vec<Value>> {
    let mut frames = Vec::new();
    let mut all = Vec::new();
    while !done(&all) {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("frames in time")
            .expect("open")
            .unwrap();
        let Message::Text(text) = msg else {
            assert!(!matches!(msg, Message::Close(_)), "closed: {msg:?}");
            continue;
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        let messages = if v["type"] == "batch" {
            let inner = v["frames"].as_array().expect("a batch has frames").clone();
            assert!(inner.len() >= 2, "a batch holds two or more frames: {v}");
            assert!(inner.iter().all(|f| f["type"] != "batch"), "no batch in a batch: {v}");
            inner
        } else {
            vec![v]
        };
        all.extend(messages.iter().cloned());
        frames.push(messages);
    }
    frames
}

fn seqs(frames: &[Vec<Value>], data_type: &str) -> Vec<u64> {
    frames
        .iter()
        .flatten()
        .filter(|m| m["type"] == "broadcast" && m["data_type"] == data_type)
        .map(|m| m["data"]["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_in_a_batch_arrive_in_order_sqlite() {
    batches_in_order(ticketing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_in_a_batch_arrive_in_order_postgres() {
    batches_in_order(ticketing::Backend::Postgres).await;
}

async fn batches_in_order(backend: ticketing::Backend) {
    // A long interval, so everything a talker sends in a burst is owed at one tick.
    let app = app(backend, |s| s.signaling.flush_interval_ms = 40).await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let mut batched = join(&app, event_id, "new-w", Some(2)).await;
    let mut single = join(&app, event_id, "old-w", None).await;
    let mut talker = join(&app, event_id, "talk-w", Some(2)).await;
    let mut other = join(&app, event_id, "other-w", Some(2)).await;
    // Two senders interleaved, both classes: per-sender order must hold inside and across batches.
    for seq in 0..200u64 {
        let guaranteed = seq % 3 == 0;
        send(
            &mut talker,
            json!({ "type": "broadcast", "data_type": "t", "data": { "seq": seq }, "guaranteed": guaranteed }),
        )
        .await;
        send(
            &mut other,
            json!({ "type": "broadcast", "data_type": "o", "data": { "seq": seq }, "guaranteed": !guaranteed }),
        )
        .await;
    }
    let got_all = |all: &[Value]| all.iter().filter(|m| m["type"] == "broadcast").count() == 400;
    let frames = read_until(&mut batched, got_all).await;
    assert_eq!(seqs(&frames, "t"), (0..200).collect::<Vec<_>>());
    assert_eq!(seqs(&frames, "o"), (0..200).collect::<Vec<_>>());
    let relayed: Vec<_> = frames.iter().filter(|f| f.iter().any(|m| m["type"] == "broadcast")).collect();
    assert!(relayed.len() < 100, "400 messages came in {} frames: not batched", relayed.len());
    // `from` is stamped inside a batch as anywhere else.
    let talker_id = frames.iter().flatten().find(|m| m["data_type"] == "t").unwrap()["from"].clone();
    assert!(frames.iter().flatten().filter(|m| m["data_type"] == "t").all(|m| m["from"] == talker_id));

    // The client that announced nothing got the same messages, one per frame.
    let frames = read_until(&mut single, got_all).await;
    assert!(frames.iter().all(|f| f.len() == 1), "protocol 1 never gets a batch");
    assert_eq!(seqs(&frames, "t"), (0..200).collect::<Vec<_>>());
    assert_eq!(seqs(&frames, "o"), (0..200).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_batched_peer_loses_only_unguaranteed_frames_sqlite() {
    slow_batched_peer(ticketing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_batched_peer_loses_only_unguaranteed_frames_postgres() {
    slow_batched_peer(ticketing::Backend::Postgres).await;
}

async fn slow_batched_peer(backend: ticketing::Backend) {
    let app = app(backend, |s| {
        s.signaling.flush_interval_ms = 5;
        s.signaling.unguaranteed_queue = 16;
        s.signaling.guaranteed_queue = 1024;
    })
    .await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let mut slow = join(&app, event_id, "slow-w", Some(2)).await;
    let mut talker = join(&app, event_id, "talk-w", Some(2)).await;
    // The slow peer reads nothing while ~18 MB of unguaranteed updates and 100 small guaranteed frames go by:
    // its socket fills, then its queue, and the server must drop updates, never the guaranteed frames.
    let blob = "x".repeat(30_000);
    for seq in 0..600u64 {
        send(
            &mut talker,
            json!({ "type": "broadcast", "data_type": "u", "data": { "seq": seq, "blob": blob }, "guaranteed": false }),
        )
        .await;
        if seq % 6 == 5 {
            send(
                &mut talker,
                json!({ "type": "broadcast", "data_type": "r", "data": { "seq": seq / 6 }, "guaranteed": true }),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let frames = read_until(&mut slow, |all| all.iter().any(|m| m["data_type"] == "r" && m["data"]["seq"] == 99)).await;
    assert_eq!(seqs(&frames, "r"), (0..100).collect::<Vec<_>>(), "every guaranteed frame, in order");
    let updates = seqs(&frames, "u");
    assert!(updates.len() < 600, "the slow peer's updates were dropped ({} of 600 arrived)", updates.len());
    assert!(updates.windows(2).all(|w| w[0] < w[1]), "what arrived kept its order");
    // Still seated: a ping is answered.
    send(&mut slow, json!({ "type": "ping", "client_time": 1 })).await;
    next_of(&mut slow, "pong").await;
    let stats = app.state.hub.stats().snapshot();
    assert!(stats.unguaranteed_dropped > 0, "{stats:?}");
}
