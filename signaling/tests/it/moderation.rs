//! Hosts moderate; chat and media are counted and reported.

use serde_json::{json, Value};
use signaling::{
    Admission, AdmitError, CloseFrame, Hub, IceServer, LeaveReason, Outbound, Outbox, Peer, PeerInfo, Role, RoomEvent,
    RoomEventKind, SignalingConfig, TurnGrant,
};
use tokio::sync::broadcast;

fn admit(hub: &Hub, client: &str, role: Role) -> (Peer, Outbox) {
    let admission = Admission {
        room_id: 9,
        client_id: client.into(),
        identity: client.to_uppercase(),
        role,
        seat_key: format!("seat-{client}"),
        capacity: 10,
    };
    let (peer, mut outbox) = hub.try_admit(admission).unwrap();
    drain(&mut outbox);
    (peer, outbox)
}

fn drain(outbox: &mut Outbox) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Some(Outbound::Text(bytes)) = outbox.try_recv() {
        frames.push(serde_json::from_slice(&bytes).unwrap());
    }
    frames
}

fn close_of(outbox: &mut Outbox) -> CloseFrame {
    while let Some(next) = outbox.try_recv() {
        if let Outbound::Close(close) = next {
            return close;
        }
    }
    panic!("no close frame")
}

fn send(peer: &mut Peer, frame: Value) {
    let _ = peer.handle_text(&frame.to_string());
}

fn events(rx: &mut broadcast::Receiver<RoomEvent>) -> Vec<(String, RoomEventKind)> {
    std::iter::from_fn(|| rx.try_recv().ok()).map(|e| (e.client_id, e.kind)).collect()
}

const AUDIO_OFFER: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n";
const RECV_ONLY_OFFER: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n";

#[test]
fn host_kicks_and_the_peer_may_rejoin() {
    let hub = Hub::new(SignalingConfig::default());
    let mut rx = hub.subscribe();
    let (mut host, _host_out) = admit(&hub, "host", Role::Host);
    let (_a, mut a_out) = admit(&hub, "a", Role::Attendee);
    let (_b, mut b_out) = admit(&hub, "b", Role::Attendee);
    send(&mut host, json!({"type":"kick","target":"a"}));
    let close = close_of(&mut a_out);
    assert_eq!((close.code, close.reason.as_str()), (4001, "kicked"));
    assert!(drain(&mut b_out).contains(&json!({"type":"peer_left","client_id":"a","reason":"kicked"})));
    assert!(events(&mut rx).contains(&("a".into(), RoomEventKind::Left { reason: LeaveReason::Kicked })));
    // Kicked, not banned.
    admit(&hub, "a", Role::Attendee);
}

#[test]
fn ban_closes_with_4003_and_refuses_the_seat() {
    let hub = Hub::new(SignalingConfig::default());
    let (_host, _host_out) = admit(&hub, "host", Role::Host);
    let (_a, mut a_out) = admit(&hub, "a", Role::Attendee);
    assert!(hub.ban(9, "a"));
    assert_eq!(close_of(&mut a_out).code, 4003);
    let again = Admission {
        room_id: 9,
        client_id: "a2".into(),
        identity: "A".into(),
        role: Role::Attendee,
        seat_key: "seat-a".into(),
        capacity: 10,
    };
    let refused = hub.try_admit(again).unwrap_err();
    assert_eq!(refused, AdmitError::Banned);
    assert_eq!(refused.close_frame().code, 4003);
    assert!(!hub.kick(9, "nobody"));
}

#[test]
fn attendees_cannot_moderate_and_hosts_cannot_be_moderated() {
    let hub = Hub::new(SignalingConfig::default());
    let (mut host, mut host_out) = admit(&hub, "host", Role::Host);
    let (_host2, mut host2_out) = admit(&hub, "host2", Role::Host);
    let (mut a, mut a_out) = admit(&hub, "a", Role::Attendee);
    let (_b, mut b_out) = admit(&hub, "b", Role::Attendee);
    drain(&mut host_out);
    drain(&mut host2_out);
    drain(&mut a_out);

    send(&mut a, json!({"type":"kick","target":"b"}));
    send(&mut a, json!({"type":"mute","target":"b"}));
    let errors = drain(&mut a_out);
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e["code"] == "forbidden"));
    assert!(b_out.try_recv().is_none(), "b was not touched");

    send(&mut host, json!({"type":"ban","target":"host2"}));
    assert_eq!(drain(&mut host_out)[0]["code"], "forbidden");
    assert!(host2_out.try_recv().is_none());
    assert_eq!(hub.occupancy(9).unwrap().hosts, 2);
}

