//! The audit log: one row per state change that matters (money, seats, access decisions, moderation).
//!
//! Writers pass their open transaction so the audit row commits or rolls back with the change it describes.

use serde_json::Value;
use sqlx::{Any, Executor};

use crate::store::{now_ms, Store, StoreError};

/// What happened, by whom, to what.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub event_id: Option<i64>,
    pub subject: Option<&'a str>,
    pub detail: Value,
    pub remote_addr: Option<&'a str>,
}

impl<'a> AuditEntry<'a> {
    pub fn new(actor: &'a str, action: &'a str) -> Self {
        AuditEntry { actor, action, event_id: None, subject: None, detail: Value::Null, remote_addr: None }
    }

    pub fn event(mut self, event_id: i64) -> Self {
        self.event_id = Some(event_id);
        self
    }

    pub fn subject(mut self, subject: &'a str) -> Self {
        self.subject = Some(subject);
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn remote(mut self, remote_addr: Option<&'a str>) -> Self {
        self.remote_addr = remote_addr;
        self
    }
}

/// Appends an entry inside the caller's transaction or on a plain connection.
pub async fn record<'e, E>(executor: E, entry: &AuditEntry<'_>) -> Result<(), StoreError>
where
    E: Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, event_id, subject, detail, remote_addr) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(now_ms())
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.event_id)
    .bind(entry.subject)
    .bind(if entry.detail.is_null() { "{}".to_owned() } else { entry.detail.to_string() })
    .bind(entry.remote_addr)
    .execute(executor)
    .await?;
    Ok(())
}

/// One audit row as read back.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub event_id: Option<i64>,
    pub subject: Option<String>,
    pub detail: String,
    pub remote_addr: Option<String>,
}

impl Store {
    pub async fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), StoreError> {
        record(self.pool(), entry).await
    }

    /// The newest entries first, optionally for one action.
    pub async fn audit_entries(&self, action: Option<&str>, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query_as::<_, AuditRow>(
            "SELECT id, at, actor, action, event_id, subject, detail, remote_addr FROM audit_log \
             WHERE ($1 IS NULL OR action = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(action)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }
}
