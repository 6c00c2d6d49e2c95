//! Admission checks and attendance: who may enter a room, and what happened while they were there.
//!
//! The gateway keeps room counters in memory for speed; this module is the truth they are rebuilt from.
//! One `attendance_sessions` row per admission, opened at join and closed at leave with the reason; the
//! ticket carries the running totals (first and last access, access count, total duration). Engagement
//! updates arrive in batches ([`Store::record_attendance`]) so the rooms' hot path never waits on the
//! database.

use serde::Serialize;
use sqlx::{Any, Transaction};

use crate::store::{Store, StoreError};

/// Why a ticket may not enter a room now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No such ticket, or it belongs to another event.
    NoTicket,
    /// The ticket was refunded, cancelled or banned (the status).
    TicketInvalid(String),
    /// The event was cancelled.
    EventCancelled,
    /// Too early: the room opens at this time (unix ms).
    NotYetOpen {
        opens_at: i64,
    },
    Ended,
}

/// What the gateway needs to seat an attendee.
#[derive(Debug, Clone, Serialize)]
pub struct Seat {
    pub ticket_id: Option<i64>,
    pub event_id: i64,
    pub wallet: String,
    pub chain: String,
    pub capacity: i64,
    /// Most attendees per shard of the event's scene (`signaling::shards`).
    pub shard_size: i64,
    pub event_end: i64,
    pub creator_account: String,
}

#[derive(sqlx::FromRow)]
struct EventWindow {
    status: String,
    event_start: i64,
    event_end: i64,
    max_attendees: i64,
    shard_size: i64,
    creator_account: String,
}