#[test]
fn mute_is_told_to_all_and_refuses_audio_renegotiation() {
    let hub = Hub::new(SignalingConfig::default());
    let mut rx = hub.subscribe();
    let (mut host, mut host_out) = admit(&hub, "host", Role::Host);
    let (mut a, mut a_out) = admit(&hub, "a", Role::Attendee);
    let (_b, mut b_out) = admit(&hub, "b", Role::Attendee);
    drain(&mut host_out);
    drain(&mut a_out);
    send(&mut a, json!({"type":"media","mic":true}));
    assert_eq!(drain(&mut b_out), vec![json!({"type":"media","from":"a","mic":true,"screen":false})]);
    assert!(drain(&mut a_out).is_empty(), "media reports are not echoed");
    drain(&mut host_out);

    send(&mut host, json!({"type":"mute","target":"a","muted":true}));
    let told = json!({"type":"muted","client_id":"a","muted":true,"by":"host"});
    assert_eq!(drain(&mut b_out), vec![told.clone()]);
    assert_eq!(drain(&mut a_out), vec![told.clone()]);
    assert_eq!(drain(&mut host_out), vec![told]);

    // Audio renegotiation and mic-on are refused; receive-only negotiation still passes.
    send(&mut a, json!({"type":"offer","to":"b","sdp":AUDIO_OFFER}));
    send(&mut a, json!({"type":"answer","to":"b","sdp":AUDIO_OFFER}));
    send(&mut a, json!({"type":"media","mic":true}));
    let refusals = drain(&mut a_out);
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    assert!(refusals.iter().all(|e| e["type"] == "error" && e["code"] == "muted"));
    send(&mut a, json!({"type":"offer","to":"b","sdp":RECV_ONLY_OFFER}));
    let relayed = drain(&mut b_out);
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0]["type"], "offer");
    assert_eq!(relayed[0]["sdp"], RECV_ONLY_OFFER);

    let seen = events(&mut rx);
    assert!(seen.contains(&("a".into(), RoomEventKind::Voice { on: true })));
    assert!(seen.contains(&("a".into(), RoomEventKind::Voice { on: false })));
    assert!(seen.contains(&("a".into(), RoomEventKind::Muted { muted: true, by: Some("host".into()) })));
    let muted = hub.occupants(9).into_iter().find(|o| &*o.info.client_id == "a").unwrap();
    assert!(muted.muted && !muted.mic);

    // Reconnecting does not shake off a mute: the seat stays muted.
    drop(a);
    let (mut a, mut a_out) = hub
        .try_admit(Admission {
            room_id: 9,
            client_id: "a-again".into(),
            identity: "A".into(),
            role: Role::Attendee,
            seat_key: "seat-a".into(),
            capacity: 10,
        })
        .unwrap();
    assert_eq!(drain(&mut a_out)[0]["muted"], true);
    send(&mut a, json!({"type":"media","mic":true}));
    assert_eq!(drain(&mut a_out)[0]["code"], "muted");
    drain(&mut b_out);
    drop(a);
    let (mut a, mut a_out) = admit(&hub, "a", Role::Attendee);

    // Unmuted by the gateway: audio flows again.
    assert!(hub.mute(9, "a", false));
    drain(&mut a_out);
    send(&mut a, json!({"type":"offer","to":"b","sdp":AUDIO_OFFER}));
    assert!(drain(&mut a_out).is_empty());
    assert_eq!(drain(&mut b_out).iter().filter(|f| f["type"] == "offer").count(), 1);
}

#[test]
fn chat_is_stamped_counted_and_reported() {
    let config = SignalingConfig { max_chat_chars: 10, ..SignalingConfig::default() };
    let hub = Hub::new(config);
    let mut rx = hub.subscribe();
    let (mut a, mut a_out) = admit(&hub, "a", Role::Attendee);
    let (_b, mut b_out) = admit(&hub, "b", Role::Attendee);
    drain(&mut a_out);
    send(&mut a, json!({"type":"chat","text":" hello ","from":"b"}));
    let got = drain(&mut b_out);
    assert_eq!(got.len(), 1);
    assert_eq!((&got[0]["from"], &got[0]["identity"], &got[0]["text"]), (&json!("a"), &json!("A"), &json!("hello")));
    assert_eq!(drain(&mut a_out).len(), 1, "the sender gets its line back, stamped");
    send(&mut a, json!({"type":"chat","text":"x".repeat(11)}));
    assert_eq!(drain(&mut a_out)[0]["code"], "invalid");
    assert!(b_out.try_recv().is_none());
    assert_eq!(hub.stats_snapshot().chat_messages, 1);
    assert!(events(&mut rx).contains(&("a".into(), RoomEventKind::Chat { text: "hello".into() })));
}

#[test]
fn screen_share_is_reported() {
    let hub = Hub::new(SignalingConfig::default());
    let mut rx = hub.subscribe();
    let (mut a, _a_out) = admit(&hub, "a", Role::Attendee);
    let (_b, mut b_out) = admit(&hub, "b", Role::Attendee);
    send(&mut a, json!({"type":"media","screen":true}));
    send(&mut a, json!({"type":"media","screen":true}));
    send(&mut a, json!({"type":"media","screen":false}));
    assert_eq!(drain(&mut b_out).len(), 2, "unchanged state is not re-broadcast");
    let seen: Vec<_> =
        events(&mut rx).into_iter().filter(|(_, k)| matches!(k, RoomEventKind::ScreenShare { .. })).collect();
    assert_eq!(
        seen,
        vec![
            ("a".into(), RoomEventKind::ScreenShare { on: true }),
            ("a".into(), RoomEventKind::ScreenShare { on: false })
        ]
    );
}

