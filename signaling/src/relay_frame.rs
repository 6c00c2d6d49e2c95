//! The fast path for NAF's own traffic: `send` and `broadcast` relayed without building a tree.
//!
//! Nearly every frame a room carries is a NAF update (`u`/`um`) that the server relays without
//! looking inside `data`. Reading it into a [`serde_json::Value`] (a map and a string per key,
//! a float per coordinate) and writing it out again cost more than everything else the relay
//! does per message. Here `data` is borrowed as a [`RawValue`]: still checked to be JSON, never
//! decoded, and copied once into the outgoing frame, so what a client sent is relayed byte for
//! byte (as networked-aframe's own server does). Anything else — other types, a frame this
//! struct cannot read — goes through [`crate::protocol::ClientMessage`] as before, which also
//! words the error for a malformed one.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RelayKind {
    Send,
    Broadcast,
}

/// A client's `send` or `broadcast`, with `data` left as the client wrote it.
#[derive(Debug, Deserialize)]
pub(crate) struct RelayFrame<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: RelayKind,
    #[serde(borrow, default)]
    pub(crate) to: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) data_type: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) data: Option<&'a RawValue>,
    #[serde(default = "default_true")]
    pub(crate) guaranteed: bool,
}

fn default_true() -> bool {
    true
}

impl<'a> RelayFrame<'a> {
    /// `None` when the frame is not a well-formed `send`/`broadcast` (the caller then parses it
    /// as any other message). A `send` must name its target.
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        let frame: Self = serde_json::from_str(text).ok()?;
        (frame.kind == RelayKind::Broadcast || frame.to.is_some()).then_some(frame)
    }

    /// The frame as relayed, `from` stamped: the same fields and order as
    /// [`crate::protocol::ServerMessage::Send`] / `Broadcast`.
    pub(crate) fn encode(&self, from: &str) -> bytes::Bytes {
        #[derive(Serialize)]
        struct Out<'b> {
            #[serde(rename = "type")]
            kind: &'static str,
            from: &'b str,
            data_type: &'b str,
            data: &'b RawValue,
        }
        let out = Out {
            kind: match self.kind {
                RelayKind::Send => "send",
                RelayKind::Broadcast => "broadcast",
            },
            from,
            data_type: &self.data_type,
            data: self.data.unwrap_or(RawValue::NULL),
        };
        // Our own struct with string keys: serialisation cannot fail.
        bytes::Bytes::from(serde_json::to_vec(&out).expect("relay frames serialise"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientMessage, ServerMessage};
    use serde_json::Value;

    /// The fast path relays what the general path would, as JSON values.
    #[test]
    fn encodes_the_same_message_as_the_general_path() {
        for text in [
            r#"{"type":"broadcast","from":"mallory","data_type":"um","data":{"d":[{"networkId":"a","components":{"0":{"x":1.5}}}]},"guaranteed":false}"#,
            r#"{"type":"send","to":"b","data_type":"u","data":{"networkId":"x"}}"#,
            r#"{"type":"broadcast","data_type":"r"}"#,
            r#"{"type":"broadcast","data_type":"say \"hi\"","data":"é \u00e9"}"#,
        ] {
            let fast = RelayFrame::parse(text).expect("a relay frame");
            let general = match ClientMessage::parse(text).unwrap() {
                ClientMessage::Send { data_type, data, guaranteed, .. } => {
                    assert_eq!(guaranteed, fast.guaranteed);
                    ServerMessage::Send { from: "me", data_type: &data_type, data: &data }.encode()
                }
                ClientMessage::Broadcast { data_type, data, guaranteed } => {
                    assert_eq!(guaranteed, fast.guaranteed);
                    ServerMessage::Broadcast { from: "me", data_type: &data_type, data: &data }.encode()
                }
                other => panic!("{other:?}"),
            };
            let fast: Value = serde_json::from_slice(&fast.encode("me")).unwrap();
            let general: Value = serde_json::from_slice(&general).unwrap();
            assert_eq!(fast, general, "{text}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_general_parser() {
        for text in [
            r#"{"type":"chat","text":"hi"}"#,
            r#"{"type":"send","data_type":"u","data":{}}"#,
            r#"{"type":"broadcast","data_type":"u","data":{"unclosed":1}"#,
            r#"{"type":"broadcast","data":{}}"#,
            "not json",
        ] {
            assert!(RelayFrame::parse(text).is_none(), "{text}");
        }
    }
}
