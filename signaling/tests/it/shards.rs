//! Shards and the stage, driven as the gateway drives the hub: placement, routing, switching, the stage.

use serde_json::{json, Value};
use signaling::{Admission, Hub, Outbound, Outbox, Peer, Placement, Role, SignalingConfig};
use std::collections::HashMap;
use std::sync::{Arc, Barrier};

const EVENT: i64 = 7;

fn admission(client: &str, role: Role, capacity: u32) -> Admission {
    Admission {
        room_id: EVENT,
        client_id: client.into(),
        identity: format!("0x{client}"),
        role,
        seat_key: format!("seat-{client}"),
        capacity,
    }
}

fn placed(size: u32, group: Option<&str>) -> Placement {
    Placement { shard_size: size, group: group.map(str::to_owned), stage: false, decided: None }
}

fn join(hub: &Hub, client: &str, size: u32, group: Option<&str>) -> (Peer, Outbox) {
    hub.try_admit_placed(admission(client, Role::Attendee, 1000), &placed(size, group)).unwrap()
}

fn host(hub: &Hub, client: &str, size: u32) -> (Peer, Outbox) {
    hub.try_admit_placed(admission(client, Role::Host, 1000), &placed(size, None)).unwrap()
}

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

fn send(peer: &mut Peer, frame: Value) {
    assert!(peer.handle_text(&frame.to_string()).is_continue());
}

fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == kind).collect()
}

fn shard_of(hub: &Hub, client: &str) -> u32 {
    hub.placement_of(EVENT, client).unwrap().0
}

#[test]
fn concurrent_joins_never_overfill_a_shard() {
    for round in 0..5 {
        let hub = Hub::new(SignalingConfig::default());
        let joiners = 64;
        let barrier = Arc::new(Barrier::new(joiners));
        let handles: Vec<_> = (0..joiners)
            .map(|i| {
                let (hub, barrier) = (hub.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    // A few groups compete for the same shards too.
                    let group = (i % 3 == 0).then(|| format!("g{}", i % 4));
                    hub.try_admit_placed(admission(&format!("p{i}"), Role::Attendee, 60), &placed(5, group.as_deref()))
                })
            })
            .collect();
        let admitted: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let ok = admitted.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 60, "round {round}: capacity is the event's, whatever the shards");
        let shards = hub.shard_occupancy(EVENT);
        assert!(shards.iter().all(|s| s.attendees <= 5), "round {round}: {shards:?}");
        assert_eq!(shards.iter().map(|s| s.attendees).sum::<u32>(), 60);
        assert_eq!(shards.len(), 12, "60 attendees fill 12 shards of 5 exactly");
        drop(admitted);
        assert!(hub.shard_occupancy(EVENT).is_empty(), "empty shards are reclaimed");
    }
}

#[test]
fn a_group_lands_together_when_its_shard_has_room() {
    let hub = Hub::new(SignalingConfig::default());
    let mut peers = vec![join(&hub, "a", 3, None), join(&hub, "b", 3, None), join(&hub, "c", 3, None)];
    // Shard 0 is full; a group opens shard 1 and its friends follow it even though shard 0 frees a seat.
    peers.push(join(&hub, "f1", 3, Some("friends")));
    peers.remove(0);
    peers.push(join(&hub, "f2", 3, Some("friends")));
    peers.push(join(&hub, "f3", 3, Some("friends")));
    assert_eq!((shard_of(&hub, "f1"), shard_of(&hub, "f2"), shard_of(&hub, "f3")), (1, 1, 1));
    // The group's shard is full now: the next friend takes the fullest shard with room.
    peers.push(join(&hub, "f4", 3, Some("friends")));
    assert_eq!(shard_of(&hub, "f4"), 0);
    // Without a group, the fullest shard with room.
    peers.push(join(&hub, "d", 3, None));
    assert_eq!(shard_of(&hub, "d"), 2);
}

