//! Drives the crate the way the gateway does: admit, feed text frames, read outboxes.

use serde_json::{json, Value};
use signaling::{
    Admission, AdmitError, CloseFrame, Hub, LeaveReason, Outbound, Outbox, Peer, Role, RoomEventKind, SignalingConfig,
};
use std::ops::ControlFlow;

fn admission(room_id: i64, client: &str, role: Role, seat: &str, capacity: u32) -> Admission {
    Admission {
        room_id,
        client_id: client.into(),
        identity: format!("0x{client}…"),
        role,
        seat_key: seat.into(),
        capacity,
    }
}

fn join(hub: &Hub, room_id: i64, client: &str) -> (Peer, Outbox) {
    hub.try_admit(admission(room_id, client, Role::Attendee, &format!("seat-{client}"), 100)).unwrap()
}

/// Every text frame waiting in the outbox, parsed; panics if a close frame is among them.
fn drain(outbox: &mut Outbox) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Some(next) = outbox.try_recv() {
        match next {
            Outbound::Text(bytes) => frames.push(serde_json::from_slice(&bytes).unwrap()),
            Outbound::Close(close) => panic!("unexpected close {close}"),
        }
    }
    frames
}

/// Reads up to the close frame, which must be there.
fn close_of(outbox: &mut Outbox) -> CloseFrame {
    while let Some(next) = outbox.try_recv() {
        if let Outbound::Close(close) = next {
            assert_eq!(outbox.try_recv(), None, "nothing may follow a close frame");
            return close;
        }
    }
    panic!("no close frame")
}

fn try_send(peer: &mut Peer, frame: Value) -> ControlFlow<()> {
    peer.handle_text(&frame.to_string())
}

/// Sends a frame that must not close the connection.
fn send(peer: &mut Peer, frame: Value) {
    assert_eq!(try_send(peer, frame), ControlFlow::Continue(()));
}

#[test]
fn welcome_lists_occupants_and_others_hear_of_the_join() {
    let hub = Hub::new(SignalingConfig::default());
    let (_a, mut a_out) = join(&hub, 1, "a");
    let first = drain(&mut a_out);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["type"], "welcome");
    assert_eq!(first[0]["client_id"], "a");
    assert_eq!(first[0]["occupants"], json!({}));
    assert!(first[0]["server_time"].as_i64().unwrap() > 1_600_000_000_000);

    let (_b, mut b_out) = join(&hub, 1, "b");
    let welcome = &drain(&mut b_out)[0];
    assert_eq!(welcome["type"], "welcome");
    let a_entry = &welcome["occupants"]["a"];
    assert_eq!(a_entry["identity"], "0xa…");
    assert!(a_entry["joined_at"].as_i64().is_some());

    let joined = drain(&mut a_out);
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0]["type"], "peer_joined");
    assert_eq!(joined[0]["client_id"], "b");
    assert_eq!(joined[0]["role"], "attendee");
}

#[test]
fn from_is_stamped_by_the_server() {
    let hub = Hub::new(SignalingConfig::default());
    let (mut a, _a_out) = join(&hub, 1, "a");
    let (_b, mut b_out) = join(&hub, 1, "b");
    drain(&mut b_out);

    send(&mut a, json!({"type":"send","from":"b","to":"b","data_type":"u","data":{"x":1},"guaranteed":true}));
    send(&mut a, json!({"type":"broadcast","from":"mallory","data_type":"um","data":[1,2]}));
    send(&mut a, json!({"type":"offer","from":"mallory","to":"b","sdp":"v=0\r\n"}));

    let got = drain(&mut b_out);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|f| f["from"] == "a"), "{got:?}");
    assert_eq!(got[0], json!({"type":"send","from":"a","data_type":"u","data":{"x":1}}));
    assert_eq!(got[1], json!({"type":"broadcast","from":"a","data_type":"um","data":[1,2]}));
    assert_eq!(got[2]["type"], "offer");
}

#[test]
fn rooms_are_isolated() {
    let hub = Hub::new(SignalingConfig::default());
    let (mut a, mut a_out) = join(&hub, 1, "a");
    let (_b, mut b_out) = join(&hub, 1, "b");
    let (_x, mut x_out) = join(&hub, 2, "x");
    drain(&mut a_out);
    drain(&mut b_out);
    drain(&mut x_out);

    send(&mut a, json!({"type":"broadcast","data_type":"u","data":{}}));
    for kind in ["send", "offer", "answer"] {
        send(&mut a, json!({"type":kind,"to":"x","data_type":"u","data":{},"sdp":"v=0"}));
    }
    send(&mut a, json!({"type":"candidate","to":"x","candidate":{"candidate":"c"}}));

    assert!(drain(&mut x_out).is_empty(), "room 2 heard room 1");
    assert_eq!(drain(&mut b_out).len(), 1, "b gets the broadcast only");
    let errors = drain(&mut a_out);
    assert_eq!(errors.len(), 4);
    assert!(errors.iter().all(|e| e["type"] == "error" && e["code"] == "not_in_room"), "{errors:?}");
    assert_eq!(hub.stats_snapshot().messages_refused, 4);
}

