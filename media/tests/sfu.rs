//! The SFU with real WebRTC clients (str0m, full ICE, DTLS-SRTP) over loopback UDP.

use media::testing::{TestClient, Transceivers};
use media::{FlowKind, ParticipantId, Role, ScreenLayer, Sfu, SfuConfig, SfuError, SfuEvent, SfuStats};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const LISTENER: Transceivers =
    Transceivers { send_audio: false, send_video: false, recv_audio: 3, recv_video: true, video_layers: &[] };
const PUBLISHER: Transceivers =
    Transceivers { send_audio: true, send_video: true, recv_audio: 3, recv_video: false, video_layers: &[] };

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn join(sfu: &Sfu, room: i64, id: &str, role: Role, transceivers: Transceivers) -> TestClient {
    let id: ParticipantId = id.into();
    TestClient::connect(transceivers, |offer| async move { sfu.join(room, id, role, &offer).await }).await
}

/// 20 ms frames, paced like a microphone.
async fn speak(client: &TestClient, frames: usize, level: i8, tag: u8) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..frames {
        tick.tick().await;
        client.speak(level, tag);
    }
}

fn drain(events: &mut mpsc::UnboundedReceiver<SfuEvent>) -> Vec<SfuEvent> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        out.push(event);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_is_heard_by_three_listeners_and_a_server_mute_stops_the_bytes() {
    let (sfu, mut events) = Sfu::start(SfuConfig::local(3)).await.unwrap();
    let host = join(&sfu, 1, "host", Role::Publisher, PUBLISHER).await;
    let mut listeners = Vec::new();
    for i in 0..3 {
        listeners.push(join(&sfu, 1, &format!("listener-{i}"), Role::Listener, LISTENER).await);
    }
    wait_until("everyone connected", || host.seen().connected && listeners.iter().all(|l| l.seen().connected)).await;

    speak(&host, 50, -20, 7).await;
    wait_until("every listener hears the host", || listeners.iter().all(|l| l.seen().audio_frames >= 40)).await;
    for listener in &listeners {
        let seen = listener.seen();
        assert!(seen.levels.iter().all(|l| *l == -20), "the host's audio level is forwarded: {:?}", &seen.levels[..5]);
        assert!(seen.tags.iter().all(|t| *t == 7), "only the host's frames");
        assert!(seen.audio_bytes >= 40 * 80);
    }
    assert!(host.seen().audio_frames == 0, "a speaker does not hear itself");
    let usage = sfu.usage("host".into()).await.unwrap();
    assert!(usage.voice_ms >= 700, "voice time from forwarded media: {usage:?}");
    assert!(usage.forwarded_packets >= 120);

    // Server-side mute: whatever the host's browser sends, nothing more reaches the listeners. First, every
    // packet the SFU has written has landed, so no frame of the first burst is still in flight.
    wait_until("the first burst has landed", || {
        listeners.iter().map(|l| l.seen().audio_frames).sum::<u64>() >= SfuStats::get(&sfu.stats().packets_forwarded)
    })
    .await;
    let before: Vec<u64> = listeners.iter().map(|l| l.seen().audio_frames).collect();
    let refused_before = SfuStats::get(&sfu.stats().packets_refused);
    sfu.set_muted("host".into(), true);
    speak(&host, 25, -20, 7).await;
    wait_until("the muted frames reach the SFU", || SfuStats::get(&sfu.stats().packets_refused) >= refused_before + 20)
        .await;
    let after: Vec<u64> = listeners.iter().map(|l| l.seen().audio_frames).collect();
    assert_eq!(before, after, "no byte forwarded while muted");

    sfu.set_muted("host".into(), false);
    speak(&host, 25, -20, 7).await;
    wait_until("unmuted audio flows again", || listeners.iter().all(|l| l.seen().audio_frames >= before[0] + 15)).await;

    let events = drain(&mut events);
    assert!(events.iter().any(|e| matches!(e, SfuEvent::Flow { kind: FlowKind::Voice, flowing: true, participant, .. } if &**participant == "host")));
    assert!(events.iter().any(|e| matches!(e, SfuEvent::Flow { kind: FlowKind::Voice, flowing: false, participant, .. } if &**participant == "host")), "mute ends the voice flow");
    assert_eq!(events.iter().filter(|e| matches!(e, SfuEvent::Connected { .. })).count(), 4);
    // The track map: the host took slot 0, the mute freed it, speaking again took it back.
    let tracks: Vec<Option<String>> = events
        .iter()
        .filter_map(|e| match e {
            SfuEvent::Tracks { audio, .. } => Some(audio.first().cloned().flatten().map(|p| p.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(tracks, vec![Some("host".to_owned()), None, Some("host".to_owned())], "announced slot 0 holders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_sends_audio_anyway_is_not_forwarded() {
    let (sfu, _events) = Sfu::start(SfuConfig::local(3)).await.unwrap();
    let sneaky = join(&sfu, 2, "sneaky", Role::Listener, PUBLISHER).await;
    let listener = join(&sfu, 2, "listener", Role::Listener, LISTENER).await;
    wait_until("connected", || sneaky.seen().connected && listener.seen().connected).await;
    speak(&sneaky, 30, -10, 9).await;
    wait_until("its frames reach the SFU", || SfuStats::get(&sfu.stats().packets_refused) >= 25).await;
    assert_eq!(listener.seen().audio_frames, 0);
    // Invited to the stage: now it is heard.
    sfu.set_role("sneaky".into(), Role::Publisher);
    speak(&sneaky, 30, -10, 9).await;
    wait_until("the new speaker is heard", || listener.seen().audio_frames >= 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_loudest_speakers_reach_a_listener_and_rooms_stay_apart() {
    let (sfu, _events) = Sfu::start(SfuConfig::local(2)).await.unwrap();
    let transceivers =
        || Transceivers { send_audio: true, send_video: false, recv_audio: 2, recv_video: false, video_layers: &[] };
    let mut speakers = Vec::new();
    for (i, tag) in [(0, 1u8), (1, 2), (2, 3), (3, 4)] {
        speakers.push((join(&sfu, 3, &format!("speaker-{i}"), Role::Publisher, transceivers()).await, tag));
    }
    let listener = join(&sfu, 3, "listener", Role::Listener, Transceivers { recv_audio: 2, ..LISTENER }).await;
    let elsewhere = join(&sfu, 4, "elsewhere", Role::Listener, LISTENER).await;
    wait_until("connected", || listener.seen().connected && speakers.iter().all(|(s, _)| s.seen().connected)).await;

    // Speakers 3 and 4 are quiet (-45, -50 dBov), 1 and 2 loud (-10, -12); all talk at once.
    let levels = [-10i8, -12, -45, -50];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..60 {
        tick.tick().await;
        for ((speaker, tag), level) in speakers.iter().zip(levels) {
            speaker.speak(level, *tag);
        }
    }
    wait_until("the listener hears two speakers", || listener.seen().audio_frames >= 80).await;
    let seen = listener.seen();
    let late: Vec<u8> = seen.tags.iter().rev().take(60).copied().collect();
    assert!(late.iter().all(|t| *t == 1 || *t == 2), "only the two loudest lately: {late:?}");
    assert!(seen.audio_frames <= 2 * 60 + 4, "at most 2 streams: {} frames", seen.audio_frames);
    assert_eq!(seen.by_mid.len(), 2, "two audio slots used");
    assert_eq!(elsewhere.seen().audio_frames, 0, "another room hears nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_share_reaches_every_listener_and_counts_as_screen_time() {
    let (sfu, _events) = Sfu::start(SfuConfig::local(3)).await.unwrap();
    let host = join(&sfu, 5, "host", Role::Publisher, PUBLISHER).await;
    let listeners =
        [join(&sfu, 5, "l1", Role::Listener, LISTENER).await, join(&sfu, 5, "l2", Role::Listener, LISTENER).await];
    wait_until("connected", || host.seen().connected && listeners.iter().all(|l| l.seen().connected)).await;
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    for _ in 0..40 {
        tick.tick().await;
        host.share_screen_frame(0x10);
    }
    wait_until("every listener gets the screen", || listeners.iter().all(|l| l.seen().video_frames >= 20)).await;
    let usage = sfu.usage("host".into()).await.unwrap();
    assert!(usage.screen_ms >= 800, "{usage:?}");
    assert_eq!(usage.voice_ms, 0);
}

#[tokio::test]
async fn bad_offers_and_duplicate_ids_are_refused_with_reasons() {
    let (sfu, mut events) = Sfu::start(SfuConfig::local(3)).await.unwrap();
    let garbage = sfu.join(6, "x".into(), Role::Listener, "v=0\r\nthis is not sdp").await;
    assert!(matches!(garbage, Err(SfuError::BadSdp(_))), "{garbage:?}");
    let client = join(&sfu, 6, "dup", Role::Listener, LISTENER).await;
    let again = sfu.join(6, "dup".into(), Role::Listener, "v=0").await;
    assert_eq!(again, Err(SfuError::DuplicateParticipant));
    assert_eq!(sfu.offer("nobody".into(), "v=0").await, Err(SfuError::UnknownParticipant));
    wait_until("connected", || client.seen().connected).await;
    sfu.leave("dup".into());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = drain(&mut events)
            .into_iter()
            .any(|e| matches!(e, SfuEvent::Left { participant, .. } if &*participant == "dup"));
        if left {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "leave never reported");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(SfuStats::get(&sfu.stats().participants), 0);
    let _: Arc<str> = "unused".into();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_has_only_a_tcp_candidate_hears_the_host_over_ice_tcp() {
    let (sfu, _events) = Sfu::start(SfuConfig::local(3)).await.unwrap();
    let tcp = sfu.tcp_addr().expect("ICE over TCP is on");
    let host = join(&sfu, 7, "host", Role::Publisher, PUBLISHER).await;
    let handle = &sfu;
    let listener = TestClient::connect_over_tcp(LISTENER, tcp, |offer| async move {
        let answer = handle.join(7, "tcp-listener".into(), Role::Listener, &offer).await?;
        let passive = format!("{} {} typ host tcptype passive", tcp.ip(), tcp.port());
        assert!(answer.lines().any(|l| l.contains(" tcp ") && l.contains(&passive)), "a TCP candidate: {answer}");
        Ok(answer)
    })
    .await
    .expect("the SFU accepts the offer");
    wait_until("both connected", || host.seen().connected && listener.seen().connected).await;

    speak(&host, 50, -20, 7).await;
    wait_until("the TCP listener hears the host", || listener.seen().audio_frames >= 40).await;
    let seen = listener.seen();
    assert!(seen.levels.iter().all(|l| *l == -20), "the audio level is forwarded over TCP too");
    assert!(seen.tags.iter().all(|t| *t == 7));
}

#[tokio::test]
async fn a_tcp_connection_that_belongs_to_nobody_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (sfu, _events) = Sfu::start(SfuConfig::local(3)).await.unwrap();
    let mut stream = tokio::net::TcpStream::connect(sfu.tcp_addr().unwrap()).await.unwrap();
    // One framed packet that is no STUN request of any participant.
    stream.write_all(&[0, 4, 1, 2, 3, 4]).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed by the SFU: {read:?}");
}

/// A listener's browser would send transport-wide congestion feedback for every packet forwarded to it, which the
/// SFU (no send-side bandwidth estimation) would only parse: a listener's answer leaves that extension and the
/// absolute send time out, a publisher's keeps them (its browser's own estimate needs the SFU's feedback). The
/// listener still hears the host, with the host's audio level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_is_not_asked_for_congestion_feedback_and_a_publisher_is() {
    const TWCC: &str = "transport-wide-cc";
    const ABS_SEND_TIME: &str = "abs-send-time";
    let (sfu, _events) = Sfu::start(SfuConfig::local(3)).await.unwrap();
    let mut clients = Vec::new();
    let mut answers = Vec::new();
    for (id, role, transceivers) in [("host", Role::Publisher, PUBLISHER), ("listener", Role::Listener, LISTENER)] {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sfu = &sfu;
        let client = TestClient::connect(transceivers, |offer| async move {
            assert!(offer.contains(TWCC) && offer.contains(ABS_SEND_TIME), "the client offers both: {offer}");
            let answer = sfu.join(7, id.into(), role, &offer).await;
            let _ = tx.send(answer.clone());
            answer
        })
        .await;
        answers.push(rx.await.unwrap().unwrap());
        clients.push(client);
    }
    let (host, listener) = (&clients[0], &clients[1]);
    assert!(answers[0].contains(TWCC) && answers[0].contains(ABS_SEND_TIME), "publisher: {}", answers[0]);
    assert!(!answers[1].contains(TWCC) && !answers[1].contains(ABS_SEND_TIME), "listener: {}", answers[1]);
    assert!(answers[1].contains("ssrc-audio-level"), "the level still reaches the listener: {}", answers[1]);
    wait_until("connected", || host.seen().connected && listener.seen().connected).await;
    speak(host, 50, -20, 7).await;
    wait_until("the listener hears the host", || listener.seen().audio_frames >= 20).await;
    assert!(listener.seen().levels.iter().all(|l| *l == -20));
}

/// Issue 25: "screen share forwarded as published (simulcast layers selected per subscriber if the browser sends
/// them)". A presenter sends two layers (h: 1,000-byte frames, l: 250, a keyframe every 10th); a listener on a big
/// screen gets only h, one that asked for the low layer only l; moved to high, it gets h from a keyframe on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_gets_the_simulcast_layer_it_asked_for_and_moves_at_a_keyframe() {
    const SIMULCAST: Transceivers = Transceivers { video_layers: &["h", "l"], ..PUBLISHER };
    const H: u8 = 0x20;
    const L: u8 = 0x40;
    let (sfu, _events) = Sfu::start(SfuConfig::local(3)).await.unwrap();
    let presenter = join(&sfu, 9, "presenter", Role::Publisher, SIMULCAST).await;
    let big = join(&sfu, 9, "big", Role::Listener, LISTENER).await;
    let small = join(&sfu, 9, "small", Role::Listener, LISTENER).await;
    sfu.set_screen_layer("small".into(), ScreenLayer::Low);
    wait_until("connected", || [&presenter, &big, &small].iter().all(|c| c.seen().connected)).await;

    let sending = std::sync::atomic::AtomicBool::new(true);
    let send = async {
        let mut tick = tokio::time::interval(Duration::from_millis(33));
        let mut frame = 0u32;
        while sending.load(std::sync::atomic::Ordering::Relaxed) {
            tick.tick().await;
            let keyframe = frame.is_multiple_of(10);
            presenter.share_screen_layer("h", H, 1000, keyframe);
            presenter.share_screen_layer("l", L, 250, keyframe);
            frame += 1;
        }
    };
    let check = async {
        let video = |c: &TestClient| c.seen().tags.into_iter().filter(|t| t & 0xE0 != 0).collect::<Vec<_>>();
        wait_until("both listeners see 20 frames", || video(&big).len() >= 20 && video(&small).len() >= 20).await;
        let (big_seen, small_seen) = (video(&big), video(&small));
        assert!(big_seen.iter().all(|t| t & 0xFE == H), "the big screen gets the high layer only: {big_seen:x?}");
        assert!(small_seen.iter().all(|t| t & 0xFE == L), "the small one the low layer only: {small_seen:x?}");
        assert_eq!(big_seen[0], H, "a listener starts at a keyframe");

        sfu.set_screen_layer("small".into(), ScreenLayer::High);
        let before = small_seen.len();
        wait_until("the small listener moves to the high layer", || {
            video(&small)[before..].iter().filter(|t| *t & 0xFE == H).count() >= 10
        })
        .await;
        let after = video(&small)[before..].to_vec();
        let first_high = after.iter().position(|t| t & 0xFE == H).unwrap();
        assert_eq!(after[first_high], H, "it moves where the high layer starts a keyframe: {after:x?}");
        assert!(after[first_high..].iter().all(|t| t & 0xFE == H), "and gets the low layer no more: {after:x?}");
        sending.store(false, std::sync::atomic::Ordering::Relaxed);
    };
    tokio::join!(send, check);
}