impl Store {
    async fn event_window(&self, event_id: i64) -> Result<Option<EventWindow>, StoreError> {
        Ok(sqlx::query_as::<_, EventWindow>(
            "SELECT status, event_start, event_end, max_attendees, shard_size, creator_account FROM events WHERE id = $1",
        )
        .bind(event_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// May `ticket_id` enter `event_id` at `now`? Rooms open `early_open_ms` before the start.
    pub async fn check_ticket_admission(
        &self,
        event_id: i64,
        ticket_id: i64,
        now: i64,
        early_open_ms: i64,
    ) -> Result<Result<Seat, Refusal>, StoreError> {
        let ticket: Option<(i64, String, String, String)> =
            sqlx::query_as("SELECT event_id, status, wallet_address, chain FROM tickets WHERE id = $1")
                .bind(ticket_id)
                .fetch_optional(self.pool())
                .await?;
        let Some((ticket_event, status, wallet, chain)) = ticket else { return Ok(Err(Refusal::NoTicket)) };
        if ticket_event != event_id {
            return Ok(Err(Refusal::NoTicket));
        }
        if status != "valid" {
            return Ok(Err(Refusal::TicketInvalid(status)));
        }
        let Some(event) = self.event_window(event_id).await? else { return Ok(Err(Refusal::NoTicket)) };
        if let Err(refusal) = check_window(&event, now, early_open_ms) {
            return Ok(Err(refusal));
        }
        Ok(Ok(Seat {
            ticket_id: Some(ticket_id),
            event_id,
            wallet,
            chain,
            capacity: event.max_attendees,
            shard_size: event.shard_size,
            event_end: event.event_end,
            creator_account: event.creator_account,
        }))
    }

    /// The host's seat: the event's creator, not counted against capacity.
    pub async fn check_host_admission(
        &self,
        event_id: i64,
        account: &str,
        now: i64,
        early_open_ms: i64,
    ) -> Result<Result<Seat, Refusal>, StoreError> {
        let Some(event) = self.event_window(event_id).await? else { return Ok(Err(Refusal::NoTicket)) };
        if event.creator_account != account {
            return Ok(Err(Refusal::NoTicket));
        }
        // Hosts may enter before the doors open to set up, but not after the end.
        let _ = early_open_ms;
        if event.status == "cancelled" {
            return Ok(Err(Refusal::EventCancelled));
        }
        if now >= event.event_end {
            return Ok(Err(Refusal::Ended));
        }
        Ok(Ok(Seat {
            ticket_id: None,
            event_id,
            wallet: account.to_owned(),
            chain: "hive".into(),
            capacity: event.max_attendees,
            shard_size: event.shard_size,
            event_end: event.event_end,
            creator_account: event.creator_account,
        }))
    }

    /// The valid ticket a wallet holds for an event, if any (EVM wallets on any EVM chain).
    pub async fn valid_ticket_for_wallet(
        &self,
        event_id: i64,
        chain: &str,
        wallet: &str,
    ) -> Result<Option<i64>, StoreError> {
        let evm = matches!(chain, "eth" | "pol" | "bnb");
        let id: Option<i64> = if evm {
            sqlx::query_scalar(
                "SELECT id FROM tickets WHERE event_id = $1 AND chain IN ('eth', 'pol', 'bnb') AND wallet_address = $2 \
                 ORDER BY (CASE WHEN status = 'valid' THEN 0 ELSE 1 END), id LIMIT 1",
            )
            .bind(event_id)
            .bind(wallet.to_ascii_lowercase())
            .fetch_optional(self.pool())
            .await?
        } else {
            sqlx::query_scalar(
                "SELECT id FROM tickets WHERE event_id = $1 AND chain = $2 AND wallet_address = $3 \
                 ORDER BY (CASE WHEN status = 'valid' THEN 0 ELSE 1 END), id LIMIT 1",
            )
            .bind(event_id)
            .bind(chain)
            .bind(wallet)
            .fetch_optional(self.pool())
            .await?
        };
        Ok(id)
    }

    /// A ticket's status, holder and the time its holder spent in the event's room (what a completion
    /// certificate states).
    pub async fn ticket_attendance(&self, ticket_id: i64) -> Result<Option<TicketAttendance>, StoreError> {
        Ok(sqlx::query_as::<_, TicketAttendance>(
            "SELECT status, wallet_address, chain, total_duration_secs FROM tickets WHERE id = $1",
        )
        .bind(ticket_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Bans a ticket: it can never enter again. Audited.
    pub async fn ban_ticket(&self, ticket_id: i64, actor: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let changed =
            sqlx::query("UPDATE tickets SET status = 'banned', updated_at = $2 WHERE id = $1 AND status = 'valid'")
                .bind(ticket_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        let event_id: Option<i64> = sqlx::query_scalar("SELECT event_id FROM tickets WHERE id = $1")
            .bind(ticket_id)
            .fetch_optional(&mut *tx)
            .await?;
        crate::audit::record(
            &mut *tx,
            &crate::audit::AuditEntry { event_id, ..crate::audit::AuditEntry::new(actor, "ticket.banned") }
                .subject(&ticket_id.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(changed.rows_affected() == 1)
    }

    /// After a restart: sessions this node left open were cut off; close them as `interrupted`.
    pub async fn close_interrupted_sessions(&self, node_id: &str, now: i64) -> Result<u64, StoreError> {
        let open: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, joined_at, ticket_id FROM attendance_sessions WHERE node_id = $1 AND left_at IS NULL",
        )
        .bind(node_id)
        .fetch_all(self.pool())
        .await?;
        let mut tx = self.pool().begin().await?;
        for (id, joined_at, ticket_id) in &open {
            close_session(&mut tx, id, *joined_at, *ticket_id, now, "interrupted").await?;
        }
        tx.commit().await?;
        Ok(open.len() as u64)
    }

    /// Applies a batch of attendance changes in one transaction.
    pub async fn record_attendance(&self, batch: &[AttendanceChange]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for change in batch {
            match change {
                AttendanceChange::Opened { session_id, event_id, ticket_id, wallet, role, client_id, node_id, at } => {
                    sqlx::query(
                        "INSERT INTO attendance_sessions (id, event_id, ticket_id, wallet, role, client_id, node_id, joined_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(session_id)
                    .bind(event_id)
                    .bind(ticket_id)
                    .bind(wallet)
                    .bind(role)
                    .bind(client_id)
                    .bind(node_id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                    if let Some(ticket_id) = ticket_id {
                        sqlx::query(
                            "UPDATE tickets SET first_access_at = COALESCE(first_access_at, $2), last_access_at = $2, \
                             access_count = access_count + 1, updated_at = $2 WHERE id = $1",
                        )
                        .bind(ticket_id)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                AttendanceChange::Engagement { session_id, chat_messages, voice_secs, screen_share_secs } => {
                    sqlx::query(
                        "UPDATE attendance_sessions SET chat_messages = chat_messages + $2, voice_secs = voice_secs + $3, \
                         screen_share_secs = screen_share_secs + $4, \
                         screen_shared = (CASE WHEN screen_share_secs + $4 > 0 THEN 1 ELSE screen_shared END) WHERE id = $1",
                    )
                    .bind(session_id)
                    .bind(chat_messages)
                    .bind(voice_secs)
                    .bind(screen_share_secs)
                    .execute(&mut *tx)
                    .await?;
                }
                AttendanceChange::Located { session_id, country } => {
                    sqlx::query("UPDATE attendance_sessions SET country = $2 WHERE id = $1")
                        .bind(session_id)
                        .bind(country)
                        .execute(&mut *tx)
                        .await?;
                }
                AttendanceChange::Placed { session_id, shard } => {
                    sqlx::query("UPDATE attendance_sessions SET shard = $2 WHERE id = $1")
                        .bind(session_id)
                        .bind(*shard)
                        .execute(&mut *tx)
                        .await?;
                }
                AttendanceChange::ScreenShared { session_id } => {
                    sqlx::query("UPDATE attendance_sessions SET screen_shared = 1 WHERE id = $1")
                        .bind(session_id)
                        .execute(&mut *tx)
                        .await?;
                }
                AttendanceChange::Closed { session_id, at, reason } => {
                    let row: Option<(i64, Option<i64>)> = sqlx::query_as(
                        "SELECT joined_at, ticket_id FROM attendance_sessions WHERE id = $1 AND left_at IS NULL",
                    )
                    .bind(session_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some((joined_at, ticket_id)) = row {
                        close_session(&mut tx, session_id, joined_at, ticket_id, *at, reason).await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn attendance_sessions(&self, event_id: i64) -> Result<Vec<AttendanceRow>, StoreError> {
        Ok(sqlx::query_as::<_, AttendanceRow>(
            "SELECT id, event_id, ticket_id, wallet, role, client_id, node_id, joined_at, left_at, duration_secs, early_secs, end_reason, \
             chat_messages, voice_secs, screen_shared, screen_share_secs, shard FROM attendance_sessions WHERE event_id = $1 \
             ORDER BY joined_at, id",
        )
        .bind(event_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Sessions and distinct tickets per shard of an event, lowest shard first (stage sessions have no shard).
    pub async fn attendance_by_shard(&self, event_id: i64) -> Result<Vec<ShardAttendance>, StoreError> {
        Ok(sqlx::query_as::<_, ShardAttendance>(
            "SELECT shard, COUNT(*) AS sessions, COUNT(DISTINCT ticket_id) AS tickets FROM attendance_sessions \
             WHERE event_id = $1 AND shard IS NOT NULL GROUP BY shard ORDER BY shard",
        )
        .bind(event_id)
        .fetch_all(self.pool())
        .await?)
    }
}

async fn close_session(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    joined_at: i64,
    ticket_id: Option<i64>,
    at: i64,
    reason: &str,
) -> Result<(), StoreError> {
    let window: Option<(i64, i64)> = sqlx::query_as(
        "SELECT e.event_start, e.event_end FROM attendance_sessions s JOIN events e ON e.id = s.event_id WHERE s.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let (early, duration) = match window {
        Some((starts_at, ends_at)) => split_time_in_room(joined_at, at, starts_at, ends_at),
        None => (0, ((at - joined_at).max(0)) / 1000),
    };
    sqlx::query(
        "UPDATE attendance_sessions SET left_at = $2, duration_secs = $3, early_secs = $5, end_reason = $4 \
         WHERE id = $1 AND left_at IS NULL",
    )
    .bind(id)
    .bind(at)
    .bind(duration)
    .bind(reason)
    .bind(early)
    .execute(&mut **tx)
    .await?;
    if let Some(ticket_id) = ticket_id {
        sqlx::query(
            "UPDATE tickets SET total_duration_secs = total_duration_secs + $2, last_access_at = $3, updated_at = $3 WHERE id = $1",
        )
        .bind(ticket_id)
        .bind(duration)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Seconds in the room from `joined_at` to `left_at` (unix ms), split into before the event's start (doors
/// open early) and within the event's window, which is what attendance, analytics and certificates count.
pub fn split_time_in_room(joined_at: i64, left_at: i64, starts_at: i64, ends_at: i64) -> (i64, i64) {
    let early = (left_at.min(starts_at) - joined_at).max(0);
    let during = (left_at.min(ends_at) - joined_at.max(starts_at)).max(0);
    (early / 1000, during / 1000)
}

fn check_window(event: &EventWindow, now: i64, early_open_ms: i64) -> Result<(), Refusal> {
    if event.status == "cancelled" {
        return Err(Refusal::EventCancelled);
    }
    let opens_at = event.event_start - early_open_ms;
    if now < opens_at {
        return Err(Refusal::NotYetOpen { opens_at });
    }
    if now >= event.event_end {
        return Err(Refusal::Ended);
    }
    Ok(())
}

/// One change to attendance, queued by the gateway and written in batches.
#[derive(Debug, Clone, PartialEq)]
pub enum AttendanceChange {
    Opened {
        session_id: String,
        event_id: i64,
        ticket_id: Option<i64>,
        wallet: String,
        role: &'static str,
        client_id: String,
        node_id: String,
        at: i64,
    },
    /// Counters to add to a session.
    Engagement {
        session_id: String,
        chat_messages: i64,
        voice_secs: i64,
        screen_share_secs: i64,
    },
    ScreenShared {
        session_id: String,
    },
    /// The shard the session is placed in now (`None`: on the stage, seen in every shard).
    Placed {
        session_id: String,
        shard: Option<i64>,
    },
    /// The session's coarse country (ISO 3166 alpha-2), from the gateway's IP lookup.
    Located {
        session_id: String,
        country: String,
    },
    Closed {
        session_id: String,
        at: i64,
        reason: String,
    },
}

/// See [`Store::ticket_attendance`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TicketAttendance {
    #[sqlx(try_from = "String")]
    pub status: crate::purchases::TicketStatus,
    pub wallet_address: String,
    pub chain: String,
    pub total_duration_secs: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct AttendanceRow {
    pub id: String,
    pub event_id: i64,
    pub ticket_id: Option<i64>,
    pub wallet: String,
    pub role: String,
    pub client_id: String,
    pub node_id: String,
    pub joined_at: i64,
    pub left_at: Option<i64>,
    /// Seconds within the event's window (what analytics and certificates count).
    pub duration_secs: Option<i64>,
    /// Seconds in the room before the event started (doors open early).
    pub early_secs: Option<i64>,
    pub end_reason: Option<String>,
    pub chat_messages: i64,
    pub voice_secs: i64,
    pub screen_shared: i64,
    pub screen_share_secs: i64,
    /// The shard the session was last placed in; `None` on the stage or for sessions before shards.
    pub shard: Option<i64>,
}

/// One shard's attendance over an event.
#[derive(Debug, Clone, Copy, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct ShardAttendance {
    pub shard: i64,
    pub sessions: i64,
    pub tickets: i64,
}

#[cfg(test)]
mod tests {
    use super::split_time_in_room;

    #[test]
    fn time_before_the_start_is_counted_apart() {
        // Doors at 0, start at 60 s, end at 300 s (ms below).
        let (starts, ends) = (60_000, 300_000);
        // In from the doors to 69 s past the end: 60 s early, 240 s of event (the 309 s case).
        assert_eq!(split_time_in_room(0, 369_000, starts, ends), (60, 240));
        // Left before the start: all early.
        assert_eq!(split_time_in_room(10_000, 50_000, starts, ends), (40, 0));
        // Joined mid-event.
        assert_eq!(split_time_in_room(100_000, 160_500, starts, ends), (0, 60));
        // Joined after the end (a late close): nothing counts, nothing negative.
        assert_eq!(split_time_in_room(400_000, 500_000, starts, ends), (0, 0));
        assert_eq!(split_time_in_room(500_000, 400_000, starts, ends), (0, 0));
    }
}