#[test]
fn capacity_counts_attendees_not_hosts() {
    let hub = Hub::new(SignalingConfig::default());
    let _a = hub.try_admit(admission(7, "a", Role::Attendee, "t1", 2)).unwrap();
    let _h1 = hub.try_admit(admission(7, "h1", Role::Host, "host-1", 2)).unwrap();
    let b = hub.try_admit(admission(7, "b", Role::Attendee, "t2", 2)).unwrap();
    assert_eq!(
        hub.try_admit(admission(7, "c", Role::Attendee, "t3", 2)).unwrap_err(),
        AdmitError::RoomFull { capacity: 2 }
    );
    assert_eq!(AdmitError::RoomFull { capacity: 2 }.close_frame().code, 4409);
    // Hosts still get in when the room is full.
    let _h2 = hub.try_admit(admission(7, "h2", Role::Host, "host-2", 2)).unwrap();
    let occupancy = hub.occupancy(7).unwrap();
    assert_eq!((occupancy.attendees, occupancy.hosts, occupancy.capacity), (2, 2, 2));

    // A leaving attendee frees its seat.
    drop(b);
    assert_eq!(hub.occupancy(7).unwrap().attendees, 1);
    assert!(hub.try_admit(admission(7, "c", Role::Attendee, "t3", 2)).is_ok());
}

#[test]
fn same_seat_supersedes_and_is_counted_once() {
    let hub = Hub::new(SignalingConfig::default());
    let mut events = hub.subscribe();
    let (old, mut old_out) = hub.try_admit(admission(3, "old", Role::Attendee, "ticket-9", 1)).unwrap();
    let (_other_host, mut host_out) = hub.try_admit(admission(3, "h", Role::Host, "host", 1)).unwrap();
    drain(&mut old_out);
    drain(&mut host_out);

    // Capacity 1 is taken by "ticket-9"; the same ticket may still come back.
    let (_new, mut new_out) = hub.try_admit(admission(3, "new", Role::Attendee, "ticket-9", 1)).unwrap();
    let close = close_of(&mut old_out);
    assert_eq!((close.code, close.reason.as_str()), (4000, "superseded"));
    assert!(old.is_closed());
    assert_eq!(hub.occupancy(3).unwrap().attendees, 1);

    let welcome = &drain(&mut new_out)[0];
    assert_eq!(welcome["type"], "welcome");
    assert!(welcome["occupants"].get("old").is_none());
    let seen = drain(&mut host_out);
    assert_eq!(seen[0], json!({"type":"peer_left","client_id":"old","reason":"superseded"}));
    assert_eq!(seen[1]["type"], "peer_joined");
    assert_eq!(seen[1]["client_id"], "new");

    // The stale connection going away later must not free the new holder's seat.
    drop(old);
    assert_eq!(hub.occupancy(3).unwrap().attendees, 1);
    assert!(hub.try_admit(admission(3, "third", Role::Attendee, "ticket-10", 1)).is_err());

    let kinds: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).map(|e| (e.client_id, e.kind)).collect();
    assert!(kinds.contains(&("old".into(), RoomEventKind::Left { reason: LeaveReason::Superseded })));
    assert_eq!(kinds.iter().filter(|(_, k)| matches!(k, RoomEventKind::Left { .. })).count(), 1);
}

#[test]
fn slow_consumer_loses_unguaranteed_then_is_closed_and_its_seat_freed() {
    let config = SignalingConfig { guaranteed_queue: 4, unguaranteed_queue: 2, ..SignalingConfig::default() };
    let hub = Hub::new(config);
    let mut events = hub.subscribe();
    let (mut fast, mut fast_out) = hub.try_admit(admission(5, "fast", Role::Attendee, "t1", 2)).unwrap();
    let (_slow, mut slow_out) = hub.try_admit(admission(5, "slow", Role::Attendee, "t2", 2)).unwrap();
    // The slow peer never reads: its queue holds `welcome` (guaranteed, 1 of 4).

    for i in 0..10 {
        send(&mut fast, json!({"type":"broadcast","data_type":"u","data":{"i":i},"guaranteed":false}));
    }
    assert_eq!(hub.stats_snapshot().unguaranteed_dropped, 8);
    assert_eq!(hub.stats_snapshot().slow_consumers_closed, 0);

    // Three more guaranteed frames fit (welcome + 3 = 4); the fourth overflows.
    for i in 0..3 {
        send(&mut fast, json!({"type":"broadcast","data_type":"r","data":{"i":i}}));
    }
    assert_eq!(hub.stats_snapshot().slow_consumers_closed, 0);
    assert!(hub.try_admit(admission(5, "late", Role::Attendee, "t3", 2)).is_err(), "room full before eviction");
    send(&mut fast, json!({"type":"broadcast","data_type":"r","data":{"i":3}}));
    assert_eq!(hub.stats_snapshot().slow_consumers_closed, 1);

    let close = close_of(&mut slow_out);
    assert_eq!(close.code, 4008);
    assert_eq!(hub.occupancy(5).unwrap().attendees, 1);
    // Keep the newcomer: dropping it would announce a departure too.
    let _late = hub.try_admit(admission(5, "late", Role::Attendee, "t3", 2)).expect("seat freed");

    // The fast peer was not affected and heard of the departure.
    let heard = drain(&mut fast_out);
    assert!(heard.iter().any(|f| f == &json!({"type":"peer_left","client_id":"slow","reason":"slow_consumer"})));
    let left: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| e.kind == RoomEventKind::Left { reason: LeaveReason::SlowConsumer })
        .collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seat_key, "t2");
}