#[test]
fn attendees_see_their_shard_and_the_stage_sees_every_shard() {
    let hub = Hub::new(SignalingConfig::default());
    let (mut h, mut h_out) = host(&hub, "host", 2);
    let (mut a, mut a_out) = join(&hub, "a", 2, None);
    let (mut b, mut b_out) = join(&hub, "b", 2, None);
    let (mut c, mut c_out) = join(&hub, "c", 2, None);
    assert_eq!((shard_of(&hub, "a"), shard_of(&hub, "b"), shard_of(&hub, "c")), (0, 0, 1));

    let welcome_c = &drain(&mut c_out)[0];
    assert_eq!(welcome_c["shard"], 1);
    assert_eq!(welcome_c["stage"], false);
    let seen: Vec<&str> = welcome_c["occupants"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(seen, ["host"], "c sees the stage, not shard 0");
    let hosts_frames = drain(&mut h_out);
    let joined: Vec<_> = of_type(&hosts_frames, "peer_joined").iter().map(|f| f["client_id"].clone()).collect();
    assert_eq!(joined, [json!("a"), json!("b")], "the host looks at shard 0");
    drain(&mut a_out);
    drain(&mut b_out);

    // An attendee's update reaches its shard only (and the host looking at it).
    send(&mut a, json!({"type":"broadcast","data_type":"u","data":{"networkId":"a-avatar"},"guaranteed":false}));
    assert_eq!(of_type(&drain(&mut b_out), "broadcast").len(), 1);
    assert_eq!(of_type(&drain(&mut h_out), "broadcast").len(), 1);
    assert!(drain(&mut c_out).is_empty(), "shard 1 never hears shard 0");
    send(&mut c, json!({"type":"broadcast","data_type":"u","data":{"networkId":"c-avatar"}}));
    assert!(drain(&mut a_out).is_empty() && drain(&mut b_out).is_empty() && drain(&mut h_out).is_empty());
    // c addresses a: not in its view.
    send(&mut c, json!({"type":"send","to":"a","data_type":"u","data":{}}));
    assert_eq!(drain(&mut c_out)[0]["code"], "not_in_room");
    // c's full sync to the host (which sees shard 0) is dropped without an error.
    send(&mut c, json!({"type":"send","to":"host","data_type":"u","data":{}}));
    assert!(drain(&mut c_out).is_empty() && drain(&mut h_out).is_empty());

    // The host's update and chat reach every shard.
    send(
        &mut h,
        json!({"type":"broadcast","data_type":"u","data":{"networkId":"host-avatar","components":{"0":{"x":1}}}}),
    );
    send(&mut h, json!({"type":"chat","text":"welcome all"}));
    for out in [&mut a_out, &mut b_out, &mut c_out] {
        let got = drain(out);
        assert_eq!(of_type(&got, "broadcast").len(), 1, "{got:?}");
        assert_eq!(of_type(&got, "chat").len(), 1, "{got:?}");
    }
    // An attendee's chat stays in its shard.
    send(&mut b, json!({"type":"chat","text":"hi shard 0"}));
    assert!(drain(&mut c_out).is_empty());
    assert_eq!(of_type(&drain(&mut a_out), "chat").len(), 1);
    drain(&mut h_out);
    drain(&mut b_out);

    // An announcement reaches everyone; attendees may not announce.
    send(&mut h, json!({"type":"announce","text":"doors close in 5"}));
    for out in [&mut a_out, &mut b_out, &mut c_out, &mut h_out] {
        let got = drain(out);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["type"], "announcement");
        assert_eq!(got[0]["text"], "doors close in 5");
        assert_eq!(got[0]["from"], "host");
    }
    send(&mut a, json!({"type":"announce","text":"me too"}));
    assert_eq!(drain(&mut a_out)[0]["code"], "forbidden");
}

#[test]
fn a_joiner_of_another_shard_gets_the_stage_entities_in_its_snapshot() {
    let hub = Hub::new(SignalingConfig::default());
    let (mut h, _h_out) = host(&hub, "host", 1);
    let (_a, _a_out) = join(&hub, "a", 1, None);
    send(
        &mut h,
        json!({"type":"broadcast","data_type":"u","data":{"networkId":"host-avatar","owner":"host","template":"#avatar","components":{"0":{"x":0},"1":"red"}}}),
    );
    send(
        &mut h,
        json!({"type":"broadcast","data_type":"um","data":{"d":[{"networkId":"host-avatar","owner":"host","components":{"0":{"x":5}}}]}}),
    );
    let (_b, mut b_out) = join(&hub, "b", 1, None);
    assert_eq!(shard_of(&hub, "b"), 1);
    let frames = drain(&mut b_out);
    let snapshot = of_type(&frames, "snapshot");
    assert_eq!(snapshot.len(), 1, "{frames:?}");
    let entity = &snapshot[0]["entities"][0];
    assert_eq!(entity["networkId"], "host-avatar");
    assert_eq!(entity["isFirstSync"], true);
    assert_eq!(entity["components"], json!({"0":{"x":5},"1":"red"}));
    drop(h);
    let (_c, mut c_out) = join(&hub, "c", 1, None);
    assert!(of_type(&drain(&mut c_out), "snapshot").is_empty(), "a departed host's entities are forgotten");
}

