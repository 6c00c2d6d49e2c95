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
}

#[derive(Debug)]
pub(crate) struct PeerQueue {
    state: Mutex<State>,
    ready: Notify,
    guaranteed_limit: usize,
    unguaranteed_limit: usize,
}

impl PeerQueue {
    pub(crate) fn new(guaranteed_limit: usize, unguaranteed_limit: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                guaranteed: 0,
                unguaranteed: 0,
                close: None,
                closed: false,
            }),
            ready: Notify::new(),
            guaranteed_limit,
            unguaranteed_limit,
        })
    }

    pub(crate) fn push(&self, frame: Bytes, delivery: Delivery) -> Pushed {
        let mut state = self.state.lock();
        if state.closed {
            return Pushed::Closed;
        }
        match delivery {
            Delivery::Unguaranteed if state.unguaranteed >= self.unguaranteed_limit => {
                return Pushed::Dropped
            }
            Delivery::Unguaranteed => state.unguaranteed += 1,
            Delivery::Guaranteed if state.guaranteed >= self.guaranteed_limit => {
                return Pushed::Overflow
            }
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
