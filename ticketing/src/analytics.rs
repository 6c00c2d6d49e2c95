//! Attendance analytics: what the attendance rows say about an event, computed from the rows themselves.
//!
//! Definitions (every figure can be recomputed by hand from `attendance_sessions` and `tickets`):
//! * Only attendee sessions count; the host's sessions are left out of every figure.
//! * A session occupies `[joined_at, left_at)`; a session still open occupies `[joined_at, now)`.
//! * Concurrent attendance at `t` is the number of sessions occupying `t` (a leave and a join at the same
//!   millisecond do not overlap). `peak_concurrent` is its maximum; `current_concurrent` the open sessions.
//! * `per_minute[i]` covers the wall-clock minute `[m, m + 60 s)`: `present` counts the sessions occupying any
//!   part of it, `peak` the highest concurrency within it.
//! * `average_duration_secs` is the mean of `duration_secs` over closed sessions.
//! * Check-in rate: tickets sold (issued, not refunded or cancelled) that entered at least once, over tickets
//!   sold.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::attendance::AttendanceRow;
use crate::store::{Store, StoreError};

/// At most this many minutes are listed in `per_minute` (a week); longer spans keep the first week.
pub const MAX_MINUTES: usize = 7 * 24 * 60;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Engagement {
    pub chat_messages: i64,
    pub voice_secs: i64,
    pub screen_share_secs: i64,
    /// Sessions that shared a screen at least once.
    pub screen_sharing_sessions: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinuteBucket {
    /// Start of the minute, unix ms.
    pub minute: i64,
    pub present: i64,
    pub peak: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttendanceAnalytics {
    pub sessions: i64,
    /// Distinct wallets (or wallet hashes) among the sessions.
    pub unique_attendees: i64,
    pub peak_concurrent: i64,
    pub peak_at: Option<i64>,
    pub current_concurrent: i64,
    pub average_duration_secs: Option<f64>,
    pub total_duration_secs: i64,
    pub engagement: Engagement,
    /// How sessions ended, by reason.
    pub end_reasons: BTreeMap<String, i64>,
    pub per_minute: Vec<MinuteBucket>,
    /// Sessions by coarse country code, when the gateway's IP lookup is enabled.
    pub countries: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckIn {
    pub tickets_sold: i64,
    pub tickets_used: i64,
    /// `tickets_used / tickets_sold`; `None` when nothing was sold.
    pub rate: Option<f64>,
}

impl Store {
    /// Tickets sold for an event (issued and not refunded or cancelled) and how many of them entered.
    pub async fn check_in(&self, event_id: i64) -> Result<CheckIn, StoreError> {
        let (sold, used): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN access_count > 0 THEN 1 ELSE 0 END), 0) FROM tickets \
             WHERE event_id = $1 AND status IN ('valid', 'banned')",
        )
        .bind(event_id)
        .fetch_one(self.pool())
        .await?;
        Ok(CheckIn { tickets_sold: sold, tickets_used: used, rate: (sold > 0).then(|| used as f64 / sold as f64) })
    }

    /// Country codes of an event's sessions (`attendance_sessions.country`), by session id.
    pub async fn session_countries(&self, event_id: i64) -> Result<BTreeMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, country FROM attendance_sessions WHERE event_id = $1 AND country IS NOT NULL")
                .bind(event_id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// Attendance figures of one event at `now`.
    pub async fn attendance_analytics(&self, event_id: i64, now: i64) -> Result<AttendanceAnalytics, StoreError> {
        let rows = self.attendance_sessions(event_id).await?;
        let countries = self.session_countries(event_id).await?;
        Ok(compute(&rows, &countries, now))
    }

    /// The ids of a creator's events, oldest first.
    pub async fn creator_event_ids(&self, creator: &str) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM events WHERE creator_account = $1 ORDER BY id")
            .bind(creator)
            .fetch_all(self.pool())
            .await?)
    }
}

/// The figures for these rows (any role; hosts are filtered out here).
pub fn compute(rows: &[AttendanceRow], countries: &BTreeMap<String, String>, now: i64) -> AttendanceAnalytics {
    let sessions: Vec<&AttendanceRow> = rows.iter().filter(|r| r.role == "attendee").collect();
    let span = |r: &AttendanceRow| (r.joined_at, r.left_at.unwrap_or(now).max(r.joined_at));

    // Sweep: leaves (-1) before joins (+1) at the same instant.
    let mut edges: Vec<(i64, i64)> = Vec::with_capacity(sessions.len() * 2);
    for r in &sessions {
        let (from, to) = span(r);
        if to > from {
            edges.push((from, 1));
            edges.push((to, -1));
        }
    }
    edges.sort();
    let (mut level, mut peak, mut peak_at) = (0i64, 0i64, None);
    for &(at, delta) in &edges {
        level += delta;
        if level > peak {
            peak = level;
            peak_at = Some(at);
        }
    }

    let mut per_minute = Vec::new();
    if let (Some(first), Some(last)) = (edges.first(), edges.last()) {
        let start = first.0.div_euclid(60_000) * 60_000;
        let mut minute = start;
        let mut next_edge = 0;
        let mut level = 0i64;
        while minute < last.0 && per_minute.len() < MAX_MINUTES {
            let end = minute + 60_000;
            let present = sessions
                .iter()
                .filter(|r| {
                    let (from, to) = span(r);
                    to > from && from < end && to > minute
                })
                .count() as i64;
            // Concurrency entering the minute, then every edge inside it.
            while next_edge < edges.len() && edges[next_edge].0 <= minute {
                level += edges[next_edge].1;
                next_edge += 1;
            }
            let mut top = level;
            while next_edge < edges.len() && edges[next_edge].0 < end {
                level += edges[next_edge].1;
                top = top.max(level);
                next_edge += 1;
            }
            per_minute.push(MinuteBucket { minute, present, peak: top });
            minute = end;
        }
    }

    let closed: Vec<i64> = sessions.iter().filter_map(|r| r.duration_secs).collect();
    let mut engagement = Engagement::default();
    let mut end_reasons = BTreeMap::new();
    let mut by_country = BTreeMap::new();
    for r in &sessions {
        engagement.chat_messages += r.chat_messages;
        engagement.voice_secs += r.voice_secs;
        engagement.screen_share_secs += r.screen_share_secs;
        engagement.screen_sharing_sessions += i64::from(r.screen_shared != 0);
        if let Some(reason) = &r.end_reason {
            *end_reasons.entry(reason.clone()).or_insert(0) += 1;
        }
        if let Some(country) = countries.get(&r.id) {
            *by_country.entry(country.clone()).or_insert(0) += 1;
        }
    }
    let unique: std::collections::HashSet<&str> = sessions.iter().map(|r| r.wallet.as_str()).collect();
    AttendanceAnalytics {
        sessions: sessions.len() as i64,
        unique_attendees: unique.len() as i64,
        peak_concurrent: peak,
        peak_at,
        current_concurrent: sessions.iter().filter(|r| r.left_at.is_none()).count() as i64,
        average_duration_secs: (!closed.is_empty()).then(|| closed.iter().sum::<i64>() as f64 / closed.len() as f64),
        total_duration_secs: closed.iter().sum(),
        engagement,
        end_reasons,
        per_minute,
        countries: by_country,
    }
}
