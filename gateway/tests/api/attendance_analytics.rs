//! Analytics against a hand-computed fixture: sessions with known times seeded straight into the store
//! (through the recorder's own batch write), tickets sold through the real purchase path, and every figure of
//! `GET /api/events/{id}/analytics` and `GET /api/creators/me/analytics` compared with the arithmetic below.

use crate::{attendance_support, common};

use attendance_support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use ticketing::attendance::AttendanceChange;

fn opened(id: &str, event_id: i64, ticket: Option<i64>, wallet: &str, at: i64) -> AttendanceChange {
    AttendanceChange::Opened {
        session_id: id.into(),
        event_id,
        ticket_id: ticket,
        wallet: wallet.into(),
        role: if ticket.is_some() { "attendee" } else { "host" },
        client_id: id.into(),
        node_id: "fixture".into(),
        at,
    }
}

fn closed(id: &str, at: i64, reason: &str) -> AttendanceChange {
    AttendanceChange::Closed { session_id: id.into(), at, reason: reason.into() }
}

fn engaged(id: &str, chat: i64, voice: i64, screen: i64) -> AttendanceChange {
    AttendanceChange::Engagement {
        session_id: id.into(),
        chat_messages: chat,
        voice_secs: voice,
        screen_share_secs: screen,
    }
}

app_test!(analytics_match_a_hand_computed_fixture, |app| async move {
    let store = &app.store;
    // Started an hour ago: the sessions below fall inside it, where attendance counts.
    let event_id = event(store, 10, -60 * MIN).await;
    // Three tickets at 1 HIVE: gross 3, commission 20 % = 0.6, net 2.4. The third never enters.
    let (t1, t2, _t3) = (
        ticket(store, event_id, "wal-one").await,
        ticket(store, event_id, "wal-two").await,
        ticket(store, event_id, "wal-three").await,
    );
    // A minute boundary half an hour ago; seconds below are offsets from it.
    let base = (ticketing::now_ms() / 60_000) * 60_000 - 30 * MIN;
    let s = |secs: i64| base + secs * 1000;
    store
        .record_attendance(&[
            opened("host", event_id, None, "alice", s(0)),
            opened("s1", event_id, Some(t1), "wal-one", s(0)),
            opened("s2", event_id, Some(t2), "wal-two", s(30)),
            engaged("s1", 3, 20, 0),
            closed("s1", s(90), "left"),
            engaged("s2", 1, 0, 10),
            AttendanceChange::ScreenShared { session_id: "s2".into() },
            closed("s2", s(150), "kicked"),
            opened("s3", event_id, Some(t1), "wal-one", s(150)),
            closed("s3", s(210), "timed_out"),
            opened("s4", event_id, Some(t2), "wal-two", s(240)),
            engaged("s4", 2, 5, 0),
            closed("host", s(300), "left"),
            AttendanceChange::Located { session_id: "s1".into(), country: "DE".into() },
            AttendanceChange::Located { session_id: "s2".into(), country: "FR".into() },
            AttendanceChange::Located { session_id: "s3".into(), country: "DE".into() },
        ])
        .await
        .unwrap();

    let res = app
        .client
        .get(app.url(&format!("/api/events/{event_id}/analytics")))
        .bearer_auth(creator_token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["event_id"], event_id);
    assert_eq!(body["tickets_sold"], 3);
    assert_eq!(
        body["revenue"],
        json!([{ "currency": "HIVE", "tickets_sold": 3, "gross": "3", "commission": "0.6", "net": "2.4", "gross_usd": "0.75", "net_usd": "0.60" }])
    );
    // t1 and t2 entered, t3 did not: 2 of 3.
    assert_eq!(body["check_in"]["tickets_sold"], 3);
    assert_eq!(body["check_in"]["tickets_used"], 2);
    assert!((body["check_in"]["rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    let a = &body["attendance"];
    // Attendee sessions s1 [0,90), s2 [30,150), s3 [150,210), s4 [240, now); the host is left out.
    assert_eq!(a["sessions"], 4);
    assert_eq!(a["unique_attendees"], 2);
    // s1 and s2 overlap from 30 s; at 150 s s2 leaves as s3 arrives, which is not an overlap.
    assert_eq!(a["peak_concurrent"], 2);
    // Times are RFC 3339 UTC with milliseconds, as everywhere in the JSON API.
    assert_eq!(a["peak_at"], gateway::http::time::rfc3339(s(30)));
    assert_eq!(a["current_concurrent"], 1);
    // Closed sessions: 90 + 120 + 60 = 270 s over 3.
    assert_eq!(a["total_duration_secs"], 270);
    assert_eq!(a["average_duration_secs"], 90.0);
    assert_eq!(
        a["engagement"],
        json!({ "chat_messages": 6, "voice_secs": 25, "screen_share_secs": 10, "screen_sharing_sessions": 1 })
    );
    assert_eq!(a["end_reasons"], json!({ "kicked": 1, "left": 1, "timed_out": 1 }));
    assert_eq!(a["countries"], json!({ "DE": 2, "FR": 1 }));
    let minutes = a["per_minute"].as_array().unwrap();
    // Minute 0: s1, s2 (peak 2). Minute 1: s1 until 90 s, s2 (2 at 60 s). Minute 2: s2 until 150 s, then s3
    // (never both). Minute 3: s3 until 210 s. From minute 4 on: s4 alone, up to now.
    let expected = [(0, 2, 2), (1, 2, 2), (2, 2, 1), (3, 1, 1), (4, 1, 1)];
    for (i, present, peak) in expected {
        assert_eq!(
            minutes[i],
            json!({ "minute": gateway::http::time::rfc3339(base + i as i64 * 60_000), "present": present, "peak": peak }),
            "minute {i}"
        );
    }
    assert!(minutes.len() >= 30 && minutes.len() <= 32, "{} minutes", minutes.len());
    assert!(minutes[5..].iter().all(|m| m["present"] == 1 && m["peak"] == 1));

    // The creator's view: one event, the same figures summed.
    let res =
        app.client.get(app.url("/api/creators/me/analytics")).bearer_auth(creator_token("alice")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["creator"], "alice");
    assert_eq!(me["revenue"], body["revenue"]);
    let totals = &me["totals"];
    assert_eq!(
        (
            totals["events"].as_i64(),
            totals["tickets_sold"].as_i64(),
            totals["tickets_used"].as_i64(),
            totals["sessions"].as_i64()
        ),
        (Some(1), Some(3), Some(2), Some(4))
    );
    assert_eq!((totals["peak_concurrent"].as_i64(), totals["current_concurrent"].as_i64()), (Some(2), Some(1)));
    assert_eq!(totals["average_duration_secs"], 90.0);
    assert_eq!(totals["engagement"], a["engagement"]);
    assert_eq!(me["events"][0]["event_id"], event_id);
    // The operator asks for a named creator; without a name, 400; a stranger's session sees only their own.
    let res = app
        .client
        .get(app.url("/api/creators/me/analytics?account=alice"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["totals"]["sessions"], 4);
    let res =
        app.client.get(app.url("/api/creators/me/analytics")).bearer_auth(common::ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res =
        app.client.get(app.url("/api/creators/me/analytics")).bearer_auth(creator_token("bob")).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["totals"]["events"], 0);
    assert_eq!(
        app.client.get(app.url("/api/creators/me/analytics")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
});
