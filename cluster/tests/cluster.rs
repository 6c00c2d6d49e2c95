//! The cluster's parts against a real `redis-server`, several "nodes" (brokers with their
//! own node ids) in one test process. Multi-process tests with real gateway nodes live in
//! the gateway's tests.

use bytes::Bytes;
use cluster::testing::RedisServer;
use cluster::{
    Broker, Claim, ClaimRequest, ClusterConfig, Control, Decision, Inbound, Member, Nodes, Placed, Placements,
    RedisFanout, Relay, SeatPlacement, Seats, SharedLimiter,
};
use parking_lot::Mutex;
use signaling::{Delivery, Envelope, Recipients, RoomFanout};
use std::sync::Arc;
use std::time::Duration;

fn broker(redis: &RedisServer, node: &str) -> Broker {
    let mut config = ClusterConfig::new(redis.url(), node, format!("http://{node}.test"));
    config.node_ttl = Duration::from_millis(600);
    config.heartbeat = Duration::from_millis(100);
    config.command_timeout = Duration::from_millis(500);
    Broker::new(config).unwrap()
}

fn member(node: &str, client: &str, seat: &str, counted: bool) -> Member {
    Member {
        node: node.into(),
        client_id: client.into(),
        seat_key: seat.into(),
        counted,
        info: serde_json::json!({ "name": client }),
        shard: 0,
        stage: false,
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_claims_over_three_nodes_never_overfill_a_room() {
    let redis = RedisServer::start();
    let nodes: Vec<Seats> = ["a", "b", "c"].iter().map(|n| Seats::new(broker(&redis, n))).collect();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let seats = nodes[i % 3].clone();
        let node = ["a", "b", "c"][i % 3];
        tasks.push(tokio::spawn(async move {
            let request = ClaimRequest {
                room: 42,
                capacity: 100,
                // 900 distinct tickets, 100 of them joining twice (a second device).
                member: member(node, &format!("client-{i}"), &format!("ticket-{}", i % 900), true),
                placement: Default::default(),
            };
            seats.claim(&request).await.unwrap()
        }));
    }
    let mut granted = 0;
    let mut full = 0;
    for task in tasks {
        match task.await.unwrap() {
            Claim::Granted { .. } => granted += 1,
            Claim::Full { capacity } => {
                assert_eq!(capacity, 100);
                full += 1
            }
        }
    }
    let counted = nodes[0].counted(42).await.unwrap();
    let members = nodes[1].members(42).await.unwrap();
    assert_eq!(counted, 100, "counted seats");
    assert_eq!(members.len(), 100, "one member per seat: {granted} granted, {full} full");
    let mut seats: Vec<_> = members.iter().map(|m| m.seat_key.clone()).collect();
    seats.sort();
    seats.dedup();
    assert_eq!(seats.len(), 100, "no seat held twice");
    assert!(granted >= 100 && full >= 800, "granted {granted}, full {full}");
    // Hosts don't count: one more host gets in although the room is full.
    let host = ClaimRequest {
        room: 42,
        capacity: 100,
        member: member("a", "host", "creator", false),
        placement: Default::default(),
    };
    assert_eq!(nodes[0].claim(&host).await.unwrap(), Claim::Granted { superseded: None, placed: Placed::default() });
    assert_eq!(nodes[0].counted(42).await.unwrap(), 100);
}

#[tokio::test]
async fn a_newer_session_supersedes_the_older_on_another_node_and_the_older_release_changes_nothing() {
    let redis = RedisServer::start();
    let (a, b) = (Seats::new(broker(&redis, "a")), Seats::new(broker(&redis, "b")));
    let first = member("a", "c1", "ticket-1", true);
    let granted = a
        .claim(&ClaimRequest { room: 1, capacity: 1, member: first.clone(), placement: Default::default() })
        .await
        .unwrap();
    assert_eq!(granted, Claim::Granted { superseded: None, placed: Placed::default() });
    // The room is full for another ticket...
    let other = ClaimRequest {
        room: 1,
        capacity: 1,
        member: member("b", "c9", "ticket-9", true),
        placement: Default::default(),
    };
    assert_eq!(b.claim(&other).await.unwrap(), Claim::Full { capacity: 1 });
    // ...but the same ticket on node b takes its seat over, and node a learns whom to close.
    let second = ClaimRequest {
        room: 1,
        capacity: 1,
        member: member("b", "c2", "ticket-1", true),
        placement: Default::default(),
    };
    assert_eq!(b.claim(&second).await.unwrap(), Claim::Granted { superseded: Some(first), placed: Placed::default() });
    assert!(!a.release(1, "c1").await.unwrap(), "the superseded connection frees nothing");
    assert_eq!(b.counted(1).await.unwrap(), 1);
    let members = a.members(1).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].node.as_str(), members[0].client_id.as_str()), ("b", "c2"));
    // Only the holder's node releases it, and then the seat is free.
    assert!(!a.release(1, "c2").await.unwrap());
    assert!(b.release(1, "c2").await.unwrap());
    assert_eq!(b.counted(1).await.unwrap(), 0);
    assert_eq!(b.claim(&other).await.unwrap(), Claim::Granted { superseded: None, placed: Placed::default() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_claimed_by_exactly_one_survivor_which_takes_its_seats_back() {
    let redis = RedisServer::start();
    let (a, b, c) = (broker(&redis, "a"), broker(&redis, "b"), broker(&redis, "c"));
    let (nodes_a, nodes_b, nodes_c) = (Nodes::new(a.clone()), Nodes::new(b.clone()), Nodes::new(c.clone()));
    for (nodes, load) in [(&nodes_a, 2), (&nodes_b, 1), (&nodes_c, 0)] {
        nodes.heartbeat(load).await.unwrap();
    }
    let live = nodes_b.live().await.unwrap();
    assert_eq!(live.len(), 3);
    assert_eq!(Nodes::least_loaded(&live).unwrap().id, "c");
    assert_eq!(live.iter().find(|n| n.id == "a").unwrap().public_url, "http://a.test");

    let seats_a = Seats::new(a.clone());
    for (room, client) in [(1, "a1"), (1, "a2"), (2, "a3")] {
        let request = ClaimRequest {
            room,
            capacity: 10,
            member: member("a", client, client, true),
            placement: Default::default(),
        };
        seats_a.claim(&request).await.unwrap();
    }
    let request =
        ClaimRequest { room: 1, capacity: 10, member: member("b", "b1", "b1", true), placement: Default::default() };
    Seats::new(b.clone()).claim(&request).await.unwrap();

    // b and c keep beating; a stops (SIGKILL). b and c both look for dead nodes, repeatedly.
    let started = tokio::time::Instant::now();
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (nodes, name) in [(nodes_b.clone(), "b"), (nodes_c.clone(), "c")] {
        let claimed = claimed.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..30 {
                nodes.heartbeat(0).await.unwrap();
                for dead in nodes.claim_dead(8).await.unwrap() {
                    claimed.lock().push((name, dead));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let claimed = claimed.lock().clone();
    assert_eq!(claimed.len(), 1, "exactly one claim: {claimed:?}");
    let (claimer, dead) = &claimed[0];
    assert_eq!(dead.id, "a");
    assert!(started.elapsed() < Duration::from_secs(3));
    let claimer = if *claimer == "b" { b.clone() } else { c.clone() };
    let mut evicted = Seats::new(claimer).evict_node(&dead.id).await.unwrap();
    evicted.sort_by(|x, y| x.member.client_id.cmp(&y.member.client_id));
    let rooms: Vec<_> = evicted.iter().map(|e| (e.room, e.member.client_id.as_str())).collect();
    assert_eq!(rooms, vec![(1, "a1"), (1, "a2"), (2, "a3")]);
    let seats = Seats::new(b.clone());
    assert_eq!(seats.counted(1).await.unwrap(), 1);
    assert_eq!(seats.counted(2).await.unwrap(), 0);
    assert_eq!(seats.members(1).await.unwrap().len(), 1);
    assert!(!nodes_b.live().await.unwrap().iter().any(|n| n.id == "a"));
    // A second eviction finds nothing.
    assert!(seats.evict_node("a").await.unwrap().is_empty());
}

type Received = Arc<Mutex<Vec<Inbound>>>;

fn recording_relay(broker: Broker) -> (Arc<Relay>, Received) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let relay = Relay::start(broker, Arc::new(move |inbound| sink.lock().push(inbound)));
    (relay, received)
}

fn relayed(received: &Received) -> Vec<(i64, Envelope)> {
    received
        .lock()
        .iter()
        .filter_map(|i| match i {
            Inbound::Relay { room, envelope } => Some((*room, envelope.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_reach_the_other_nodes_of_the_room_in_order_and_never_echo() {
    let redis = RedisServer::start();
    let (relay_a, received_a) = recording_relay(broker(&redis, "a"));
    let (relay_b, received_b) = recording_relay(broker(&redis, "b"));
    let (relay_c, received_c) = recording_relay(broker(&redis, "c"));
    relay_a.watch_room(7);
    relay_b.watch_room(7);
    relay_c.watch_room(8);
    wait_until("subscriptions", || relay_a.broker().stats().is_broker_up() && relay_b.broker().stats().is_broker_up())
        .await;
    // Subscriptions are asynchronous: publish a probe until b hears it.
    let fanout = RedisFanout::new(relay_a.clone());
    let probe =
        Envelope { to: Recipients::All, delivery: Delivery::Unguaranteed, payload: Bytes::from_static(b"probe") };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while relayed(&received_b).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "b never heard room 7");
        fanout.publish(7, probe.clone(), &|_| {});
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    received_b.lock().clear();

    let locally = Arc::new(Mutex::new(0usize));
    let mut sent = Vec::new();
    for i in 0..2000 {
        let to = match i % 3 {
            0 => Recipients::All,
            1 => Recipients::AllExcept(format!("sender-{}", i % 5).into()),
            _ => Recipients::One(format!("peer-{}", i % 7).into()),
        };
        let delivery = if i % 4 == 0 { Delivery::Guaranteed } else { Delivery::Unguaranteed };
        let envelope = Envelope { to, delivery, payload: Bytes::from(format!("{{\"n\":{i}}}")) };
        let locally = locally.clone();
        fanout.publish(7, envelope.clone(), &move |_| *locally.lock() += 1);
        sent.push(envelope);
    }
    assert_eq!(*locally.lock(), 2000, "local peers get every envelope at once");
    wait_until("2000 envelopes on b", || relayed(&received_b).len() >= 2000).await;
    let got: Vec<Envelope> = relayed(&received_b)
        .into_iter()
        .map(|(room, e)| {
            assert_eq!(room, 7);
            e
        })
        .collect();
    assert_eq!(got, sent, "every envelope, in the order published");
    assert!(relayed(&received_a).is_empty(), "a node never receives its own envelopes");
    assert!(relayed(&received_c).is_empty(), "c has no peer in room 7");
    assert_eq!(cluster::ClusterStats::get(&relay_b.broker().stats().gaps), 0);

    // After b's last peer of room 7 leaves, b stops receiving it.
    relay_b.unwatch_room(7);
    relay_c.watch_room(7);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !relayed(&received_c).iter().any(|(room, _)| *room == 7) {
        assert!(tokio::time::Instant::now() < deadline, "c never heard room 7");
        fanout.publish(7, probe.clone(), &|_| {});
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = relayed(&received_b).len();
    for _ in 0..50 {
        fanout.publish(7, probe.clone(), &|_| {});
    }
    wait_until("c hears 50 more", || relayed(&received_c).len() >= 50).await;
    assert_eq!(relayed(&received_b).len(), before, "b unsubscribed");
}

#[tokio::test]
async fn control_messages_reach_the_node_they_name() {
    let redis = RedisServer::start();
    let (relay_a, _) = recording_relay(broker(&redis, "a"));
    let (relay_b, received_b) = recording_relay(broker(&redis, "b"));
    let close = Control::Close { room: 3, client_id: "c1".into(), code: 4000, reason: "superseded".into() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !relay_a.send_control("b", &close).await.unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "b never subscribed to its control channel");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until("b's control message", || !received_b.lock().is_empty()).await;
    assert!(matches!(&received_b.lock()[0], Inbound::Control(c) if *c == close));
    assert!(!relay_b.send_control("nobody", &close).await.unwrap(), "no node listens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_going_away_drops_only_cross_node_traffic_and_the_relay_resumes_when_it_returns() {
    let mut redis = RedisServer::start();
    let (relay_a, _) = recording_relay(broker(&redis, "a"));
    let (relay_b, received_b) = recording_relay(broker(&redis, "b"));
    relay_a.watch_room(5);
    relay_b.watch_room(5);
    let fanout = RedisFanout::new(relay_a.clone());
    let envelope =
        |n: u32| Envelope { to: Recipients::All, delivery: Delivery::Guaranteed, payload: Bytes::from(format!("{n}")) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while relayed(&received_b).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "b never heard room 5");
        fanout.publish(5, envelope(0), &|_| {});
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    redis.kill();
    let seats = Seats::new(relay_a.broker().clone());
    let claim =
        ClaimRequest { room: 5, capacity: 3, member: member("a", "x", "x", true), placement: Default::default() };
    assert!(seats.claim(&claim).await.is_err(), "a claim fails while the broker is away (no panic, no hang)");
    wait_until("a sees the broker down", || !relay_a.broker().stats().is_broker_up()).await;
    let delivered_locally = std::cell::Cell::new(0);
    for n in 1..=100 {
        fanout.publish(5, envelope(n), &|_| delivered_locally.set(delivered_locally.get() + 1));
    }
    assert_eq!(delivered_locally.get(), 100, "local peers are still served");
    assert!(
        cluster::ClusterStats::get(&relay_a.broker().stats().dropped) > 0,
        "cross-node envelopes are counted as dropped"
    );

    redis.restart();
    wait_until("b resubscribes", || received_b.lock().iter().any(|i| matches!(i, Inbound::Resubscribed))).await;
    let before = relayed(&received_b).len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while relayed(&received_b).len() == before {
        assert!(tokio::time::Instant::now() < deadline, "relay never resumed");
        fanout.publish(5, envelope(1000), &|_| {});
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seats.claim(&claim).await.is_ok(), "claims work again");
    assert!(relay_a.broker().stats().is_broker_up());
}

#[tokio::test]
async fn a_rate_limit_is_shared_by_every_node() {
    let redis = RedisServer::start();
    let (a, b) = (broker(&redis, "a"), broker(&redis, "b"));
    let (limit_a, limit_b) = (SharedLimiter::new(a, "access", 1.0, 5), SharedLimiter::new(b, "access", 1.0, 5));
    let mut allowed = 0;
    let mut retry = Duration::ZERO;
    for i in 0..20 {
        let limiter = if i % 2 == 0 { &limit_a } else { &limit_b };
        match limiter.check("203.0.113.7").await.unwrap() {
            Decision::Allow => allowed += 1,
            Decision::Deny { retry_after } => retry = retry_after,
        }
    }
    assert_eq!(allowed, 5, "the burst, once, whichever node is asked");
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(1), "retry after {retry:?}");
    assert_eq!(limit_b.check("198.51.100.1").await.unwrap(), Decision::Allow, "keys are separate");
}

fn attendee(room: i64, node: &str, client: &str, shard_size: u32, group: Option<&str>) -> ClaimRequest {
    ClaimRequest {
        room,
        capacity: 1000,
        member: member(node, client, &format!("ticket-{client}"), true),
        placement: SeatPlacement { shard_size, group: group.map(str::to_owned), ..Default::default() },
    }
}

fn placed_at(claim: &Claim) -> Placed {
    match claim {
        Claim::Granted { placed, .. } => *placed,
        Claim::Full { .. } => panic!("refused: {claim:?}"),
    }
}

/// Attendees off stage per shard according to the roster, which the shard table must always equal.
async fn roster_counts(seats: &Seats, room: i64) -> Vec<(u32, u32)> {
    let mut counts = std::collections::BTreeMap::<u32, u32>::new();
    for m in seats.members(room).await.unwrap() {
        if m.counted && !m.stage {
            *counts.entry(m.shard).or_default() += 1;
        }
    }
    counts.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_over_three_nodes_never_overfill_a_shard_and_releases_and_a_dead_node_give_places_back() {
    let redis = RedisServer::start();
    let brokers: Vec<Broker> = ["a", "b", "c"].iter().map(|n| broker(&redis, n)).collect();
    let nodes: Vec<Seats> = brokers.iter().map(|b| Seats::new(b.clone())).collect();
    let placements = Placements::new(brokers[0].clone());
    let mut tasks = Vec::new();
    for i in 0..300 {
        let seats = nodes[i % 3].clone();
        let node = ["a", "b", "c"][i % 3];
        tasks.push(tokio::spawn(async move {
            // Every fifth joiner comes with one of five groups; some tickets join twice (a second device).
            let group = (i % 5 == 0).then(|| format!("g{}", i % 25));
            let client = format!("c{i}");
            let mut request = attendee(9, node, &client, 3, group.as_deref());
            request.member.seat_key = format!("ticket-{}", i % 280);
            seats.claim(&request).await.unwrap()
        }));
    }
    for task in tasks {
        placed_at(&task.await.unwrap());
    }
    let occupancy = placements.occupancy(9).await.unwrap();
    assert!(occupancy.iter().all(|(_, n)| *n <= 3), "a shard overfilled: {occupancy:?}");
    assert_eq!(occupancy.iter().map(|(_, n)| n).sum::<u32>(), 280, "one place per seat");
    assert_eq!(occupancy, roster_counts(&nodes[0], 9).await, "the table is the roster's");
    // Filling the fullest shard first leaves at most one shard with room.
    assert!(occupancy.iter().filter(|(_, n)| *n < 3).count() <= 1, "{occupancy:?}");

    // Node b's peers leave one by one, node c dies: the table follows the roster all along.
    for m in nodes[1].members(9).await.unwrap().into_iter().filter(|m| m.node == "b").take(40) {
        assert!(nodes[1].release(9, &m.client_id).await.unwrap());
    }
    assert_eq!(placements.occupancy(9).await.unwrap(), roster_counts(&nodes[0], 9).await);
    let evicted = nodes[0].evict_node("c").await.unwrap();
    assert!(!evicted.is_empty());
    let after = placements.occupancy(9).await.unwrap();
    assert_eq!(after, roster_counts(&nodes[0], 9).await);
    assert_eq!(after.iter().map(|(_, n)| n).sum::<u32>() as usize, nodes[0].members(9).await.unwrap().len());
    // Joiners fill the holes before any new shard opens.
    let open_before = after.len();
    let holes: u32 = after.iter().map(|(_, n)| 3 - n).sum();
    for i in 0..holes {
        placed_at(
            &nodes[i as usize % 2]
                .claim(&attendee(9, ["a", "b"][i as usize % 2], &format!("late{i}"), 3, None))
                .await
                .unwrap(),
        );
    }
    let filled = placements.occupancy(9).await.unwrap();
    assert_eq!(filled.len(), open_before, "no shard opened while others had room: {filled:?}");
    assert!(filled.iter().all(|(_, n)| *n == 3), "{filled:?}");
}

#[tokio::test]
async fn groups_stay_together_a_superseding_session_keeps_its_place_and_moves_follow_the_rules() {
    let redis = RedisServer::start();
    let (a, b) = (broker(&redis, "a"), broker(&redis, "b"));
    let (seats_a, seats_b) = (Seats::new(a.clone()), Seats::new(b.clone()));
    let placements = Placements::new(b.clone());
    let room = 3;
    // Two strangers fill shard 0 (size 2); friends on two nodes land together in shard 1.
    for (seats, node, client) in [(&seats_a, "a", "s1"), (&seats_b, "b", "s2")] {
        assert_eq!(placed_at(&seats.claim(&attendee(room, node, client, 2, None)).await.unwrap()).shard, 0);
    }
    let f1 = placed_at(&seats_a.claim(&attendee(room, "a", "f1", 2, Some("friends"))).await.unwrap());
    let f2 = placed_at(&seats_b.claim(&attendee(room, "b", "f2", 2, Some("friends"))).await.unwrap());
    assert_eq!((f1.shard, f2.shard), (1, 1));
    // A host is on the stage and takes no room.
    let mut host = attendee(room, "a", "host", 2, None);
    host.member.counted = false;
    host.placement.stage = true;
    assert!(placed_at(&seats_a.claim(&host).await.unwrap()).stage);
    assert_eq!(placements.occupancy(room).await.unwrap(), [(0, 2), (1, 2)]);

    // f1's ticket on node b: the new session keeps shard 1 although it is full.
    let mut again = attendee(room, "b", "f1-again", 2, None);
    again.member.seat_key = "ticket-f1".into();
    let claim = seats_b.claim(&again).await.unwrap();
    assert!(matches!(&claim, Claim::Granted { superseded: Some(old), .. } if old.client_id == "f1"));
    assert_eq!(placed_at(&claim), Placed { shard: 1, stage: false });
    assert_eq!(placements.occupancy(room).await.unwrap(), [(0, 2), (1, 2)]);

    // Moves: to a full shard refused; to the next closed one allowed, not to an arbitrary one.
    assert_eq!(placements.switch_shard(room, "s1", Some(1)).await.unwrap(), Err(signaling::ShardError::ShardFull(1)));
    assert_eq!(placements.switch_shard(room, "s1", Some(5)).await.unwrap(), Err(signaling::ShardError::NoSuchShard(5)));
    let moved = placements.switch_shard(room, "s1", None).await.unwrap().unwrap();
    assert_eq!((moved.placed, moved.changed), (Placed { shard: 2, stage: false }, true));
    assert_eq!(placements.occupancy(room).await.unwrap(), [(0, 1), (1, 2), (2, 1)]);
    // On stage: out of shard 2 (closed); off stage: back to shard 2 if it had room, else where a join goes.
    let on = placements.set_stage(room, "s1", true).await.unwrap().unwrap();
    assert_eq!(on.placed, Placed { shard: 2, stage: true });
    assert_eq!(placements.occupancy(room).await.unwrap(), [(0, 1), (1, 2)]);
    let off = placements.set_stage(room, "s1", false).await.unwrap().unwrap();
    assert_eq!(off.placed, Placed { shard: 2, stage: false });
    assert_eq!(placements.set_stage(room, "host", false).await.unwrap(), Err(signaling::ShardError::Forbidden));
    assert_eq!(placements.switch_shard(room, "nobody", None).await.unwrap(), Err(signaling::ShardError::NotInRoom));
    assert_eq!(placements.occupancy(room).await.unwrap(), roster_counts(&seats_a, room).await);
}