#[test]
fn turn_credentials_come_from_the_gateways_hook() {
    let issuer = |peer: &PeerInfo| {
        Some(TurnGrant {
            ice_servers: vec![IceServer {
                urls: vec!["turn:127.0.0.1:3478".into()],
                username: Some(format!("1700000000:{}", peer.client_id)),
                credential: Some("secret".into()),
            }],
            expires_at: 1_700_000_000_000,
        })
    };
    let hub = Hub::builder(SignalingConfig::default()).turn_issuer(issuer).build();
    let (mut a, mut a_out) = hub
        .try_admit(Admission {
            room_id: 1,
            client_id: "a".into(),
            identity: "A".into(),
            role: Role::Attendee,
            seat_key: "s".into(),
            capacity: 1,
        })
        .unwrap();
    let welcome = &drain(&mut a_out)[0];
    assert_eq!(welcome["turn"]["ice_servers"][0]["username"], "1700000000:a");
    send(&mut a, json!({"type":"turn_refresh"}));
    let turn = &drain(&mut a_out)[0];
    assert_eq!(turn["type"], "turn");
    assert_eq!(turn["expires_at"], 1_700_000_000_000i64);
    assert_eq!(turn["ice_servers"][0]["urls"][0], "turn:127.0.0.1:3478");

    let plain = Hub::new(SignalingConfig::default());
    let (mut b, mut b_out) = plain
        .try_admit(Admission {
            room_id: 1,
            client_id: "b".into(),
            identity: "B".into(),
            role: Role::Attendee,
            seat_key: "s".into(),
            capacity: 1,
        })
        .unwrap();
    assert!(drain(&mut b_out)[0].get("turn").is_none());
    send(&mut b, json!({"type":"turn_refresh"}));
    assert_eq!(drain(&mut b_out)[0]["code"], "unavailable");
}

#[tokio::test]
async fn shutdown_closes_everyone_with_1001_and_refuses_admissions() {
    let hub = Hub::new(SignalingConfig::default());
    let mut rx = hub.subscribe();
    let (_a, mut a_out) = admit(&hub, "a", Role::Attendee);
    let (_h, mut h_out) = admit(&hub, "h", Role::Host);
    hub.shutdown();
    for out in [&mut a_out, &mut h_out] {
        match out.recv().await {
            Some(Outbound::Close(close)) => assert_eq!(close.code, 1001),
            other => panic!("expected a close, got {other:?}"),
        }
        assert_eq!(out.recv().await, None);
    }
    assert_eq!(hub.stats_snapshot().peers, 0);
    assert_eq!(hub.stats_snapshot().rooms, 0);
    let left = events(&mut rx)
        .into_iter()
        .filter(|(_, k)| *k == RoomEventKind::Left { reason: LeaveReason::Shutdown })
        .count();
    assert_eq!(left, 2);
    let refused = hub.try_admit(Admission {
        room_id: 9,
        client_id: "z".into(),
        identity: "Z".into(),
        role: Role::Attendee,
        seat_key: "z".into(),
        capacity: 10,
    });
    assert_eq!(refused.unwrap_err(), AdmitError::ShuttingDown);
}

#[tokio::test]
async fn outbox_wakes_its_writer() {
    let hub = Hub::new(SignalingConfig::default());
    let (mut a, _a_out) = admit(&hub, "a", Role::Attendee);
    let (b, mut b_out) = admit(&hub, "b", Role::Attendee);
    let writer = tokio::spawn(async move { b_out.recv().await });
    tokio::task::yield_now().await;
    send(&mut a, json!({"type":"send","to":"b","data_type":"r","data":{}}));
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await.unwrap().unwrap();
    assert!(matches!(got, Some(Outbound::Text(_))));
    drop(b);
    assert_eq!(hub.occupancy(9).unwrap().attendees, 1);
}

#[test]
fn closing_a_room_ends_the_event_for_everyone_in_it() {
    let hub = Hub::new(SignalingConfig::default());
    let mut rx = hub.subscribe();
    let (_host, mut host_out) = admit(&hub, "host", Role::Host);
    let (_a, mut a_out) = admit(&hub, "a", Role::Attendee);
    assert!(hub.ban(9, "a"));
    let other = Admission {
        room_id: 10,
        client_id: "x".into(),
        identity: "X".into(),
        role: Role::Attendee,
        seat_key: "x".into(),
        capacity: 1,
    };
    let (_x, mut x_out) = hub.try_admit(other).unwrap();
    drain(&mut x_out);

    assert_eq!(hub.close_room(9), 1);
    let close = close_of(&mut host_out);
    assert_eq!((close.code, close.reason.as_str()), (4410, "event ended"));
    assert_eq!(close_of(&mut a_out).code, 4003, "already banned before the end");
    assert!(hub.occupancy(9).is_none(), "the room and its ban list are gone");
    assert_eq!(hub.stats_snapshot().rooms, 1);
    assert!(x_out.try_recv().is_none(), "other rooms are untouched");
    assert!(events(&mut rx).contains(&("host".into(), RoomEventKind::Left { reason: LeaveReason::EventEnded })));
}
