//! The wire protocol: JSON text frames, one tagged enum each way.
//!
//! Every frame is an object whose `type` names the message. Clients send
//! [`ClientMessage`]; the server sends [`ServerMessage`]. NAF payloads (`data`) are carried
//! as opaque JSON, and NAF's own data type (`u`, `um`, `r`, or an app's custom type) travels
//! in `data_type` because `type` is ours. docs/PROTOCOL.md documents every message with
//! examples; keep the two in step.
//!
//! Clients never name themselves: any `from` a client puts in a frame is ignored, and the
//! server stamps the sender's client id on everything it relays.

use crate::admission::{Role, RoomId};
use crate::event::LeaveReason;
use crate::turn::TurnGrant;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

fn default_true() -> bool {
    true
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Clock sync for NAF: answered with `pong` carrying the server time.
    Ping {
        #[serde(default)]
        client_time: f64,
    },
    /// NAF `sendData`/`sendDataGuaranteed`: to one peer of the same room.
    Send {
        to: String,
        data_type: String,
        #[serde(default)]
        data: Value,
        /// `false` for NAF's unguaranteed sends: the server may drop them for a slow peer.
        #[serde(default = "default_true")]
        guaranteed: bool,
    },
    /// NAF `broadcastData`/`broadcastDataGuaranteed`: to every other peer of the room.
    Broadcast {
        data_type: String,
        #[serde(default)]
        data: Value,
        #[serde(default = "default_true")]
        guaranteed: bool,
    },
    /// A chat line to the whole room (the sender gets it back, stamped).
    Chat {
        text: String,
    },
    /// The sender's media state changed; absent fields are unchanged.
    Media {
        #[serde(default)]
        mic: Option<bool>,
        #[serde(default)]
        screen: Option<bool>,
    },
    /// WebRTC signalling, relayed only to an admitted peer of the same room.
    Offer {
        to: String,
        sdp: String,
    },
    Answer {
        to: String,
        sdp: String,
    },
    Candidate {
        to: String,
        /// An `RTCIceCandidateInit` object, or `null` for end-of-candidates.
        #[serde(default)]
        candidate: Value,
    },
    /// Ask for fresh TURN credentials; answered with `turn`.
    TurnRefresh,
    /// Host only: mute or unmute a peer.
    Mute {
        target: String,
        #[serde(default = "default_true")]
        muted: bool,
    },
    /// Host only: close a peer with 4001; it may rejoin.
    Kick {
        target: String,
    },
    /// Host only: close a peer with 4003 and refuse its seat key.
    Ban {
        target: String,
    },
    /// Move to another shard with room: `shard`, or the fullest other one (`shards.rs`).
    SwitchShard {
        #[serde(default)]
        shard: Option<u32>,
    },
    /// Host only: put an attendee on the stage, seen and heard in every shard.
    InviteToStage {
        target: String,
    },
    /// Host only: take a member off the stage, back into one shard.
    RemoveFromStage {
        target: String,
    },
    /// Host only: a line to every shard of the event.
    Announce {
        text: String,
    },
}

/// Why a frame could not be read as a [`ClientMessage`].
#[derive(Debug, thiserror::Error)]
#[error("malformed frame: {0}")]
pub struct ProtocolError(#[from] serde_json::Error);

impl ClientMessage {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        Ok(serde_json::from_str(text)?)
    }
}

/// One occupant as other peers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OccupantView<'a> {
    pub client_id: &'a str,
    pub identity: &'a str,
    pub role: Role,
    pub joined_at: i64,
    pub mic: bool,
    pub screen: bool,
    pub muted: bool,
}

