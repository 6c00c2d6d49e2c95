//! The presence WebSocket end to end with real clients: admission and every close code, relay and `from`
//! stamping, room isolation, supersede, slow consumers, moderation and restart recovery — on both databases.

use crate::{attendance_support, common};

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use ticketing::testing::RawSql;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use attendance_support::{next_of, send, token, Ws, MIN};

/// An event with `seats`, starting `starts_in` ms from now, lasting two hours.
async fn event(app: &common::TestApp, seats: i64, starts_in: i64) -> i64 {
    attendance_support::event(&app.store, seats, starts_in).await
}

/// A paid ticket for `wallet`, issued through the real money path.
async fn ticket(app: &common::TestApp, event_id: i64, wallet: &str) -> i64 {
    attendance_support::ticket(&app.store, event_id, wallet).await
}

fn ws_url(app: &common::TestApp, path: &str) -> String {
    app.url(path).replacen("http://", "ws://", 1)
}

async fn connect(app: &common::TestApp, event_id: i64, token: &str) -> Ws {
    attendance_support::connect(&app.address, event_id, token).await
}

/// Reads until the close frame and returns its code and reason.
async fn closed_with(ws: &mut Ws) -> (u16, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(8), ws.next()).await.expect("close in time") {
            Some(Ok(Message::Close(Some(frame)))) => return (u16::from(frame.code), frame.reason.to_string()),
            Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error before close: {e}"),
        }
    }
}

app_test!(relay_stamps_from_and_isolates_rooms, |app| async move {
    let (a_event, b_event) = (event(&app, 10, 0).await, event(&app, 10, 0).await);
    let (t1, t2, t3) = (
        ticket(&app, a_event, "alice-w").await,
        ticket(&app, a_event, "bob-w").await,
        ticket(&app, b_event, "carol-w").await,
    );
    let mut alice = connect(&app, a_event, &token(a_event, t1, "alice-w")).await;
    let welcome = next_of(&mut alice, "welcome").await;
    let alice_id = welcome["client_id"].as_str().unwrap().to_owned();
    assert!(welcome["server_time"].as_i64().is_some());
    let mut bob = connect(&app, a_event, &token(a_event, t2, "bob-w")).await;
    let bob_id = next_of(&mut bob, "welcome").await["client_id"].as_str().unwrap().to_owned();
    let mut carol = connect(&app, b_event, &token(b_event, t3, "carol-w")).await;
    next_of(&mut carol, "welcome").await;
    assert_eq!(next_of(&mut alice, "peer_joined").await["client_id"], bob_id.as_str());

    // Alice pretends to be Bob; the server stamps her own id.
    send(
        &mut alice,
        json!({ "type": "broadcast", "from": bob_id, "data_type": "um", "data": { "d": [1] }, "guaranteed": false }),
    )
    .await;
    let got = next_of(&mut bob, "broadcast").await;
    assert_eq!(got["from"], alice_id.as_str());
    assert_eq!(got["data"], json!({ "d": [1] }));
    // A peer of another room cannot be reached.
    let carol_id = {
        send(&mut carol, json!({ "type": "ping", "client_time": 1 })).await;
        next_of(&mut carol, "pong").await;
        "unknown"
    };
    let _ = carol_id;
    send(&mut alice, json!({ "type": "send", "to": "c-not-here", "data_type": "u", "data": {}, "guaranteed": true }))
        .await;
    assert_eq!(next_of(&mut alice, "error").await["code"], "not_in_room");
    send(&mut bob, json!({ "type": "ping", "client_time": 5 })).await;
    assert_eq!(next_of(&mut bob, "pong").await["client_time"].as_f64(), Some(5.0));
    // Carol saw nothing of room A.
    send(&mut carol, json!({ "type": "ping", "client_time": 2 })).await;
    let mut seen = Vec::new();
    loop {
        let v: Value = match tokio::time::timeout(Duration::from_secs(2), carol.next()).await.unwrap().unwrap().unwrap()
        {
            Message::Text(t) => serde_json::from_str(&t).unwrap(),
            _ => continue,
        };
        if v["type"] == "pong" {
            break;
        }
        seen.push(v);
    }
    assert!(seen.iter().all(|v| v["type"] != "broadcast" && v["type"] != "peer_joined"), "{seen:?}");
});

