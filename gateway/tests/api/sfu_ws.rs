//! The SFU wired into the gateway, end to end: real room WebSockets carry the SFU's signalling and real WebRTC
//! clients (str0m: full ICE, DTLS-SRTP over loopback UDP) send and receive the media. A host is heard by three
//! listeners, who learn from `sfu_tracks` whose stream they hear; a host's HTTP mute stops the bytes in the SFU;
//! leaving closes the SFU session and the voice time it forwarded lands in the host's attendance row, also when
//! the session ends before the attendance recorder's first flush. An attendee the host invites onto the stage is
//! told it may publish and is heard in every shard; taken off the stage, its voice stops at once.

use crate::{attendance_support, common};

use std::time::Duration;

use attendance_support::{creator_token, MIN, SECRET};
use futures_util::{SinkExt, StreamExt};
use gateway::media_plane::MediaMode;
use media::testing::{TestClient, Transceivers};
use serde_json::{json, Value};
use ticketing::testing::RawSql;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const LISTENER: Transceivers =
    Transceivers { send_audio: false, send_video: false, recv_audio: 3, recv_video: true, video_layers: &[] };
const PUBLISHER: Transceivers =
    Transceivers { send_audio: true, send_video: true, recv_audio: 3, recv_video: true, video_layers: &[] };

/// A room connection pumped by a task: frames in order on `frames`, frames out through `out`.
struct Room {
    client_id: String,
    /// The shard its `welcome` placed it in.
    shard: u64,
    frames: mpsc::UnboundedReceiver<Value>,
    out: mpsc::UnboundedSender<Message>,
    seen: Vec<Value>,
    /// Frames skipped by `next_of`, for a later `next_of` (an SFU frame may come before `welcome`).
    skipped: std::collections::VecDeque<Value>,
}

impl Room {
    async fn join(app: &common::TestApp, event_id: i64, token: &str) -> Room {
        let ws = attendance_support::connect(&app.address, event_id, token).await;
        let (mut sink, mut stream) = ws.split();
        let (frames_tx, frames) = mpsc::unbounded_channel();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
                    let batch = value["type"] == "batch";
                    let items =
                        if batch { value["frames"].as_array().cloned().unwrap_or_default() } else { vec![value] };
                    for item in items {
                        let _ = frames_tx.send(item);
                    }
                }
            }
        });
        let mut room =
            Room { client_id: String::new(), shard: 0, frames, out, seen: Vec::new(), skipped: Default::default() };
        let welcome = room.next_of("welcome").await;
        room.client_id = welcome["client_id"].as_str().unwrap().to_owned();
        room.shard = welcome["shard"].as_u64().unwrap_or(0);
        room
    }

    async fn next_of(&mut self, kind: &str) -> Value {
        if let Some(i) = self.skipped.iter().position(|f| f["type"] == kind) {
            return self.skipped.remove(i).expect("found");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.frames.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} frame in time; saw {:?}", self.seen))
                .expect("connection open");
            self.seen.push(frame.clone());
            if frame["type"] == kind {
                return frame;
            }
            self.skipped.push_back(frame);
        }
    }

    fn send(&self, frame: Value) {
        self.out.send(Message::Text(frame.to_string().into())).unwrap();
    }

    /// Connects a WebRTC client to the SFU through this room connection's `sfu_offer`/`sfu_answer`.
    async fn connect_media(&mut self, transceivers: Transceivers) -> TestClient {
        let out = self.out.clone();
        let this = &mut *self;
        TestClient::connect(transceivers, |offer| async move {
            out.send(Message::Text(json!({ "type": "sfu_offer", "sdp": offer }).to_string().into())).unwrap();
            Ok(this.next_of("sfu_answer").await["sdp"].as_str().unwrap().to_owned())
        })
        .await
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn speak(client: &TestClient, frames: usize, level: i8) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..frames {
        tick.tick().await;
        client.speak(level, 9);
    }
}

