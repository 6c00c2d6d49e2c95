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
//! * Occupancy per shard ([`shard_timeline`]): `present` per minute as above, counted per shard. A row keeps the
//!   shard its session was last placed in, so a session that moved counts in that shard for its whole stay;
//!   sessions on the stage (no shard) are left out, they are seen in every shard.

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

/// Attendees present per shard, minute by minute: `shards[j].present[i]` covers minute `minutes[i]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShardTimeline {
    /// Start of each minute, unix ms.
    pub minutes: Vec<i64>,
    /// Lowest shard first.
    pub shards: Vec<ShardSeries>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardSeries {
    pub shard: i64,
    /// Attendee sessions of this shard occupying any part of each minute.
    pub present: Vec<i64>,
}

impl Store {
    /// Occupancy per shard of one event at `now`, from its attendance rows.
    pub async fn shard_timeline(&self, event_id: i64, now: i64) -> Result<ShardTimeline, StoreError> {
        Ok(shard_timeline(&self.attendance_sessions(event_id).await?, now))
    }

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

/// Occupancy per shard for these rows (attendee sessions with a shard; see the module's definitions).
pub fn shard_timeline(rows: &[AttendanceRow], now: i64) -> ShardTimeline {
    let sessions: Vec<(i64, i64, i64)> = rows
        .iter()
        .filter(|r| r.role == "attendee")
        .filter_map(|r| {
            let to = r.left_at.unwrap_or(now).max(r.joined_at);
            (to > r.joined_at).then_some((r.shard?, r.joined_at, to))
        })
        .collect();
    let (Some(first), Some(last)) = (sessions.iter().map(|s| s.1).min(), sessions.iter().map(|s| s.2).max()) else {
        return ShardTimeline::default();
    };
    let start = first.div_euclid(60_000) * 60_000;
    let minutes: Vec<i64> =
        (0..MAX_MINUTES as i64).map(|i| start + i * 60_000).take_while(|minute| *minute < last).collect();
    let mut by_shard: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (shard, from, to) in sessions {
        let present = by_shard.entry(shard).or_insert_with(|| vec![0; minutes.len()]);
        let first_minute = ((from - start) / 60_000) as usize;
        for (i, minute) in minutes.iter().enumerate().skip(first_minute) {
            if *minute >= to {
                break;
            }
            present[i] += 1;
        }
    }
    ShardTimeline {
        minutes,
        shards: by_shard.into_iter().map(|(shard, present)| ShardSeries { shard, present }).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, role: &str, shard: Option<i64>, joined_at: i64, left_at: Option<i64>) -> AttendanceRow {
        AttendanceRow {
            id: id.into(),
            event_id: 1,
            ticket_id: None,
            wallet: id.into(),
            role: role.into(),
            client_id: id.into(),
            node_id: "n".into(),
            joined_at,
            left_at,
            duration_secs: None,
            early_secs: None,
            end_reason: None,
            chat_messages: 0,
            voice_secs: 0,
            screen_shared: 0,
            screen_share_secs: 0,
            shard,
        }
    }

    #[test]
    fn each_shard_counts_its_sessions_per_minute_and_the_stage_and_hosts_are_left_out() {
        const M: i64 = 60_000;
        let t0 = 10 * M;
        let rows = [
            row("a", "attendee", Some(0), t0, Some(t0 + 3 * M)),
            row("b", "attendee", Some(0), t0 + M + 5, Some(t0 + 2 * M)),
            row("c", "attendee", Some(1), t0 + 2 * M, None),
            row("speaker", "attendee", None, t0, None),
            row("host", "host", Some(0), t0, None),
            // Joined and left at once: occupies nothing.
            row("blip", "attendee", Some(2), t0 + M, Some(t0 + M)),
        ];
        let timeline = shard_timeline(&rows, t0 + 4 * M + 1);
        assert_eq!(timeline.minutes, (0..5).map(|i| t0 + i * M).collect::<Vec<_>>());
        assert_eq!(
            timeline.shards,
            vec![
                ShardSeries { shard: 0, present: vec![1, 2, 1, 0, 0] },
                ShardSeries { shard: 1, present: vec![0, 0, 1, 1, 1] },
            ]
        );
        assert_eq!(shard_timeline(&[], 0), ShardTimeline::default());
    }
}
