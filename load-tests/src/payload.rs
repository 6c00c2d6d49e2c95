//! What a NAF scene sends 15 times a second: an `um` (multi-entity update) for the avatar and a hand,
//! here carrying the send time (`"lt"`, µs since the epoch) and a sequence number, so a receiver can measure
//! one-way latency without parsing the whole frame.

use std::time::{SystemTime, UNIX_EPOCH};

/// The marker a receiver searches for; nothing else in either protocol's frames contains it.
const MARKER: &[u8] = b"\"lt\":";

pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// An `um` payload of about 300 bytes: the avatar (position, rotation) and a hand.
pub fn entity_update(owner: &str, seq: u64) -> String {
    let x = (seq % 100) as f32 * 0.01;
    format!(
        concat!(
            r##"{{"d":[{{"networkId":"av-{o}","owner":"{o}","lastOwnerTime":{s},"template":"#avatar","persistent":false,"##,
            r##""parent":null,"components":{{"0":{{"x":{x:.3},"y":1.6,"z":-2.125}},"1":{{"x":0,"y":{x:.3},"z":0}}}}}},"##,
            r##"{{"networkId":"rh-{o}","components":{{"0":{{"x":0.3,"y":1.2,"z":{x:.3}}}}}}}],"ls":{s},"lt":{t}}}"##
        ),
        o = &owner[..owner.len().min(12)],
        s = seq,
        x = x,
        t = now_us(),
    )
}

/// The send time embedded in a relayed frame, if it carries one.
pub fn sent_at(frame: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(frame, MARKER)? + MARKER.len();
    number_at(frame, at)
}

/// Every send time in a frame, in order: one for a relayed message, several for a `batch` of them.
pub fn sent_times(frame: &[u8]) -> impl Iterator<Item = u64> + '_ {
    memchr::memmem::find_iter(frame, MARKER).filter_map(move |at| number_at(frame, at + MARKER.len()))
}

fn number_at(frame: &[u8], at: usize) -> Option<u64> {
    let digits = frame[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut value = 0u64;
    let mut any = false;
    for d in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_naf_sized_json_with_a_readable_timestamp() {
        let p = entity_update("c-0123456789abcdef", 7);
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["d"].as_array().unwrap().len(), 2);
        assert!((200..=320).contains(&p.len()), "{} bytes", p.len());
        let wrapped = format!(r#"{{"type":"broadcast","from":"x","data_type":"um","data":{p}}}"#);
        assert_eq!(sent_at(wrapped.as_bytes()), v["lt"].as_u64());
        assert_eq!(sent_at(b"{\"type\":\"peer_joined\"}"), None);
        let batch = format!(r#"{{"type":"batch","frames":[{wrapped},{wrapped},{{"type":"peer_left"}}]}}"#);
        assert_eq!(sent_times(batch.as_bytes()).collect::<Vec<_>>(), vec![v["lt"].as_u64().unwrap(); 2]);
    }
}
