//! Resume after a drop and the rooms' persistent entities, end to end with real WebSocket clients (issue 26):
//! a peer's TCP connection is cut in a small proxy (as a lost Wi-Fi does: no close frame either way) and the
//! client reconnects with its resume token; late joiners get the room's persistent entities, after a restart
//! too. On both databases.

use crate::{attendance_support, common};

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use ticketing::testing::RawSql;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use attendance_support::{send, token, Ws};

/// A TCP proxy in front of the gateway; `cut` drops every connection through it at once, without a close
/// frame either way.
struct Proxy {
    address: String,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                let upstream = upstream.clone();
                pipes.spawn(async move {
                    let mut outbound = TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Proxy { address, task }
    }

    /// Drops the proxy's sockets (the accept loop and the pipes with it): both ends see the TCP connection go.
    fn cut(self) {
        self.task.abort();
    }
}

/// A room client that counts the frames it read, as the adapter does (every frame but `feed`).
struct Client {
    ws: Ws,
    received: u64,
    id: String,
    resume_token: String,
    /// Every frame sent in the session, as the adapter keeps them, to send again what a drop lost.
    sent: Vec<Value>,
}

impl Client {
    async fn connect(base: &str, event_id: i64, query: &str) -> Client {
        let url = format!("{}/event/{event_id}?{query}", base.replacen("http://", "ws://", 1));
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client { ws, received: 0, id: String::new(), resume_token: String::new(), sent: Vec::new() }
    }

    async fn join(base: &str, event_id: i64, session_token: &str) -> Client {
        let mut client = Client::connect(base, event_id, &format!("token={session_token}")).await;
        let welcome = client.next_of("welcome").await;
        client.id = welcome["client_id"].as_str().unwrap().to_owned();
        client.resume_token = welcome["resume_token"].as_str().expect("welcome carries a resume token").to_owned();
        client
    }

    /// Reconnects the session: `resumed` must be the first frame.
    async fn resume(&self, base: &str, event_id: i64) -> (Client, Value) {
        let query = format!("resume={}&received={}", self.resume_token, self.received);
        let mut next = Client::connect(base, event_id, &query).await;
        next.received = self.received;
        let resumed = next.next().await.expect("a frame, not a close");
        assert_eq!(resumed["type"], "resumed", "{resumed}");
        next.id = resumed["client_id"].as_str().unwrap().to_owned();
        next.resume_token = resumed["resume_token"].as_str().unwrap().to_owned();
        // The server applied `received` of our frames: what came after goes again, once.
        let applied = usize::try_from(resumed["received"].as_u64().unwrap()).unwrap();
        assert!(applied <= self.sent.len(), "the server applied more than was sent: {resumed}");
        next.sent = self.sent[..applied].to_vec();
        for frame in self.sent[applied..].iter().cloned() {
            next.send(frame).await;
        }
        (next, resumed)
    }

    /// The next JSON frame; `Err` with the close code when the connection closes instead.
    async fn next(&mut self) -> Result<Value, u16> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(8), self.ws.next()).await.expect("a frame in time");
            match msg {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    if v["type"] != "feed" {
                        self.received += 1;
                    }
                    return Ok(v);
                }
                Some(Ok(Message::Close(frame))) => return Err(frame.map_or(1005, |f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(1006),
            }
        }
    }

    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next().await.unwrap_or_else(|code| panic!("closed with {code} while waiting for {kind}"));
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Frames until (and with) the first of `kind`.
    async fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let v = self
                .next()
                .await
                .unwrap_or_else(|code| panic!("closed with {code} while waiting for {kind}: {seen:?}"));
            let done = v["type"] == kind;
            seen.push(v);
            if done {
                return seen;
            }
        }
    }

    async fn closed_with(&mut self) -> u16 {
        loop {
            if let Err(code) = self.next().await {
                return code;
            }
        }
    }

    async fn send(&mut self, v: Value) {
        send(&mut self.ws, v.clone()).await;
        self.sent.push(v);
    }
}

fn chats(frames: &[Value]) -> Vec<&str> {
    frames.iter().filter(|f| f["type"] == "chat").map(|f| f["text"].as_str().unwrap()).collect()
}

