//! Per-credential accounting: how many allocations a username holds and how fast it may relay.
//!
//! RFC 8656 §7.2 lets a server refuse an Allocate with 486 beyond a quota it defines "based on the
//! username". The upstream crate has no such hook, so every relay socket holds an
//! [`AllocationLease`] from this ledger: taking one counts the allocation, dropping or releasing it
//! (when the upstream server closes the relay socket) uncounts it. The ledger also answers "which
//! usernames belong to session X", which is how revocation finds the allocations to close.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::credentials::RestUsername;

pub struct Ledger {
    max_allocations: u32,
    max_bytes_per_sec: Option<u64>,
    entries: Mutex<HashMap<String, Arc<CredentialUsage>>>,
}

/// The live usage of one username. Exists while it holds at least one allocation.
pub struct CredentialUsage {
    pub username: String,
    active: Mutex<u32>,
    bucket: Option<Mutex<TokenBucket>>,
}

impl Ledger {
    pub fn new(max_allocations: u32, max_bytes_per_sec: Option<u64>) -> Self {
        Ledger { max_allocations, max_bytes_per_sec, entries: Mutex::default() }
    }

    pub fn max_allocations(&self) -> u32 {
        self.max_allocations
    }

    /// Allocations `username` holds now.
    pub fn active(&self, username: &str) -> u32 {
        let entries = self.entries.lock().expect("ledger lock");
        entries.get(username).map_or(0, |u| *u.active.lock().expect("usage lock"))
    }

    /// Counts one more allocation for `username`, or `None` if that would exceed the quota.
    pub fn try_acquire(self: &Arc<Self>, username: &str) -> Option<AllocationLease> {
        let mut entries = self.entries.lock().expect("ledger lock");
        let usage = entries.entry(username.to_owned()).or_insert_with(|| {
            Arc::new(CredentialUsage {
                username: username.to_owned(),
                active: Mutex::new(0),
                bucket: self.max_bytes_per_sec.map(|rate| Mutex::new(TokenBucket::new(rate))),
            })
        });
        let mut active = usage.active.lock().expect("usage lock");
        if *active >= self.max_allocations {
            return None;
        }
        *active += 1;
        drop(active);
        Some(AllocationLease { ledger: Arc::clone(self), usage: Arc::clone(usage), released: AtomicBool::new(false) })
    }

    /// Usernames holding allocations whose session `is_live` says is gone.
    pub fn usernames_of_dead_sessions(&self, is_live: impl Fn(&RestUsername) -> bool) -> Vec<String> {
        let entries = self.entries.lock().expect("ledger lock");
        entries.keys().filter(|u| RestUsername::parse(u).is_none_or(|parsed| !is_live(&parsed))).cloned().collect()
    }

    fn release(&self, usage: &CredentialUsage) {
        let mut entries = self.entries.lock().expect("ledger lock");
        let mut active = usage.active.lock().expect("usage lock");
        *active = active.saturating_sub(1);
        if *active == 0 {
            entries.remove(&usage.username);
        }
    }
}

/// One counted allocation. Released exactly once: explicitly or on drop.
pub struct AllocationLease {
    ledger: Arc<Ledger>,
    usage: Arc<CredentialUsage>,
    released: AtomicBool,
}

impl AllocationLease {
    pub fn username(&self) -> &str {
        &self.usage.username
    }

    /// Takes `bytes` from the credential's byte-rate budget; `false` means drop the datagram.
    pub fn consume(&self, bytes: usize) -> bool {
        match &self.usage.bucket {
            None => true,
            Some(bucket) => bucket.lock().expect("bucket lock").take(bytes as f64, Instant::now()),
        }
    }

    pub fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.ledger.release(&self.usage);
        }
    }
}

impl Drop for AllocationLease {
    fn drop(&mut self) {
        self.release();
    }
}

/// A byte budget refilled at `rate` per second, holding at most one second's worth.
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u64) -> Self {
        TokenBucket { rate: rate as f64, tokens: rate as f64, last: Instant::now() }
    }

    fn take(&mut self, n: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn quota_counts_and_releases_once() {
        let ledger = Arc::new(Ledger::new(2, None));
        let a = ledger.try_acquire("1:s").unwrap();
        let b = ledger.try_acquire("1:s").unwrap();
        assert!(ledger.try_acquire("1:s").is_none());
        assert!(ledger.try_acquire("1:t").is_some(), "quota is per username");
        a.release();
        a.release();
        assert_eq!(ledger.active("1:s"), 1);
        drop(a);
        drop(b);
        assert_eq!(ledger.active("1:s"), 0);
        assert!(ledger.usernames_of_dead_sessions(|_| false).is_empty(), "entries go with their last lease");
    }

    #[test]
    fn token_bucket_refills_at_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000);
        assert!(b.take(1000.0, t0));
        assert!(!b.take(1.0, t0));
        assert!(b.take(500.0, t0 + Duration::from_millis(500)));
        assert!(!b.take(100.0, t0 + Duration::from_millis(500)));
    }
}
