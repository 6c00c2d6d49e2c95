//! Payment watchers: one task per chain follows the chain, finds transfers to open quotes, follows them to
//! finality under the chain's policy and reports them to ticketing.
//!
//! - [`watcher`]: the [`PaymentWatcher`] trait every chain implements, the [`WatchContext`] it reports
//!   through, the finality policy and RPC retries.
//! - [`supervisor`]: runs watchers as supervised tasks (restart with back-off, shutdown, status).
//! - [`metrics`]: per-chain counters as plain atomics.
//! - [`evm`]: Ethereum, Polygon and BNB over JSON-RPC (native transfers and ERC-20 `Transfer` logs).
//! - [`btc`]: Bitcoin over an Esplora-compatible REST API.
//!
//! Architecture invariant: watchers know chains and RPC, not tickets. They never write tickets or the ledger:
//! they call `Purchases::report_payment` and `Purchases::orphan_payment`, and they keep their own cursor in
//! `watcher_cursors` (through `ticketing::cursors`).

pub mod btc;
pub mod evm;
pub mod follow;
pub mod metrics;
pub mod supervisor;
pub mod watcher;

use std::sync::Arc;

use serde::Deserialize;
use ticketing::purchases::Purchases;
use tokio_util::sync::CancellationToken;

pub use btc::{BtcWatcher, BtcWatcherConfig};
pub use evm::{EvmWatcher, EvmWatcherConfig, TokenConfig};
pub use metrics::ChainMetrics;
pub use supervisor::{Supervisor, SupervisorConfig, WatcherFactory, WatcherStatus};
pub use watcher::{Finality, PaymentWatcher, PollReport, RetryPolicy, TokenTransfer, WatchContext, WatchError};

/// Every watcher this gateway (or `gateway watch` process) runs. A chain without a section is not watched.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchersConfig {
    /// One entry per EVM network (`chain = "eth" | "pol" | "bnb"`).
    pub evm: Vec<EvmWatcherConfig>,
    pub btc: Option<BtcWatcherConfig>,
    pub supervisor: SupervisorConfig,
}

impl WatchersConfig {
    /// Only the named chain's section (for `gateway watch --chain …`).
    pub fn only(mut self, chain: chains::Chain) -> Self {
        self.evm.retain(|c| c.chain == chain);
        if chain != chains::Chain::Btc {
            self.btc = None;
        }
        self
    }
}

/// Starts one supervised watcher per configured chain. Must be called inside a tokio runtime; the watchers
/// stop when `shutdown` is cancelled (await [`Supervisor::join`] to wait for them).
pub fn spawn_all(config: WatchersConfig, purchases: Purchases, shutdown: CancellationToken) -> Supervisor {
    let supervisor = Supervisor::new(purchases, shutdown, config.supervisor.clone());
    for evm in config.evm {
        let chain = evm.chain;
        let factory: WatcherFactory = Arc::new(move || Ok(Box::new(EvmWatcher::new(evm.clone())?) as Box<dyn PaymentWatcher>));
        supervisor.spawn(chain, factory);
    }
    if let Some(btc) = config.btc {
        let factory: WatcherFactory = Arc::new(move || Ok(Box::new(BtcWatcher::new(btc.clone())?) as Box<dyn PaymentWatcher>));
        supervisor.spawn(chains::Chain::Btc, factory);
    }
    supervisor
}
