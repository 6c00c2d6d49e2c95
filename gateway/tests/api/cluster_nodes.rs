//! Several real gateway processes (`CARGO_BIN_EXE_gateway`) on one real `redis-server` and one PostgreSQL, with
//! real WebSocket clients: one room spread over nodes behaves as on one node, admission stays exact, moderation
//! reaches the node holding the peer, a killed node's peers leave and rejoin elsewhere, and the broker may go
//! away and come back.
//!
//! Run through `scripts/test` (it starts PostgreSQL and installs `redis-server`).

use crate::cluster_support::*;
use crate::{attendance_support, common};

use std::time::{Duration, Instant};

use attendance_support::*;
use cluster::testing::RedisServer;
use futures_util::StreamExt;
use serde_json::{json, Value};
use ticketing::testing::TestDb;
use ticketing::Backend;
use tokio_tungstenite::tungstenite::Message;

/// The next frame of `kind` within `within`, skipping others; `None` on timeout.
async fn frame_within(ws: &mut Ws, kind: &str, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??.ok()?;
        match msg {
            Message::Text(text) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["type"] == kind {
                    return Some(v);
                }
                if v["type"] == "batch" {
                    panic!("protocol 1 clients get no batches");
                }
            }
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// The close code the server ends `ws` with, skipping frames.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.ok()?? {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

async fn join(node: &Node, event_id: i64, ticket: i64, wallet: &str) -> (Ws, String) {
    let mut ws = connect(&node.base, event_id, &token(event_id, ticket, wallet)).await;
    let welcome = next_of(&mut ws, "welcome").await;
    (ws, welcome["client_id"].as_str().unwrap().to_owned())
}

struct Fixture {
    db: TestDb,
    store: ticketing::Store,
    redis: RedisServer,
}

async fn fixture() -> Fixture {
    let db = TestDb::new(Backend::Postgres).await;
    // Migrations are applied by the first connection; the nodes then find the schema ready.
    let store = ticketing::Store::connect(&db.url, 8).await.unwrap();
    Fixture { db, store, redis: RedisServer::start() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_on_two_nodes_see_each_other_and_moderation_reaches_the_node_holding_the_peer() {
    let f = fixture().await;
    let (n1, n2) = (Node::start("n1", &f.db.url, &f.redis.url()), Node::start("n2", &f.db.url, &f.redis.url()));
    let event_id = event(&f.store, 10, 0).await;
    let (ta, tb) = (ticket(&f.store, event_id, "wallet-a").await, ticket(&f.store, event_id, "wallet-b").await);

    // The creator's live feed on node 1 shows peers on every node.
    let bearer = creator_token("alice");
    let mut feed =
        sse(&reqwest::Client::new(), format!("{}/api/events/{event_id}/attendees/stream", n1.base), &bearer).await;
    let (mut a, a_id) = join(&n1, event_id, ta, "wallet-a").await;
    let mut b = connect(&n2.base, event_id, &token(event_id, tb, "wallet-b")).await;
    let welcome = next_of(&mut b, "welcome").await;
    let b_id = welcome["client_id"].as_str().unwrap().to_owned();
    assert!(welcome["occupants"][&a_id].is_object(), "the welcome on node 2 lists the peer on node 1: {welcome}");
    let joined = next_of(&mut a, "peer_joined").await;
    assert_eq!(joined["client_id"], b_id.as_str());
    loop {
        let item = tokio::time::timeout(Duration::from_secs(5), feed.recv())
            .await
            .expect("feed item in time")
            .expect("feed open");
        if item.name == "joined" && item.data["client_id"] == b_id.as_str() {
            break;
        }
    }

    // NAF traffic, in order, with `from` stamped by the server.
    for n in 0..50 {
        send(&mut a, json!({ "type": "broadcast", "data_type": "u", "data": { "n": n }, "guaranteed": true })).await;
    }
    for n in 0..50 {
        let frame = next_of(&mut b, "broadcast").await;
        assert_eq!((frame["from"].as_str(), frame["data"]["n"].as_i64()), (Some(a_id.as_str()), Some(n)));
    }
    // Addressed to a peer on the other node: `send` and WebRTC signalling.
    send(&mut b, json!({ "type": "send", "to": a_id, "data_type": "u", "data": { "hi": 1 }, "from": "forged" })).await;
    let got = next_of(&mut a, "send").await;
    assert_eq!((got["from"].as_str(), got["data"]["hi"].as_i64()), (Some(b_id.as_str()), Some(1)));
    send(&mut b, json!({ "type": "offer", "to": a_id, "sdp": "v=0\r\n" })).await;
    assert_eq!(next_of(&mut a, "offer").await["from"], b_id.as_str());
    send(&mut a, json!({ "type": "chat", "text": "hello over there" })).await;
    assert_eq!(next_of(&mut b, "chat").await["text"], "hello over there");

    // The same ticket on the other node: the older session is closed with the supersede code.
    let (mut a2, a2_id) = join(&n2, event_id, ta, "wallet-a").await;
    assert_eq!(close_code(&mut a).await, Some(4000), "superseded across nodes");
    let left = next_of(&mut b, "peer_left").await;
    assert_eq!(left["client_id"], a_id.as_str());

    // Mute and ban through node 1's API, of peers node 2 holds.
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/api/events/{event_id}/attendees/{a2_id}/mute", n1.base))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    assert_eq!(next_of(&mut a2, "muted").await["client_id"], a2_id.as_str());
    let res = client
        .post(format!("{}/api/events/{event_id}/attendees/{b_id}/ban", n1.base))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    assert_eq!(close_code(&mut b).await, Some(4003), "banned on the node holding it");
    // A banned ticket is refused on every node.
    let mut again = connect(&n1.base, event_id, &token(event_id, tb, "wallet-b")).await;
    assert_eq!(close_code(&mut again).await, Some(4403));

    // The join endpoint (here the host's) names the least loaded live node: node 1, which holds nobody now.
    let granted: Value = client
        .post(format!("{}/api/events/{event_id}/host", n2.base))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws_n1 = format!("{}/event/{event_id}", n1.base.replacen("http://", "ws://", 1));
    assert_eq!(granted["websocket_url"], ws_n1.as_str(), "{granted}");

    // A host on node 1 kicks, over its socket, a peer node 2 holds.
    let host_token = gateway::auth::session_token::issue(
        &SECRET,
        event_id,
        None,
        Some("alice".into()),
        "alice".into(),
        ticketing::now_ms() + MIN,
    )
    .0;
    let mut host = connect(&n1.base, event_id, &host_token).await;
    let welcome = next_of(&mut host, "welcome").await;
    assert!(welcome["occupants"][&a2_id].is_object(), "{welcome}");
    send(&mut host, json!({ "type": "kick", "target": a2_id })).await;
    assert_eq!(close_code(&mut a2).await, Some(4001), "kicked by a host on another node");

    let metrics = n1.metrics().await;
    assert!(metrics.contains("gateway_cluster_broker_up 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_peers_leave_their_rooms_and_their_tickets_rejoin_on_another_node() {
    let f = fixture().await;
    let (n1, mut n2) = (Node::start("n1", &f.db.url, &f.redis.url()), Node::start("n2", &f.db.url, &f.redis.url()));
    let event_id = event(&f.store, 10, 0).await;
    let (ta, tb) = (ticket(&f.store, event_id, "wallet-a").await, ticket(&f.store, event_id, "wallet-b").await);
    let (mut a, _) = join(&n1, event_id, ta, "wallet-a").await;
    let (b, b_id) = join(&n2, event_id, tb, "wallet-b").await;
    assert_eq!(next_of(&mut a, "peer_joined").await["client_id"], b_id.as_str());
    rows_until(&f.store, event_id, |rows| rows.len() == 2).await;

    let killed = Instant::now();
    n2.kill();
    drop(b);
    let left = frame_within(&mut a, "peer_left", Duration::from_secs(10)).await.expect("peer_left within 10 s");
    let peer_left_after = killed.elapsed();
    assert_eq!(left["client_id"], b_id.as_str());

    // The same ticket on the surviving node.
    let (_b2, _) = join(&n1, event_id, tb, "wallet-b").await;
    let rejoined_after = killed.elapsed();
    let rows = rows_until(&f.store, event_id, |rows| {
        rows.iter().any(|r| r.client_id == b_id && r.end_reason.as_deref() == Some("interrupted"))
    })
    .await;
    let closed = rows.iter().find(|r| r.client_id == b_id).unwrap();
    assert!(
        closed.left_at.unwrap() <= ticketing::now_ms() - (peer_left_after.as_millis() as i64) / 2,
        "closed at the last heartbeat: {closed:?}"
    );
    println!(
        "node death: peer_left seen after {:.2} s, ticket rejoined on another node after {:.2} s (heartbeat {HEARTBEAT_MS} ms, ttl {NODE_TTL_MS} ms)",
        peer_left_after.as_secs_f64(),
        rejoined_after.as_secs_f64()
    );
    assert!(peer_left_after < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_broker_local_peers_are_served_and_cross_node_relay_resumes_when_it_returns() {
    let mut f = fixture().await;
    let (n1, n2) = (Node::start("n1", &f.db.url, &f.redis.url()), Node::start("n2", &f.db.url, &f.redis.url()));
    let event_id = event(&f.store, 10, 0).await;
    let t: Vec<i64> = [
        ticket(&f.store, event_id, "wal-1").await,
        ticket(&f.store, event_id, "wal-2").await,
        ticket(&f.store, event_id, "wal-3").await,
    ]
    .into();
    let (mut a, _) = join(&n1, event_id, t[0], "wal-1").await;
    let (mut a2, _) = join(&n1, event_id, t[1], "wal-2").await;
    let (mut b, _) = join(&n2, event_id, t[2], "wal-3").await;
    next_of(&mut a, "peer_joined").await;

    f.redis.kill();
    common::eventually("node 1 to report the broker away", Duration::from_secs(10), || async {
        n1.readyz().await["checks"]["broker"] == false
    })
    .await;
    let ready = n1.readyz().await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert!(n1.metrics().await.contains("gateway_cluster_broker_up 0"));
    send(&mut a, json!({ "type": "broadcast", "data_type": "u", "data": { "local": true } })).await;
    assert_eq!(next_of(&mut a2, "broadcast").await["data"]["local"], true, "local peers are still served");

    f.redis.restart();
    common::eventually("node 1 to see the broker again", Duration::from_secs(15), || async {
        n1.readyz().await["status"] == "ready"
    })
    .await;
    // Cross-node relay resumes once both nodes have resubscribed.
    let mut n = 0;
    let resumed = Instant::now();
    loop {
        n += 1;
        send(&mut a, json!({ "type": "broadcast", "data_type": "u", "data": { "n": n } })).await;
        if frame_within(&mut b, "broadcast", Duration::from_millis(200)).await.is_some() {
            break;
        }
        assert!(resumed.elapsed() < Duration::from_secs(10), "cross-node relay did not resume");
    }
    println!("broker restart: cross-node relay back {:.2} s after the broker was", resumed.elapsed().as_secs_f64());
    drop(n2);
}

/// Whether `ws` is closed with `code` within `within` (false if it stays open).
async fn closed_with(ws: &mut Ws, code: u16, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)) == Some(code),
            Ok(Some(Ok(_))) => {}
            Ok(_) => return false,
            Err(_) => return false,
        }
    }
}

/// Every ticket of a sold-out room joins from all three nodes at once: 1,002 concurrent joins. Exactly one session
/// per ticket stays (the others are superseded, wherever they were), and the broker counts exactly the room's
/// capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_joins_over_three_nodes_leave_exactly_one_session_per_seat() {
    const SEATS: usize = 334;
    let f = fixture().await;
    let nodes = [
        Node::start("n1", &f.db.url, &f.redis.url()),
        Node::start("n2", &f.db.url, &f.redis.url()),
        Node::start("n3", &f.db.url, &f.redis.url()),
    ];
    let event_id = event(&f.store, SEATS as i64, 0).await;
    let mut tickets = Vec::new();
    for i in 0..SEATS {
        tickets.push(ticket(&f.store, event_id, &format!("wal-{i}")).await);
    }
    let started = Instant::now();
    let joins = (0..SEATS * 3).map(|n| {
        let (i, node) = (n / 3, n % 3);
        let base = nodes[node].base.clone();
        let token = token(event_id, tickets[i], &format!("wal-{i}"));
        async move {
            let mut ws = connect(&base, event_id, &token).await;
            loop {
                match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) if text.contains("\"welcome\"") => return (i, Some(ws)),
                    Ok(Some(Ok(Message::Close(_)))) => return (i, None),
                    Ok(Some(Ok(_))) => {}
                    _ => return (i, None),
                }
            }
        }
    });
    let results = futures_util::future::join_all(joins).await;
    let joined_in = started.elapsed();
    let welcomed: Vec<(usize, Ws)> = results.into_iter().filter_map(|(i, ws)| ws.map(|ws| (i, ws))).collect();
    // The superseded sessions are closed with 4000; the others stay.
    let settled = futures_util::future::join_all(welcomed.into_iter().map(|(i, mut ws)| async move {
        let superseded = closed_with(&mut ws, 4000, Duration::from_secs(3)).await;
        (i, superseded, ws)
    }))
    .await;
    let mut live = vec![0usize; SEATS];
    for (i, superseded, _) in &settled {
        if !superseded {
            live[*i] += 1;
        }
    }
    let broker = cluster::Broker::new(cluster::ClusterConfig::new(f.redis.url(), "test", "")).unwrap();
    let counted = cluster::Seats::new(broker).counted(event_id).await.unwrap();
    println!(
        "{} concurrent joins over 3 nodes for {SEATS} seats: all answered in {:.2} s; live sessions per ticket min {} max {}; broker count {counted}",
        SEATS * 3,
        joined_in.as_secs_f64(),
        live.iter().min().unwrap(),
        live.iter().max().unwrap()
    );
    assert!(live.iter().all(|n| *n == 1), "one live session per ticket: {live:?}");
    assert_eq!(counted as usize, SEATS);
}

