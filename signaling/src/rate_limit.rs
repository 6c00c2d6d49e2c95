//! Per-peer message rate: `governor`'s GCRA (the gateway's keyed limiter is the same crate, keyed by client).
//!
//! Each peer owns its limiter (it lives in [`crate::Peer`], which the connection's reader task holds), so
//! limiting shares no state between peers; a check is one atomic compare-and-swap. `burst` messages at once,
//! then `messages_per_second`, refilled continuously: the token bucket this replaced, without floats.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

pub(crate) struct PeerLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
}

impl<C: Clock> std::fmt::Debug for PeerLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLimiter").finish_non_exhaustive()
    }
}

impl PeerLimiter {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        Self::with_clock(per_second, burst, DefaultClock::default())
    }
}

impl<C: Clock> PeerLimiter<C> {
    fn with_clock(per_second: u32, burst: u32, clock: C) -> Self {
        let burst = NonZeroU32::new(burst.max(1)).expect("at least 1");
        let quota = match NonZeroU32::new(per_second) {
            Some(rate) => Quota::per_second(rate).allow_burst(burst),
            // No refill: the burst is all a peer ever sends (a century stands for never).
            None => {
                Quota::with_period(Duration::from_secs(100 * 365 * 24 * 3600)).expect("non-zero").allow_burst(burst)
            }
        };
        PeerLimiter { limiter: RateLimiter::direct_with_clock(quota, clock) }
    }

    /// Takes one message's worth; `false` when the peer is over its rate.
    pub(crate) fn try_take(&self) -> bool {
        self.limiter.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn burst_then_refill() {
        let clock = FakeRelativeClock::default();
        let bucket = PeerLimiter::with_clock(10, 3, clock.clone());
        assert!((0..3).all(|_| bucket.try_take()));
        assert!(!bucket.try_take());
        // 100 ms at 10/s refills exactly one message.
        clock.advance(Duration::from_millis(100));
        assert!(bucket.try_take());
        assert!(!bucket.try_take());
        // Refill never exceeds the burst.
        clock.advance(Duration::from_secs(60));
        assert!((0..3).all(|_| bucket.try_take()));
        assert!(!bucket.try_take());
    }
}
