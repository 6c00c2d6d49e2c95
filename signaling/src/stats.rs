//! Counters the gateway exports to Prometheus.
//!
//! Plain atomics, so that this crate needs no metrics library and the hot path pays one
//! relaxed add per count. Gauges (`rooms`, `peers`) go up and down; the rest only go up.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Stats {
    pub rooms: AtomicU64,
    pub peers: AtomicU64,
    /// Client messages accepted and relayed (send, broadcast, chat, signalling, media).
    pub messages_relayed: AtomicU64,
    /// Frames placed in a peer's outgoing queue (one broadcast counts once per recipient).
    pub frames_queued: AtomicU64,
    pub unguaranteed_dropped: AtomicU64,
    pub slow_consumers_closed: AtomicU64,
    pub rate_limited_closed: AtomicU64,
    pub oversized_closed: AtomicU64,
    pub malformed_closed: AtomicU64,
    /// Messages answered with an `error` frame (wrong room, forbidden, muted, ...).
    pub messages_refused: AtomicU64,
    pub chat_messages: AtomicU64,
    pub admissions_refused: AtomicU64,
    /// Sessions continued on a new connection after a drop (`resume.rs`), refused resumes, sessions whose
    /// resume window passed, and frames written again on resuming.
    pub resumes_succeeded: AtomicU64,
    pub resumes_failed: AtomicU64,
    pub resumes_expired: AtomicU64,
    pub frames_replayed: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StatsSnapshot {
    pub rooms: u64,
    pub peers: u64,
    pub messages_relayed: u64,
    pub frames_queued: u64,
    pub unguaranteed_dropped: u64,
    pub slow_consumers_closed: u64,
    pub rate_limited_closed: u64,
    pub oversized_closed: u64,
    pub malformed_closed: u64,
    pub messages_refused: u64,
    pub chat_messages: u64,
    pub admissions_refused: u64,
    pub resumes_succeeded: u64,
    pub resumes_failed: u64,
    pub resumes_expired: u64,
    pub frames_replayed: u64,
}

impl Stats {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            rooms: self.rooms.load(Relaxed),
            peers: self.peers.load(Relaxed),
            messages_relayed: self.messages_relayed.load(Relaxed),
            frames_queued: self.frames_queued.load(Relaxed),
            unguaranteed_dropped: self.unguaranteed_dropped.load(Relaxed),
            slow_consumers_closed: self.slow_consumers_closed.load(Relaxed),
            rate_limited_closed: self.rate_limited_closed.load(Relaxed),
            oversized_closed: self.oversized_closed.load(Relaxed),
            malformed_closed: self.malformed_closed.load(Relaxed),
            messages_refused: self.messages_refused.load(Relaxed),
            chat_messages: self.chat_messages.load(Relaxed),
            admissions_refused: self.admissions_refused.load(Relaxed),
            resumes_succeeded: self.resumes_succeeded.load(Relaxed),
            resumes_failed: self.resumes_failed.load(Relaxed),
            resumes_expired: self.resumes_expired.load(Relaxed),
            frames_replayed: self.frames_replayed.load(Relaxed),
        }
    }
}
