//! Simulcast screen shares: a presenter's browser may send the same screen in several
//! encodings at once (RID-identified layers, e.g. full and half resolution). Each listener
//! gets one of them, the one it asked for ([`ScreenLayer`]), switched only where the new
//! layer starts a keyframe so its decoder never sees a frame it cannot decode.
//!
//! Layers are ranked by what they carry, not by name: RID names are the sender's choice
//! (`h`/`l`, `f`/`h`/`q`, `0`/`1`/`2`...) and their order in the SDP is not standardised, but
//! the higher layer always sends more bytes. A layer the browser stopped sending (it drops
//! layers under CPU or bandwidth pressure) leaves the ranking after [`STALE`].

use std::time::{Duration, Instant};
use str0m::format::Codec;
use str0m::media::Rid;
use str0m::rtp::Vp8Descriptor;

/// A layer not heard from for this long is no longer offered to listeners.
pub const STALE: Duration = Duration::from_millis(1000);
/// How often a layer's rate is taken.
const WINDOW: Duration = Duration::from_millis(500);

/// Which layer of a simulcast screen share a listener wants: the best one (the default), or
/// the lightest (a phone or a headset, where the screen is small).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScreenLayer {
    #[default]
    High,
    Low,
}

#[derive(Debug, Clone)]
struct Layer {
    rid: Rid,
    ssrc: u32,
    bytes: u64,
    /// Bytes in the last complete window; before one completes, the bytes so far.
    rate: u64,
    last: Instant,
}

/// The layers of the current presenter's screen share.
#[derive(Debug, Clone)]
pub(crate) struct Layers {
    layers: Vec<Layer>,
    /// How many layers the SDP announced: until each has been heard (or a window has passed) no layer is
    /// chosen, so a listener wanting the low one is not given the first layer that happened to arrive.
    announced: usize,
    window_start: Instant,
    windows: u32,
}

impl Layers {
    pub fn new(now: Instant, announced: usize) -> Self {
        Self { layers: Vec::new(), announced, window_start: now, windows: 0 }
    }

    /// One packet of layer `rid` (SSRC `ssrc`) with `len` payload bytes.
    pub fn observe(&mut self, rid: Rid, ssrc: u32, len: usize, now: Instant) {
        if now.saturating_duration_since(self.window_start) >= WINDOW {
            for layer in &mut self.layers {
                layer.rate = std::mem::take(&mut layer.bytes);
            }
            self.window_start = now;
            self.windows += 1;
        }
        match self.layers.iter_mut().find(|l| l.rid == rid) {
            Some(layer) => {
                // The browser may restart a layer with a new SSRC (a renegotiation): the RID stays.
                layer.ssrc = ssrc;
                layer.bytes += len as u64;
                layer.last = now;
                if self.windows == 0 {
                    layer.rate = layer.bytes;
                }
            }
            None => self.layers.push(Layer { rid, ssrc, bytes: len as u64, rate: len as u64, last: now }),
        }
    }

    /// The SSRC of the layer a listener wanting `want` gets now: the largest or smallest rate among the
    /// layers still sending.
    pub fn target(&self, want: ScreenLayer, now: Instant) -> Option<u32> {
        if self.windows == 0 && self.layers.len() < self.announced {
            return None;
        }
        let live = self.layers.iter().filter(|l| now.saturating_duration_since(l.last) <= STALE);
        match want {
            ScreenLayer::High => live.max_by_key(|l| l.rate),
            ScreenLayer::Low => live.min_by_key(|l| l.rate),
        }
        .map(|l| l.ssrc)
    }

    pub fn rids(&self) -> impl Iterator<Item = Rid> + '_ {
        self.layers.iter().map(|l| l.rid)
    }
}

/// Whether an RTP payload of `codec` starts a keyframe; `None` for a codec this SFU cannot tell
/// (the switch then happens at once, and the keyframe requested with it repairs the picture).
pub(crate) fn starts_keyframe(codec: Codec, payload: &[u8]) -> Option<bool> {
    match codec {
        Codec::Vp8 => Some(Vp8Descriptor::parse(payload).is_ok_and(|d| d.starts_keyframe(payload))),
        Codec::H264 => Some(h264_starts_keyframe(payload)),
        _ => None,
    }
}

