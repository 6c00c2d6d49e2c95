//! Shards and the stage end to end with real WebSocket clients, on both databases: a host on the stage reaches
//! every shard, attendees of different shards never see each other, moving shards, the stage over HTTP,
//! announcements, and the shard recorded in attendance.

use crate::{attendance_support, common};

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use attendance_support::{creator_token, next_of, send, token, Ws, MIN};

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

/// A live event of `seats` whose shards hold `shard_size` attendees, set through the creator's event API.
async fn sharded_event(app: &common::TestApp, seats: i64, shard_size: i64) -> i64 {
    let event_id = attendance_support::event(&app.store, seats, 0).await;
    let patch = |size: i64| {
        app.client
            .patch(app.url(&format!("/api/events/{event_id}")))
            .bearer_auth(creator_token("alice"))
            .json(&json!({ "shard_size": size }))
            .send()
    };
    let too_big = patch(51).await.unwrap();
    assert_eq!(too_big.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_big.json::<Value>().await.unwrap()["error"]["code"], "invalid_shard_size");
    let res = patch(shard_size).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    let view: Value = app.get(&format!("/api/events/{event_id}")).await.json().await.unwrap();
    assert_eq!(view["shard_size"], shard_size);
    event_id
}

struct Member {
    ws: Ws,
    id: String,
    shard: u64,
}

async fn join(app: &common::TestApp, event_id: i64, token: &str) -> Member {
    let mut ws = attendance_support::connect(&app.address, event_id, token).await;
    let welcome = next_of(&mut ws, "welcome").await;
    Member { ws, id: welcome["client_id"].as_str().unwrap().to_owned(), shard: welcome["shard"].as_u64().unwrap() }
}

async fn attendee(app: &common::TestApp, event_id: i64, wallet: &str) -> Member {
    let ticket = attendance_support::ticket(&app.store, event_id, wallet).await;
    join(app, event_id, &token(event_id, ticket, wallet)).await
}

/// Every frame until one of `kind` that satisfies `done`, that one included.
async fn frames_until(ws: &mut Ws, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("frame in time")
            .expect("open")
            .unwrap();
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).unwrap();
        let frames = if v["type"] == "batch" { v["frames"].as_array().unwrap().clone() } else { vec![v] };
        for frame in frames {
            let last = done(&frame);
            seen.push(frame);
            if last {
                return seen;
            }
        }
    }
}

fn from(frames: &[Value], client: &str) -> usize {
    frames.iter().filter(|f| f["from"] == client).count()
}

/// A broadcast from `who` with a marker, so a reader knows when it arrived.
async fn mark(who: &mut Member, marker: &str) {
    send(
        &mut who.ws,
        json!({ "type": "broadcast", "data_type": "u", "data": { "networkId": marker, "owner": who.id } }),
    )
    .await;
}

fn is_mark(marker: &'static str) -> impl Fn(&Value) -> bool {
    move |f: &Value| f["type"] == "broadcast" && f["data"]["networkId"] == marker
}