app_test!(a_cut_connection_resumes_with_the_same_id_and_misses_nothing, |app| async move {
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let (ta, tb) = (
        attendance_support::ticket(&app.store, event_id, "alice-w").await,
        attendance_support::ticket(&app.store, event_id, "bob-w").await,
    );
    let proxy = Proxy::start(&app.address).await;
    let mut alice = Client::join(&proxy.address, event_id, &token(event_id, ta, "alice-w")).await;
    let mut bob = Client::join(&app.address, event_id, &token(event_id, tb, "bob-w")).await;
    alice.next_of("peer_joined").await;
    // "one" is written towards alice but she never reads it: lost in flight when the network goes.
    bob.send(json!({ "type": "chat", "text": "one" })).await;
    assert_eq!(bob.next_of("chat").await["text"], "one");

    // The network goes: no close frame either way. The server notices and tells bob.
    let cut_at = Instant::now();
    proxy.cut();
    let reconnecting = bob.next_of("peer_reconnecting").await;
    assert_eq!(reconnecting["client_id"], alice.id.as_str());
    // Meanwhile bob talks: guaranteed frames wait for alice, in order.
    bob.send(json!({ "type": "chat", "text": "two" })).await;
    bob.send(json!({ "type": "broadcast", "data_type": "r", "data": { "networkId": "n1" }, "guaranteed": true })).await;
    bob.send(json!({ "type": "chat", "text": "three" })).await;
    // His own echo of "three": everything above is queued for alice by now.
    while bob.next_of("chat").await["text"] != "three" {}

    let old_id = alice.id.clone();
    let (mut alice, resumed) = alice.resume(&app.address, event_id).await;
    let resumed_ms = cut_at.elapsed().as_millis();
    assert_eq!(alice.id, old_id, "same client id");
    assert_eq!(resumed["replayed"], 4);
    let missed = [
        alice.next().await.unwrap(),
        alice.next().await.unwrap(),
        alice.next().await.unwrap(),
        alice.next().await.unwrap(),
    ];
    assert_eq!(
        missed.iter().map(|f| f["type"].as_str().unwrap()).collect::<Vec<_>>(),
        ["chat", "chat", "broadcast", "chat"],
        "{missed:?}"
    );
    assert_eq!(chats(&missed), ["one", "two", "three"]);
    assert_eq!(missed[2]["from"], bob.id.as_str());
    // Then live traffic, both ways, on the same id; each frame once.
    bob.send(json!({ "type": "chat", "text": "four" })).await;
    let live = alice.until("chat").await;
    let live_ms = cut_at.elapsed().as_millis();
    assert_eq!(chats(&live), ["four"], "nothing replayed twice: {live:?}");
    alice.send(json!({ "type": "chat", "text": "back" })).await;
    let mut seen = Vec::new();
    loop {
        let frame = bob.next().await.unwrap();
        let done = frame["type"] == "chat" && frame["text"] == "back";
        seen.push(frame);
        if done {
            break;
        }
    }
    assert_eq!(seen.last().unwrap()["from"], old_id.as_str());
    // Bob saw alice reconnecting and back, never a leave or a join.
    assert!(seen.iter().any(|f| f["type"] == "peer_resumed" && f["client_id"] == old_id.as_str()), "{seen:?}");
    assert!(seen.iter().all(|f| f["type"] != "peer_left" && f["type"] != "peer_joined"), "{seen:?}");
    // Attendance: one session for alice, still open.
    let rows = attendance_support::rows_until(&app.store, event_id, |rows| rows.len() == 2).await;
    let alice_row = rows.iter().find(|r| r.ticket_id == Some(ta)).unwrap();
    assert!(alice_row.left_at.is_none(), "{alice_row:?}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_room_resumes_succeeded_total 1"), "{metrics}");
    assert!(metrics.contains("gateway_room_replayed_frames_total 4"), "{metrics}");
    let (frames, bytes) = app.state.hub.held_frames(event_id, &old_id).unwrap();
    eprintln!("reconnect: cut → resumed {resumed_ms} ms, cut → first live frame {live_ms} ms; replay buffer now {frames} frames, {bytes} payload bytes");
});