#[test]
fn unguaranteed_frames_are_kept_in_order_with_guaranteed_ones_when_there_is_room() {
    let hub = Hub::new(SignalingConfig::default());
    let (mut a, _a_out) = join(&hub, 1, "a");
    let (_b, mut b_out) = join(&hub, 1, "b");
    drain(&mut b_out);
    send(&mut a, json!({"type":"broadcast","data_type":"u","data":1,"guaranteed":false}));
    send(&mut a, json!({"type":"broadcast","data_type":"r","data":2}));
    send(&mut a, json!({"type":"send","to":"b","data_type":"u","data":3,"guaranteed":false}));
    let data: Vec<_> = drain(&mut b_out).iter().map(|f| f["data"].clone()).collect();
    assert_eq!(data, vec![json!(1), json!(2), json!(3)]);
}

#[test]
fn broadcast_is_serialised_once_and_shared() {
    let hub = Hub::new(SignalingConfig::default());
    let (mut a, _a_out) = join(&hub, 1, "a");
    let mut outs: Vec<_> = ["b", "c", "d"].iter().map(|id| join(&hub, 1, id)).collect();
    for (_, out) in &mut outs {
        drain(out);
    }
    send(&mut a, json!({"type":"broadcast","data_type":"u","data":{"big":"x".repeat(1000)}}));
    let frames: Vec<_> = outs
        .iter_mut()
        .map(|(_, out)| match out.try_recv() {
            Some(Outbound::Text(bytes)) => bytes,
            other => panic!("expected a frame, got {other:?}"),
        })
        .collect();
    let first = frames[0].as_ptr();
    assert!(frames.iter().all(|f| f.as_ptr() == first), "each recipient got its own copy");
    assert!(frames.iter().all(|f| f == &frames[0]));
    assert_eq!(hub.stats_snapshot().messages_relayed, 1);
}

#[test]
fn rate_limit_closes_with_4429() {
    let config = SignalingConfig { messages_per_second: 1, burst: 5, ..SignalingConfig::default() };
    let hub = Hub::new(config);
    let (mut a, mut a_out) = join(&hub, 1, "a");
    drain(&mut a_out);
    for _ in 0..5 {
        send(&mut a, json!({"type":"ping","client_time":1.0}));
    }
    assert_eq!(try_send(&mut a, json!({"type":"ping","client_time":1.0})), ControlFlow::Break(()));
    let pongs = {
        let mut n = 0;
        let close = loop {
            match a_out.try_recv() {
                Some(Outbound::Text(_)) => n += 1,
                Some(Outbound::Close(close)) => break close,
                None => panic!("no close"),
            }
        };
        assert_eq!(close.code, 4429);
        n
    };
    // Frames still queued when the close came are discarded; the close is what matters.
    assert!(pongs <= 5);
    assert!(hub.occupancy(1).is_none(), "the only peer left; the room is gone");
    assert_eq!(hub.stats_snapshot().rate_limited_closed, 1);
}

#[test]
fn oversized_malformed_and_binary_frames_close_precisely() {
    let config = SignalingConfig { max_frame_bytes: 100, ..SignalingConfig::default() };
    let hub = Hub::new(config);

    let (mut a, mut a_out) = join(&hub, 1, "a");
    drain(&mut a_out);
    let big = json!({"type":"chat","text":"x".repeat(200)});
    assert_eq!(try_send(&mut a, big), ControlFlow::Break(()));
    assert_eq!(close_of(&mut a_out).code, 1009);

    let (mut b, mut b_out) = join(&hub, 1, "b");
    drain(&mut b_out);
    assert_eq!(b.handle_text("{\"type\":\"teleport\"}"), ControlFlow::Break(()));
    let close = close_of(&mut b_out);
    assert_eq!(close.code, 4400);
    assert!(close.reason.contains("teleport"), "{}", close.reason);

    let (mut c, mut c_out) = join(&hub, 1, "c");
    drain(&mut c_out);
    assert_eq!(c.handle_binary(10), ControlFlow::Break(()));
    assert_eq!(close_of(&mut c_out).code, 4400);
    assert!(hub.occupancy(1).is_none());
}

#[test]
fn pong_carries_server_time_and_echoes_client_time() {
    let hub = Hub::new(SignalingConfig::default());
    let (mut a, mut a_out) = join(&hub, 1, "a");
    drain(&mut a_out);
    send(&mut a, json!({"type":"ping","client_time":12345.5}));
    let pong = &drain(&mut a_out)[0];
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["client_time"], 12345.5);
    assert!((pong["server_time"].as_i64().unwrap() - signaling::now_ms()).abs() < 5_000);
}