app_test!(every_admission_close_code, |app| async move {
    let live = event(&app, 1, 0).await;
    let later = event(&app, 5, 24 * 60 * MIN).await;
    let t_live = ticket(&app, live, "wone").await;
    let t_later = ticket(&app, later, "wtwo").await;
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("/event/{live}?token=garbage"), 4401, "malformed"),
        (format!("/event/{live}?token={}", token(later, t_later, "wtwo")), 4401, "another event"),
        (format!("/event/{live}?token={}", token(live, t_later, "wtwo")), 4403, "no valid ticket"),
        (format!("/event/{later}?token={}", token(later, t_later, "wtwo")), 4410, "opens at"),
        ("/event/abc?token=x".to_owned(), 4400, ""),
    ];
    for (path, code, reason) in cases {
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&app, &path)).await.unwrap();
        let (got, text) = closed_with(&mut ws).await;
        assert_eq!(got, code, "{path}: {text}");
        assert!(text.contains(reason), "{path}: {text}");
    }
    // A session token is single-use.
    let once = token(live, t_live, "wone");
    let mut first = connect(&app, live, &once).await;
    next_of(&mut first, "welcome").await;
    let mut again = connect(&app, live, &once).await;
    assert_eq!(closed_with(&mut again).await.0, 4401);
    // The room holds one attendee: a second ticket holder gets 4409; the first one reconnecting supersedes.
    let t_other = ticket_room_full_case(&app, live).await;
    let mut full = connect(&app, live, &token(live, t_other, "wthree")).await;
    assert_eq!(closed_with(&mut full).await.0, 4409);
    let mut reconnect = connect(&app, live, &token(live, t_live, "wone")).await;
    next_of(&mut reconnect, "welcome").await;
    assert_eq!(closed_with(&mut first).await.0, 4000);
    // No credentials at all: 4401 after the auth timeout; a bad first frame: 4400.
    let (mut silent, _) = tokio_tungstenite::connect_async(ws_url(&app, &format!("/event/{live}"))).await.unwrap();
    assert_eq!(closed_with(&mut silent).await.0, 4401);
    let (mut bad, _) = tokio_tungstenite::connect_async(ws_url(&app, &format!("/event/{live}"))).await.unwrap();
    bad.send(Message::Text("{\"type\":\"hello\"}".into())).await.unwrap();
    assert_eq!(closed_with(&mut bad).await.0, 4400);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_ws_rejections_total{code=\"4409\"}"), "{metrics}");
});

/// A ticket for the full single-seat room: sold before the room filled (capacity 1 room, a second ticket
/// needs a second seat, so it is issued for a twin event and moved — the store allows any ticket row).
async fn ticket_room_full_case(app: &common::TestApp, live: i64) -> i64 {
    sqlx::query("UPDATE events SET max_attendees = 2 WHERE id = $1")
        .bind(live)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    let t = ticket(app, live, "wthree").await;
    sqlx::query("UPDATE events SET max_attendees = 1, tickets_sold = 1 WHERE id = $1")
        .bind(live)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    t
}

