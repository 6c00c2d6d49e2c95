//! Resuming after a drop and the rooms' persistent entities, driven as the gateway drives the crate: the
//! resume window runs on tokio's paused clock, so its end is exact and no test sleeps.

use serde_json::{json, Value};
use signaling::{
    Admission, EntityChange, Hub, LeaveReason, Outbound, Outbox, Peer, Resume, ResumeError, Role, RoomEventKind,
    SignalingConfig,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn admission(room_id: i64, client: &str) -> Admission {
    Admission {
        room_id,
        client_id: client.into(),
        identity: format!("0x{client}"),
        role: Role::Attendee,
        seat_key: format!("seat-{client}"),
        capacity: 10,
    }
}

fn hub() -> Hub {
    Hub::builder(SignalingConfig::default())
        .resume_issuer(|info: &signaling::PeerInfo| Some(format!("token-{}", info.client_id)))
        .build()
}

fn join(hub: &Hub, client: &str) -> (Peer, Outbox) {
    hub.try_admit(admission(1, client)).unwrap()
}

/// Every text frame waiting, parsed (a close frame ends the list).
fn drain(outbox: &mut Outbox) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Some(Outbound::Text(bytes)) = outbox.try_recv() {
        frames.push(serde_json::from_slice(&bytes).unwrap());
    }
    frames
}

fn send(peer: &mut Peer, frame: Value) {
    assert!(peer.handle_text(&frame.to_string()).is_continue());
}

fn resume(client: &str, received: u64) -> Resume {
    Resume { room_id: 1, client_id: client.into(), seat_key: format!("seat-{client}"), received }
}