app_test!(the_stage_reaches_every_shard_and_attendees_stay_in_theirs, |app| async move {
    let event_id = sharded_event(&app, 10, 2).await;
    let mut host = join(&app, event_id, &host_token(event_id)).await;
    let mut a = attendee(&app, event_id, "ann-w").await;
    let mut b = attendee(&app, event_id, "ben-w").await;
    let mut c = attendee(&app, event_id, "cat-w").await;
    assert_eq!((a.shard, b.shard, c.shard), (0, 0, 1), "the fullest shard with room first, then a new one");

    // The host's update reaches both shards.
    mark(&mut host, "host-avatar").await;
    for m in [&mut a, &mut b, &mut c] {
        frames_until(&mut m.ws, is_mark("host-avatar")).await;
    }
    // Ann's update reaches Ben (her shard), not Cat: Cat reads up to the host's next update and never sees Ann's.
    mark(&mut a, "ann-avatar").await;
    frames_until(&mut b.ws, is_mark("ann-avatar")).await;
    mark(&mut host, "host-moved").await;
    let cat_saw = frames_until(&mut c.ws, is_mark("host-moved")).await;
    assert_eq!(from(&cat_saw, &a.id), 0, "{cat_saw:?}");
    assert!(cat_saw.iter().all(|f| f["client_id"] != a.id.as_str()), "no presence of Ann in shard 1: {cat_saw:?}");
    // Cat cannot address Ann.
    send(&mut c.ws, json!({ "type": "send", "to": a.id, "data_type": "u", "data": {} })).await;
    assert_eq!(next_of(&mut c.ws, "error").await["code"], "not_in_room");

    // The host's announcement over its socket, and the creator's over HTTP, reach every shard.
    send(&mut host.ws, json!({ "type": "announce", "text": "Starting in one minute" })).await;
    let host_id = host.id.clone();
    for m in [&mut a, &mut b, &mut c, &mut host] {
        let got = next_of(&mut m.ws, "announcement").await;
        assert_eq!(
            (got["text"].as_str(), got["from"].as_str()),
            (Some("Starting in one minute"), Some(host_id.as_str()))
        );
    }
    let res = app
        .client
        .post(app.url(&format!("/api/events/{event_id}/announcements")))
        .bearer_auth(creator_token("alice"))
        .json(&json!({ "text": "Doors close soon" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for m in [&mut a, &mut b, &mut c, &mut host] {
        let got = next_of(&mut m.ws, "announcement").await;
        assert_eq!((got["text"].as_str(), &got["from"]), (Some("Doors close soon"), &Value::Null));
    }
    // Attendees may not announce.
    send(&mut a.ws, json!({ "type": "announce", "text": "me!" })).await;
    assert_eq!(next_of(&mut a.ws, "error").await["code"], "forbidden");

    // Occupancy per shard for the creator.
    let shards: Value = app.get_json_as(&format!("/api/events/{event_id}/shards"), &creator_token("alice")).await;
    assert_eq!(shards["live"], json!([{ "shard": 0, "attendees": 2 }, { "shard": 1, "attendees": 1 }]));
    assert_eq!(shards["stage"], json!([host.id]));
});

app_test!(an_attendee_moves_to_a_shard_with_room_and_attendance_records_it, |app| async move {
    let event_id = sharded_event(&app, 10, 2).await;
    let mut host = join(&app, event_id, &host_token(event_id)).await;
    let mut a = attendee(&app, event_id, "ann-w").await;
    let mut b = attendee(&app, event_id, "ben-w").await;
    let mut c = attendee(&app, event_id, "cat-w").await;
    // Shard 0 is full: Cat cannot move there.
    send(&mut c.ws, json!({ "type": "switch_shard", "shard": 0 })).await;
    assert_eq!(next_of(&mut c.ws, "error").await["code"], "shard_full");
    // Ben moves to the shard with room (Cat's).
    send(&mut b.ws, json!({ "type": "switch_shard" })).await;
    let changed = next_of(&mut b.ws, "shard_changed").await;
    assert_eq!(changed["shard"], 1);
    let mut sees: Vec<&str> = changed["occupants"].as_object().unwrap().keys().map(String::as_str).collect();
    sees.sort();
    let mut want = vec![host.id.as_str(), c.id.as_str()];
    want.sort();
    assert_eq!(sees, want);
    let left = next_of(&mut a.ws, "peer_left").await;
    assert_eq!((left["client_id"].as_str(), left["reason"].as_str()), (Some(b.id.as_str()), Some("moved")));
    assert_eq!(next_of(&mut c.ws, "peer_joined").await["client_id"], b.id.as_str());
    // Now Ben and Cat see each other, and Ann sees neither.
    mark(&mut b, "ben-avatar").await;
    frames_until(&mut c.ws, is_mark("ben-avatar")).await;
    mark(&mut host, "host-wave").await;
    let ann_saw = frames_until(&mut a.ws, is_mark("host-wave")).await;
    assert_eq!(from(&ann_saw, &b.id), 0, "{ann_saw:?}");
    // The attendance rows record each attendee's shard (Ben's last one), written behind the relay.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rows = app.store.attendance_sessions(event_id).await.unwrap();
        let shard_of = |id: &str| rows.iter().find(|r| r.client_id == id).and_then(|r| r.shard);
        if (shard_of(&a.id), shard_of(&b.id), shard_of(&c.id)) == (Some(0), Some(1), Some(1)) {
            let by_shard = app.store.attendance_by_shard(event_id).await.unwrap();
            assert_eq!(by_shard.iter().map(|s| (s.shard, s.tickets)).collect::<Vec<_>>(), [(0, 1), (1, 2)]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "shards not recorded: {rows:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Issue 24: occupancy per shard over time, for the creator's charts (each session counts in its last shard).
    let shards: Value = app.get_json_as(&format!("/api/events/{event_id}/shards"), &creator_token("alice")).await;
    let over_time = &shards["over_time"];
    let minutes = over_time["minutes"].as_array().unwrap();
    assert!(!minutes.is_empty() && minutes.len() <= 2, "the minutes since the joins: {over_time}");
    let last = minutes.len() - 1;
    assert_eq!(over_time["shards"][0]["shard"], 0, "{over_time}");
    assert_eq!(over_time["shards"][0]["present"][last], 1, "Ann in shard 0: {over_time}");
    assert_eq!(over_time["shards"][1]["shard"], 1, "{over_time}");
    assert_eq!(over_time["shards"][1]["present"][last], 2, "Ben and Cat in shard 1: {over_time}");
    assert_eq!(over_time["shards"].as_array().unwrap().len(), 2, "the host (on the stage) is no shard's: {over_time}");
    // Drawn as one line per shard, at the width the page asks for; only for the event's host.
    let chart = |token: String| {
        app.client
            .get(app.url(&format!("/api/events/{event_id}/charts/shards.svg?width=358")))
            .bearer_auth(token)
            .send()
    };
    let res = chart(creator_token("alice")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    let svg = res.text().await.unwrap();
    assert!(svg.contains(r#"viewBox="0 0 358 "#) && svg.contains(">Shard 0<") && svg.contains(">Shard 1<"), "{svg}");
    assert_eq!(svg.matches("<path").count(), 2, "{svg}");
    assert_eq!(chart(creator_token("mallory")).await.unwrap().status(), StatusCode::FORBIDDEN);
    drop(host);
});

app_test!(a_speaker_invited_over_http_reaches_every_shard_until_removed, |app| async move {
    let event_id = sharded_event(&app, 10, 2).await;
    let mut host = join(&app, event_id, &host_token(event_id)).await;
    let mut a = attendee(&app, event_id, "ann-w").await;
    let mut b = attendee(&app, event_id, "ben-w").await;
    let mut c = attendee(&app, event_id, "cat-w").await;
    let stage = |method: reqwest::Method, client: &str| {
        app.client
            .request(method, app.url(&format!("/api/events/{event_id}/stage/{client}")))
            .bearer_auth(creator_token("alice"))
            .send()
    };
    assert_eq!(stage(reqwest::Method::POST, &a.id).await.unwrap().status(), StatusCode::NO_CONTENT);
    // Cat's shard now sees Ann, and hears her.
    assert_eq!(next_of(&mut c.ws, "peer_joined").await["client_id"], a.id.as_str());
    let on = next_of(&mut c.ws, "stage").await;
    assert_eq!((on["client_id"].as_str(), on["on_stage"].as_bool()), (Some(a.id.as_str()), Some(true)));
    next_of(&mut a.ws, "stage").await;
    mark(&mut a, "speaker").await;
    frames_until(&mut c.ws, is_mark("speaker")).await;
    frames_until(&mut b.ws, is_mark("speaker")).await;
    // Off the stage: back in shard 0; shard 1 no longer sees her.
    assert_eq!(stage(reqwest::Method::DELETE, &a.id).await.unwrap().status(), StatusCode::NO_CONTENT);
    let gone = next_of(&mut c.ws, "peer_left").await;
    assert_eq!((gone["client_id"].as_str(), gone["reason"].as_str()), (Some(a.id.as_str()), Some("moved")));
    // The host is always on the stage; unknown clients are 404.
    assert_eq!(stage(reqwest::Method::DELETE, &host.id).await.unwrap().status(), StatusCode::CONFLICT);
    assert_eq!(stage(reqwest::Method::POST, "nobody").await.unwrap().status(), StatusCode::NOT_FOUND);
    // Over the host's socket too.
    send(&mut host.ws, json!({ "type": "invite_to_stage", "target": b.id })).await;
    assert_eq!(next_of(&mut c.ws, "peer_joined").await["client_id"], b.id.as_str());
    drop((a, b));
});
