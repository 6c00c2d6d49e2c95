//! A peer's bounded outgoing queue, and the gateway's end of it.
//!
//! Why not a `tokio::sync::mpsc`? Because back-pressure here is per class: NAF's
//! unguaranteed updates (`u`/`um` sent with `sendData`) are worth nothing once stale, so a
//! slow peer may lose them, while guaranteed frames (joins, removals, signalling, chat)
//! must arrive or the peer must go. One FIFO keeps their relative order (a late `u` must
//! not overtake the `r` that removed its entity) and two counters bound each class.
//!
//! Producers never wait: [`PeerQueue::push`] returns at once, reporting a drop or an
//! overflow, and the room turns an overflow into a 4008 close. The only waiter is the
//! connection's writer, in [`Outbox::recv`] or [`Outbox::recv_many`].
//!
//! Why `recv_many`? In a busy room a peer is owed thousands of frames a second, and a
//! WebSocket write plus flush per frame is one `write(2)` — with loopback or the NIC's
//! TCP work behind it — per frame per receiver. The writer instead takes everything that
//! queued up while it was busy, in one lock, writes it all and flushes once. The busier
//! the room, the bigger the batches, so the cost per frame falls as load rises. Producers
//! wake the writer only when its queue goes from empty to non-empty; while it has work
//! queued it will look again before it sleeps.

use crate::close::CloseFrame;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Notify;

/// Whether a frame may be dropped for a slow peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    Guaranteed,
    Unguaranteed,
}

/// What the connection's writer must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A JSON text frame, UTF-8, shared with the frame's other recipients.
    Text(Bytes),
    /// Send this close frame, then stop: nothing follows it.
    Close(CloseFrame),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Unguaranteed and the peer is behind: dropped.
    Dropped,
    /// Guaranteed and the peer is too far behind: the caller must close it (4008).
    Overflow,
    /// The peer is already closing.
    Closed,
}

#[derive(Debug)]
struct State {
    frames: VecDeque<(Bytes, Delivery)>,
    guaranteed: usize,
    unguaranteed: usize,
    close: Option<CloseFrame>,
    closed: bool,
    /// Resume bookkeeping (`resume.rs`): frames taken for writing in this session, and the last of them.
    written: u64,
    unacked: VecDeque<Bytes>,
    /// The peer dropped and may resume: unguaranteed frames are dropped, guaranteed ones wait.
    away: bool,
}

/// What a queue hands to the next connection of the same session (see [`PeerQueue::hand_over`]).
#[derive(Debug)]
pub(crate) struct Carried {
    frames: VecDeque<(Bytes, Delivery)>,
    written: u64,
    unacked: VecDeque<Bytes>,
}

impl Carried {
    /// How many frames a client that read `received` of this session's frames gets again (those written
    /// that it did not read, then those not yet written); `None` when it claims more than was written, or
    /// fewer than the ring of unacked frames still holds: the session cannot be continued exactly.
    pub(crate) fn replay_count(&self, received: u64) -> Option<usize> {
        let lost = self.written.checked_sub(received)?;
        let lost = usize::try_from(lost).ok().filter(|lost| *lost <= self.unacked.len())?;
        Some(lost + self.frames.len())
    }
}

#[derive(Debug)]
pub(crate) struct PeerQueue {
    state: Mutex<State>,
    ready: Notify,
    guaranteed_limit: usize,
    unguaranteed_limit: usize,
    unacked_limit: usize,
    replay_limit: usize,
}

impl PeerQueue {
    #[cfg(test)]
    pub(crate) fn new(guaranteed_limit: usize, unguaranteed_limit: usize) -> Arc<Self> {
        Self::resumable(guaranteed_limit, unguaranteed_limit, 0, 0)
    }

