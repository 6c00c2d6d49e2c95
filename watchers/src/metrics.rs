//! Per-chain counters and gauges as plain atomics. The gateway reads them (`Supervisor::metrics`) and exports
//! them in its own format; this crate depends on no metrics library.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One chain watcher's numbers.
#[derive(Debug, Default)]
pub struct ChainMetrics {
    /// The chain's head height as last read.
    pub head_height: Gauge,
    /// The last scanned block.
    pub cursor_height: Gauge,
    /// `head_height - cursor_height`: blocks not scanned yet.
    pub lag_blocks: Gauge,
    /// Transfers to quote addresses found in blocks (or the mempool), counted once each per run.
    pub payments_seen: Counter,
    /// Non-final progress reports accepted by ticketing.
    pub payments_pending_reports: Counter,
    /// Final reports that changed something in ticketing (credited, partial or refund due).
    pub payments_confirmed: Counter,
    pub payments_orphaned: Counter,
    /// Final payments whose block left the chain after ticketing dealt with them: reversed.
    pub payments_reversed: Counter,
    /// Failed RPC attempts (each retry counts).
    pub rpc_errors: Counter,
    /// Transactions, logs or responses that could not be understood, and reports ticketing refused.
    pub skipped: Counter,
    pub blocks_scanned: Counter,
    pub reorgs: Counter,
    pub polls: Counter,
    /// Times the supervisor restarted the watcher after an error or a panic.
    pub restarts: Counter,
    pub(crate) healthy: AtomicBool,
    pub(crate) last_ok_ms: Gauge,
    pub(crate) last_error: Mutex<Option<String>>,
}

impl ChainMetrics {
    pub fn set_head(&self, height: i64) {
        self.head_height.set(height);
        self.lag_blocks.set((height - self.cursor_height.get()).max(0));
    }

    pub fn set_cursor(&self, height: i64) {
        self.cursor_height.set(height);
        self.lag_blocks.set((self.head_height.get() - height).max(0));
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("metrics lock").clone()
    }

    pub(crate) fn record_ok(&self, now_ms: i64) {
        self.healthy.store(true, Ordering::Relaxed);
        self.last_ok_ms.set(now_ms);
        *self.last_error.lock().expect("metrics lock") = None;
    }

    pub(crate) fn record_error(&self, error: String) {
        self.healthy.store(false, Ordering::Relaxed);
        *self.last_error.lock().expect("metrics lock") = Some(error);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}
