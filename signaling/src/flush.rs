//! When a connection's writer writes: at once, or on a shared tick.
//!
//! Why a tick? With [`Outbox::recv_many`] alone, a writer writes as soon as it is woken, so in a
//! room of 10 at 15 Hz a receiver is woken and does a `write(2)` for nearly every one of the
//! ~135 frames it is owed each second: batches stay at one or two frames, and the per-write
//! kernel cost (on loopback also the receiver's TCP path and wake-up) is most of the relay's
//! CPU. With `flush_interval_ms` set, a writer that got a frame waits for the next tick of a
//! process-wide clock and then takes everything queued by then: at most one write per
//! interval per connection, whatever the room size. NAF interpolates remote entities between
//! its own 15 Hz updates (67 ms apart), so a delay of a few milliseconds is not seen.
//!
//! Every writer's ticks fall on the same instants (multiples of the interval since the first
//! use), so their timers share the timer wheel's slots and the writes go out together.
//!
//! Wake-ups: while a peer is owed something at every tick, its writer sleeps only on the
//! timer (producers' notifications just leave a permit); after a tick with nothing to take it
//! goes back to waiting for a producer, so an idle connection has no timer at all.
//!
//! Semantics are [`Outbox::recv_many`]'s: frames in order, a close frame last and at once (a
//! closing peer is not held for a tick), nothing dropped here.

use crate::outbox::{Outbound, Outbox};
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// One connection's flush timing. Keep it beside the connection's [`Outbox`] and call
/// [`Flusher::next_batch`] where the writer called `recv_many`.
#[derive(Debug)]
pub struct Flusher {
    interval: Duration,
    /// Armed for the next tick while the writer holds frames or lingers after a write.
    tick: Pin<Box<Sleep>>,
    holding: bool,
}

impl Flusher {
    /// `interval` zero: write as soon as anything is queued (protocol-1 behaviour, one write per
    /// wake-up).
    pub fn new(interval: Duration) -> Self {
        Self { interval, tick: Box::pin(tokio::time::sleep(Duration::ZERO)), holding: false }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for the next flush, then appends what to write to `batch` (up to `limit` items in
    /// all), in order; a close frame is always the last item. Returns how many items `batch`
    /// holds, 0 once the peer is gone and everything has been taken. Cancel-safe: frames already
    /// moved into `batch` stay there for the next call.
    pub async fn next_batch(&mut self, outbox: &mut Outbox, batch: &mut Vec<Outbound>, limit: usize) -> usize {
        if self.interval.is_zero() {
            if !batch.is_empty() {
                return batch.len();
            }
            return outbox.recv_many(batch, limit).await;
        }
        loop {
            if !self.holding {
                if batch.is_empty() && outbox.recv_many(batch, limit).await == 0 {
                    return 0;
                }
                if batch.len() >= limit || matches!(batch.last(), Some(Outbound::Close(_))) {
                    return batch.len();
                }
                self.arm();
            }
            self.tick.as_mut().await;
            let room = limit.saturating_sub(batch.len());
            let ended = room > 0 && outbox.take_ready(batch, room) == Some(0);
            if batch.is_empty() {
                // Nothing owed this tick: sleep until a producer wakes us.
                self.holding = false;
                if ended {
                    return 0;
                }
                continue;
            }
            if batch.len() < limit && !ended {
                // Linger: look again at the next tick without waiting for a notification.
                self.arm();
            }
            // Else the tick stays elapsed: a full batch means more is queued, take it at once.
            return batch.len();
        }
    }

    fn arm(&mut self) {
        self.tick.as_mut().reset(next_tick(Instant::now(), self.interval));
        self.holding = true;
    }
}

/// The first tick after `now` of a process-wide clock ticking every `interval`.
fn next_tick(now: Instant, interval: Duration) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| now);
    let since = now.saturating_duration_since(epoch).as_nanos();
    let step = interval.as_nanos().max(1);
    let next = (since / step + 1) * step;
    epoch + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{Delivery, PeerQueue};
    use bytes::Bytes;

    fn frame(n: u8) -> Bytes {
        Bytes::from(vec![b'a' + n])
    }

