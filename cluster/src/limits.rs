//! A rate limiter shared by every node: GCRA (the generic cell rate algorithm, as
//! `governor` and redis-cell use) with its one number of state — the theoretical arrival
//! time — in a Redis key, updated by one script. A client spreading its requests over
//! three nodes gets the same allowance as on one.
//!
//! Time is Redis's (`TIME`), so node clocks don't matter.

use crate::{Broker, ClusterError, Result};
use redis::Script;
use std::sync::OnceLock;
use std::time::Duration;

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; the first request that would be allowed is this far away.
    Deny {
        retry_after: Duration,
    },
}

fn gcra_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        Script::new(
            r#"
            -- KEYS: the limiter's key. ARGV: emission interval µs, burst (requests allowed at once)
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
            local interval = tonumber(ARGV[1])
            local tolerance = interval * (tonumber(ARGV[2]) - 1)
            local tat = tonumber(redis.call('GET', KEYS[1]) or now)
            if tat < now then tat = now end
            local allow_at = tat - tolerance
            if allow_at > now then
                return allow_at - now
            end
            local new_tat = tat + interval
            redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
            return 0
            "#,
        )
    })
}

/// `burst` requests at once, then one per `period / burst`... expressed as a rate: `per_second`
/// sustained, `burst` at once.
#[derive(Debug, Clone)]
pub struct SharedLimiter {
    broker: Broker,
    name: String,
    interval_us: u64,
    burst: u32,
}

impl SharedLimiter {
    /// `name` scopes the keys (e.g. `access`); `per_second` sustained requests per key, `burst` at once.
    pub fn new(broker: Broker, name: impl Into<String>, per_second: f64, burst: u32) -> Self {
        let interval_us =
            if per_second > 0.0 { (1_000_000.0 / per_second).round().max(1.0) as u64 } else { u64::MAX / 4 };
        Self { broker, name: name.into(), interval_us, burst: burst.max(1) }
    }

    /// Counts one request for `key` (a client address, a wallet) on every node.
    pub async fn check(&self, key: &str) -> Result<Decision> {
        let mut con = self.broker.connection();
        let result = gcra_script()
            .key(self.broker.keys.rate(&format!("{}:{key}", self.name)))
            .arg(self.interval_us)
            .arg(self.burst)
            .invoke_async::<i64>(&mut con)
            .await;
        let wait_us = self.broker.observe(result.map_err(ClusterError::from))?;
        Ok(if wait_us <= 0 {
            Decision::Allow
        } else {
            Decision::Deny { retry_after: Duration::from_micros(wait_us as u64) }
        })
    }
}
