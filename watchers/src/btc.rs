//! Bitcoin over an Esplora-compatible REST API (Blockstream's esplora, mempool.space, electrs' HTTP API).

use std::time::Duration;

use chains::Chain;
use serde::Deserialize;

use crate::watcher::{Finality, PaymentWatcher, PollReport, RetryPolicy, WatchContext, WatchError};

/// The Bitcoin watcher. Default: 2 confirmations; never fewer than 1 (no 0-conf credit).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BtcWatcherConfig {
    /// Esplora API base, e.g. `https://blockstream.info/api`.
    pub esplora_url: String,
    #[serde(default = "defaults::btc_confirmations")]
    pub confirmations: u32,
    #[serde(default = "defaults::btc_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Also look at each open quote's address for unconfirmed transactions (shows `seen` early and notices
    /// replaced ones).
    #[serde(default = "defaults::yes")]
    pub watch_mempool: bool,
    /// Where to start when there is no cursor yet (default: the current tip).
    #[serde(default)]
    pub start_height: Option<i64>,
    #[serde(default = "defaults::btc_max_blocks_per_tick")]
    pub max_blocks_per_tick: u64,
    #[serde(default = "defaults::btc_reorg_depth")]
    pub max_reorg_depth: u64,
    #[serde(default = "crate::evm::defaults::rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
    #[serde(default = "crate::evm::defaults::rpc_attempts")]
    pub rpc_attempts: u32,
}

pub(crate) mod defaults {
    pub fn btc_confirmations() -> u32 {
        2
    }
    pub fn btc_poll_interval_ms() -> u64 {
        15_000
    }
    pub fn yes() -> bool {
        true
    }
    pub fn btc_max_blocks_per_tick() -> u64 {
        20
    }
    pub fn btc_reorg_depth() -> u64 {
        20
    }
}

impl BtcWatcherConfig {
    pub fn new(esplora_url: impl Into<String>) -> Self {
        BtcWatcherConfig {
            esplora_url: esplora_url.into(),
            confirmations: defaults::btc_confirmations(),
            poll_interval_ms: defaults::btc_poll_interval_ms(),
            watch_mempool: true,
            start_height: None,
            max_blocks_per_tick: defaults::btc_max_blocks_per_tick(),
            max_reorg_depth: defaults::btc_reorg_depth(),
            rpc_timeout_ms: crate::evm::defaults::rpc_timeout_ms(),
            rpc_attempts: crate::evm::defaults::rpc_attempts(),
        }
    }

    pub fn finality(&self) -> Finality {
        Finality::Confirmations(self.confirmations.max(1))
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            timeout: Duration::from_millis(self.rpc_timeout_ms),
            attempts: self.rpc_attempts.max(1),
            ..RetryPolicy::default()
        }
    }
}

/// Watches Bitcoin through Esplora.
pub struct BtcWatcher {
    config: BtcWatcherConfig,
}

impl BtcWatcher {
    pub fn new(config: BtcWatcherConfig) -> Result<Self, WatchError> {
        Ok(BtcWatcher { config })
    }
}

#[async_trait::async_trait]
impl PaymentWatcher for BtcWatcher {
    fn chain(&self) -> Chain {
        Chain::Btc
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_interval_ms)
    }

    async fn resume(&mut self, _ctx: &WatchContext) -> Result<(), WatchError> {
        Err(WatchError::Config("the Bitcoin watcher is not implemented yet".into()))
    }

    async fn poll_once(&mut self, _ctx: &WatchContext) -> Result<PollReport, WatchError> {
        Err(WatchError::Config("the Bitcoin watcher is not implemented yet".into()))
    }
}
