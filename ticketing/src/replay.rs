//! Things that may be used once: challenge nonces, seed-style signatures, room session tokens.
//!
//! The shared `used_challenges` table is the memory: its primary key makes the second use fail on every
//! gateway node at once, with no lock and no race.

use crate::store::{Store, StoreError};

impl Store {
    /// Records `key` as used; `false` if it had been used before. `expires_at` bounds how long it is kept.
    pub async fn spend_once(
        &self,
        key: &str,
        kind: &str,
        event_id: Option<i64>,
        wallet: Option<&str>,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO used_challenges (key, kind, event_id, wallet, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(kind)
        .bind(event_id)
        .bind(wallet)
        .bind(expires_at)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Forgets used keys whose validity has passed (they could not be replayed anyway).
    pub async fn purge_spent(&self, now: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM used_challenges WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected())
    }

    /// Forgets used challenge nonces and signed messages (kinds `nonce` and `signature`) that expired before
    /// `before`; session tokens and other kinds are kept for [`Store::purge_spent`].
    pub async fn purge_spent_proofs(&self, before: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM used_challenges WHERE kind IN ('nonce', 'signature') AND expires_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}