/// Refusal reasons carried by `error` frames (the connection stays open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The target is not an admitted peer of the sender's room.
    NotInRoom,
    /// Only hosts may do that, and not to other hosts.
    Forbidden,
    /// The sender is muted: no microphone, no audio renegotiation.
    Muted,
    /// The message was well formed but its content is not acceptable (e.g. chat too long).
    Invalid,
    /// The server cannot do that now (e.g. no TURN configured).
    Unavailable,
    /// `switch_shard` to a shard without room, or with no other shard to go to.
    ShardFull,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    /// First frame after admission.
    Welcome {
        client_id: &'a str,
        room_id: RoomId,
        role: Role,
        identity: &'a str,
        joined_at: i64,
        /// A host muted this seat earlier and it is still muted.
        muted: bool,
        server_time: i64,
        /// The shard this connection sees (0 in an unsharded event), and whether it is on the stage.
        shard: u32,
        stage: bool,
        /// Everyone else this connection sees (its shard and the stage), keyed by client id.
        occupants: BTreeMap<&'a str, OccupantView<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        turn: Option<&'a TurnGrant>,
        /// Reconnect with it after a drop, without a new signature (`resume.rs`); absent when resuming is off.
        #[serde(skip_serializing_if = "Option::is_none")]
        resume_token: Option<&'a str>,
        /// How long after a drop the seat waits for a resume.
        #[serde(skip_serializing_if = "Option::is_none")]
        resume_window_secs: Option<u64>,
    },
    /// First frame of a resumed connection: same client id and seat; the frames it missed follow.
    Resumed {
        client_id: &'a str,
        /// The next resume token: each one is good once.
        #[serde(skip_serializing_if = "Option::is_none")]
        resume_token: Option<&'a str>,
        server_time: i64,
        /// How many frames of this session the server applied: the client sends again what came after.
        received: u64,
        /// How many frames the server writes again (they follow this one).
        replayed: usize,
    },
    /// A peer's connection dropped; it keeps its seat until `until` and may come back.
    PeerReconnecting {
        client_id: &'a str,
        since: i64,
        until: i64,
    },
    /// A peer that was reconnecting is back (same client id, nothing was lost).
    PeerResumed {
        client_id: &'a str,
    },
    /// The room's persistent NAF entities, sent once after `welcome` (when there are any), before live traffic.
    Snapshot {
        entities: Vec<&'a Value>,
    },
    PeerJoined {
        #[serde(flatten)]
        occupant: OccupantView<'a>,
    },
    PeerLeft {
        client_id: &'a str,
        reason: LeaveReason,
    },
    Send {
        from: &'a str,
        data_type: &'a str,
        data: &'a Value,
    },
    Broadcast {
        from: &'a str,
        data_type: &'a str,
        data: &'a Value,
    },
    Pong {
        client_time: f64,
        server_time: i64,
    },
    Chat {
        from: &'a str,
        identity: &'a str,
        text: &'a str,
        server_time: i64,
    },
    Media {
        from: &'a str,
        mic: bool,
        screen: bool,
    },
    Offer {
        from: &'a str,
        sdp: &'a str,
    },
    Answer {
        from: &'a str,
        sdp: &'a str,
    },
    Candidate {
        from: &'a str,
        candidate: &'a Value,
    },
    Muted {
        client_id: &'a str,
        muted: bool,
        by: Option<&'a str>,
    },
    Turn {
        #[serde(flatten)]
        grant: &'a TurnGrant,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// This connection now sees another shard (or came on or off the stage): everyone it sees now.
    ShardChanged {
        shard: u32,
        stage: bool,
        occupants: BTreeMap<&'a str, OccupantView<'a>>,
    },
    /// A member came on the stage or left it (`by`: the host, or `null` for the creator's tools).
    Stage {
        client_id: &'a str,
        on_stage: bool,
        by: Option<&'a str>,
    },
    /// A host's event-wide announcement (`from` is `null` from the creator's tools).
    Announcement {
        from: Option<&'a str>,
        identity: Option<&'a str>,
        text: &'a str,
        server_time: i64,
    },
}

impl ServerMessage<'_> {
    /// Serialises once; the bytes are then shared by every recipient.
    pub fn encode(&self) -> Bytes {
        // Our own types with string keys: serialisation cannot fail.
        Bytes::from(serde_json::to_vec(self).expect("server messages serialise"))
    }
}

/// Client → gateway: signalling for the embedded SFU (docs/PROTOCOL.md, "SFU"). These frames are read by the
/// gateway before the hub sees the connection's text, so the hub never relays them, and like `feed` they are
/// outside the resume count on both sides.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SfuClientMessage {
    /// The browser's offer for its one connection to the SFU: the first joins, a later one renegotiates
    /// (a screen share added or removed). Answered with `sfu_answer`.
    SfuOffer { sdp: String },
    /// A trickled candidate of the browser. Accepted and ignored: the SFU is ICE-lite and learns the
    /// browser's address from its connectivity checks.
    SfuCandidate {
        #[serde(default)]
        candidate: Value,
    },
    /// Closes the browser's SFU session (the room connection stays).
    SfuLeave,
    /// Which layer of a simulcast screen share this browser wants: `high` (the default) or `low` (a phone or a
    /// headset). A share sent as one stream is forwarded as it is, whatever this says.
    SfuLayer { screen: SfuScreenLayer },
}

/// A layer of a simulcast screen share, as a listener asks for it in `sfu_layer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SfuScreenLayer {
    High,
    Low,
}

