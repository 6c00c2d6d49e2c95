//! The one keyed rate limiter: `governor`'s GCRA per key (a client address, a wallet, an event), so the
//! access checks count attempts the same way everywhere.
//!
//! A quota of `n` per minute lets a fresh key make `n` attempts at once, then one every `60/n` s: the token
//! bucket the access checks have always used, without floats or a lock around a map of our own. Keys whose
//! state is back to fresh carry nothing a new key would not, so past [`KeyedLimiter::MAX_KEYS`] they are
//! dropped; what stays is bounded by the keys used within the last minute, which the per-address limit bounds.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

pub struct KeyedLimiter {
    /// `None` when the quota is 0: no limit.
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl KeyedLimiter {
    /// Beyond this many keys, the ones back to a fresh state are forgotten.
    pub const MAX_KEYS: usize = 100_000;

    /// `per_minute` attempts in a burst, refilled continuously; 0 turns the limit off.
    pub fn per_minute(per_minute: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|n| governor::RateLimiter::keyed(Quota::per_minute(n)));
        KeyedLimiter { limiter, clock: DefaultClock::default() }
    }

    /// Spends one attempt of `key`'s; when none is left, how long until the next one is.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if limiter.len() >= Self::MAX_KEYS {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(&key.to_owned()).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::KeyedLimiter;

    #[test]
    fn a_burst_per_key_then_a_wait_for_the_next_attempt() {
        let limiter = KeyedLimiter::per_minute(3);
        for _ in 0..3 {
            limiter.check("w").unwrap();
        }
        let wait = limiter.check("w").unwrap_err();
        // 3 a minute: the next attempt is about 20 s away.
        assert!(wait.as_secs() <= 20 && wait.as_secs() >= 19, "{wait:?}");
        limiter.check("other").unwrap();
    }

    #[test]
    fn zero_is_no_limit() {
        let limiter = KeyedLimiter::per_minute(0);
        for _ in 0..1000 {
            limiter.check("w").unwrap();
        }
    }
}