#[test]
fn switching_shards_moves_the_view_and_tells_both_shards() {
    let hub = Hub::new(SignalingConfig::default());
    let (_h, mut h_out) = host(&hub, "host", 2);
    let (_a, mut a_out) = join(&hub, "a", 2, None);
    let (mut b, mut b_out) = join(&hub, "b", 2, None);
    let (_c, mut c_out) = join(&hub, "c", 2, None);
    for out in [&mut h_out, &mut a_out, &mut b_out, &mut c_out] {
        drain(out);
    }
    // Shard 1 has room: b moves there.
    send(&mut b, json!({"type":"switch_shard"}));
    assert_eq!(shard_of(&hub, "b"), 1);
    let got = drain(&mut b_out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "shard_changed");
    assert_eq!(got[0]["shard"], 1);
    let mut seen: Vec<&str> = got[0]["occupants"].as_object().unwrap().keys().map(String::as_str).collect();
    seen.sort();
    assert_eq!(seen, ["c", "host"]);
    let left = drain(&mut a_out);
    assert_eq!(left, [json!({"type":"peer_left","client_id":"b","reason":"moved"})]);
    assert_eq!(of_type(&drain(&mut h_out), "peer_left").len(), 1, "the host looks at shard 0");
    let joined = drain(&mut c_out);
    assert_eq!(joined[0]["type"], "peer_joined");
    assert_eq!(joined[0]["client_id"], "b");
    // Shard 1 is full now, and shard 0 has room: moving to a full shard is refused.
    send(&mut b, json!({"type":"switch_shard","shard":1}));
    assert!(drain(&mut b_out).is_empty(), "already there");
    let (_d, _d_out) = join(&hub, "d", 2, None);
    assert_eq!(shard_of(&hub, "d"), 0);
    send(&mut b, json!({"type":"switch_shard","shard":0}));
    assert_eq!(drain(&mut b_out)[0]["code"], "shard_full");
    send(&mut b, json!({"type":"switch_shard","shard":9}));
    assert_eq!(drain(&mut b_out)[0]["code"], "invalid");
    let counts: HashMap<u32, u32> = hub.shard_occupancy(EVENT).iter().map(|s| (s.shard, s.attendees)).collect();
    assert_eq!(counts, HashMap::from([(0, 2), (1, 2)]));
}

#[test]
fn an_invited_speaker_reaches_every_shard_and_counts_once() {
    let hub = Hub::new(SignalingConfig::default());
    let (mut h, mut h_out) = host(&hub, "host", 2);
    let (mut a, mut a_out) = join(&hub, "a", 2, None);
    let (_b, mut b_out) = join(&hub, "b", 2, None);
    let (_c, mut c_out) = join(&hub, "c", 2, None);
    for out in [&mut h_out, &mut a_out, &mut b_out, &mut c_out] {
        drain(out);
    }
    send(&mut h, json!({"type":"invite_to_stage","target":"a"}));
    assert_eq!(hub.placement_of(EVENT, "a"), Some((0, true)));
    let c_got = drain(&mut c_out);
    assert_eq!(of_type(&c_got, "peer_joined")[0]["client_id"], "a", "shard 1 now sees the speaker");
    assert_eq!(of_type(&c_got, "stage")[0], &json!({"type":"stage","client_id":"a","on_stage":true,"by":"host"}));
    assert!(of_type(&drain(&mut b_out), "peer_joined").is_empty(), "shard 0 already saw it");
    drain(&mut a_out);
    send(&mut a, json!({"type":"broadcast","data_type":"u","data":{"networkId":"a-avatar"}}));
    assert_eq!(of_type(&drain(&mut c_out), "broadcast").len(), 1);
    // On stage a takes no room in shard 0; capacity still counts it once.
    assert_eq!(hub.shard_occupancy(EVENT).iter().map(|s| s.attendees).sum::<u32>(), 2);
    assert_eq!(hub.occupancy(EVENT).unwrap().attendees, 3);
    // Off stage: back in its shard, and shard 1 no longer sees it.
    send(&mut h, json!({"type":"remove_from_stage","target":"a"}));
    assert_eq!(hub.placement_of(EVENT, "a"), Some((0, false)));
    let c_got = drain(&mut c_out);
    assert_eq!(of_type(&c_got, "peer_left")[0]["reason"], "moved");
    // Only hosts invite.
    drain(&mut a_out);
    send(&mut a, json!({"type":"invite_to_stage","target":"b"}));
    assert_eq!(drain(&mut a_out)[0]["code"], "forbidden");
}

#[test]
fn unsharded_rooms_behave_as_before() {
    let hub = Hub::new(SignalingConfig::default());
    let (_h, _h_out) = hub.try_admit(admission("host", Role::Host, 10)).unwrap();
    let peers: Vec<_> =
        (0..5).map(|i| hub.try_admit(admission(&format!("p{i}"), Role::Attendee, 10)).unwrap()).collect();
    let (_z, mut last_out) = hub.try_admit(admission("z", Role::Attendee, 10)).unwrap();
    let welcome = &drain(&mut last_out)[0];
    assert_eq!(welcome["shard"], 0);
    assert_eq!(welcome["occupants"].as_object().unwrap().len(), 6);
    drop(peers);
}
