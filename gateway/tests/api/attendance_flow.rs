//! Attendance end to end with real WebSocket clients on both databases: join, chat, voice and screen-share
//! reports cross-checked with the relayed SDP, leave; the rows and per-ticket totals in the store; the SSE
//! feed and the host's WebSocket feed in order and on time; silent connections timed out; anonymised
//! wallets and the offline country lookup.

use crate::{attendance_support, common};

use std::time::Duration;

use attendance_support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use ticketing::testing::RawSql;

/// An SDP offer that sends audio (a live `m=audio` section, `sendrecv`).
const AUDIO_OFFER: &str =
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n";

app_test!(join_chat_voice_screen_leave_rows_and_feeds, |app| async move {
    let store = &app.store;
    let event_id = event(store, 10, 0).await;
    let (t_alice, t_bob) = (ticket(store, event_id, "alice-w").await, ticket(store, event_id, "bob-w").await);
    let mut feed =
        sse(&app.client, app.url(&format!("/api/events/{event_id}/attendees/stream")), common::ADMIN_TOKEN).await;
    // The sales of the two tickets above may reach the feed before or after the subscription: left out below.
    let earlier_sales = [t_alice, t_bob];

    // The creator joins as host; the host's socket carries the feed too.
    let res = app
        .client
        .post(app.url(&format!("/api/events/{event_id}/host")))
        .bearer_auth(creator_token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let host_token = res.json::<Value>().await.unwrap()["session_token"].as_str().unwrap().to_owned();
    let mut host = connect(&app.address, event_id, &host_token).await;
    next_of(&mut host, "welcome").await;
    let host_frames = tokio::spawn(async move {
        let mut frames = Vec::new();
        while frames.len() < 12 {
            let frame = next_of(&mut host, "feed").await;
            let own_arrival = frame["kind"] == "joined" && frame["role"] == "host";
            let earlier_sale =
                frame["kind"] == "ticket_sold" && earlier_sales.iter().any(|t| frame["detail"]["ticket_id"] == *t);
            if !own_arrival && !earlier_sale {
                frames.push(frame);
            }
        }
        (frames, host)
    });
    // The host's own arrival is the feed's first item: the host is in before anyone else comes.
    let mut got = vec![next_item(&mut feed, &earlier_sales).await];

    let mut bob = connect(&app.address, event_id, &token(event_id, t_bob, "bob-w")).await;
    let bob_id = next_of(&mut bob, "welcome").await["client_id"].as_str().unwrap().to_owned();
    let mut alice = connect(&app.address, event_id, &token(event_id, t_alice, "alice-w")).await;
    let alice_id = next_of(&mut alice, "welcome").await["client_id"].as_str().unwrap().to_owned();
    send(&mut alice, json!({ "type": "chat", "text": "hello" })).await;
    send(&mut alice, json!({ "type": "chat", "text": "again" })).await;
    // The adapter reports the microphone live, but no audio track is negotiated yet: this second is not voice.
    send(&mut alice, json!({ "type": "media", "mic": true })).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The voice clock starts when the server relays the offer: between these two readings.
    let offer_sent = ticketing::now_ms();
    send(&mut alice, json!({ "type": "offer", "to": bob_id, "sdp": AUDIO_OFFER })).await;
    assert_eq!(next_of(&mut bob, "offer").await["from"], alice_id.as_str());
    let offer_seen = ticketing::now_ms();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    send(&mut alice, json!({ "type": "media", "mic": false })).await;
    send(&mut alice, json!({ "type": "media", "screen": true })).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    send(&mut alice, json!({ "type": "media", "screen": false })).await;
    send(&mut alice, json!({ "type": "ping", "client_time": 1 })).await;
    next_of(&mut alice, "pong").await;
    alice.close(None).await.unwrap();

    // The store: one row per admission, counters exact, the ticket's totals follow.
    let rows =
        rows_until(store, event_id, |rows| rows.iter().any(|r| r.client_id == alice_id && r.left_at.is_some())).await;
    let a = rows.iter().find(|r| r.client_id == alice_id).unwrap();
    assert_eq!(a.ticket_id, Some(t_alice));
    assert_eq!((a.wallet.as_str(), a.role.as_str()), ("alice-w", "attendee"));
    assert_eq!(a.end_reason.as_deref(), Some("left"));
    assert_eq!(a.chat_messages, 2);
    assert_eq!(a.screen_shared, 1);
    assert_eq!(a.duration_secs, Some((a.left_at.unwrap() - a.joined_at) / 1000));
    assert!(a.duration_secs.unwrap() >= 4, "{a:?}");
    let b = rows.iter().find(|r| r.client_id == bob_id).unwrap();
    assert_eq!((b.left_at, b.chat_messages, b.voice_secs), (None, 0, 0));
    let host_row = rows.iter().find(|r| r.role == "host").unwrap();
    assert_eq!((host_row.ticket_id, host_row.wallet.as_str()), (None, "alice"));
    let (count, total): (i64, i64) =
        sqlx::query_as("SELECT access_count, total_duration_secs FROM tickets WHERE id = $1")
            .bind(t_alice)
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
    assert_eq!((count, total), (1, a.duration_secs.unwrap()));

    // A sale shows up in the feed too.
    let t_carol = ticket(store, event_id, "carol-w").await;
    let sold_at = ticketing::now_ms();

    // The SSE feed: every event, in order, each within a second of happening.
    while got.len() < 14 {
        got.push(next_item(&mut feed, &earlier_sales).await);
    }
    let summary: Vec<String> = got
        .iter()
        .map(|r| {
            let d = &r.data;
            assert_eq!(r.name, d["kind"].as_str().unwrap());
            assert_eq!(d["event_id"], event_id);
            let who = match d["client_id"].as_str() {
                Some(id) if id == alice_id => "alice",
                Some(id) if id == bob_id => "bob",
                Some(_) => "host",
                None => "-",
            };
            let detail = match r.name.as_str() {
                "left" => d["detail"]["reason"].as_str().unwrap().to_owned(),
                "voice" | "screen_share" => d["detail"]["on"].to_string(),
                "chat" => d["detail"]["text"].as_str().unwrap().to_owned(),
                "capacity" => format!("{}/{}", d["detail"]["attendees"], d["detail"]["capacity"]),
                "ticket_sold" => (d["detail"]["ticket_id"] == t_carol).to_string(),
                _ => String::new(),
            };
            format!("{} {who} {detail}", r.name)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            "joined host ",
            "joined bob ",
            "capacity - 1/10",
            "joined alice ",
            "capacity - 2/10",
            "chat alice hello",
            "chat alice again",
            "voice alice true",
            "voice alice false",
            "screen_share alice true",
            "screen_share alice false",
            "left alice left",
            "capacity - 1/10",
            "ticket_sold - true",
        ]
    );
    let worst = got.iter().map(|r| r.received_at - r.data["at"].as_i64().unwrap()).max().unwrap();
    eprintln!("feed: worst delay from event to SSE delivery {worst} ms");
    for r in &got {
        let at = r.data["at"].as_i64().unwrap();
        assert!(r.received_at - at < 1000, "{} delivered {} ms after it happened", r.name, r.received_at - at);
    }
    let sold = got.last().unwrap();
    assert!(sold.received_at - sold_at < 1000, "ticket_sold {} ms after the sale", sold.received_at - sold_at);
    assert_eq!(sold.data["identity"], "carol-w");

    // Voice and screen time, to the second, from the server's own clock readings: voice ran from the relayed
    // offer (not from the earlier microphone report) to the microphone going off; screen share from on to off.
    let at = |summary_line: &str| {
        let i = summary.iter().position(|s| s == summary_line).unwrap();
        got[i].data["at"].as_i64().unwrap()
    };
    let voice_off = at("voice alice false");
    let (least, most) = ((voice_off - offer_seen) / 1000, (voice_off - offer_sent) / 1000);
    assert!(
        (least..=most).contains(&a.voice_secs) && a.voice_secs >= 1,
        "voice counted only after the audio track was negotiated: {} s, not in {least}..={most}",
        a.voice_secs
    );
    let screen_secs = (at("screen_share alice false") - at("screen_share alice true")) / 1000;
    assert_eq!(a.screen_share_secs, screen_secs, "screen share time from its on and off reports");

    // The host's socket carried the same feed as `feed` frames.
    let (frames, _host) =
        tokio::time::timeout(Duration::from_secs(5), host_frames).await.expect("host feed in time").unwrap();
    let host_kinds: Vec<&str> = frames.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    let sse_kinds: Vec<&str> = got.iter().skip(1).map(|r| r.name.as_str()).collect();
    assert_eq!(host_kinds, &sse_kinds[..12]);
    drop(bob);
});

app_test!(feed_and_analytics_refuse_strangers, |app| async move {
    let event_id = event(&app.store, 10, 0).await;
    let url = app.url(&format!("/api/events/{event_id}/attendees/stream"));
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let res = app.client.get(&url).bearer_auth(creator_token("mallory")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .client
        .get(app.url(&format!("/api/events/{event_id}/analytics")))
        .bearer_auth(creator_token("mallory"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res =
        app.client.get(app.url("/api/events/999999/analytics")).bearer_auth(common::ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
});

/// A client that stops answering pings is closed as `timed_out` after `idle_timeout_secs`.
async fn silent_client_times_out(backend: ticketing::Backend) {
    let app = common::spawn_app_with(backend, |s| {
        s.rooms.ping_interval_secs = 1;
        s.rooms.idle_timeout_secs = 2;
        // The departure is recorded at once, not after a resume window (resume_ws.rs covers that).
        s.signaling.resume_window_secs = 0;
    })
    .await;
    let event_id = event(&app.store, 10, 0).await;
    let t = ticket(&app.store, event_id, "quiet-w").await;
    let mut ws = connect(&app.address, event_id, &token(event_id, t, "quiet-w")).await;
    next_of(&mut ws, "welcome").await;
    // tokio-tungstenite answers pings only while polled: from here on it is never polled, so never pongs.
    let stopped = ticketing::now_ms();
    let rows = rows_until(&app.store, event_id, |rows| rows.first().is_some_and(|r| r.left_at.is_some())).await;
    assert_eq!(rows[0].end_reason.as_deref(), Some("timed_out"), "{rows:?}");
    // The server last heard the client a little before the test read `welcome` (which waited up to one flush
    // interval, 20 ms, in the socket's queue), so the close may come slightly under 2 s after `stopped`.
    let after = rows[0].left_at.unwrap() - stopped;
    assert!((1900..=4500).contains(&after), "closed {after} ms after the client fell silent");
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_times_out_sqlite() {
    silent_client_times_out(ticketing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_times_out_postgres() {
    silent_client_times_out(ticketing::Backend::Postgres).await;
}

/// `rooms.anonymise_attendance` stores a hash of the wallet; `geo` tags the session with the country of the
/// connection from a local CSV file (here: loopback is `ZZ`).
async fn anonymised_and_located(backend: ticketing::Backend) {
    let geo_file = std::env::temp_dir().join(format!("geo-{}-{:?}.csv", std::process::id(), backend));
    std::fs::write(&geo_file, "1.0.0.0,1.0.0.255,AU\n127.0.0.0,127.255.255.255,ZZ\n").unwrap();
    let path = geo_file.clone();
    let app = common::spawn_app_with(backend, move |s| {
        s.rooms.anonymise_attendance = true;
        s.geo.enabled = true;
        s.geo.database = Some(path);
    })
    .await;
    let event_id = event(&app.store, 10, 0).await;
    let t = ticket(&app.store, event_id, "private-w").await;
    let mut ws = connect(&app.address, event_id, &token(event_id, t, "private-w")).await;
    next_of(&mut ws, "welcome").await;
    let rows = rows_until(&app.store, event_id, |rows| !rows.is_empty()).await;
    assert_eq!(rows[0].wallet, gateway::live::attendance::wallet_hash("private-w"));
    assert!(!rows[0].wallet.contains("private-w"));
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT wallet FROM attendance_sessions").fetch_all(app.store.raw_pool()).await.unwrap();
    assert!(stored.iter().all(|w| w.starts_with("sha256:")), "{stored:?}");
    let countries = app.store.session_countries(event_id).await.unwrap();
    assert_eq!(countries.values().collect::<Vec<_>>(), vec!["ZZ"]);
    let res = app
        .client
        .get(app.url(&format!("/api/events/{event_id}/analytics")))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["attendance"]["countries"], json!({ "ZZ": 1 }));
    drop(ws);
    let _ = std::fs::remove_file(geo_file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymised_and_located_sqlite() {
    anonymised_and_located(ticketing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymised_and_located_postgres() {
    anonymised_and_located(ticketing::Backend::Postgres).await;
}

#[tokio::test]
async fn geo_switch_without_a_file_refuses_to_start() {
    let settings = gateway::geo::GeoSettings { enabled: true, database: None };
    let err = gateway::geo::Geo::from_settings(&settings).err().expect("refused");
    assert!(err.to_string().contains("geo.database"), "{err}");
    assert!(gateway::geo::Geo::from_settings(&Default::default()).unwrap().is_none(), "off by default");
}

/// The feed's next item, leaving out the sales of the `earlier` tickets.
async fn next_item(feed: &mut tokio::sync::mpsc::UnboundedReceiver<Received>, earlier: &[i64]) -> Received {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await.expect("feed item in time").unwrap();
        let earlier_sale = item.name == "ticket_sold" && earlier.iter().any(|t| item.data["detail"]["ticket_id"] == *t);
        if !earlier_sale {
            return item;
        }
    }
}
