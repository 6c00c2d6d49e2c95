//! `AudioTrack` events: what the relayed SDP says about a peer's audio, reported on change only, so listeners
//! can cross-check the adapter's microphone reports.

use serde_json::json;
use signaling::{Admission, Hub, Outbound, Outbox, Peer, Role, RoomEvent, RoomEventKind, SignalingConfig};
use tokio::sync::broadcast;

fn admit(hub: &Hub, client: &str) -> (Peer, Outbox) {
    let admission = Admission {
        room_id: 3,
        client_id: client.into(),
        identity: client.to_uppercase(),
        role: Role::Attendee,
        seat_key: format!("seat-{client}"),
        capacity: 10,
    };
    let (peer, mut outbox) = hub.try_admit(admission).unwrap();
    while let Some(Outbound::Text(_)) = outbox.try_recv() {}
    (peer, outbox)
}

fn audio_events(rx: &mut broadcast::Receiver<RoomEvent>) -> Vec<(String, bool)> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|e| match e.kind {
            RoomEventKind::AudioTrack { sending } => Some((e.client_id, sending)),
            _ => None,
        })
        .collect()
}

const SENDS: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n";
const RECEIVES: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\nm=video 9 UDP 96\r\na=sendonly\r\n";

#[test]
fn audio_negotiation_is_reported_on_change() {
    let hub = Hub::new(SignalingConfig::default());
    let mut rx = hub.subscribe();
    let (mut a, _a_out) = admit(&hub, "a");
    let (mut b, _b_out) = admit(&hub, "b");
    let _ = a.handle_text(&json!({ "type": "offer", "to": "b", "sdp": RECEIVES }).to_string());
    assert_eq!(audio_events(&mut rx), vec![], "no audio sent: nothing changed");
    let _ = a.handle_text(&json!({ "type": "offer", "to": "b", "sdp": SENDS }).to_string());
    let _ = a.handle_text(&json!({ "type": "offer", "to": "b", "sdp": SENDS }).to_string());
    let _ = b.handle_text(&json!({ "type": "answer", "to": "a", "sdp": SENDS }).to_string());
    assert_eq!(audio_events(&mut rx), vec![("a".to_owned(), true), ("b".to_owned(), true)], "once per change");
    let _ = a.handle_text(&json!({ "type": "offer", "to": "b", "sdp": RECEIVES }).to_string());
    assert_eq!(audio_events(&mut rx), vec![("a".to_owned(), false)]);
    // An offer to a peer outside the room is refused and changes nothing.
    let _ = a.handle_text(&json!({ "type": "offer", "to": "nobody", "sdp": SENDS }).to_string());
    assert_eq!(audio_events(&mut rx), vec![]);
}