/// RFC 6184: an IDR slice or a sequence parameter set, alone, in a STAP-A aggregate, or as the
/// first fragment of an FU-A.
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let key = |nal: u8| matches!(nal & 0x1F, IDR | SPS);
    let Some(&first) = payload.first() else { return false };
    match first & 0x1F {
        STAP_A => {
            let mut at = 1;
            while let (Some(&hi), Some(&lo)) = (payload.get(at), payload.get(at + 1)) {
                let size = usize::from(u16::from_be_bytes([hi, lo]));
                if payload.get(at + 2).is_some_and(|&nal| key(nal)) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        FU_A => payload.get(1).is_some_and(|&header| header & 0x80 != 0 && key(header)),
        _ => key(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busier_layer_is_high_and_a_layer_that_stopped_is_not_offered() {
        let start = Instant::now();
        let mut layers = Layers::new(start, 2);
        let at = |ms: u64| start + Duration::from_millis(ms);
        for ms in (0..1000).step_by(20) {
            layers.observe(Rid::from("h"), 100, 1000, at(ms));
            layers.observe(Rid::from("l"), 200, 250, at(ms));
        }
        assert_eq!(layers.target(ScreenLayer::High, at(1000)), Some(100));
        assert_eq!(layers.target(ScreenLayer::Low, at(1000)), Some(200));
        // The browser drops its high layer: after STALE everyone gets the low one.
        for ms in (1000..2600).step_by(20) {
            layers.observe(Rid::from("l"), 200, 250, at(ms));
        }
        assert_eq!(layers.target(ScreenLayer::High, at(2600)), Some(200));
        assert_eq!(layers.rids().count(), 2);
    }

    #[test]
    fn before_a_window_completes_the_bytes_so_far_rank_the_layers() {
        let start = Instant::now();
        let mut layers = Layers::new(start, 2);
        layers.observe(Rid::from("f"), 1, 1200, start);
        layers.observe(Rid::from("q"), 2, 300, start);
        assert_eq!(layers.target(ScreenLayer::High, start), Some(1));
        assert_eq!(layers.target(ScreenLayer::Low, start), Some(2));
        assert_eq!(Layers::new(start, 2).target(ScreenLayer::High, start), None);
        // Three announced, two heard: nothing is chosen until the third arrives or a window passes.
        let mut layers = Layers::new(start, 3);
        layers.observe(Rid::from("f"), 1, 1200, start);
        layers.observe(Rid::from("h"), 2, 600, start);
        assert_eq!(layers.target(ScreenLayer::Low, start), None);
        layers.observe(Rid::from("h"), 2, 600, start + WINDOW);
        assert_eq!(layers.target(ScreenLayer::Low, start + WINDOW), Some(2));
    }

    #[test]
    fn keyframes_are_told_apart_in_vp8_and_h264() {
        // VP8: descriptor with S=1, partition 0; then the frame tag whose P bit (0x01) is 0 on a keyframe.
        assert_eq!(starts_keyframe(Codec::Vp8, &[0x10, 0x00, 0x00, 0x00]), Some(true));
        assert_eq!(starts_keyframe(Codec::Vp8, &[0x10, 0x01, 0x00, 0x00]), Some(false), "an interframe");
        assert_eq!(starts_keyframe(Codec::Vp8, &[0x00, 0x00, 0x00, 0x00]), Some(false), "not a partition start");
        assert_eq!(starts_keyframe(Codec::Vp8, &[]), Some(false));
        // H264: a lone IDR, an SPS in a STAP-A after an SEI, the first FU-A fragment of an IDR, a P slice.
        assert_eq!(starts_keyframe(Codec::H264, &[0x65, 0x88]), Some(true));
        assert_eq!(starts_keyframe(Codec::H264, &[0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x67, 0x42]), Some(true));
        assert_eq!(starts_keyframe(Codec::H264, &[0x7C, 0x85, 0x00]), Some(true));
        assert_eq!(starts_keyframe(Codec::H264, &[0x7C, 0x05, 0x00]), Some(false), "a later fragment");
        assert_eq!(starts_keyframe(Codec::H264, &[0x41, 0x9A]), Some(false));
        assert_eq!(starts_keyframe(Codec::H264, &[0x78, 0xFF, 0xFF]), Some(false), "a truncated aggregate");
        assert_eq!(starts_keyframe(Codec::Vp9, &[0x00]), None);
    }
}