    /// A queue that keeps the last `unacked_limit` frames written, and up to `replay_limit` guaranteed frames
    /// while its peer is away.
    pub(crate) fn resumable(
        guaranteed_limit: usize,
        unguaranteed_limit: usize,
        unacked_limit: usize,
        replay_limit: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                guaranteed: 0,
                unguaranteed: 0,
                close: None,
                closed: false,
                written: 0,
                unacked: VecDeque::new(),
                away: false,
            }),
            ready: Notify::new(),
            guaranteed_limit,
            unguaranteed_limit,
            unacked_limit,
            replay_limit,
        })
    }

    pub(crate) fn push(&self, frame: Bytes, delivery: Delivery) -> Pushed {
        let mut state = self.state.lock();
        if state.closed {
            return Pushed::Closed;
        }
        if state.away {
            match delivery {
                Delivery::Unguaranteed => return Pushed::Dropped,
                Delivery::Guaranteed if state.guaranteed >= self.replay_limit => return Pushed::Overflow,
                Delivery::Guaranteed => {}
            }
        }
        match delivery {
            Delivery::Unguaranteed if state.unguaranteed >= self.unguaranteed_limit => return Pushed::Dropped,
            Delivery::Unguaranteed => state.unguaranteed += 1,
            Delivery::Guaranteed if state.guaranteed >= self.guaranteed_limit => return Pushed::Overflow,
            Delivery::Guaranteed => state.guaranteed += 1,
        }
        state.frames.push_back((frame, delivery));
        // Only the first frame of a batch needs to wake the writer: it drains the queue
        // before it waits again, and `notify_one` keeps a permit if it is not waiting yet.
        let wake = state.frames.len() == 1;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        Pushed::Queued
    }

    /// Stops the queue: pending frames are discarded and the writer gets `close` (if any)
    /// and then the end. Returns `false` if the queue was already closed.
    pub(crate) fn close(&self, close: Option<CloseFrame>) -> bool {
        let mut state = self.state.lock();
        if state.closed {
            return false;
        }
        state.closed = true;
        state.frames.clear();
        state.guaranteed = 0;
        state.unguaranteed = 0;
        state.close = close;
        drop(state);
        self.ready.notify_one();
        true
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    fn try_pop(&self) -> Option<Option<Outbound>> {
        let mut state = self.state.lock();
        if let Some((frame, delivery)) = state.frames.pop_front() {
            match delivery {
                Delivery::Guaranteed => state.guaranteed -= 1,
                Delivery::Unguaranteed => state.unguaranteed -= 1,
            }
            self.note_written(&mut state, &frame);
            return Some(Some(Outbound::Text(frame)));
        }
        if let Some(close) = state.close.take() {
            return Some(Some(Outbound::Close(close)));
        }
        if state.closed {
            return Some(None);
        }
        None
    }

    /// Moves up to `limit` ready items into `batch` under one lock: frames in order, then
    /// the close frame once no frame is left. `None` if nothing is ready yet; `Some(0)` at
    /// the end.
    fn take_into(&self, batch: &mut Vec<Outbound>, limit: usize) -> Option<usize> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        let take = state.frames.len().min(limit);
        let before = batch.len();
        for (frame, delivery) in state.frames.drain(..take) {
            match delivery {
                Delivery::Guaranteed => state.guaranteed -= 1,
                Delivery::Unguaranteed => state.unguaranteed -= 1,
            }
            state.written += 1;
            if self.unacked_limit > 0 {
                if state.unacked.len() == self.unacked_limit {
                    state.unacked.pop_front();
                }
                state.unacked.push_back(frame.clone());
            }
            batch.push(Outbound::Text(frame));
        }
        if state.frames.is_empty() && take < limit {
            if let Some(close) = state.close.take() {
                batch.push(Outbound::Close(close));
            }
        }
        match batch.len() - before {
            0 if state.closed => Some(0),
            0 => None,
            n => Some(n),
        }
    }
}

/// Resuming (see `resume.rs`): a session's queue passes from connection to connection.
impl PeerQueue {
    fn note_written(&self, state: &mut State, frame: &Bytes) {
        state.written += 1;
        if self.unacked_limit > 0 {
            if state.unacked.len() == self.unacked_limit {
                state.unacked.pop_front();
            }
            state.unacked.push_back(frame.clone());
        }
    }

