//! Attendees' data rights, the gateway's side: the one-way token an erased wallet becomes, and the retention
//! sweep that anonymises old attendance rows (`[privacy] attendance_retention_days`). What is stored and erased
//! is decided in `ticketing::privacy`; the routes are in `routes/privacy.rs`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::state::AppState;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySettings {
    /// Attendance sessions that ended longer ago than this lose their wallet, ticket, country and chat count
    /// (times stay for the events' statistics). 0 keeps them as they are.
    pub attendance_retention_days: u32,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        PrivacySettings { attendance_retention_days: 365 }
    }
}

/// What an erased wallet is replaced with where the accounts keep its records: a keyed hash, so the same wallet
/// always gives the same token (its records stay together) but nobody without the server secret can tell
/// which address it was, even by hashing known addresses.
pub fn erasure_token(secret: &[u8], chain: &str, wallet: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("wallet-erasure\n{chain}\n{wallet}").as_bytes());
    format!("erased-{}", &hex::encode(mac.finalize().into_bytes())[..32])
}

/// Anonymises attendance past the retention once at start and then hourly, until shutdown.
pub fn spawn_retention_sweep(state: AppState) {
    let days = state.settings.privacy.attendance_retention_days;
    if days == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let cutoff = ticketing::now_ms() - i64::from(days) * 86_400_000;
                    match state.store.anonymise_attendance_before(cutoff).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(rows = n, days, "attendance past its retention anonymised"),
                        Err(err) => tracing::warn!(error = %err, "attendance retention sweep failed"),
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_per_wallet_and_keyed() {
        let a = erasure_token(b"secret-one", "eth", "0xabc");
        assert_eq!(a, erasure_token(b"secret-one", "eth", "0xabc"));
        assert_ne!(a, erasure_token(b"secret-two", "eth", "0xabc"));
        assert_ne!(a, erasure_token(b"secret-one", "pol", "0xabc"));
        assert!(a.starts_with("erased-") && a.len() == 39 && !a.contains("abc"));
    }
}
