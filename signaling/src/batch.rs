//! The `batch` envelope: several server frames in one WebSocket frame.
//!
//! Why? A flush already sends everything a peer was owed with one `write(2)`, but each
//! relayed message is still its own WebSocket frame, its own `onmessage` in the browser and
//! its own `JSON.parse`. With a flush interval (see `flush.rs`) a receiver in a room of 10
//! gets several messages per flush; packing them as
//! `{"type":"batch","frames":[<frame>,<frame>,…]}` makes a flush one frame too.
//!
//! The frames inside are the exact bytes every other recipient gets (serialised once per
//! message, shared), copied once into this receiver's envelope, in queue order: per-sender
//! order holds because the queue is one FIFO. Delivery classes are untouched: a frame is
//! dropped or overflows when it is *pushed* (`outbox.rs`), long before it is packed, so a slow
//! peer still loses only unguaranteed frames.
//!
//! Only a client that announced protocol [`BATCH_SINCE`] or later (`?protocol=2` on the
//! WebSocket URL) gets envelopes; an older adapter keeps getting one message per frame. A
//! flush of a single frame is written as it is, without an envelope.

use crate::outbox::Outbound;
use bytes::{BufMut, Bytes, BytesMut};

/// The presence protocol version this server speaks (docs/PROTOCOL.md).
pub const PROTOCOL_VERSION: u32 = 2;

/// The first protocol version whose clients unpack `batch` frames.
pub const BATCH_SINCE: u32 = 2;

/// Largest envelope, in bytes: a flush owed more is split into several envelopes, so one
/// frame never nears a client's message limit (a flush of 128 SDP offers would otherwise run
/// to megabytes). A frame larger than this on its own is written alone.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

const OPEN: &[u8] = br#"{"type":"batch","frames":["#;
const CLOSE: &[u8] = b"]}";

/// How a connection's flushes are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One message per WebSocket frame: protocol 1, what every client understands.
    Single,
    /// Several messages per frame in a `batch` envelope.
    Batch,
}

impl Framing {
    /// The framing for a client that announced `version` (none: protocol 1).
    pub fn for_version(version: Option<u32>) -> Framing {
        match version {
            Some(v) if v >= BATCH_SINCE => Framing::Batch,
            _ => Framing::Single,
        }
    }
}

/// Packs the text frames of one flush into `batch` envelopes, in order, in place. A close
/// frame stays last; a run of one frame is left as it is. With [`Framing::Single`] nothing
/// changes.
pub fn pack(batch: &mut Vec<Outbound>, framing: Framing) {
    if framing == Framing::Single || batch.iter().filter(|o| matches!(o, Outbound::Text(_))).take(2).count() < 2 {
        return;
    }
    let mut packed = Vec::with_capacity(2);
    let mut envelope = Envelope::default();
    for out in batch.drain(..) {
        match out {
            Outbound::Text(frame) => {
                if envelope.len() + frame.len() + 1 + CLOSE.len() > MAX_BATCH_BYTES {
                    packed.extend(envelope.finish());
                }
                envelope.push(frame);
            }
            close @ Outbound::Close(_) => {
                packed.extend(envelope.finish());
                packed.push(close);
            }
        }
    }
    packed.extend(envelope.finish());
    *batch = packed;
}

/// One envelope being filled. Holds its first frame as it is, so a run of one costs no copy.
#[derive(Default)]
struct Envelope {
    first: Option<Bytes>,
    buf: BytesMut,
}

impl Envelope {
    fn len(&self) -> usize {
        match (&self.first, self.buf.is_empty()) {
            (None, _) => 0,
            (Some(first), true) => OPEN.len() + first.len(),
            (Some(_), false) => self.buf.len(),
        }
    }

    fn push(&mut self, frame: Bytes) {
        match &self.first {
            None => self.first = Some(frame),
            Some(first) => {
                if self.buf.is_empty() {
                    self.buf.reserve(OPEN.len() + first.len() + frame.len() + 64);
                    self.buf.put_slice(OPEN);
                    self.buf.put_slice(first);
                }
                self.buf.put_u8(b',');
                self.buf.put_slice(&frame);
            }
        }
    }

    /// The finished frame (the first frame alone if nothing joined it), and an empty envelope.
    fn finish(&mut self) -> Option<Outbound> {
        let first = self.first.take()?;
        if self.buf.is_empty() {
            return Some(Outbound::Text(first));
        }
        self.buf.put_slice(CLOSE);
        Some(Outbound::Text(self.buf.split().freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CloseCode;
    use serde_json::{json, Value};

    fn text(s: &str) -> Outbound {
        Outbound::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn json_of(out: &Outbound) -> Value {
        match out {
            Outbound::Text(bytes) => serde_json::from_slice(bytes).expect("valid JSON"),
            Outbound::Close(_) => panic!("not text"),
        }
    }

    #[test]
    fn several_frames_become_one_envelope_in_order() {
        let mut batch =
            vec![text(r#"{"type":"broadcast","n":1}"#), text(r#"{"type":"send","n":2}"#), text(r#"{"n":3}"#)];
        pack(&mut batch, Framing::Batch);
        assert_eq!(batch.len(), 1);
        assert_eq!(
            json_of(&batch[0]),
            json!({"type":"batch","frames":[{"type":"broadcast","n":1},{"type":"send","n":2},{"n":3}]})
        );
    }

    #[test]
    fn a_single_frame_and_protocol_1_are_left_alone() {
        let one = vec![text(r#"{"n":1}"#), Outbound::Close(CloseCode::Kicked.into())];
        let mut batch = one.clone();
        pack(&mut batch, Framing::Batch);
        assert_eq!(batch, one);
        let two = vec![text(r#"{"n":1}"#), text(r#"{"n":2}"#)];
        let mut batch = two.clone();
        pack(&mut batch, Framing::Single);
        assert_eq!(batch, two);
    }

    #[test]
    fn the_close_frame_stays_last() {
        let mut batch = vec![text(r#"{"n":1}"#), text(r#"{"n":2}"#), Outbound::Close(CloseCode::Kicked.into())];
        pack(&mut batch, Framing::Batch);
        assert_eq!(batch.len(), 2);
        assert_eq!(json_of(&batch[0])["frames"], json!([{"n":1},{"n":2}]));
        assert_eq!(batch[1], Outbound::Close(CloseCode::Kicked.into()));
    }

    #[test]
    fn large_flushes_are_split_below_the_limit_keeping_order() {
        let filler = "x".repeat(10_000);
        let mut batch: Vec<_> = (0..20).map(|n| text(&format!(r#"{{"n":{n},"pad":"{filler}"}}"#))).collect();
        pack(&mut batch, Framing::Batch);
        assert!(batch.len() >= 3, "{} envelopes", batch.len());
        let mut seen = Vec::new();
        for out in &batch {
            let Outbound::Text(bytes) = out else { panic!("text only") };
            assert!(bytes.len() <= MAX_BATCH_BYTES, "{} bytes", bytes.len());
            let value = json_of(out);
            match value["type"].as_str() {
                Some("batch") => {
                    seen.extend(value["frames"].as_array().unwrap().iter().map(|f| f["n"].as_u64().unwrap()))
                }
                _ => seen.push(value["n"].as_u64().unwrap()),
            }
        }
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn versions_before_2_get_single_frames() {
        assert_eq!(Framing::for_version(None), Framing::Single);
        assert_eq!(Framing::for_version(Some(1)), Framing::Single);
        assert_eq!(Framing::for_version(Some(2)), Framing::Batch);
        assert_eq!(Framing::for_version(Some(7)), Framing::Batch);
    }
}