impl SfuClientMessage {
    /// `None` when the frame is not an SFU message (it then goes to the hub as any other frame). A cheap
    /// look for the `"sfu_` tag first, so NAF's traffic is not parsed twice.
    pub fn parse(text: &str) -> Option<Self> {
        if !text.contains("\"sfu_") {
            return None;
        }
        serde_json::from_str(text).ok()
    }
}

/// One forwarded audio slot in `sfu_tracks`.
pub type SfuSlot<'a> = Option<&'a str>;

/// Gateway → client: the SFU's side (docs/PROTOCOL.md, "SFU").
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SfuServerMessage<'a> {
    /// The room's voice and screen share go through the SFU: open one connection to it with `audio_slots`
    /// receive-only audio transceivers and one receive-only video transceiver, plus a send-only audio
    /// transceiver when `publish` (and a send-only video one for a screen share). Sent again when `publish`
    /// changes.
    SfuSession {
        publish: bool,
        audio_slots: usize,
    },
    SfuAnswer {
        sdp: &'a str,
    },
    /// Who each forwarded stream is: `audio[i]` plays in the i-th receive-only audio transceiver of the
    /// offer, `screen` in the receive-only video one; `null` when nobody.
    SfuTracks {
        audio: Vec<SfuSlot<'a>>,
        screen: SfuSlot<'a>,
    },
    /// The SFU refused an offer; the room connection stays.
    SfuError {
        message: &'a str,
    },
}

impl SfuServerMessage<'_> {
    pub fn encode(&self) -> String {
        // Our own types with string keys: serialisation cannot fail.
        serde_json::to_string(self).expect("sfu messages serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_naf_send_and_ignores_a_forged_from() {
        let msg = ClientMessage::parse(
            r#"{"type":"send","from":"mallory","to":"b","data_type":"u","data":{"networkId":"x"},"guaranteed":false}"#,
        )
        .unwrap();
        assert_eq!(
            msg,
            ClientMessage::Send {
                to: "b".into(),
                data_type: "u".into(),
                data: json!({"networkId": "x"}),
                guaranteed: false
            }
        );
    }

    #[test]
    fn guaranteed_is_the_default() {
        let msg = ClientMessage::parse(r#"{"type":"broadcast","data_type":"r","data":{}}"#).unwrap();
        assert!(matches!(msg, ClientMessage::Broadcast { guaranteed: true, .. }));
    }

    #[test]
    fn unknown_types_and_bad_json_are_errors() {
        assert!(ClientMessage::parse(r#"{"type":"teleport"}"#).is_err());
        assert!(ClientMessage::parse("not json").is_err());
        assert!(ClientMessage::parse(r#"{"type":"send","data_type":"u"}"#).is_err());
    }

    #[test]
    fn sfu_frames_are_told_apart_from_naf_traffic() {
        assert_eq!(
            SfuClientMessage::parse(r#"{"type":"sfu_offer","sdp":"v=0"}"#),
            Some(SfuClientMessage::SfuOffer { sdp: "v=0".into() })
        );
        assert_eq!(SfuClientMessage::parse(r#"{"type":"sfu_leave"}"#), Some(SfuClientMessage::SfuLeave));
        assert_eq!(
            SfuClientMessage::parse(r#"{"type":"sfu_layer","screen":"low"}"#),
            Some(SfuClientMessage::SfuLayer { screen: SfuScreenLayer::Low })
        );
        assert_eq!(SfuClientMessage::parse(r#"{"type":"sfu_layer","screen":"medium"}"#), None);
        // NAF data that mentions an SFU message is still NAF data.
        assert_eq!(SfuClientMessage::parse(r#"{"type":"broadcast","data_type":"u","data":{"x":"\"sfu_offer"}}"#), None);
        assert_eq!(SfuClientMessage::parse(r#"{"type":"sfu_offer"}"#), None);
        let text = SfuServerMessage::SfuTracks { audio: vec![Some("a"), None], screen: None }.encode();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"type":"sfu_tracks","audio":["a",null],"screen":null})
        );
    }

    #[test]
    fn server_messages_are_tagged_snake_case() {
        let data = json!({"a": 1});
        let text = ServerMessage::Broadcast { from: "a", data_type: "um", data: &data }.encode();
        let value: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(value, json!({"type":"broadcast","from":"a","data_type":"um","data":{"a":1}}));
        let text = ServerMessage::PeerLeft { client_id: "a", reason: LeaveReason::SlowConsumer }.encode();
        let value: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(value, json!({"type":"peer_left","client_id":"a","reason":"slow_consumer"}));
    }
}