async fn sfu_app() -> common::TestApp {
    common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.media.mode = MediaMode::Sfu;
        s.media.udp_bind = "127.0.0.1:0".parse().unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_is_heard_through_the_sfu_and_a_server_mute_stops_the_bytes() {
    let app = sfu_app().await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let host_token = gateway::auth::session_token::issue(
        &SECRET,
        event_id,
        None,
        Some("alice".into()),
        "alice".into(),
        ticketing::now_ms() + MIN,
    )
    .0;
    let mut host = Room::join(&app, event_id, &host_token).await;
    assert_eq!(host.next_of("sfu_session").await, json!({ "type": "sfu_session", "publish": true, "audio_slots": 3 }));
    let host_media = host.connect_media(PUBLISHER).await;

    let mut listeners = Vec::new();
    for i in 0..3 {
        let wallet = format!("listener-{i}");
        let ticket = attendance_support::ticket(&app.store, event_id, &wallet).await;
        let mut room = Room::join(&app, event_id, &attendance_support::token(event_id, ticket, &wallet)).await;
        assert_eq!(room.next_of("sfu_session").await["publish"], false, "attendees listen");
        let client = room.connect_media(LISTENER).await;
        listeners.push((room, client));
    }
    wait_until("everyone connected to the SFU", || {
        host_media.seen().connected && listeners.iter().all(|(_, c)| c.seen().connected)
    })
    .await;

    speak(&host_media, 75, -20).await;
    wait_until("every listener hears the host", || listeners.iter().all(|(_, c)| c.seen().audio_frames >= 50)).await;
    for (room, client) in &mut listeners {
        // The first audio slot is the host's: that is what `getMediaStream(host)` resolves to in the adapter.
        let tracks = room.next_of("sfu_tracks").await;
        let tracks = if tracks["audio"][0].is_null() { room.next_of("sfu_tracks").await } else { tracks };
        assert_eq!(tracks["audio"][0], host.client_id.as_str(), "{tracks}");
        let seen = client.seen();
        assert!(seen.levels.iter().all(|l| *l == -20), "the host's level reaches the listener");
        eprintln!(
            "listener {}: {} audio frames, {} bytes, level {:?} dBov",
            room.client_id,
            seen.audio_frames,
            seen.audio_bytes,
            seen.levels.last()
        );
    }

    // A host mutes the host's seat over HTTP: the SFU drops its packets whatever its client sends.
    let before: Vec<u64> = listeners.iter().map(|(_, c)| c.seen().audio_bytes).collect();
    let refused = media::SfuStats::get(&app.state.media.sfu().unwrap().stats().packets_refused);
    let res = app
        .client
        .post(app.url(&format!("/api/events/{event_id}/attendees/{}/mute", host.client_id)))
        .bearer_auth(creator_token("alice"))
        .json(&json!({ "muted": true }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    host.next_of("muted").await;
    // The mute reaches the SFU through the room events; what the host sends after it is refused.
    let sfu_stats = app.state.media.sfu().unwrap().stats().clone();
    let speaking = async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            host_media.speak(-20, 9);
            if media::SfuStats::get(&sfu_stats.packets_refused) >= refused + 25 {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), speaking).await.expect("the muted host's packets are refused");
    let after: Vec<u64> = listeners.iter().map(|(_, c)| c.seen().audio_bytes).collect();
    // A packet in flight when the mute landed may still arrive; nothing after it does.
    for (b, a) in before.iter().zip(&after) {
        assert!(a - b <= 80 * 5, "bytes stopped growing after the mute: {before:?} → {after:?}");
    }
    let settled = after.clone();
    speak(&host_media, 25, -20).await;
    let later: Vec<u64> = listeners.iter().map(|(_, c)| c.seen().audio_bytes).collect();
    assert_eq!(settled, later, "no byte forwarded while muted");
    eprintln!("bytes per listener at the mute {before:?}, after 0.5 s more of muted speech {later:?}");

    // The host leaves: its SFU session closes and the voice time the SFU forwarded is in its attendance row.
    host.out.send(Message::Close(None)).unwrap();
    let host_id = host.client_id.clone();
    let store = app.store.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let voice: Option<i64> = sqlx::query_scalar("SELECT voice_secs FROM attendance_sessions WHERE id = $1")
            .bind(&host_id)
            .fetch_optional(store.raw_pool())
            .await
            .unwrap();
        if voice.unwrap_or(0) >= 1 {
            eprintln!("host voice_secs measured by the SFU: {voice:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the SFU's voice time reaches the attendance row: {voice:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until("the host's SFU session closed", || {
        media::SfuStats::get(&app.state.media.sfu().unwrap().stats().participants) == 3
    })
    .await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in
        ["gateway_sfu_participants 3", "gateway_sfu_forwarded_packets_total", "gateway_sfu_refused_packets_total"]
    {
        assert!(
            metrics.contains(line),
            "/metrics has {line}:\n{}",
            metrics.lines().filter(|l| l.contains("sfu")).collect::<Vec<_>>().join("\n")
        );
    }
}

/// A browser is seated (its `sfu_session` and the slot map of that moment) well before its SFU offer arrives:
/// it creates the connection and offers only after the welcome. A speaker who takes a slot in between must reach
/// it too, or `getMediaStream(speaker)` in the adapter never resolves although the bytes arrive (seen in CI's
/// Chromium run: the fake microphone's first beep fell in that window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_seated_but_not_yet_connected_to_the_sfu_learns_who_took_a_slot() {
    let app = sfu_app().await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let mut host = Room::join(&app, event_id, &host_token(event_id)).await;
    host.next_of("sfu_session").await;
    let host_media = host.connect_media(PUBLISHER).await;
    wait_until("the host connected to the SFU", || host_media.seen().connected).await;

    let mut listener = attendee(&app, event_id, "early-listener").await;
    assert_eq!(listener.next_of("sfu_session").await["publish"], false);
    let at_seat = listener.next_of("sfu_tracks").await;
    assert!(at_seat["audio"][0].is_null(), "nobody has spoken yet: {at_seat}");

    // The host takes the first slot while the listener has not offered yet.
    speak(&host_media, 10, -20).await;
    let tracks = listener.next_of("sfu_tracks").await;
    assert_eq!(tracks["audio"][0], host.client_id.as_str(), "{tracks}");

    // Connected afterwards, the listener hears that slot.
    let client = listener.connect_media(LISTENER).await;
    wait_until("the listener connected", || client.seen().connected).await;
    let speaking = speak(&host_media, 50, -20);
    let heard = wait_until("the listener hears the host", || client.seen().audio_frames > 0);
    tokio::join!(speaking, heard);
}

/// The SFU's signalling is read by the gateway, not the hub, but it passes the same gates as NAF's frames: a
/// client flooding `sfu_layer` (each would ask the presenter for a keyframe) or sending an oversized offer is
/// closed with 4429 or 1009 like any other, and a well-behaved `sfu_layer` is accepted silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sfu_frames_pass_the_rate_and_size_limits_of_any_frame() {
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.media.mode = MediaMode::Sfu;
        s.media.udp_bind = "127.0.0.1:0".parse().unwrap();
        s.signaling.burst = 20;
        s.signaling.messages_per_second = 5;
    })
    .await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    async fn closed_with(ws: &mut attendance_support::Ws) -> Option<u16> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.ok()?? {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    let ticket = attendance_support::ticket(&app.store, event_id, "polite").await;
    let mut polite = Room::join(&app, event_id, &attendance_support::token(event_id, ticket, "polite")).await;
    polite.send(json!({ "type": "sfu_layer", "screen": "low" }));
    polite.send(json!({ "type": "ping", "client_time": 1 }));
    polite.next_of("pong").await;
    assert!(polite.seen.iter().all(|f| f["type"] != "sfu_error" && f["type"] != "error"), "{:?}", polite.seen);

    let ticket = attendance_support::ticket(&app.store, event_id, "flood").await;
    let mut flood =
        attendance_support::connect(&app.address, event_id, &attendance_support::token(event_id, ticket, "flood"))
            .await;
    for _ in 0..200 {
        if flood.send(Message::Text(json!({ "type": "sfu_layer", "screen": "high" }).to_string().into())).await.is_err()
        {
            break;
        }
    }
    assert_eq!(closed_with(&mut flood).await, Some(4429), "a flood of sfu_layer is rate limited");

    let ticket = attendance_support::ticket(&app.store, event_id, "huge").await;
    let mut huge =
        attendance_support::connect(&app.address, event_id, &attendance_support::token(event_id, ticket, "huge")).await;
    let sdp = "a".repeat(200_000);
    let _ = huge.send(Message::Text(json!({ "type": "sfu_offer", "sdp": sdp }).to_string().into())).await;
    assert_eq!(closed_with(&mut huge).await, Some(1009), "an oversized offer is refused as any oversized frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_rooms_get_no_sfu_frames_and_refuse_sfu_offers() {
    let app = common::spawn_app(ticketing::Backend::Sqlite).await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let ticket = attendance_support::ticket(&app.store, event_id, "mesh-w").await;
    let mut room = Room::join(&app, event_id, &attendance_support::token(event_id, ticket, "mesh-w")).await;
    room.send(json!({ "type": "sfu_offer", "sdp": "v=0" }));
    room.send(json!({ "type": "ping", "client_time": 1 }));
    room.next_of("pong").await;
    assert!(room.seen.iter().all(|f| !f["type"].as_str().unwrap_or("").starts_with("sfu_")), "{:?}", room.seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_room_moves_to_the_sfu_when_it_grows_past_the_threshold() {
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.media.mode = MediaMode::Auto;
        s.media.auto_threshold = 2;
        s.media.udp_bind = "127.0.0.1:0".parse().unwrap();
    })
    .await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let mut rooms = Vec::new();
    for i in 0..3 {
        let wallet = format!("auto-{i}");
        let ticket = attendance_support::ticket(&app.store, event_id, &wallet).await;
        rooms.push(Room::join(&app, event_id, &attendance_support::token(event_id, ticket, &wallet)).await);
        if i < 2 {
            // Two people: still a mesh. A round trip proves no `sfu_session` was written before it.
            let room = rooms.last_mut().unwrap();
            room.send(json!({ "type": "ping", "client_time": 1 }));
            room.next_of("pong").await;
            assert!(room.seen.iter().chain(&room.skipped).all(|f| f["type"] != "sfu_session"), "{:?}", room.seen);
        }
    }
    // The third joiner moves the room: everyone in it is told, and the newcomer too.
    for room in &mut rooms {
        assert_eq!(room.next_of("sfu_session").await["publish"], false);
    }
}

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

async fn attendee(app: &common::TestApp, event_id: i64, wallet: &str) -> Room {
    let ticket = attendance_support::ticket(&app.store, event_id, wallet).await;
    Room::join(app, event_id, &attendance_support::token(event_id, ticket, wallet)).await
}

/// Issue 25: "hosts and stage speakers publish microphone audio and screen share; attendees subscribe". Shards of
/// one attendee each, so the speaker and its two listeners are in three different shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_speaker_is_heard_in_every_shard_and_stops_at_once_when_taken_off_the_stage() {
    let app = sfu_app().await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let res = app
        .client
        .patch(app.url(&format!("/api/events/{event_id}")))
        .bearer_auth(creator_token("alice"))
        .json(&json!({ "shard_size": 1 }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let mut speaker = attendee(&app, event_id, "speaker").await;
    assert_eq!(speaker.next_of("sfu_session").await["publish"], false, "an attendee listens until invited");
    let first_session = speaker.connect_media(LISTENER).await;
    let mut listeners = Vec::new();
    for i in 0..2 {
        let mut room = attendee(&app, event_id, &format!("stage-listener-{i}")).await;
        assert_eq!(room.next_of("sfu_session").await["publish"], false);
        let client = room.connect_media(LISTENER).await;
        listeners.push((room, client));
    }
    let shards: Vec<u64> = [speaker.shard, listeners[0].0.shard, listeners[1].0.shard].into();
    assert_eq!(shards.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "three shards: {shards:?}");
    let sfu_stats = app.state.media.sfu().unwrap().stats().clone();
    wait_until("everyone connected to the SFU", || {
        first_session.seen().connected && listeners.iter().all(|(_, c)| c.seen().connected)
    })
    .await;

    let stage = |method: reqwest::Method, client: &str| {
        app.client
            .request(method, app.url(&format!("/api/events/{event_id}/stage/{client}")))
            .bearer_auth(creator_token("alice"))
            .send()
    };
    let invited = stage(reqwest::Method::POST, &speaker.client_id).await.unwrap();
    assert_eq!(invited.status(), reqwest::StatusCode::NO_CONTENT);
    assert_eq!(
        speaker.next_of("sfu_session").await,
        json!({ "type": "sfu_session", "publish": true, "audio_slots": 3 }),
        "the invited attendee learns it may publish"
    );
    // Its listener session is closed; it negotiates a new one with send transceivers, as the adapter does.
    drop(first_session);
    let speaker_media = speaker.connect_media(PUBLISHER).await;
    wait_until("the speaker's new session connected", || speaker_media.seen().connected).await;

    speak(&speaker_media, 75, -20).await;
    wait_until("listeners in both other shards hear the speaker", || {
        listeners.iter().all(|(_, c)| c.seen().audio_frames >= 50)
    })
    .await;
    for (room, client) in &mut listeners {
        let mut tracks = room.next_of("sfu_tracks").await;
        while tracks["audio"][0].is_null() {
            tracks = room.next_of("sfu_tracks").await;
        }
        assert_eq!(tracks["audio"][0], speaker.client_id.as_str(), "{tracks}");
        let seen = client.seen();
        assert!(seen.levels.iter().all(|l| *l == -20), "the speaker's level reaches shard {}", room.shard);
        eprintln!("listener in shard {}: {} audio frames, {} bytes", room.shard, seen.audio_frames, seen.audio_bytes);
    }

    // Taken off the stage: the SFU stops forwarding it before the browser is told.
    let removed = stage(reqwest::Method::DELETE, &speaker.client_id).await.unwrap();
    assert_eq!(removed.status(), reqwest::StatusCode::NO_CONTENT);
    assert_eq!(speaker.next_of("sfu_session").await["publish"], false, "the removed speaker is told");
    // A packet in flight when the removal landed may still arrive; nothing after it does.
    speak(&speaker_media, 10, -20).await;
    let settled: Vec<u64> = listeners.iter().map(|(_, c)| c.seen().audio_bytes).collect();
    speak(&speaker_media, 50, -20).await;
    let later: Vec<u64> = listeners.iter().map(|(_, c)| c.seen().audio_bytes).collect();
    assert_eq!(settled, later, "no byte of the removed speaker forwarded");
    eprintln!("bytes per listener at the removal {settled:?}, after 1 s more of its speech {later:?}");
    // Its publishing session is closed (the two listeners' remain), and the voice time it had is recorded.
    wait_until("the speaker's SFU session closed", || media::SfuStats::get(&sfu_stats.participants) == 2).await;
    let speaker_id = speaker.client_id.clone();
    common::eventually("the speaker's SFU voice time is in its attendance row", Duration::from_secs(15), || async {
        let voice: Option<i64> = sqlx::query_scalar("SELECT voice_secs FROM attendance_sessions WHERE id = $1")
            .bind(&speaker_id)
            .fetch_optional(app.store.raw_pool())
            .await
            .unwrap();
        voice.unwrap_or(0) >= 1
    })
    .await;
}

/// A session shorter than the attendance recorder's flush interval has no row until that flush: the voice time
/// the SFU measured must wait for it in the recorder's queue rather than update nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sfu_voice_time_of_a_session_that_ends_before_the_first_flush_is_in_its_row() {
    let mut app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.media.mode = MediaMode::Sfu;
        s.media.udp_bind = "127.0.0.1:0".parse().unwrap();
        // No flush but the one at shutdown.
        s.rooms.attendance_flush_ms = 3_600_000;
    })
    .await;
    let event_id = attendance_support::event(&app.store, 10, 0).await;
    let mut feed = app.state.feed.subscribe();
    let mut host = Room::join(&app, event_id, &host_token(event_id)).await;
    assert_eq!(host.next_of("sfu_session").await["publish"], true);
    let host_media = host.connect_media(PUBLISHER).await;
    wait_until("the host connected to the SFU", || host_media.seen().connected).await;
    speak(&host_media, 100, -20).await;
    host.out.send(Message::Close(None)).unwrap();
    // The usage is queued before its feed item is sent.
    let usage = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let item = feed.recv().await.expect("feed open");
            if item.kind == "media_usage" && item.client_id.as_deref() == Some(host.client_id.as_str()) {
                return item.detail;
            }
        }
    })
    .await
    .expect("the SFU reports the host's usage");
    assert!(usage["voice_ms"].as_u64().unwrap() >= 1000, "{usage}");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attendance_sessions WHERE id = $1")
        .bind(&host.client_id)
        .fetch_one(app.store.raw_pool())
        .await
        .unwrap();
    assert_eq!(rows, 0, "the session's row is not written yet");

    // The graceful shutdown flushes the recorder's queue: the row, then the usage.
    app.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), &mut app.server).await.expect("shut down").unwrap().unwrap();
    let store = ticketing::Store::connect(&app.db_url(), 1).await.unwrap();
    let voice: i64 = sqlx::query_scalar("SELECT voice_secs FROM attendance_sessions WHERE id = $1")
        .bind(&host.client_id)
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    eprintln!("SFU usage {usage}; voice_secs in the row: {voice}");
    assert_eq!(voice, (usage["voice_ms"].as_u64().unwrap() / 1000) as i64, "exactly what the SFU measured");
}