    /// Closes this queue (with `close` for its writer, if any) and takes what the session's next queue needs:
    /// the frames not yet written and the ring of the last ones written. `None` if it was already closed.
    pub(crate) fn hand_over(&self, close: Option<CloseFrame>) -> Option<Carried> {
        let mut state = self.state.lock();
        if state.closed {
            return None;
        }
        state.closed = true;
        state.close = close;
        state.guaranteed = 0;
        state.unguaranteed = 0;
        let carried = Carried {
            frames: std::mem::take(&mut state.frames),
            written: state.written,
            unacked: std::mem::take(&mut state.unacked),
        };
        drop(state);
        self.ready.notify_one();
        Some(carried)
    }

    /// The session's queue while its peer is away: what was carried waits, unguaranteed frames are dropped.
    pub(crate) fn away(&self, carried: Carried) {
        let mut state = self.state.lock();
        state.away = true;
        state.written = carried.written;
        state.unacked = carried.unacked;
        for (frame, delivery) in carried.frames {
            if delivery == Delivery::Guaranteed {
                state.guaranteed += 1;
                state.frames.push_back((frame, delivery));
            }
        }
    }

    /// The session's queue for a resumed connection whose client read `received` frames in all: first
    /// `first` (the `resumed` frame), then the frames written that it did not read, then those not yet
    /// written. Check [`Carried::replay_count`] first.
    pub(crate) fn resume_from(&self, carried: Carried, received: u64, first: Bytes) {
        let kept = carried.unacked.len();
        let lost = usize::try_from(carried.written.saturating_sub(received)).unwrap_or(usize::MAX).min(kept);
        let mut state = self.state.lock();
        state.written = received;
        state.frames.push_back((first, Delivery::Guaranteed));
        state.guaranteed += 1;
        for frame in carried.unacked.into_iter().skip(kept - lost) {
            state.frames.push_back((frame, Delivery::Guaranteed));
            state.guaranteed += 1;
        }
        for (frame, delivery) in carried.frames {
            match delivery {
                Delivery::Guaranteed => state.guaranteed += 1,
                Delivery::Unguaranteed => state.unguaranteed += 1,
            }
            state.frames.push_back((frame, delivery));
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Frames waiting and frames kept for a resume: (count, payload bytes) — for the memory figures.
    pub(crate) fn held(&self) -> (usize, usize) {
        let state = self.state.lock();
        let waiting = state.frames.iter().map(|(f, _)| f.len());
        let kept = state.unacked.iter().map(Bytes::len);
        (state.frames.len() + state.unacked.len(), waiting.chain(kept).sum())
    }
}

/// The writer's end of a peer's queue. Exactly one per admitted connection.
#[derive(Debug)]
pub struct Outbox {
    queue: Arc<PeerQueue>,
}

impl Outbox {
    pub(crate) fn new(queue: Arc<PeerQueue>) -> Self {
        Self { queue }
    }

    /// The next thing to write; `None` once the peer is gone and everything (including its
    /// close frame, if it has one) has been taken. Cancel-safe: use it in `select!`.
    pub async fn recv(&mut self) -> Option<Outbound> {
        loop {
            if let Some(next) = self.queue.try_pop() {
                return next;
            }
            // `notify_one` stores a permit when nobody waits, so a push between `try_pop`
            // and here is not lost.
            self.queue.ready.notified().await;
        }
    }

    /// Waits for the next item, then appends it and everything else ready now (up to
    /// `limit` items in all) to `batch`, in order; a close frame is always the last item
    /// taken. Returns how many were added, 0 once the peer is gone and everything has been
    /// taken (or if `limit` is 0). Write the batch and flush once. Cancel-safe, like
    /// tokio's `mpsc::Receiver::recv_many`, which it mirrors.
    pub async fn recv_many(&mut self, batch: &mut Vec<Outbound>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        loop {
            if let Some(taken) = self.queue.take_into(batch, limit) {
                return taken;
            }
            self.queue.ready.notified().await;
        }
    }

    /// Appends everything ready now (up to `limit` items) to `batch` without waiting, like one
    /// round of [`Outbox::recv_many`]: `None` if nothing is ready, `Some(0)` at the end.
    pub fn take_ready(&mut self, batch: &mut Vec<Outbound>, limit: usize) -> Option<usize> {
        self.queue.take_into(batch, limit)
    }

    /// Like [`Outbox::recv`] without waiting: `None` when nothing is ready now (or the end
    /// has been reached). Handy to batch frames before a flush, and in tests.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        self.queue.try_pop().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_bounded_separately_and_order_is_kept() {
        let queue = PeerQueue::new(2, 1);
        assert_eq!(queue.push(Bytes::from_static(b"g1"), Delivery::Guaranteed), Pushed::Queued);
        assert_eq!(queue.push(Bytes::from_static(b"u1"), Delivery::Unguaranteed), Pushed::Queued);
        assert_eq!(queue.push(Bytes::from_static(b"u2"), Delivery::Unguaranteed), Pushed::Dropped);
        assert_eq!(queue.push(Bytes::from_static(b"g2"), Delivery::Guaranteed), Pushed::Queued);
        assert_eq!(queue.push(Bytes::from_static(b"g3"), Delivery::Guaranteed), Pushed::Overflow);
        let mut outbox = Outbox::new(queue.clone());
        let order: Vec<_> = std::iter::from_fn(|| outbox.try_recv()).collect();
        assert_eq!(
            order,
            vec![
                Outbound::Text(Bytes::from_static(b"g1")),
                Outbound::Text(Bytes::from_static(b"u1")),
                Outbound::Text(Bytes::from_static(b"g2")),
            ]
        );
        // Drained: room again.
        assert_eq!(queue.push(Bytes::from_static(b"u3"), Delivery::Unguaranteed), Pushed::Queued);
    }

    #[tokio::test]
    async fn recv_many_takes_what_is_ready_in_order_up_to_the_limit() {
        let queue = PeerQueue::new(8, 8);
        for frame in [&b"a"[..], b"b", b"c"] {
            queue.push(Bytes::from_static(frame), Delivery::Unguaranteed);
        }
        let mut outbox = Outbox::new(queue.clone());
        let mut batch = Vec::new();
        assert_eq!(outbox.recv_many(&mut batch, 2).await, 2);
        assert_eq!(outbox.recv_many(&mut batch, 2).await, 1);
        let text = |b: &'static [u8]| Outbound::Text(Bytes::from_static(b));
        assert_eq!(batch, vec![text(b"a"), text(b"b"), text(b"c")]);
        // Taken frames no longer count against the queue's bounds.
        for _ in 0..8 {
            assert_eq!(queue.push(Bytes::from_static(b"u"), Delivery::Unguaranteed), Pushed::Queued);
        }
        // The close frame comes after the frames taken before it, never before them.
        batch.clear();
        outbox.recv_many(&mut batch, 4).await;
        queue.close(Some(crate::CloseCode::Kicked.into()));
        assert_eq!(outbox.recv_many(&mut batch, 4).await, 1);
        assert_eq!(batch.last(), Some(&Outbound::Close(crate::CloseCode::Kicked.into())));
        assert_eq!(outbox.recv_many(&mut batch, 4).await, 0);
    }

    #[tokio::test]
    async fn recv_many_wakes_for_a_frame_pushed_while_it_waits() {
        let queue = PeerQueue::new(4, 4);
        let mut outbox = Outbox::new(queue.clone());
        let writer = tokio::spawn(async move {
            let mut batch = Vec::new();
            outbox.recv_many(&mut batch, 16).await;
            batch
        });
        tokio::task::yield_now().await;
        queue.push(Bytes::from_static(b"x"), Delivery::Guaranteed);
        assert_eq!(writer.await.unwrap(), vec![Outbound::Text(Bytes::from_static(b"x"))]);
    }

    #[tokio::test]
    async fn close_discards_pending_frames_and_ends_the_stream() {
        let queue = PeerQueue::new(4, 4);
        queue.push(Bytes::from_static(b"x"), Delivery::Guaranteed);
        assert!(queue.close(Some(crate::CloseCode::Kicked.into())));
        assert!(!queue.close(None));
        assert_eq!(queue.push(Bytes::from_static(b"y"), Delivery::Guaranteed), Pushed::Closed);
        let mut outbox = Outbox::new(queue);
        assert_eq!(outbox.recv().await, Some(Outbound::Close(crate::CloseCode::Kicked.into())));
        assert_eq!(outbox.recv().await, None);
    }
}