app_test!(what_the_client_sent_as_the_connection_went_arrives_once, |app| async move {
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let (ta, tb) = (
        attendance_support::ticket(&app.store, event_id, "alice-w").await,
        attendance_support::ticket(&app.store, event_id, "bob-w").await,
    );
    let proxy = Proxy::start(&app.address).await;
    let mut alice = Client::join(&proxy.address, event_id, &token(event_id, ta, "alice-w")).await;
    let mut bob = Client::join(&app.address, event_id, &token(event_id, tb, "bob-w")).await;
    // Alice talks as the network goes: some of it may be lost in flight, some applied.
    for i in 0..20 {
        alice.send(json!({ "type": "broadcast", "data_type": "r", "data": { "networkId": format!("n{i}") }, "guaranteed": true })).await;
    }
    proxy.cut();
    let mut seen = bob.until("peer_reconnecting").await;
    let (mut alice, resumed) = alice.resume(&app.address, event_id).await;
    let applied = resumed["received"].as_u64().unwrap();
    assert!(applied <= 20);
    alice.send(json!({ "type": "chat", "text": "done" })).await;
    // Bob gets each of alice's frames once, in order (those applied before the drop, then those she sent
    // again), then the marker.
    let mut ids: Vec<String> = seen
        .drain(..)
        .filter(|f| f["type"] == "broadcast")
        .map(|f| f["data"]["networkId"].as_str().unwrap().to_owned())
        .collect();
    eprintln!("upstream: {applied} of 20 frames applied before the drop, {} sent again", 20 - applied);
    loop {
        let frame = bob.next().await.unwrap();
        if frame["type"] == "chat" {
            break;
        }
        if frame["type"] == "broadcast" {
            ids.push(frame["data"]["networkId"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids, (0..20).map(|i| format!("n{i}")).collect::<Vec<_>>());
});

app_test!(a_resume_token_is_good_once_and_a_live_connection_is_superseded, |app| async move {
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let ta = attendance_support::ticket(&app.store, event_id, "alice-w").await;
    let mut old = Client::join(&app.address, event_id, &token(event_id, ta, "alice-w")).await;
    let used = old.resume_token.clone();
    let received = old.received;
    // The client thinks the connection is gone while the server still holds it: the resume takes over and
    // the old connection is closed with 4000.
    let (mut resumed, first) = old.resume(&app.address, event_id).await;
    assert_eq!(first["client_id"], old.id.as_str());
    assert_ne!(resumed.resume_token, used, "each resume hands out a new token");
    assert_eq!(old.closed_with().await, 4000);
    // The same token again: refused, whoever presents it.
    let mut replay = Client::connect(&app.address, event_id, &format!("resume={used}&received={received}")).await;
    assert_eq!(replay.closed_with().await, 4401);
    // A forged or foreign token too.
    let mut forged =
        Client::connect(&app.address, event_id, &format!("resume={}x&received=0", resumed.resume_token)).await;
    assert_eq!(forged.closed_with().await, 4401);
    // The new one works once.
    resumed.send(json!({ "type": "ping", "client_time": 1 })).await;
    resumed.next_of("pong").await;
    let (_third, _) = resumed.resume(&app.address, event_id).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_room_resumes_succeeded_total 2"), "{metrics}");
    assert!(metrics.contains("gateway_room_resumes_failed_total 2"), "{metrics}");
});

app_test!(a_kick_or_ban_ends_the_right_to_resume, |app| async move {
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let (ta, tb) = (
        attendance_support::ticket(&app.store, event_id, "alice-w").await,
        attendance_support::ticket(&app.store, event_id, "bob-w").await,
    );
    let proxy = Proxy::start(&app.address).await;
    let alice = Client::join(&proxy.address, event_id, &token(event_id, ta, "alice-w")).await;
    let mut bob = Client::join(&app.address, event_id, &token(event_id, tb, "bob-w")).await;
    proxy.cut();
    bob.next_of("peer_reconnecting").await;
    let res =
        app.admin(Method::POST, &format!("/api/events/{event_id}/attendees/{}/kick", alice.id)).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(bob.next_of("peer_left").await["reason"], "kicked");
    let mut again =
        Client::connect(&app.address, event_id, &format!("resume={}&received={}", alice.resume_token, alice.received))
            .await;
    assert_eq!(again.closed_with().await, 4401);
    // A ban saved in the store (as by another node) refuses the seat at the resume door too.
    let mut bob_alive = bob;
    let bob_token = bob_alive.resume_token.clone();
    sqlx::query("UPDATE tickets SET status = 'banned' WHERE id = $1")
        .bind(tb)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    let mut banned =
        Client::connect(&app.address, event_id, &format!("resume={bob_token}&received={}", bob_alive.received)).await;
    assert_eq!(banned.closed_with().await, 4403);
    bob_alive.send(json!({ "type": "ping", "client_time": 1 })).await;
    bob_alive.next_of("pong").await;
});

app_test!(a_host_resumes_with_its_feed, |app| async move {
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let tb = attendance_support::ticket(&app.store, event_id, "bob-w").await;
    let host_token = gateway::auth::session_token::issue(
        &attendance_support::SECRET,
        event_id,
        None,
        Some("alice".into()),
        "alice".into(),
        ticketing::now_ms() + attendance_support::MIN,
    )
    .0;
    let proxy = Proxy::start(&app.address).await;
    let host = Client::join(&proxy.address, event_id, &host_token).await;
    proxy.cut();
    // The host's seat is `host:alice`: checked against the event's creator at the resume door too.
    let (mut host, resumed) = host.resume(&app.address, event_id).await;
    assert_eq!(resumed["client_id"], host.id.as_str());
    // Its live feed continues on the new connection (feed frames are not counted: they are not the room's).
    let _bob = Client::join(&app.address, event_id, &token(event_id, tb, "bob-w")).await;
    let feed = host.next_of("feed").await;
    assert_eq!(feed["kind"], "joined", "{feed}");
});

async fn window_passes(backend: ticketing::Backend) {
    let app = common::spawn_app_with(backend, |s| s.signaling.resume_window_secs = 1).await;
    // One seat: while alice's is held, bob is refused; once the window passes, it is his.
    let event_id = attendance_support::event(&app.store, 2, 0).await;
    let (ta, tb) = (
        attendance_support::ticket(&app.store, event_id, "alice-w").await,
        attendance_support::ticket(&app.store, event_id, "bob-w").await,
    );
    // Sold before the organiser lowered the capacity (the counter follows, as in rooms_ws.rs).
    sqlx::query("UPDATE events SET max_attendees = 1, tickets_sold = 1 WHERE id = $1")
        .bind(event_id)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    let proxy = Proxy::start(&app.address).await;
    let alice = Client::join(&proxy.address, event_id, &token(event_id, ta, "alice-w")).await;
    let cut_at = ticketing::now_ms();
    proxy.cut();
    let mut refused = Client::connect(&app.address, event_id, &format!("token={}", token(event_id, tb, "bob-w"))).await;
    assert_eq!(refused.closed_with().await, 4409, "the seat is held within the window");
    // The window passes: the seat is free, the session closed when alice was last seen, and her token refused.
    let rows =
        attendance_support::rows_until(&app.store, event_id, |rows| rows.iter().any(|r| r.left_at.is_some())).await;
    let row = &rows[0];
    assert_eq!(row.end_reason.as_deref(), Some("left"));
    assert!(
        (row.left_at.unwrap() - cut_at).abs() < 500,
        "closed at the drop, not at the window's end: {row:?} vs {cut_at}"
    );
    let bob = Client::join(&app.address, event_id, &token(event_id, tb, "bob-w")).await;
    assert!(!bob.id.is_empty());
    let mut late =
        Client::connect(&app.address, event_id, &format!("resume={}&received={}", alice.resume_token, alice.received))
            .await;
    assert_eq!(late.closed_with().await, 4401);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_room_resumes_expired_total 1"), "{metrics}");
    // Refused by the room (the session is over), counted once.
    assert!(metrics.contains("gateway_room_resumes_failed_total 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_window_the_seat_is_free_sqlite() {
    window_passes(ticketing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_window_the_seat_is_free_postgres() {
    window_passes(ticketing::Backend::Postgres).await;
}

fn placed(owner: &str, x: f64) -> Value {
    json!({ "networkId": "stage-box", "owner": owner, "creator": owner, "lastOwnerTime": 1, "template": "#box-template",
        "persistent": true, "isFirstSync": true, "components": { "0": { "x": x, "y": 1, "z": -2 } } })
}

async fn persistent_entities(backend: ticketing::Backend) {
    let app = common::spawn_app(backend).await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let tickets = [
        attendance_support::ticket(&app.store, event_id, "host-w").await,
        attendance_support::ticket(&app.store, event_id, "late-w").await,
        attendance_support::ticket(&app.store, event_id, "later-w").await,
    ];
    let mut host = Client::join(&app.address, event_id, &token(event_id, tickets[0], "host-w")).await;
    host.send(json!({ "type": "broadcast", "data_type": "u", "data": placed(&host.id.clone(), 3.0) })).await;
    host.send(json!({ "type": "broadcast", "data_type": "um", "data": { "d": [
        { "networkId": "stage-box", "owner": host.id, "lastOwnerTime": 1, "persistent": true, "components": { "0": { "x": 4.5, "y": 1, "z": -2 } } },
        { "networkId": "avatar", "owner": host.id, "persistent": false, "components": {} }
    ] } })).await;
    host.send(json!({ "type": "ping", "client_time": 1 })).await;
    host.next_of("pong").await;
    let host_id = host.id.clone();
    host.ws.close(None).await.unwrap();
    // The host left; a late joiner gets the box where the host put it, in one snapshot right after welcome.
    let mut late =
        Client::connect(&app.address, event_id, &format!("token={}", token(event_id, tickets[1], "late-w"))).await;
    assert_eq!(late.next().await.unwrap()["type"], "welcome");
    let snapshot = late.next().await.unwrap();
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(snapshot["entities"].as_array().unwrap().len(), 1, "only the persistent entity: {snapshot}");
    assert_eq!(snapshot["entities"][0]["components"]["0"]["x"], 4.5);
    assert_eq!(snapshot["entities"][0]["owner"], host_id.as_str());
    // The late joiner takes it over (NAF's takeOwnership: a newer lastOwnerTime) and moves it.
    let late_id = {
        let welcome_id = late.id.clone();
        if welcome_id.is_empty() {
            app.state.hub.occupants(event_id)[0].info.client_id.to_string()
        } else {
            welcome_id
        }
    };
    late.send(json!({ "type": "broadcast", "data_type": "u", "data": { "networkId": "stage-box", "owner": late_id, "lastOwnerTime": 2,
        "persistent": true, "components": { "0": { "x": -1, "y": 1, "z": -2 } } } })).await;
    late.send(json!({ "type": "ping", "client_time": 1 })).await;
    late.next_of("pong").await;
    // Written to the store within a flush or two.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stored = app.store.room_entities(event_id, 10).await.unwrap();
        if stored.len() == 1 && stored[0]["owner"] == late_id.as_str() && stored[0]["components"]["0"]["x"] == -1 {
            break;
        }
        assert!(Instant::now() < deadline, "not stored: {stored:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The gateway restarts (the store is the same); a joiner still gets the box as last left.
    let db_url = app.db_url();
    app.shutdown.cancel();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.server.is_finished() {
        assert!(Instant::now() < deadline, "the first gateway did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let data_dir = std::env::temp_dir().join(format!("gateway-restart-{}", std::process::id()));
    let restarted =
        gateway::startup::Application::build(common::test_settings(&db_url, data_dir.clone())).await.unwrap();
    let address = format!("http://{}", restarted.local_addr());
    let shutdown = restarted.shutdown_token();
    let server = tokio::spawn(restarted.run_until_stopped());
    let mut later =
        Client::connect(&address, event_id, &format!("token={}", token(event_id, tickets[2], "later-w"))).await;
    assert_eq!(later.next().await.unwrap()["type"], "welcome");
    let snapshot = later.next().await.unwrap();
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(snapshot["entities"][0]["owner"], late_id.as_str());
    assert_eq!(snapshot["entities"][0]["components"]["0"]["x"], -1);
    assert_eq!(snapshot["entities"][0]["isFirstSync"], true);
    // A removal (NAF's `r`) forgets it, in the store too.
    later.send(json!({ "type": "broadcast", "data_type": "r", "data": { "networkId": "stage-box" } })).await;
    let store = ticketing::Store::connect(&db_url, 2).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.room_entities(event_id, 10).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the removal was not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    let _ = server.await;
    let _ = std::fs::remove_dir_all(data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiners_get_persistent_entities_after_the_host_left_and_a_restart_sqlite() {
    persistent_entities(ticketing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiners_get_persistent_entities_after_the_host_left_and_a_restart_postgres() {
    persistent_entities(ticketing::Backend::Postgres).await;
}
