//! Creators (Hive accounts) and their subscription tier.
//!
//! Only premium and pro creators may create or edit events; a tier with a `tier_until` in the past counts as
//! free. Tiers are set by operators (admin API and CLI), and every change is audited.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::audit::{self, AuditEntry};
use crate::store::{now_ms, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Premium,
    Pro,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Premium => "premium",
            Tier::Pro => "pro",
        }
    }

    pub fn may_create_events(self) -> bool {
        matches!(self, Tier::Premium | Tier::Pro)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier `{0}`: expected free, premium or pro")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "free" => Ok(Tier::Free),
            "premium" => Ok(Tier::Premium),
            "pro" => Ok(Tier::Pro),
            _ => Err(UnknownTier(s.to_owned())),
        }
    }
}

/// A Hive account name, by the chain's own rule (`chains::hive_account`, shared with wallets and signatures).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid Hive account name")]
pub struct InvalidAccountName(pub String);

impl AccountName {
    pub fn parse(name: &str) -> Result<Self, InvalidAccountName> {
        if chains::hive_account::is_valid_account_name(name) {
            Ok(AccountName(name.to_owned()))
        } else {
            Err(InvalidAccountName(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Creator {
    pub account: String,
    pub tier: Tier,
    pub tier_until: Option<i64>,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub links: Vec<String>,
}

impl Creator {
    /// The tier in force at `now`: a lapsed subscription is free.
    pub fn effective_tier(&self, now: i64) -> Tier {
        match self.tier_until {
            Some(until) if until <= now => Tier::Free,
            _ => self.tier,
        }
    }
}

#[derive(sqlx::FromRow)]
struct CreatorRow {
    account: String,
    tier: String,
    tier_until: Option<i64>,
    display_name: Option<String>,
    bio: Option<String>,
    avatar_url: Option<String>,
    links: String,
}

impl TryFrom<CreatorRow> for Creator {
    type Error = StoreError;
    fn try_from(row: CreatorRow) -> Result<Self, StoreError> {
        Ok(Creator {
            tier: row.tier.parse().map_err(|e: UnknownTier| StoreError::Corrupt(e.to_string()))?,
            links: serde_json::from_str(&row.links).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            account: row.account,
            tier_until: row.tier_until,
            display_name: row.display_name,
            bio: row.bio,
            avatar_url: row.avatar_url,
        })
    }
}

/// Profile fields a creator may edit.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProfileUpdate {
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub links: Option<Vec<String>>,
}

/// Where a creator's webhook deliveries go: the creator, the URL and the signing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub creator: String,
    pub url: String,
    pub secret: String,
}

impl Store {
    pub async fn creator(&self, account: &AccountName) -> Result<Option<Creator>, StoreError> {
        let row = sqlx::query_as::<_, CreatorRow>(
            "SELECT account, tier, tier_until, display_name, bio, avatar_url, links FROM creators WHERE account = $1",
        )
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(Creator::try_from).transpose()
    }

    /// Sets a creator's tier (creating the creator if new) and audits who did it.
    pub async fn set_tier(
        &self,
        account: &AccountName,
        tier: Tier,
        until: Option<i64>,
        actor: &str,
    ) -> Result<Creator, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO creators (account, tier, tier_until, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (account) DO UPDATE SET tier = $2, tier_until = $3, updated_at = $4",
        )
        .bind(account.as_str())
        .bind(tier.as_str())
        .bind(until)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut *tx,
            &AuditEntry::new(actor, "creator.set_tier")
                .subject(account.as_str())
                .detail(serde_json::json!({ "tier": tier, "until": until })),
        )
        .await?;
        tx.commit().await?;
        self.creator(account)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("creator {account} missing after its write")))
    }

    /// Creates the creator row (free tier) if it does not exist yet; used at first login.
    pub async fn ensure_creator(&self, account: &AccountName) -> Result<Creator, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO creators (account, created_at, updated_at) VALUES ($1, $2, $2) ON CONFLICT (account) DO NOTHING",
        )
        .bind(account.as_str())
        .bind(now)
        .execute(self.pool())
        .await?;
        self.creator(account).await?.ok_or_else(|| StoreError::Corrupt("creator vanished".into()))
    }

    pub async fn update_profile(&self, account: &AccountName, update: &ProfileUpdate) -> Result<Creator, StoreError> {
        let current = self.ensure_creator(account).await?;
        let links = update.links.clone().unwrap_or(current.links);
        sqlx::query(
            "UPDATE creators SET display_name = $2, bio = $3, avatar_url = $4, links = $5, updated_at = $6 \
             WHERE account = $1",
        )
        .bind(account.as_str())
        .bind(update.display_name.clone().or(current.display_name))
        .bind(update.bio.clone().or(current.bio))
        .bind(update.avatar_url.clone().or(current.avatar_url))
        .bind(serde_json::to_string(&links).expect("strings serialise"))
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.ensure_creator(account).await
    }
}

impl Store {
    /// The webhook of the creator of `event_id`, if that creator set one.
    pub async fn webhook_target(&self, event_id: i64) -> Result<Option<WebhookTarget>, StoreError> {
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT c.account, c.webhook_url, c.webhook_secret FROM events e JOIN creators c ON c.account = e.creator_account WHERE e.id = $1",
        )
        .bind(event_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some((creator, Some(url), Some(secret))) => Some(WebhookTarget { creator, url, secret }),
            _ => None,
        })
    }

    /// Sets the creator's webhook URL and secret, or with `None` clears them. The caller audits the change.
    pub async fn set_webhook(
        &self,
        account: &AccountName,
        url: Option<&str>,
        secret: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE creators SET webhook_url = $2, webhook_secret = $3, updated_at = $4 WHERE account = $1")
            .bind(account.as_str())
            .bind(url)
            .bind(secret)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        for ok in ["alice", "dlux-io", "abc.def-g", "abc", "disregardfiat", "abc--d"] {
            assert!(AccountName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "Alice", "1abc", "abc-", "a..b", "toolongaccountname", "ab.cd", "a b", ""] {
            assert!(AccountName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lapsed_tier_is_free() {
        let c = Creator {
            account: "alice".into(),
            tier: Tier::Premium,
            tier_until: Some(1_000),
            display_name: None,
            bio: None,
            avatar_url: None,
            links: vec![],
        };
        assert_eq!(c.effective_tier(999), Tier::Premium);
        assert_eq!(c.effective_tier(1_000), Tier::Free);
    }
}
