//! One outgoing RTP stream per listener slot.
//!
//! The SFU forwards RTP packets as they arrive, without depacketizing them. A listener's
//! audio slot (or its video slot) is one SSRC in its SDP answer, but the speaker filling it
//! changes as people talk: each speaker's packets carry its own SSRC, sequence numbers and
//! RTP timestamps. Sent as they are, a switch would look to the browser like a stream that
//! jumped thousands of packets and seconds, and its jitter buffer would stall. So each slot
//! rewrites what it forwards: the listener's SSRC, sequence numbers that continue from the
//! last one written, and timestamps shifted so the new speaker starts where the wall clock
//! says the previous one would be. Within one speaker's stretch the offsets stay fixed, so
//! reordering and loss pass through unchanged for the browser's jitter buffer and NACKs.

use std::time::Instant;
use str0m::media::{Mid, Pt};

/// Who fills a slot: a participant (its serial, unique for the engine's life) and its SSRC.
pub(crate) type SourceKey = (u64, u32);

/// A packet's place in the listener's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rewritten {
    /// Extended sequence number (str0m derives the SRTP rollover counter from it).
    pub seq: u64,
    pub timestamp: u32,
    /// The first packet of a new source: a talkspurt starts (RTP marker for audio).
    pub switched: bool,
}

#[derive(Debug)]
struct Source {
    key: SourceKey,
    seq_delta: u64,
    ts_delta: u32,
    /// Packets older than the switch are dropped: their place went to the previous source.
    first_seq: u64,
    /// The source's payload type and the listener's for the same codec, once matched.
    pt: Option<(Pt, Pt)>,
}

#[derive(Debug, Clone, Copy)]
struct Written {
    seq: u64,
    timestamp: u32,
    at: Instant,
}

#[derive(Debug)]
pub(crate) struct SlotStream {
    pub mid: Mid,
    source: Option<Source>,
    last: Option<Written>,
}

impl SlotStream {
    pub fn new(mid: Mid) -> Self {
        Self { mid, source: None, last: None }
    }

    /// Where a packet of `key` (extended sequence number `seq`, RTP timestamp `timestamp` at `clock_rate`)
    /// goes in this slot's stream; `None` for a packet from before its source took the slot.
    pub fn rewrite(
        &mut self,
        key: SourceKey,
        seq: u64,
        timestamp: u32,
        clock_rate: u32,
        now: Instant,
    ) -> Option<Rewritten> {
        let switched = self.source.as_ref().is_none_or(|s| s.key != key);
        if switched {
            let (next_seq, next_ts) = match self.last {
                // Continue the stream: the next number, and the time that passed since the last packet.
                Some(w) => {
                    let elapsed = now.saturating_duration_since(w.at);
                    let ticks = (elapsed.as_micros() * u128::from(clock_rate) / 1_000_000).max(1) as u32;
                    (w.seq + 1, w.timestamp.wrapping_add(ticks))
                }
                // The first packet: a small sequence number (rollover counter 0, as the browser assumes).
                None => (1, timestamp),
            };
            self.source = Some(Source {
                key,
                seq_delta: next_seq.wrapping_sub(seq),
                ts_delta: next_ts.wrapping_sub(timestamp),
                first_seq: seq,
                pt: None,
            });
        }
        let source = self.source.as_ref()?;
        if seq < source.first_seq {
            return None;
        }
        let out = Rewritten {
            seq: seq.wrapping_add(source.seq_delta),
            timestamp: timestamp.wrapping_add(source.ts_delta),
            switched,
        };
        if self.last.is_none_or(|w| out.seq > w.seq) {
            self.last = Some(Written { seq: out.seq, timestamp: out.timestamp, at: now });
        }
        Some(out)
    }

    /// The listener's payload type for the current source's `pt`, matched once per source by `matching`.
    pub fn payload_type(&mut self, pt: Pt, matching: impl FnOnce() -> Option<Pt>) -> Option<Pt> {
        let source = self.source.as_mut()?;
        match source.pt {
            Some((from, to)) if from == pt => Some(to),
            _ => {
                let to = matching()?;
                source.pt = Some((pt, to));
                Some(to)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_new_speaker_continues_the_sequence_and_the_clock() {
        let start = Instant::now();
        let mut slot = SlotStream::new(Mid::from("0"));
        let a = slot.rewrite((1, 111), 5000, 90_000, 48_000, start).unwrap();
        assert_eq!((a.seq, a.timestamp, a.switched), (1, 90_000, true));
        let a2 = slot.rewrite((1, 111), 5001, 90_960, 48_000, start + Duration::from_millis(20)).unwrap();
        assert_eq!((a2.seq, a2.timestamp, a2.switched), (2, 90_960, false));
        // Another speaker 100 ms later, with numbers of its own.
        let b = slot.rewrite((2, 222), 40_000, 7, 48_000, start + Duration::from_millis(120)).unwrap();
        assert_eq!((b.seq, b.timestamp, b.switched), (3, 90_960 + 4_800, true));
        let b2 = slot.rewrite((2, 222), 40_001, 967, 48_000, start + Duration::from_millis(140)).unwrap();
        assert_eq!((b2.seq, b2.timestamp), (4, 90_960 + 4_800 + 960));
        // A late packet of the new speaker from before its switch has no place; a reordered one within its
        // stretch keeps its relative place.
        assert_eq!(slot.rewrite((2, 222), 39_999, 0, 48_000, start + Duration::from_millis(141)), None);
        let b4 = slot.rewrite((2, 222), 40_003, 2887, 48_000, start + Duration::from_millis(180)).unwrap();
        let b3 = slot.rewrite((2, 222), 40_002, 1927, 48_000, start + Duration::from_millis(181)).unwrap();
        assert_eq!((b3.seq, b4.seq), (5, 6));
        // Back to the first speaker: continues after the highest number written.
        let a3 = slot.rewrite((1, 111), 5010, 99_600, 48_000, start + Duration::from_millis(200)).unwrap();
        assert_eq!(a3.seq, 7);
    }

    #[test]
    fn timestamps_wrap_and_the_payload_type_is_matched_once_per_source() {
        let start = Instant::now();
        let mut slot = SlotStream::new(Mid::from("1"));
        slot.rewrite((1, 1), 10, u32::MAX - 100, 90_000, start).unwrap();
        let next = slot.rewrite((1, 1), 11, 2900, 90_000, start).unwrap();
        assert_eq!(next.timestamp, 2900);
        let mut asked = 0;
        for _ in 0..3 {
            assert_eq!(
                slot.payload_type(Pt::from(96), || {
                    asked += 1;
                    Some(Pt::from(100))
                }),
                Some(Pt::from(100))
            );
        }
        assert_eq!(asked, 1);
    }
}