fn chats(frames: &[Value]) -> Vec<String> {
    frames.iter().filter(|f| f["type"] == "chat").map(|f| f["text"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_drop_keeps_the_seat_and_the_resume_replays_what_was_missed_exactly_once() {
    let hub = hub();
    let mut events = hub.subscribe();
    let (a, mut a_out) = join(&hub, "a");
    let (mut b, mut b_out) = join(&hub, "b");
    let welcome = drain(&mut a_out);
    assert_eq!(welcome[0]["resume_token"], "token-a");
    assert_eq!(welcome[0]["resume_window_secs"], 30);
    drain(&mut b_out);
    // A read the welcome and peer_joined (2 frames); then two chats are written to a socket that dies.
    send(&mut b, json!({"type": "chat", "text": "one"}));
    send(&mut b, json!({"type": "chat", "text": "two"}));
    assert_eq!(chats(&drain(&mut a_out)), ["one", "two"]);
    drop(a_out);
    a.suspend(LeaveReason::Left);
    let reconnecting = drain(&mut b_out);
    assert_eq!(reconnecting.last().unwrap()["type"], "peer_reconnecting", "{reconnecting:?}");
    // While away: a guaranteed chat waits, an unguaranteed update is dropped.
    send(&mut b, json!({"type": "chat", "text": "three"}));
    send(&mut b, json!({"type": "broadcast", "data_type": "u", "data": {}, "guaranteed": false}));
    tokio::time::advance(Duration::from_secs(20)).await;
    // A had read only the welcome and peer_joined, and the chats sent meanwhile follow once each, in order.
    let resumed = hub.try_resume(resume("a", 2)).unwrap();
    assert_eq!(resumed.replayed, 3, "one and two (lost in flight), then three (queued while away)");
    let (mut a, mut a_out) = (resumed.peer, resumed.outbox);
    let frames = drain(&mut a_out);
    assert_eq!(frames[0]["type"], "resumed");
    assert_eq!(frames[0]["client_id"], "a");
    assert_eq!(frames[0]["resume_token"], "token-a");
    assert_eq!(chats(&frames), ["one", "two", "three"]);
    assert!(frames.iter().all(|f| f["type"] != "broadcast"), "unguaranteed frames are not kept: {frames:?}");
    assert_eq!(drain(&mut b_out).last().unwrap()["type"], "peer_resumed");
    // Live traffic continues on the same client id; nobody saw a leave or a join.
    send(&mut a, json!({"type": "chat", "text": "back"}));
    assert_eq!(drain(&mut b_out).last().unwrap()["from"], "a");
    let mut kinds = Vec::new();
    while let Ok(event) = events.try_recv() {
        kinds.push(event.kind);
    }
    assert!(kinds.iter().all(|k| !matches!(k, RoomEventKind::Left { .. })), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| matches!(k, RoomEventKind::Joined)).count(), 2);
    let stats = hub.stats_snapshot();
    assert_eq!((stats.resumes_succeeded, stats.frames_replayed, stats.peers), (1, 3, 2));
}

#[tokio::test(start_paused = true)]
async fn after_the_window_the_seat_is_released_as_of_the_drop() {
    let hub = hub();
    let mut events = hub.subscribe();
    let (a, a_out) = join(&hub, "a");
    let (_b, mut b_out) = join(&hub, "b");
    drop(a_out);
    let dropped_at = signaling::now_ms();
    a.suspend(LeaveReason::TimedOut);
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(hub.occupancy(1).unwrap().attendees, 2, "the seat is held within the window");
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::task::yield_now().await;
    assert_eq!(hub.occupancy(1).unwrap().attendees, 1, "the seat is free after it");
    let left = drain(&mut b_out).into_iter().find(|f| f["type"] == "peer_left").expect("peer_left after the window");
    assert_eq!((left["client_id"].as_str(), left["reason"].as_str()), (Some("a"), Some("timed_out")));
    let left =
        std::iter::from_fn(|| events.try_recv().ok()).find(|e| matches!(e.kind, RoomEventKind::Left { .. })).unwrap();
    assert!((left.at_ms - dropped_at).abs() < 1000, "the session ends when the peer was last seen");
    assert_eq!(hub.try_resume(resume("a", 2)).unwrap_err(), ResumeError::Gone);
    assert_eq!(hub.stats_snapshot().resumes_expired, 1);
}

#[tokio::test(start_paused = true)]
async fn a_resume_supersedes_a_live_connection_and_kicks_end_the_right_to_resume() {
    let hub = hub();
    let (_a, mut a_out) = join(&hub, "a");
    let (_b, mut b_out) = join(&hub, "b");
    drain(&mut a_out);
    drain(&mut b_out);
    // The client saw the drop first: its old connection still looks alive here and is closed with 4000.
    let resumed = hub.try_resume(resume("a", 2)).unwrap();
    assert_eq!(a_out.try_recv(), Some(Outbound::Close(signaling::CloseCode::Superseded.into())));
    assert!(drain(&mut b_out).is_empty(), "others see nothing: {:?}", drain(&mut b_out));
    assert_eq!(hub.occupancy(1).unwrap().attendees, 2);
    // Claiming to have read more than was written, or a seat that is not the token's, is refused.
    let wrong_seat = Resume { seat_key: "seat-b".into(), ..resume("a", 3) };
    assert_eq!(hub.try_resume(wrong_seat).unwrap_err(), ResumeError::WrongSeat);
    // A kick ends the session: no resume after it.
    drop(resumed.outbox);
    resumed.peer.suspend(LeaveReason::Left);
    assert!(hub.kick(1, "a"));
    assert_eq!(hub.try_resume(resume("a", 3)).unwrap_err(), ResumeError::Gone);
}

#[tokio::test(start_paused = true)]
async fn an_away_peer_that_is_owed_too_much_is_released() {
    let config = SignalingConfig { replay_frames: 3, ..SignalingConfig::default() };
    let hub = Hub::new(config);
    let (a, a_out) = join(&hub, "a");
    let (mut b, _b_out) = join(&hub, "b");
    drop(a_out);
    a.suspend(LeaveReason::Left);
    for i in 0..4 {
        send(&mut b, json!({"type": "chat", "text": format!("{i}")}));
    }
    assert_eq!(hub.occupancy(1).unwrap().attendees, 1, "the replay buffer is bounded");
    assert_eq!(hub.try_resume(resume("a", 2)).unwrap_err(), ResumeError::Gone);
}

#[tokio::test(start_paused = true)]
async fn a_resume_claiming_more_than_was_written_ends_the_session() {
    let hub = hub();
    let (a, a_out) = join(&hub, "a");
    drop(a_out);
    a.suspend(LeaveReason::Left);
    assert_eq!(hub.try_resume(resume("a", 999)).unwrap_err(), ResumeError::Gap);
    assert!(hub.occupancy(1).is_none(), "the session ended and the room with it");
}

#[test]
fn persistent_entities_are_kept_merged_removed_and_sent_to_joiners_first() {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let sink = changes.clone();
    let hub = Hub::builder(SignalingConfig::default())
        .entity_sink(move |room: i64, change: EntityChange| sink.lock().unwrap().push((room, change)))
        .build();
    let (mut a, _a_out) = join(&hub, "a");
    let box_u = json!({"networkId": "box", "owner": "a", "creator": "a", "lastOwnerTime": 5, "template": "#box",
        "persistent": true, "isFirstSync": true, "components": {"0": {"x": 0, "y": 0, "z": 0}, "1": "red"}});
    send(&mut a, json!({"type": "broadcast", "data_type": "u", "data": box_u}));
    // An avatar (not persistent) is relayed but not kept.
    send(
        &mut a,
        json!({"type": "broadcast", "data_type": "u", "data": {"networkId": "avatar", "owner": "a", "persistent": false, "components": {}}}),
    );
    // Moved by its owner in an `um`; a stale update from an older owner is ignored, as NAF ignores it.
    send(
        &mut a,
        json!({"type": "broadcast", "data_type": "um", "data": {"d": [{"networkId": "box", "owner": "a", "lastOwnerTime": 5, "persistent": true, "components": {"0": {"x": 2, "y": 0, "z": -1}}}]}}),
    );
    send(
        &mut a,
        json!({"type": "broadcast", "data_type": "u", "data": {"networkId": "box", "owner": "zz", "lastOwnerTime": 1, "persistent": true, "components": {"1": "blue"}}}),
    );
    drop(a);
    // A late joiner gets the box where a left it, in one snapshot right after its welcome.
    let (_c, mut c_out) = join(&hub, "c");
    let frames = drain(&mut c_out);
    assert_eq!(frames[0]["type"], "welcome");
    assert_eq!(frames[1]["type"], "snapshot");
    let entities = frames[1]["entities"].as_array().unwrap();
    assert_eq!(entities.len(), 1, "{entities:?}");
    assert_eq!(entities[0]["networkId"], "box");
    assert_eq!(entities[0]["isFirstSync"], true);
    assert_eq!(entities[0]["components"], json!({"0": {"x": 2, "y": 0, "z": -1}, "1": "red"}));
    // Ownership passes to c with a newer lastOwnerTime; then a removal forgets the box.
    let (mut c, _) = (_c, c_out);
    send(
        &mut c,
        json!({"type": "broadcast", "data_type": "u", "data": {"networkId": "box", "owner": "c", "lastOwnerTime": 9, "persistent": true, "components": {}}}),
    );
    assert_eq!(hub.persistent_entities(1)[0]["owner"], "c");
    send(&mut c, json!({"type": "broadcast", "data_type": "r", "data": {"networkId": "box"}}));
    assert!(hub.persistent_entities(1).is_empty());
    let changes = changes.lock().unwrap();
    assert!(
        matches!(changes.last(), Some((1, EntityChange::Removed { network_id })) if network_id == "box"),
        "{changes:?}"
    );
    assert_eq!(changes.len(), 4, "kept, moved, owner changed, removed: {changes:?}");
}

#[test]
fn a_room_keeps_a_bounded_number_of_persistent_entities_and_loads_stored_ones() {
    let config = SignalingConfig { max_persistent_entities: 2, ..SignalingConfig::default() };
    let hub = Hub::new(config);
    assert!(!hub.entities_loaded(1));
    hub.load_entities(1, vec![json!({"networkId": "stored", "owner": "x", "persistent": true, "components": {}})]);
    assert!(hub.entities_loaded(1));
    let (mut a, mut a_out) = join(&hub, "a");
    assert_eq!(drain(&mut a_out)[1]["entities"][0]["networkId"], "stored");
    send(
        &mut a,
        json!({"type": "broadcast", "data_type": "u", "data": {"networkId": "one", "owner": "a", "persistent": true, "components": {}}}),
    );
    send(
        &mut a,
        json!({"type": "broadcast", "data_type": "u", "data": {"networkId": "two", "owner": "a", "persistent": true, "components": {}}}),
    );
    let refused = drain(&mut a_out);
    assert_eq!(refused.last().unwrap()["type"], "error", "{refused:?}");
    assert_eq!(refused.last().unwrap()["code"], "invalid");
    assert_eq!(hub.persistent_entities(1).len(), 2);
}

/// What resuming costs a peer in memory: the ring of the last frames written while connected, and the frames
/// kept while away, are both bounded by configuration. Prints the figures docs/PROTOCOL.md quotes.
#[tokio::test(start_paused = true)]
async fn the_replay_buffer_is_bounded_per_peer() {
    let config = SignalingConfig { messages_per_second: 1_000_000, burst: 1_000_000, ..SignalingConfig::default() };
    let (unacked, replay) = (config.unacked_frames, config.replay_frames);
    let hub = Hub::new(config);
    let (a, mut a_out) = join(&hub, "a");
    let (mut b, _b_out) = join(&hub, "b");
    // A typical NAF position update for one avatar (head position and rotation), as the adapter sends it.
    let update = json!({"type": "broadcast", "data_type": "um", "guaranteed": false, "data": {"d": [{"networkId": "naf-abcdefgh",
        "owner": "0123456789abcdef0123456789abcdef", "creator": "0123456789abcdef0123456789abcdef", "lastOwnerTime": 1795603789489u64,
        "template": "#avatar-template", "persistent": false, "parent": null,
        "components": {"0": {"x": 1.234, "y": 1.6, "z": -0.5}, "1": {"x": 0, "y": 12.5, "z": 0}}}]}});
    for _ in 0..1000 {
        send(&mut b, update.clone());
        drain(&mut a_out); // written: kept in the ring in case a drop loses them
    }
    let (frames, bytes) = hub.held_frames(1, "a").unwrap();
    assert_eq!(frames, unacked, "the ring keeps the last {unacked} frames written, no more");
    let frame_len = bytes / frames;
    let handles = frames * std::mem::size_of::<bytes::Bytes>();
    eprintln!("connected peer: {frames} frames kept, {bytes} payload bytes ({frame_len} B each, shared with the other recipients) + {handles} B of handles");
    // Away: unguaranteed frames are not kept; guaranteed ones up to `replay_frames`.
    drop(a_out);
    a.suspend(LeaveReason::Left);
    for i in 0..replay {
        send(&mut b, json!({"type": "broadcast", "data_type": "r", "data": {"networkId": format!("n{i:06}")}}));
        send(&mut b, update.clone());
    }
    let (frames_away, bytes_away) = hub.held_frames(1, "a").unwrap();
    assert_eq!(frames_away, unacked + replay, "the ring plus {replay} guaranteed frames, no unguaranteed ones");
    let handles_away = unacked * std::mem::size_of::<bytes::Bytes>()
        + replay * std::mem::size_of::<(bytes::Bytes, signaling::Delivery)>();
    eprintln!("away peer at its limit: {frames_away} frames, {bytes_away} payload bytes + {handles_away} B of handles");
    // One more guaranteed frame ends the session: the bound holds.
    send(&mut b, json!({"type": "chat", "text": "one too many"}));
    assert!(hub.held_frames(1, "a").is_none());
}

/// Another node's peer creates, moves and removes a persistent entity: this node keeps it for its own joiners'
/// snapshots, as on one node, but does not store it again (the sender's node did).
#[test]
fn persistent_entities_relayed_from_another_node_reach_this_node_s_joiners_without_being_stored_twice() {
    use signaling::{Delivery, Envelope, Recipients};
    let changes = Arc::new(Mutex::new(Vec::new()));
    let sink = changes.clone();
    let hub = Hub::builder(SignalingConfig::default())
        .entity_sink(move |room: i64, change: EntityChange| sink.lock().unwrap().push((room, change)))
        .build();
    let (_b, _b_out) = join(&hub, "b");
    // As the sending node encodes a relayed broadcast (`type` first).
    let remote = |data_type: &str, data: Value| {
        let payload = format!(r#"{{"type":"broadcast","from":"a","data_type":"{data_type}","data":{data}}}"#);
        let envelope =
            Envelope { to: Recipients::AllExcept("a".into()), delivery: Delivery::Guaranteed, payload: payload.into() };
        hub.deliver_remote(1, &envelope);
    };
    let box_u = json!({"networkId": "box", "owner": "a", "creator": "a", "lastOwnerTime": 5, "template": "#box",
        "persistent": true, "isFirstSync": true, "components": {"0": {"x": 0, "y": 0, "z": 0}}});
    remote("u", box_u);
    remote(
        "um",
        json!({"d": [{"networkId": "box", "owner": "a", "lastOwnerTime": 5, "persistent": true,
        "components": {"0": {"x": 3, "y": 0, "z": 0}}}]}),
    );
    // An avatar's update says nothing about entities and keeps nothing.
    remote("u", json!({"networkId": "avatar", "owner": "a", "components": {}}));
    let (_c, mut c_out) = join(&hub, "c");
    let frames = drain(&mut c_out);
    assert_eq!(frames[1]["type"], "snapshot", "{frames:?}");
    let entities = frames[1]["entities"].as_array().unwrap();
    assert_eq!(entities.len(), 1, "{entities:?}");
    assert_eq!(entities[0]["components"]["0"], json!({"x": 3, "y": 0, "z": 0}));
    remote("r", json!({"networkId": "box"}));
    assert!(hub.persistent_entities(1).is_empty());
    assert!(changes.lock().unwrap().is_empty(), "stored by the sender's node only: {:?}", changes.lock().unwrap());
}