    fn texts(batch: &[Outbound]) -> Vec<Bytes> {
        batch.iter().filter_map(|o| if let Outbound::Text(b) = o { Some(b.clone()) } else { None }).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn frames_pushed_within_an_interval_leave_in_one_flush_at_the_tick() {
        let queue = PeerQueue::new(64, 64);
        let mut outbox = Outbox::new(queue.clone());
        let mut flusher = Flusher::new(Duration::from_millis(20));
        let mut batch = Vec::new();
        let started = Instant::now();
        queue.push(frame(0), Delivery::Unguaranteed);
        let pusher = {
            let queue = queue.clone();
            tokio::spawn(async move {
                for n in 1..4 {
                    tokio::task::yield_now().await;
                    queue.push(frame(n), Delivery::Guaranteed);
                }
            })
        };
        assert_eq!(flusher.next_batch(&mut outbox, &mut batch, 128).await, 4);
        assert_eq!(texts(&batch), (0..4).map(frame).collect::<Vec<_>>());
        let waited = started.elapsed();
        assert!(waited > Duration::ZERO && waited <= Duration::from_millis(20), "held until the tick: {waited:?}");
        pusher.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_one_flush_per_interval_while_frames_keep_coming() {
        let queue = PeerQueue::new(1024, 1024);
        let mut outbox = Outbox::new(queue.clone());
        let mut flusher = Flusher::new(Duration::from_millis(10));
        let pusher = {
            let queue = queue.clone();
            tokio::spawn(async move {
                // 1 frame a millisecond for 100 ms.
                for n in 0..100u8 {
                    queue.push(frame(n % 26), Delivery::Unguaranteed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let mut batch = Vec::new();
        let (mut flushes, mut frames) = (0, 0);
        while frames < 100 {
            frames += flusher.next_batch(&mut outbox, &mut batch, 128).await;
            batch.clear();
            flushes += 1;
        }
        assert_eq!(frames, 100);
        assert!((10..=12).contains(&flushes), "{flushes} flushes for 100 ms of frames");
        pusher.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_is_not_held_and_the_end_is_reported() {
        let queue = PeerQueue::new(8, 8);
        let mut outbox = Outbox::new(queue.clone());
        let mut flusher = Flusher::new(Duration::from_millis(50));
        let mut batch = Vec::new();
        queue.push(frame(0), Delivery::Guaranteed);
        queue.close(Some(crate::CloseCode::Kicked.into()));
        let started = Instant::now();
        assert_eq!(flusher.next_batch(&mut outbox, &mut batch, 8).await, 1);
        assert_eq!(batch, vec![Outbound::Close(crate::CloseCode::Kicked.into())]);
        assert_eq!(started.elapsed(), Duration::ZERO);
        batch.clear();
        assert_eq!(flusher.next_batch(&mut outbox, &mut batch, 8).await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_written_without_waiting_for_the_tick() {
        let queue = PeerQueue::new(64, 64);
        let mut outbox = Outbox::new(queue.clone());
        let mut flusher = Flusher::new(Duration::from_millis(50));
        for n in 0..10 {
            queue.push(frame(n), Delivery::Unguaranteed);
        }
        let started = Instant::now();
        let mut batch = Vec::new();
        assert_eq!(flusher.next_batch(&mut outbox, &mut batch, 4).await, 4);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn frames_taken_before_a_cancellation_are_kept() {
        let queue = PeerQueue::new(8, 8);
        let mut outbox = Outbox::new(queue.clone());
        let mut flusher = Flusher::new(Duration::from_millis(20));
        let mut batch = Vec::new();
        queue.push(frame(0), Delivery::Guaranteed);
        // Cancelled while holding for the tick (as `select!` does when a frame comes in).
        let cancelled = tokio::time::timeout(Duration::ZERO, flusher.next_batch(&mut outbox, &mut batch, 8)).await;
        assert!(cancelled.is_err());
        queue.push(frame(1), Delivery::Guaranteed);
        assert_eq!(flusher.next_batch(&mut outbox, &mut batch, 8).await, 2);
        assert_eq!(texts(&batch), vec![frame(0), frame(1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_writer_waits_for_a_producer_not_the_timer() {
        let queue = PeerQueue::new(8, 8);
        let mut outbox = Outbox::new(queue.clone());
        let mut flusher = Flusher::new(Duration::from_millis(5));
        let mut batch = Vec::new();
        queue.push(frame(0), Delivery::Guaranteed);
        assert_eq!(flusher.next_batch(&mut outbox, &mut batch, 8).await, 1);
        batch.clear();
        // One empty tick of lingering, then it waits on the queue: a second later, nothing yet.
        let waiting =
            tokio::time::timeout(Duration::from_secs(1), flusher.next_batch(&mut outbox, &mut batch, 8)).await;
        assert!(waiting.is_err());
        assert!(!flusher.holding, "an idle writer holds no timer");
    }

    #[tokio::test]
    async fn interval_zero_writes_at_once() {
        let queue = PeerQueue::new(8, 8);
        let mut outbox = Outbox::new(queue.clone());
        let mut flusher = Flusher::new(Duration::ZERO);
        queue.push(frame(0), Delivery::Guaranteed);
        let mut batch = Vec::new();
        assert_eq!(flusher.next_batch(&mut outbox, &mut batch, 8).await, 1);
    }

    /// docs/PROTOCOL.md states the default interval; it must be the one in force.
    #[test]
    fn the_protocol_document_states_the_default_interval() {
        let doc = include_str!("../../docs/PROTOCOL.md");
        let said = format!("flush_interval_ms` (default {} ms", crate::SignalingConfig::default().flush_interval_ms);
        assert!(doc.contains(&said), "PROTOCOL.md does not say `{said}`");
    }

    #[test]
    fn ticks_are_shared_multiples_of_the_interval() {
        let now = Instant::now();
        let interval = Duration::from_millis(10);
        let a = next_tick(now, interval);
        assert!(a > now && a - now <= interval);
        let b = next_tick(a - Duration::from_millis(3), interval);
        assert_eq!(a, b, "two writers a few ms apart flush on the same tick");
        assert_eq!(next_tick(a, interval), a + interval);
    }
}
