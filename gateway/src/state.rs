//! The state every handler shares.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::configuration::{Secret, Settings};
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub store: ticketing::Store,
    /// USD per unit of each currency (cached upstream, or a static table offline).
    pub rates: Arc<dyn ticketing::rates::RateSource>,
    /// Quotes, payments, tickets and the ledger.
    pub purchases: ticketing::purchases::Purchases,
    /// Hive account keys (posting/active), for creator sign-in and Hive wallet signatures.
    pub hive_keys: Arc<dyn chains::signature::HiveKeySource>,
    pub metrics: Arc<Metrics>,
    /// Wallet access proofs: challenges, signature checks, replay protection, rate limits.
    pub access: Arc<crate::access::AccessGuard>,
    pub settings: Arc<Settings>,
    pub secret: Secret,
    /// The public origin, e.g. `https://presence.dlux.io`.
    pub public_url: Arc<str>,
    /// Cancelled when the gateway begins to shut down; long-lived connections watch it.
    pub shutdown: CancellationToken,
}

impl axum::extract::FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Arc<Metrics> {
        state.metrics.clone()
    }
}
