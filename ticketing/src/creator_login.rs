//! Creators' sign-in challenges (`creator_login_challenges`): issued to anyone who asks, so their storage is
//! bounded here; consumed once, on any node, through the shared `used_challenges` key.
//!
//! The gateway writes the challenge text and checks the Hive signature; this module only keeps the rows, so
//! the table has one owner. Reach it through [`Store::creator_challenges`].

use crate::audit::{self, AuditEntry};
use crate::store::{Store, StoreError};

/// A challenge as stored: the text the creator signs, for one account, until `expires_at` (unix ms).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredChallenge {
    pub nonce: String,
    pub account: String,
    pub message: String,
    pub expires_at: i64,
}

/// What a new challenge is: who it is for, who asked, and its text.
#[derive(Debug, Clone)]
pub struct NewChallenge<'a> {
    pub nonce: &'a str,
    pub account: &'a str,
    pub message: &'a str,
    pub requester: &'a str,
    pub expires_at: i64,
}

/// The creator login challenges of one store.
#[derive(Debug, Clone, Copy)]
pub struct CreatorChallenges<'s> {
    store: &'s Store,
}

impl Store {
    pub fn creator_challenges(&self) -> CreatorChallenges<'_> {
        CreatorChallenges { store: self }
    }
}

impl CreatorChallenges<'_> {
    /// Stores `challenge`, in one transaction with the pruning that bounds storage: expired challenges go, and
    /// its asker keeps only its `keep_per_asker` newest open ones for the account. Pruning is per asker, so
    /// anonymous requests for someone else's account cannot evict the challenge they are about to sign.
    pub async fn issue(&self, challenge: &NewChallenge<'_>, keep_per_asker: i64, now: i64) -> Result<(), StoreError> {
        let mut tx = self.store.pool().begin().await?;
        sqlx::query("DELETE FROM creator_login_challenges WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO creator_login_challenges (nonce, account, message, expires_at, created_at, requester) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(challenge.nonce)
        .bind(challenge.account)
        .bind(challenge.message)
        .bind(challenge.expires_at)
        .bind(now)
        .bind(challenge.requester)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM creator_login_challenges WHERE account = $1 AND requester = $3 AND nonce NOT IN \
             (SELECT nonce FROM creator_login_challenges WHERE account = $1 AND requester = $3 \
              ORDER BY created_at DESC, nonce LIMIT $2)",
        )
        .bind(challenge.account)
        .bind(keep_per_asker)
        .bind(challenge.requester)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The challenge with this nonce, if it is still stored (used and expired ones are not).
    pub async fn by_nonce(&self, nonce: &str) -> Result<Option<StoredChallenge>, StoreError> {
        Ok(sqlx::query_as::<_, StoredChallenge>(
            "SELECT nonce, account, message, expires_at FROM creator_login_challenges WHERE nonce = $1",
        )
        .bind(nonce)
        .fetch_optional(self.store.pool())
        .await?)
    }

    /// The account's newest open challenges, whoever asked for them, at most `limit`.
    pub async fn open_for(&self, account: &str, now: i64, limit: i64) -> Result<Vec<StoredChallenge>, StoreError> {
        Ok(sqlx::query_as::<_, StoredChallenge>(
            "SELECT nonce, account, message, expires_at FROM creator_login_challenges WHERE account = $1 AND expires_at > $2 \
             ORDER BY created_at DESC LIMIT $3",
        )
        .bind(account)
        .bind(now)
        .bind(limit)
        .fetch_all(self.store.pool())
        .await?)
    }

    /// Whether `key` (the challenge's `used_challenges` key) has been used already.
    pub async fn is_used(&self, key: &str) -> Result<bool, StoreError> {
        let used: Option<String> = sqlx::query_scalar("SELECT key FROM used_challenges WHERE key = $1")
            .bind(key)
            .fetch_optional(self.store.pool())
            .await?;
        Ok(used.is_some())
    }

    /// Marks the challenge used under `key` and deletes it, audited as `creator.login`, atomically; `false` if it
    /// had been used (a concurrent second use loses the insert race and changes nothing).
    pub async fn consume(&self, key: &str, challenge: &StoredChallenge, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.store.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO used_challenges (key, kind, wallet, expires_at, used_at) VALUES ($1, 'nonce', $2, $3, $4) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(&challenge.account)
        .bind(challenge.expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM creator_login_challenges WHERE nonce = $1")
            .bind(&challenge.nonce)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut *tx,
            &AuditEntry::new(&challenge.account, "creator.login")
                .subject(&challenge.account)
                .detail(serde_json::json!({ "challenge_bytes": challenge.message.len() })),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
