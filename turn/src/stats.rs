//! Counters the gateway exports (to Prometheus); plain atomics so this crate needs no metrics
//! library and reading them never blocks the relay.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::auth::AuthFailure;

#[derive(Debug, Default)]
pub struct TurnStats {
    pub allocations_active: AtomicU64,
    pub allocations_total: AtomicU64,
    /// Payload bytes the relay sockets sent to peers.
    pub bytes_to_peers: AtomicU64,
    /// Payload bytes the relay sockets received from peers and passed on to clients.
    pub bytes_from_peers: AtomicU64,
    pub auth_failures_expired: AtomicU64,
    pub auth_failures_forged: AtomicU64,
    pub auth_failures_unknown_session: AtomicU64,
    pub auth_failures_malformed: AtomicU64,
    /// CreatePermission/ChannelBind refused (403) or datagrams dropped for a denied peer address.
    pub peer_denied: AtomicU64,
    /// Allocate refused with 486 (allocation quota reached).
    pub quota_rejections: AtomicU64,
    /// Datagrams dropped because the credential exceeded its byte rate.
    pub bandwidth_drops: AtomicU64,
    /// Allocations closed because their session was revoked.
    pub revoked_allocations: AtomicU64,
}

/// A copy of the counters at one instant, for export or assertions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub allocations_active: u64,
    pub allocations_total: u64,
    pub bytes_to_peers: u64,
    pub bytes_from_peers: u64,
    pub auth_failures_expired: u64,
    pub auth_failures_forged: u64,
    pub auth_failures_unknown_session: u64,
    pub auth_failures_malformed: u64,
    pub peer_denied: u64,
    pub quota_rejections: u64,
    pub bandwidth_drops: u64,
    pub revoked_allocations: u64,
}

impl StatsSnapshot {
    pub fn bytes_relayed(&self) -> u64 {
        self.bytes_to_peers + self.bytes_from_peers
    }

    /// Auth failures by reason label, in the order [`AuthFailure::ALL`] lists them.
    pub fn auth_failures(&self) -> [(&'static str, u64); 4] {
        [
            (AuthFailure::Expired.reason(), self.auth_failures_expired),
            (AuthFailure::Forged.reason(), self.auth_failures_forged),
            (AuthFailure::UnknownSession.reason(), self.auth_failures_unknown_session),
            (AuthFailure::Malformed.reason(), self.auth_failures_malformed),
        ]
    }
}

impl TurnStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            allocations_active: self.allocations_active.load(Relaxed),
            allocations_total: self.allocations_total.load(Relaxed),
            bytes_to_peers: self.bytes_to_peers.load(Relaxed),
            bytes_from_peers: self.bytes_from_peers.load(Relaxed),
            auth_failures_expired: self.auth_failures_expired.load(Relaxed),
            auth_failures_forged: self.auth_failures_forged.load(Relaxed),
            auth_failures_unknown_session: self.auth_failures_unknown_session.load(Relaxed),
            auth_failures_malformed: self.auth_failures_malformed.load(Relaxed),
            peer_denied: self.peer_denied.load(Relaxed),
            quota_rejections: self.quota_rejections.load(Relaxed),
            bandwidth_drops: self.bandwidth_drops.load(Relaxed),
            revoked_allocations: self.revoked_allocations.load(Relaxed),
        }
    }

    pub(crate) fn record_auth_failure(&self, failure: AuthFailure) {
        let counter = match failure {
            AuthFailure::Expired => &self.auth_failures_expired,
            AuthFailure::Forged => &self.auth_failures_forged,
            AuthFailure::UnknownSession => &self.auth_failures_unknown_session,
            AuthFailure::Malformed => &self.auth_failures_malformed,
        };
        counter.fetch_add(1, Relaxed);
    }
}