app_test!(kick_ban_mute_by_the_host, |app| async move {
    let event_id = event(&app, 10, 0).await;
    let (t1, t2) = (ticket(&app, event_id, "alice-w").await, ticket(&app, event_id, "bob-w").await);
    let mut alice = connect(&app, event_id, &token(event_id, t1, "alice-w")).await;
    next_of(&mut alice, "welcome").await;
    let mut bob = connect(&app, event_id, &token(event_id, t2, "bob-w")).await;
    let bob_id = next_of(&mut bob, "welcome").await["client_id"].as_str().unwrap().to_owned();
    let base = format!("/api/events/{event_id}/attendees/{bob_id}");
    // Without credentials: refused.
    let res = app.client.post(app.url(&format!("{base}/mute"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app.admin(Method::POST, &format!("{base}/mute")).json(&json!({ "muted": true })).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let muted = next_of(&mut alice, "muted").await;
    assert_eq!((muted["client_id"].as_str(), muted["muted"].as_bool()), (Some(bob_id.as_str()), Some(true)));
    // Bob's microphone stays refused while muted.
    send(&mut bob, json!({ "type": "media", "mic": true })).await;
    assert_eq!(next_of(&mut bob, "error").await["code"], "muted");
    // Kick: closed with 4001, may rejoin.
    let res = app.admin(Method::POST, &format!("{base}/kick")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(closed_with(&mut bob).await.0, 4001);
    let mut bob = connect(&app, event_id, &token(event_id, t2, "bob-w")).await;
    let bob_id = next_of(&mut bob, "welcome").await["client_id"].as_str().unwrap().to_owned();
    // Ban: closed with 4003, the ticket is invalid for good, audited.
    let res = app.admin(Method::POST, &format!("/api/events/{event_id}/attendees/{bob_id}/ban")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(closed_with(&mut bob).await.0, 4003);
    let mut again = connect(&app, event_id, &token(event_id, t2, "bob-w")).await;
    let (code, reason) = closed_with(&mut again).await;
    assert_eq!((code, reason.as_str()), (4403, "ticket banned"));
    assert_eq!(app.store.audit_entries(Some("ticket.banned"), 5).await.unwrap().len(), 1);
    let res = app.admin(Method::POST, &format!("/api/events/{event_id}/attendees/c-none/kick")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_and_others_are_unaffected_sqlite() {
    slow_consumer(ticketing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_and_others_are_unaffected_postgres() {
    slow_consumer(ticketing::Backend::Postgres).await;
}

async fn slow_consumer(backend: ticketing::Backend) {
    let app = common::spawn_app_with(backend, |s| {
        s.signaling.guaranteed_queue = 64;
        s.signaling.unguaranteed_queue = 64;
        s.signaling.messages_per_second = 100_000;
        s.signaling.burst = 100_000;
    })
    .await;
    let event_id = event(&app, 10, 0).await;
    let (t1, t2, t3) = (
        ticket(&app, event_id, "fast-w").await,
        ticket(&app, event_id, "slow-w").await,
        ticket(&app, event_id, "talk-w").await,
    );
    let mut fast = connect(&app, event_id, &token(event_id, t1, "fast-w")).await;
    next_of(&mut fast, "welcome").await;
    let mut slow = connect(&app, event_id, &token(event_id, t2, "slow-w")).await;
    next_of(&mut slow, "welcome").await;
    let mut talker = connect(&app, event_id, &token(event_id, t3, "talk-w")).await;
    next_of(&mut talker, "welcome").await;
    // The slow peer stops reading; the talker sends guaranteed frames large enough to fill the socket buffers.
    let blob = "x".repeat(30_000);
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < 400 {
            match tokio::time::timeout(Duration::from_secs(10), fast.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.contains("\"broadcast\"") => got += 1,
                Ok(Some(Ok(_))) => {}
                other => panic!("fast peer stalled after {got}: {other:?}"),
            }
        }
        got
    });
    // Paced at ~15 MB/s: a reading peer keeps up, a peer that reads nothing fills its socket and its queue.
    for i in 0..400 {
        send(
            &mut talker,
            json!({ "type": "broadcast", "data_type": "r", "data": { "i": i, "blob": blob }, "guaranteed": true }),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(reader.await.unwrap(), 400, "the fast peer got every guaranteed frame");
    // The slow one was closed as a slow consumer and its session ended so.
    common::eventually("the slow peer's session ends", Duration::from_secs(10), || async {
        let sessions = app.store.attendance_sessions(event_id).await.unwrap();
        sessions.iter().any(|s| s.ticket_id == Some(t2) && s.end_reason.is_some())
    })
    .await;
    let sessions = app.store.attendance_sessions(event_id).await.unwrap();
    let slow_row = sessions.iter().find(|s| s.ticket_id == Some(t2)).unwrap();
    assert_eq!(slow_row.end_reason.as_deref(), Some("slow_consumer"), "{sessions:?}");
    drop(slow);
}

app_test!(restart_closes_interrupted_sessions, |app| async move {
    let event_id = event(&app, 10, 0).await;
    let t = ticket(&app, event_id, "wone").await;
    let mut ws = connect(&app, event_id, &token(event_id, t, "wone")).await;
    next_of(&mut ws, "welcome").await;
    // The recorder's next flush writes the open session.
    common::eventually("the open session is written", Duration::from_secs(10), || async {
        !app.store.attendance_sessions(event_id).await.unwrap().is_empty()
    })
    .await;
    let open = app.store.attendance_sessions(event_id).await.unwrap();
    assert_eq!(open.len(), 1);
    assert!(open[0].left_at.is_none());
    // The node dies without a goodbye; the next start of the same node closes the row as interrupted.
    let closed = app.store.close_interrupted_sessions("node-1", ticketing::now_ms()).await.unwrap();
    assert_eq!(closed, 1);
    let rows = app.store.attendance_sessions(event_id).await.unwrap();
    assert_eq!(rows[0].end_reason.as_deref(), Some("interrupted"));
    let ticket_row =
        sqlx::query_as::<_, (i64, Option<i64>)>("SELECT access_count, first_access_at FROM tickets WHERE id = $1")
            .bind(t)
            .fetch_one(app.store.raw_pool())
            .await
            .unwrap();
    assert_eq!(ticket_row.0, 1);
    assert!(ticket_row.1.is_some());
});

app_test!(shutdown_closes_rooms_with_1001_and_flushes, |app| async move {
    let event_id = event(&app, 10, 0).await;
    let t = ticket(&app, event_id, "wone").await;
    let mut ws = connect(&app, event_id, &token(event_id, t, "wone")).await;
    next_of(&mut ws, "welcome").await;
    send(&mut ws, json!({ "type": "chat", "text": "bye" })).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.shutdown.cancel();
    let (code, _) = closed_with(&mut ws).await;
    assert_eq!(code, u16::from(CloseCode::Away));
    for _ in 0..200 {
        if app.server.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(app.server.is_finished(), "the server stopped after draining");
    // The chat counted before the stop was flushed by the graceful shutdown, and the session closed.
    let store = ticketing::Store::connect(&app.db_url(), 2).await.unwrap();
    let rows = store.attendance_sessions(event_id).await.unwrap();
    assert_eq!((rows[0].chat_messages, rows[0].end_reason.as_deref()), (1, Some("shutdown")));
});

fn host_token(event_id: i64) -> String {
    gateway::auth::session_token::issue(
        &attendance_support::SECRET,
        event_id,
        None,
        Some("alice".into()),
        "alice".into(),
        ticketing::now_ms() + MIN,
    )
    .0
}

/// Polls the ticket's status until it is `want` (the ban runs off the host's connection task).
async fn ticket_status_becomes(app: &common::TestApp, ticket_id: i64, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM tickets WHERE id = $1")
            .bind(ticket_id)
            .fetch_one(app.store.raw_pool())
            .await
            .unwrap();
        if status == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "ticket {ticket_id} is {status}, not {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

app_test!(a_hosts_ban_over_the_socket_is_saved_like_the_http_ban, |app| async move {
    let event_id = event(&app, 10, 0).await;
    let bob_ticket = ticket(&app, event_id, "bob-w").await;
    let mut host = connect(&app, event_id, &host_token(event_id)).await;
    next_of(&mut host, "welcome").await;
    let mut bob = connect(&app, event_id, &token(event_id, bob_ticket, "bob-w")).await;
    let bob_id = next_of(&mut bob, "welcome").await["client_id"].as_str().unwrap().to_owned();
    send(&mut host, json!({ "type": "ban", "target": bob_id })).await;
    assert_eq!(closed_with(&mut bob).await.0, 4003);
    // The ticket is banned in the store, audited with the host as actor: no node seats it again, after a
    // restart either, and the join endpoint's admission check refuses it.
    ticket_status_becomes(&app, bob_ticket, "banned").await;
    let audits = app.store.audit_entries(Some("ticket.banned"), 5).await.unwrap();
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0].actor, "alice");
    let refusal = app.store.check_ticket_admission(event_id, bob_ticket, ticketing::now_ms(), 15 * MIN).await.unwrap();
    assert!(refusal.is_err(), "a banned ticket is not admitted: {refusal:?}");
    let mut again = connect(&app, event_id, &token(event_id, bob_ticket, "bob-w")).await;
    assert_eq!(closed_with(&mut again).await, (4403, "ticket banned".to_owned()));
});

app_test!(a_client_close_is_answered_with_its_code, |app| async move {
    let event_id = event(&app, 10, 0).await;
    let t = ticket(&app, event_id, "closer-w").await;
    let mut ws = connect(&app, event_id, &token(event_id, t, "closer-w")).await;
    next_of(&mut ws, "welcome").await;
    ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    // The server's answering close frame echoes 1000; without it the client sees the TCP connection drop (1006).
    assert_eq!(closed_with(&mut ws).await.0, 1000);
});

app_test!(protocol_violations_get_the_rfc_close_codes, |app| async move {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let event_id = event(&app, 10, 0).await;
    let seated = |wallet: &'static str| {
        let app = &app;
        async move {
            let t = ticket(app, event_id, wallet).await;
            let mut ws = connect(app, event_id, &token(event_id, t, wallet)).await;
            next_of(&mut ws, "welcome").await;
            ws
        }
    };
    // A text frame that is not UTF-8: 1007.
    let mut ws = seated("utf8-w").await;
    ws.send(Message::Frame(Frame::message(vec![0x7b, 0xff, 0xfe, 0x7d], OpCode::Data(Data::Text), true)))
        .await
        .unwrap();
    assert_eq!(closed_with(&mut ws).await.0, 1007);
    // A reserved bit set without an extension that defines it: 1002.
    let mut ws = seated("rsv-w").await;
    let mut frame = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
    frame.header_mut().rsv2 = true;
    ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(closed_with(&mut ws).await.0, 1002);
    // A frame past the transport's limit: 1009.
    let mut ws = seated("big-w").await;
    let big = "x".repeat(300 * 1024);
    ws.send(Message::Text(big.into())).await.unwrap();
    assert_eq!(closed_with(&mut ws).await.0, 1009);
});

app_test!(cancelling_a_live_event_closes_its_room, |app| async move {
    let event_id = event(&app, 10, 0).await;
    let t = ticket(&app, event_id, "in-room-w").await;
    let mut ws = connect(&app, event_id, &token(event_id, t, "in-room-w")).await;
    next_of(&mut ws, "welcome").await;
    let res = app.admin(Method::POST, &format!("/api/events/{event_id}/cancel")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    assert_eq!(closed_with(&mut ws).await, (4410, "event cancelled".to_owned()));
    assert_eq!(app.state.hub.occupants(event_id).len(), 0);
});