/// A wallet's access attempts are one budget over every node (`cluster::SharedLimiter`), not one per node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_s_attempts_are_one_budget_over_all_nodes() {
    let f = fixture().await;
    let limit = [("GATEWAY_ACCESS__WALLET_ATTEMPTS_PER_MINUTE", "4")];
    let nodes = [
        Node::start_with("n1", &f.db.url, &f.redis.url(), &limit),
        Node::start_with("n2", &f.db.url, &f.redis.url(), &limit),
    ];
    let event_id = event(&f.store, 10, 0).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for n in 0..8 {
        let res = client
            .post(format!("{}/api/events/{event_id}/join", nodes[n % 2].base))
            .json(&json!({
                "chain": "eth", "wallet_address": "0x52908400098527886e0f7030069857d2e4169ee7",
                "message": "Access event 1 at 0", "signature": "0x00",
            }))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 400, 429, 429, 429, 429], "four attempts in all, not four per node");
}

/// A host session for `alice`'s event: on the stage, in every shard.
fn host_token(event_id: i64) -> String {
    gateway::auth::session_token::issue(
        &SECRET,
        event_id,
        None,
        Some("alice".into()),
        "alice".into(),
        ticketing::now_ms() + MIN,
    )
    .0
}

/// Sets the event's shard size through the creator's API on `node`.
async fn shard_size(node: &Node, event_id: i64, size: i64) {
    let res = reqwest::Client::new()
        .patch(format!("{}/api/events/{event_id}", node.base))
        .bearer_auth(creator_token("alice"))
        .json(&json!({ "shard_size": size }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

/// An attendee of a sharded event: its socket, client id and shard from its welcome.
struct Placed {
    ws: Ws,
    id: String,
    shard: u64,
    node: usize,
}

async fn join_placed(
    nodes: &[&Node],
    node: usize,
    event_id: i64,
    ticket: i64,
    wallet: &str,
    group: Option<&str>,
) -> Placed {
    let mut url = format!(
        "{}/event/{event_id}?token={}",
        nodes[node].base.replacen("http://", "ws://", 1),
        token(event_id, ticket, wallet)
    );
    if let Some(group) = group {
        url.push_str(&format!("&group={group}"));
    }
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    let welcome = next_of(&mut ws, "welcome").await;
    Placed {
        ws,
        id: welcome["client_id"].as_str().unwrap().to_owned(),
        shard: welcome["shard"].as_u64().unwrap(),
        node,
    }
}

/// The attendees `node` reports live in the event's shards (`GET /shards`), summed, with the answer.
async fn live_attendees(node: &Node, event_id: i64) -> (u64, Value) {
    let live: Value = reqwest::Client::new()
        .get(format!("{}/api/events/{event_id}/shards", node.base))
        .bearer_auth(creator_token("alice"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total = live["live"].as_array().unwrap().iter().map(|s| s["attendees"].as_u64().unwrap()).sum();
    (total, live)
}

/// Reads `ws` up to the host's broadcast `marker` and returns every frame read before it.
async fn seen_until_marker(ws: &mut Ws, host_id: &str, marker: i64) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("the host's marker in time");
        let text = match msg {
            Some(Ok(Message::Text(text))) => text,
            // The server's keep-alive pings (answered by tungstenite) are not frames of the room.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("closed before the host's marker: {other:?}"),
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["type"] == "broadcast" && frame["from"] == host_id && frame["data"]["marker"] == marker {
            return seen;
        }
        seen.push(frame);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_are_placed_by_the_broker_across_nodes_and_traffic_stays_in_its_shard_on_every_node() {
    let f = fixture().await;
    let (n1, n2) = (Node::start("n1", &f.db.url, &f.redis.url()), Node::start("n2", &f.db.url, &f.redis.url()));
    let nodes = [&n1, &n2];
    let event_id = event(&f.store, 40, 0).await;
    shard_size(&n1, event_id, 2).await;

    // The host on node 1, on the stage.
    let mut host = connect(&n1.base, event_id, &host_token(event_id)).await;
    let host_welcome = next_of(&mut host, "welcome").await;
    assert_eq!(host_welcome["stage"], true);
    let host_id = host_welcome["client_id"].as_str().unwrap().to_owned();

    // Twelve attendees join at once, half through each node: no shard ever holds more than two.
    let mut tickets = Vec::new();
    for i in 0..12 {
        let wallet = format!("wallet-{i}");
        tickets.push((ticket(&f.store, event_id, &wallet).await, wallet));
    }
    let joins = tickets.iter().enumerate().map(|(i, (t, w))| join_placed(&nodes, i % 2, event_id, *t, w, None));
    let mut attendees = futures_util::future::join_all(joins).await;
    let mut per_shard = std::collections::BTreeMap::<u64, usize>::new();
    for a in &attendees {
        *per_shard.entry(a.shard).or_default() += 1;
    }
    assert!(per_shard.values().all(|n| *n <= 2), "a shard holds more than 2 across the nodes: {per_shard:?}");
    assert_eq!(per_shard.len(), 6, "filled before a new shard opens: {per_shard:?}");
    let full = attendees[0].shard;
    let (live_total, live) = live_attendees(&n2, event_id).await;
    assert_eq!(live_total, 12, "the broker's head count, whichever node is asked: {live}");

    // Friends joining through different nodes land together.
    let (tp1, tp2) = (ticket(&f.store, event_id, "pal-1").await, ticket(&f.store, event_id, "pal-2").await);
    let mut pal1 = join_placed(&nodes, 0, event_id, tp1, "pal-1", Some("pals")).await;
    let mut pal2 = join_placed(&nodes, 1, event_id, tp2, "pal-2", Some("pals")).await;
    assert_eq!(pal1.shard, pal2.shard, "a group stays together across nodes");
    assert_eq!(next_of(&mut pal1.ws, "peer_joined").await["client_id"], pal2.id.as_str());

    // NAF traffic: pal 1 (node 1) reaches pal 2 (node 2, same shard), not an attendee of another shard on node 2;
    // the host's (node 1, on stage) reaches both.
    let other = attendees.iter_mut().find(|a| a.node == 1 && a.shard != pal1.shard).expect("an attendee elsewhere");
    send(&mut pal1.ws, json!({ "type": "broadcast", "data_type": "u", "data": { "pal": 1 }, "guaranteed": true }))
        .await;
    let got = next_of(&mut pal2.ws, "broadcast").await;
    assert_eq!((got["from"].as_str(), got["data"]["pal"].as_i64()), (Some(pal1.id.as_str()), Some(1)));
    send(&mut host, json!({ "type": "broadcast", "data_type": "u", "data": { "marker": 1 }, "guaranteed": true }))
        .await;
    let seen = seen_until_marker(&mut other.ws, &host_id, 1).await;
    assert!(
        seen.iter().all(|f| f["from"] != pal1.id.as_str() && f["client_id"] != pal1.id.as_str()),
        "nothing of shard {} reaches shard {}: {seen:?}",
        pal1.shard,
        other.shard
    );
    let seen = seen_until_marker(&mut pal2.ws, &host_id, 1).await;
    assert!(seen.iter().all(|f| f["type"] != "broadcast"), "{seen:?}");

    // Moving across nodes: pal 2 leaves for a new shard; pal 1, on the other node, sees it go and follows.
    send(&mut pal2.ws, json!({ "type": "switch_shard" })).await;
    let changed = next_of(&mut pal2.ws, "shard_changed").await;
    let new_shard = changed["shard"].as_u64().unwrap();
    assert_ne!(new_shard, pal1.shard);
    assert!(changed["occupants"][&host_id].is_object(), "the host is seen from every shard: {changed}");
    let left = next_of(&mut pal1.ws, "peer_left").await;
    assert_eq!((left["client_id"].as_str(), left["reason"].as_str()), (Some(pal2.id.as_str()), Some("moved")));
    send(&mut pal1.ws, json!({ "type": "switch_shard", "shard": new_shard })).await;
    let changed = next_of(&mut pal1.ws, "shard_changed").await;
    assert_eq!(changed["shard"].as_u64(), Some(new_shard));
    assert!(changed["occupants"][&pal2.id].is_object(), "pal 2 on node 2 is in pal 1's new view: {changed}");
    assert_eq!(next_of(&mut pal2.ws, "peer_joined").await["client_id"], pal1.id.as_str());
    // A full shard is refused as on one node.
    send(&mut pal1.ws, json!({ "type": "switch_shard", "shard": full })).await;
    assert_eq!(next_of(&mut pal1.ws, "error").await["code"], "shard_full");

    // The host on node 1 invites pal 2 (node 2) to the stage: it is seen in every shard, here and there.
    send(&mut host, json!({ "type": "invite_to_stage", "target": pal2.id })).await;
    let changed = next_of(&mut pal2.ws, "shard_changed").await;
    assert_eq!(changed["stage"], true);
    let stage = next_of(&mut other.ws, "stage").await;
    assert_eq!((stage["client_id"].as_str(), stage["on_stage"].as_bool()), (Some(pal2.id.as_str()), Some(true)));
    send(&mut pal2.ws, json!({ "type": "broadcast", "data_type": "u", "data": { "speaker": 1 }, "guaranteed": true }))
        .await;
    let heard = attendees.iter_mut().find(|a| a.node == 0 && a.shard != new_shard).unwrap();
    loop {
        let frame = next_of(&mut heard.ws, "broadcast").await;
        if frame["from"] == pal2.id.as_str() {
            break;
        }
    }

    // The creator's tools on node 2 put pal 1 (node 1) on the stage and take it off again.
    let client = reqwest::Client::new();
    let stage_url = format!("{}/api/events/{event_id}/stage/{}", n2.base, pal1.id);
    let res = client.post(&stage_url).bearer_auth(creator_token("alice")).send().await.unwrap();
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    assert_eq!(next_of(&mut pal1.ws, "shard_changed").await["stage"], true);
    let res = client.delete(&stage_url).bearer_auth(creator_token("alice")).send().await.unwrap();
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    let back = next_of(&mut pal1.ws, "shard_changed").await;
    assert_eq!((back["stage"].as_bool(), back["shard"].as_u64()), (Some(false), Some(new_shard)));

    // Shards on /metrics: this node's share of each open shard, and the broker's placements.
    let metrics = n1.metrics().await;
    assert!(metrics.contains("gateway_shards_open "), "{metrics}");
    assert!(metrics.contains(&format!("gateway_shard_occupants{{event=\"{event_id}\",shard=\"")), "{metrics}");
    assert!(metrics.contains("gateway_cluster_shard_placements_total "), "{metrics}");
    assert!(metrics.contains("gateway_cluster_shard_moves_total "), "{metrics}");

    // Node 2 dies: the survivor gives its attendees' places back; node 1's six and pal 1 are what is left.
    let mut n2 = n2;
    n2.kill();
    common::eventually("node 2's places given back", Duration::from_secs(15), || async {
        live_attendees(&n1, event_id).await.0 == 7
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creator_s_feed_on_a_node_started_later_shows_joins_on_a_node_that_has_not_heard_of_it_yet() {
    let f = fixture().await;
    // Node 2 beats every 10 s: until its next beat it does not know node 1, which starts after it.
    let slow = [("GATEWAY_CLUSTER__HEARTBEAT_MS", "10000"), ("GATEWAY_CLUSTER__NODE_TTL_MS", "30000")];
    let n2 = Node::start_with("n2", &f.db.url, &f.redis.url(), &slow);
    let n1 = Node::start("n1", &f.db.url, &f.redis.url());
    common::eventually("node 1 subscribed to the broker", Duration::from_secs(10), || async {
        n1.readyz().await["checks"]["broker"] == true
    })
    .await;
    let event_id = event(&f.store, 10, 0).await;
    let bearer = creator_token("alice");
    // Node 1's creator sees a join on node 2, and the other way round.
    for (feed_node, join_node, wallet) in [(&n1, &n2, "wallet-b"), (&n2, &n1, "wallet-a")] {
        let url = format!("{}/api/events/{event_id}/attendees/stream", feed_node.base);
        let mut feed = sse(&reqwest::Client::new(), url, &bearer).await;
        let t = ticket(&f.store, event_id, wallet).await;
        let (_ws, id) = join(join_node, event_id, t, wallet).await;
        loop {
            let item = tokio::time::timeout(Duration::from_secs(5), feed.recv())
                .await
                .unwrap_or_else(|_| panic!("the join of {wallet} on its node in the other node's feed"))
                .expect("feed open");
            if item.name == "joined" && item.data["client_id"] == id.as_str() {
                break;
            }
        }
    }
}
