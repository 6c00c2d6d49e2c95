//! Runs each watcher as a supervised tokio task: one tick after another, restarted with exponential back-off
//! after an error or a panic, stopped by the shutdown token. Its state is visible through
//! [`Supervisor::status`] (for `/readyz`) and [`Supervisor::metrics`].
//!
//! A failed watcher is not repaired but rebuilt: the supervisor asks the watcher's factory for a fresh one,
//! which reloads its cursor and pending sightings from the store ([`PaymentWatcher::resume`]). Whatever the
//! failed run had half done is either in the store already or done again, and ticketing's unique
//! (chain, txid, output index) key makes doing it again harmless.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chains::Chain;
use serde::{Deserialize, Serialize};
use ticketing::purchases::Purchases;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::ChainMetrics;
use crate::watcher::{PaymentWatcher, WatchContext, WatchError};

/// Builds a fresh watcher (at start-up and after each failure).
pub type WatcherFactory = Arc<dyn Fn() -> Result<Box<dyn PaymentWatcher>, WatchError> + Send + Sync>;

/// Restart back-off and staleness, shared by all watchers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// First wait after a failure; doubles on each failure in a row.
    pub restart_backoff_ms: u64,
    pub max_restart_backoff_ms: u64,
    /// A watcher whose last successful tick is older than this is reported unhealthy.
    pub stale_after_ms: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig { restart_backoff_ms: 1_000, max_restart_backoff_ms: 60_000, stale_after_ms: 120_000 }
    }
}

/// One watcher's state, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatcherStatus {
    pub chain: Chain,
    /// The last tick succeeded, recently enough.
    pub healthy: bool,
    pub head_height: i64,
    pub cursor_height: i64,
    /// Blocks between the cursor and the head.
    pub lag: i64,
    pub last_error: Option<String>,
    pub restarts: u64,
}

struct Supervised {
    chain: Chain,
    metrics: Arc<ChainMetrics>,
    task: JoinHandle<()>,
}

/// The running watchers.
pub struct Supervisor {
    purchases: Purchases,
    shutdown: CancellationToken,
    config: SupervisorConfig,
    watchers: Mutex<Vec<Supervised>>,
}

impl Supervisor {
    pub fn new(purchases: Purchases, shutdown: CancellationToken, config: SupervisorConfig) -> Self {
        Supervisor { purchases, shutdown, config, watchers: Mutex::new(Vec::new()) }
    }

    /// Starts supervising one chain's watcher. Must be called inside a tokio runtime.
    pub fn spawn(&self, chain: Chain, factory: WatcherFactory) -> Arc<ChainMetrics> {
        let metrics = Arc::new(ChainMetrics::default());
        let ctx = WatchContext::new(chain, self.purchases.clone(), metrics.clone());
        self.spawn_with_context(ctx, factory)
    }

    /// Like [`Supervisor::spawn`] with a prepared context (tests pin its clock).
    pub fn spawn_with_context(&self, ctx: WatchContext, factory: WatcherFactory) -> Arc<ChainMetrics> {
        let chain = ctx.chain();
        let metrics = ctx.metrics().clone();
        let task = tokio::spawn(supervise(ctx, factory, self.shutdown.clone(), self.config.clone()));
        self.watchers.lock().expect("supervisor lock").push(Supervised { chain, metrics: metrics.clone(), task });
        metrics
    }

    pub fn status(&self) -> Vec<WatcherStatus> {
        let now = ticketing::now_ms();
        let stale_after = i64::try_from(self.config.stale_after_ms).unwrap_or(i64::MAX);
        self.watchers
            .lock()
            .expect("supervisor lock")
            .iter()
            .map(|w| {
                let m = &w.metrics;
                let fresh = now.saturating_sub(m.last_ok_ms.get()) <= stale_after;
                WatcherStatus {
                    chain: w.chain,
                    healthy: m.is_healthy() && fresh && !w.task.is_finished(),
                    head_height: m.head_height.get(),
                    cursor_height: m.cursor_height.get(),
                    lag: m.lag_blocks.get(),
                    last_error: m.last_error(),
                    restarts: m.restarts.get(),
                }
            })
            .collect()
    }

    /// Every watcher is healthy (and there is at least one).
    pub fn is_ready(&self) -> bool {
        let status = self.status();
        !status.is_empty() && status.iter().all(|s| s.healthy)
    }

    pub fn metrics(&self) -> Vec<(Chain, Arc<ChainMetrics>)> {
        self.watchers.lock().expect("supervisor lock").iter().map(|w| (w.chain, w.metrics.clone())).collect()
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Cancels the token and waits for every watcher to stop.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.join().await;
    }

    /// Waits for every watcher to stop (they stop when the token is cancelled).
    pub async fn join(self) {
        let watchers = std::mem::take(&mut *self.watchers.lock().expect("supervisor lock"));
        for w in watchers {
            let _ = w.task.await;
        }
    }
}

async fn supervise(ctx: WatchContext, factory: WatcherFactory, shutdown: CancellationToken, config: SupervisorConfig) {
    let chain = ctx.chain();
    let metrics = ctx.metrics().clone();
    let initial = Duration::from_millis(config.restart_backoff_ms.max(1));
    let max = Duration::from_millis(config.max_restart_backoff_ms.max(config.restart_backoff_ms));
    let mut backoff = initial;
    loop {
        // Each run in its own task, so a panic in a watcher is caught here like an error.
        let run = tokio::spawn(run(ctx.clone(), factory.clone(), shutdown.clone()));
        let (error, made_progress) = match run.await {
            Ok(Ok(())) => return,
            Ok(Err((error, progress))) => (error, progress),
            Err(join) => (format!("panicked: {join}"), false),
        };
        if made_progress {
            backoff = initial;
        }
        tracing::warn!(%chain, %error, backoff_ms = backoff.as_millis() as u64, "watcher failed, restarting");
        metrics.record_error(error);
        metrics.restarts.inc();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(max);
    }
}

/// One run of a watcher: build, resume, tick until shutdown or an error. The error says whether any tick
/// succeeded (which resets the back-off).
async fn run(ctx: WatchContext, factory: WatcherFactory, shutdown: CancellationToken) -> Result<(), (String, bool)> {
    let metrics = ctx.metrics().clone();
    let mut watcher = factory().map_err(|e| (e.to_string(), false))?;
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        resumed = watcher.resume(&ctx) => resumed.map_err(|e| (e.to_string(), false))?,
    }
    let mut progress = false;
    loop {
        let polled = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            polled = watcher.poll_once(&ctx) => polled,
        };
        let report = polled.map_err(|e| (format!("{}: {e}", e.code()), progress))?;
        progress = true;
        metrics.polls.inc();
        metrics.set_head(report.head_height);
        metrics.set_cursor(report.cursor_height);
        metrics.record_ok(ticketing::now_ms());
        tracing::debug!(chain = %ctx.chain(), ?report, "tick");
        if report.behind {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(watcher.poll_interval()) => {}
        }
    }
}
