//! Rooms' persistent networked-aframe entities: what a scene marks `persistent: true`, kept so that a late
//! joiner sees it after its creator left, and after a restart (issue 26).
//!
//! The rooms decide what is kept (`signaling::persistent`, NAF's ownership rules, bounded per room); this
//! table only remembers it. The gateway writes changes behind the relay, several at a time in one
//! transaction, and reads a room's rows back before that room's first admission on a node.

use serde_json::Value;

use crate::store::{Store, StoreError};

/// One change to write.
#[derive(Debug, Clone, PartialEq)]
pub enum EntityWrite {
    /// The entity as the room keeps it now (NAF sync data).
    Upsert {
        event_id: i64,
        network_id: String,
        owner: String,
        data: Value,
    },
    Remove {
        event_id: i64,
        network_id: String,
    },
}

impl Store {
    /// Applies `writes` in order, in one transaction.
    pub async fn write_room_entities(&self, writes: &[EntityWrite], now: i64) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for write in writes {
            match write {
                EntityWrite::Upsert { event_id, network_id, owner, data } => {
                    sqlx::query(
                        "INSERT INTO room_entities (event_id, network_id, owner, data, updated_at) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (event_id, network_id) DO UPDATE SET owner = excluded.owner, data = excluded.data, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(event_id)
                    .bind(network_id)
                    .bind(owner)
                    .bind(data.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                EntityWrite::Remove { event_id, network_id } => {
                    sqlx::query("DELETE FROM room_entities WHERE event_id = $1 AND network_id = $2")
                        .bind(event_id)
                        .bind(network_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A room's kept entities (NAF sync data), oldest write first, at most `limit`. Rows that are not JSON
    /// objects are skipped (nothing else writes them).
    pub async fn room_entities(&self, event_id: i64, limit: usize) -> Result<Vec<Value>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT data FROM room_entities WHERE event_id = $1 ORDER BY updated_at, network_id LIMIT $2",
        )
        .bind(event_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(data,)| serde_json::from_str::<Value>(&data).ok().filter(Value::is_object))
            .collect())
    }
}
