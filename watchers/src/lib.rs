//! Payment watchers: one task per chain follows the chain, finds transfers to open quotes, follows them to
//! finality under the chain's policy and reports them to ticketing.
//!
//! - [`watcher`]: the [`PaymentWatcher`] trait every chain implements, the [`WatchContext`] it reports
//!   through, the finality policy and RPC retries.
//! - [`supervisor`]: runs watchers as supervised tasks (restart with back-off, shutdown, status).
//! - [`metrics`]: per-chain counters as plain atomics.
//! - [`evm`]: Ethereum, Polygon and BNB over JSON-RPC (native transfers and ERC-20 `Transfer` logs).
//! - [`btc`]: Bitcoin over an Esplora-compatible REST API.
//! - [`solana`]: Solana Pay transfers found by each quote's reference key (finalized only).
//! - [`hive`]: HIVE and HBD transfers to the platform account, matched by memo, irreversible blocks only.
//! - [`monero`]: payments to per-quote subaddresses, read from monero-wallet-rpc, final at the unlock (10).
//! - [`rescan`]: `gateway admin rescan`: a one-off pass over final blocks for every quote of a chain, for payments
//!   that came after the watch window.
//!
//! Architecture invariant: watchers know chains and RPC, not tickets. They never write tickets or the ledger:
//! they call `Purchases::report_payment` and `Purchases::orphan_payment`, and they keep their own cursor in
//! `watcher_cursors` (through `ticketing::cursors`).

pub mod btc;
pub mod evm;
pub mod follow;
pub mod hive;
pub mod hive_keys;
mod jsonrpc;
pub mod lookup;
pub mod metrics;
pub mod monero;
pub mod rescan;
pub mod solana;
pub mod supervisor;
pub mod watcher;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use ticketing::purchases::Purchases;
use tokio_util::sync::CancellationToken;

pub use btc::{BtcWatcher, BtcWatcherConfig};
pub use evm::{EvmWatcher, EvmWatcherConfig, TokenConfig};
pub use hive::{HiveConfig, HiveWatcher};
pub use hive_keys::HiveRpcKeySource;
pub use metrics::ChainMetrics;
pub use monero::{MoneroConfig, MoneroWalletRpc, MoneroWatcher};
pub use solana::{SolanaConfig, SolanaWatcher};
pub use supervisor::{Supervisor, SupervisorConfig, WatcherFactory, WatcherStatus};
pub use watcher::{Finality, PaymentWatcher, PollReport, RetryPolicy, TokenTransfer, WatchContext, WatchError};

/// Every watcher this gateway (or `gateway watch` process) runs. A chain without a section is not watched.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchersConfig {
    /// One entry per EVM network (`chain = "eth" | "pol" | "bnb"`).
    pub evm: Vec<EvmWatcherConfig>,
    pub btc: Option<BtcWatcherConfig>,
    pub solana: Option<SolanaConfig>,
    pub hive: Option<HiveConfig>,
    pub monero: Option<MoneroConfig>,
    pub supervisor: SupervisorConfig,
}

impl WatchersConfig {
    /// Only the named chain's section (for `gateway watch --chain …`).
    pub fn only(mut self, chain: chains::Chain) -> Self {
        self.evm.retain(|c| c.chain == chain);
        if chain != chains::Chain::Btc {
            self.btc = None;
        }
        if chain != chains::Chain::Sol {
            self.solana = None;
        }
        if chain != chains::Chain::Hive {
            self.hive = None;
        }
        if chain != chains::Chain::Xmr {
            self.monero = None;
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
        let factory: WatcherFactory =
            Arc::new(move || Ok(Box::new(EvmWatcher::new(evm.clone())?) as Box<dyn PaymentWatcher>));
        supervisor.spawn(chain, factory);
    }
    if let Some(btc) = config.btc {
        let factory: WatcherFactory =
            Arc::new(move || Ok(Box::new(BtcWatcher::new(btc.clone())?) as Box<dyn PaymentWatcher>));
        supervisor.spawn(chains::Chain::Btc, factory);
    }
    if let Some(solana) = config.solana {
        let factory: WatcherFactory =
            Arc::new(move || Ok(Box::new(SolanaWatcher::new(solana.clone())) as Box<dyn PaymentWatcher>));
        supervisor.spawn(chains::Chain::Sol, factory);
    }
    if let Some(hive) = config.hive {
        let factory: WatcherFactory =
            Arc::new(move || Ok(Box::new(HiveWatcher::new(hive.clone())) as Box<dyn PaymentWatcher>));
        supervisor.spawn(chains::Chain::Hive, factory);
    }
    if let Some(monero) = config.monero {
        let factory: WatcherFactory =
            Arc::new(move || Ok(Box::new(MoneroWatcher::new(monero.clone())) as Box<dyn PaymentWatcher>));
        supervisor.spawn(chains::Chain::Xmr, factory);
    }
    supervisor
}
