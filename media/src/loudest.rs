//! Which speakers each listener hears: the N loudest.
//!
//! Every listener has the same N audio slots (receive-only transceivers its browser
//! offered at join). A speaker heard recently holds a slot; when all N are taken, a new
//! speaker takes the slot of the quietest holder only if clearly louder (hysteresis), so
//! slots don't flap between two people talking at the same level. A holder silent for
//! [`SILENCE`] frees its slot. Listener bandwidth is therefore at most N audio streams,
//! whatever the number of speakers.
//!
//! Levels are RFC 6464 audio levels as browsers send them: 0 is the loudest, -127 silence
//! (dBov). Kept here as loudness 0..=127 (127 + level), smoothed over a few packets.

use foldhash::{HashMap, HashMapExt};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A slot holder not heard for this long gives the slot up.
pub const SILENCE: Duration = Duration::from_millis(1500);
/// How much louder (dB, smoothed) a newcomer must be than the quietest holder to replace it.
pub const HYSTERESIS: i32 = 6;
/// Below this loudness (-60 dBov and quieter) a packet is background noise: it keeps a holder's
/// slot alive but never wins one.
pub const NOISE_FLOOR: i32 = 127 - 60;

#[derive(Debug, Clone)]
struct Heard {
    /// Smoothed loudness ×16.
    loudness16: i32,
    last: Instant,
}

#[derive(Debug, Clone)]
pub struct Loudest<K> {
    slots: Vec<Option<K>>,
    heard: HashMap<K, Heard>,
}

impl<K: Clone + Eq + Hash> Loudest<K> {
    pub fn new(slots: usize) -> Self {
        Self { slots: vec![None; slots], heard: HashMap::new() }
    }

    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Records one audio packet of `speaker` (RFC 6464 level, `None` when the browser sent none:
    /// treated as speech) and returns the slot it is forwarded in, if any.
    pub fn observe(&mut self, speaker: &K, level: Option<i8>, now: Instant) -> Option<usize> {
        let loudness = level.map_or(100, |l| 127 + i32::from(l.clamp(-127, 0)));
        let heard = self.heard.entry(speaker.clone()).or_insert(Heard { loudness16: loudness * 16, last: now });
        heard.loudness16 += (loudness * 16 - heard.loudness16) / 4;
        heard.last = now;
        let mine = heard.loudness16;
        if let Some(slot) = self.slot_of(speaker) {
            return Some(slot);
        }
        if mine < NOISE_FLOOR * 16 {
            return None;
        }
        self.expire(now);
        if let Some(free) = self.slots.iter().position(Option::is_none) {
            self.slots[free] = Some(speaker.clone());
            return Some(free);
        }
        let (quietest, quietest_loudness) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.as_ref().map(|k| (i, self.heard.get(k).map_or(0, |h| h.loudness16))))
            .min_by_key(|(_, l)| *l)?;
        if mine > quietest_loudness + HYSTERESIS * 16 {
            self.slots[quietest] = Some(speaker.clone());
            return Some(quietest);
        }
        None
    }

    pub fn slot_of(&self, speaker: &K) -> Option<usize> {
        self.slots.iter().position(|k| k.as_ref() == Some(speaker))
    }

    /// Who is in each slot.
    pub fn holders(&self) -> &[Option<K>] {
        &self.slots
    }

    /// Forgets `speaker` (it left or lost the right to publish).
    pub fn remove(&mut self, speaker: &K) {
        self.heard.remove(speaker);
        for slot in &mut self.slots {
            if slot.as_ref() == Some(speaker) {
                *slot = None;
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        for slot in &mut self.slots {
            let stale = slot
                .as_ref()
                .is_some_and(|k| self.heard.get(k).is_none_or(|h| now.saturating_duration_since(h.last) > SILENCE));
            if stale {
                *slot = None;
            }
        }
        self.heard.retain(|_, h| now.saturating_duration_since(h.last) <= SILENCE * 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_n_speakers_take_the_slots_and_a_fourth_waits_unless_clearly_louder() {
        let now = Instant::now();
        let mut loudest = Loudest::new(3);
        assert_eq!(loudest.observe(&"a", Some(-30), now), Some(0));
        assert_eq!(loudest.observe(&"b", Some(-30), now), Some(1));
        assert_eq!(loudest.observe(&"c", Some(-20), now), Some(2));
        // As loud as the quietest holder: no flapping.
        assert_eq!(loudest.observe(&"d", Some(-30), now), None);
        // Much louder, for a few packets: takes the quietest holder's slot (a or b).
        let mut got = None;
        for _ in 0..8 {
            got = loudest.observe(&"d", Some(-5), now);
        }
        let slot = got.expect("d is forwarded");
        assert!(slot == 0 || slot == 1);
        assert_eq!(loudest.holders().iter().flatten().count(), 3);
        assert_eq!(loudest.slot_of(&"c"), Some(2), "the loudest holder keeps its slot");
    }

    #[test]
    fn silence_frees_a_slot_and_noise_never_takes_one() {
        let start = Instant::now();
        let mut loudest = Loudest::new(1);
        assert_eq!(loudest.observe(&"a", Some(-40), start), Some(0));
        assert_eq!(loudest.observe(&"b", Some(-40), start), None);
        let later = start + SILENCE + Duration::from_millis(1);
        assert_eq!(loudest.observe(&"n", Some(-90), later), None, "background noise");
        assert_eq!(loudest.observe(&"b", Some(-40), later), Some(0), "a fell silent");
        loudest.remove(&"b");
        assert_eq!(loudest.holders(), &[None]);
    }

    #[test]
    fn listener_bandwidth_stays_at_n_streams_whatever_the_number_of_speakers() {
        let now = Instant::now();
        let mut loudest = Loudest::new(3);
        let mut forwarded = 0;
        for round in 0..50 {
            for speaker in 0..40u32 {
                let level = -((speaker % 30) as i8) - 5;
                if loudest.observe(&speaker, Some(level), now + Duration::from_millis(round * 20)).is_some() {
                    forwarded += 1;
                }
            }
        }
        // At most 3 speakers forwarded per round (each listener gets ≤ 3 streams).
        assert!(forwarded <= 3 * 50, "{forwarded} forwarded");
        assert!(forwarded >= 3 * 45, "{forwarded} forwarded");
    }
}
