//! Per-peer token bucket.
//!
//! Each peer owns its bucket (it lives in [`crate::Peer`], which the connection's reader
//! task holds by `&mut`), so limiting costs no lock and no shared state.

use std::time::Instant;

#[derive(Debug)]
pub(crate) struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        Self { per_second: f64::from(per_second), capacity, tokens: capacity, last: now }
    }

    /// Takes one token; `false` when the bucket is empty.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, start);
        assert!((0..3).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        // 100 ms at 10/s refills exactly one token.
        assert!(bucket.try_take(start + Duration::from_millis(100)));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
        // Refill never exceeds the burst.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.try_take(later)));
        assert!(!bucket.try_take(later));
    }
}
