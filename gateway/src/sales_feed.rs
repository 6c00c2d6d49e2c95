//! `ticket_sold` feed items: a short poll of new `tickets` rows; and `payment_reversed` items: a poll of new
//! `payment.reversed` audit rows that name a ticket (a credited payment whose block left the chain, see
//! `ticketing::purchases::reversal`), read the same way.
//!
//! Tickets are issued inside `Purchases::report_payment`, by whichever process saw the payment: the watchers
//! in this gateway, another node's, or an operator's CLI. Polling the table (the truth all of them write) is
//! the one source that sees every issue on every node without teaching `ticketing` about feeds; a callback
//! inside `Purchases` would only see this process's sales. Every `interval` (250 ms: well inside the feed's
//! one-second promise) the poller reads rows above a watermark. Ids are allocated before commit, so a row
//! can appear below a higher id already seen; the last `RESCAN` ids below the watermark are read again and
//! de-duplicated so such a late commit is still reported.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::attendance::{wallet_hash, FeedItem};

const RESCAN: i64 = 256;

#[derive(sqlx::FromRow)]
struct IssuedTicket {
    id: i64,
    event_id: i64,
    chain: String,
    wallet_address: String,
    currency: String,
    amount_paid_units: String,
    created_at: i64,
}

pub fn spawn(
    store: ticketing::Store,
    feed: broadcast::Sender<FeedItem>,
    interval: Duration,
    anonymise: bool,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Only tickets issued from now on are news.
        let start: i64 = loop {
            match sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM tickets").fetch_one(store.pool()).await {
                Ok(max) => break max.unwrap_or(0),
                Err(err) => {
                    tracing::warn!(error = %err, "sales feed cannot read tickets; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        let mut reversals = Reversals::start(&store, &shutdown).await;
        let mut seen: BTreeSet<i64> = BTreeSet::new();
        let mut watermark = start;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let floor = (watermark - RESCAN).max(start);
            let rows = sqlx::query_as::<_, IssuedTicket>(
                "SELECT id, event_id, chain, wallet_address, currency, amount_paid_units, created_at FROM tickets \
                 WHERE id > $1 ORDER BY id LIMIT 1000",
            )
            .bind(floor)
            .fetch_all(store.pool())
            .await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::warn!(error = %err, "sales feed poll failed");
                    continue;
                }
            };
            for row in rows {
                watermark = watermark.max(row.id);
                if !seen.insert(row.id) {
                    continue;
                }
                let wallet = if anonymise { wallet_hash(&row.wallet_address) } else { row.wallet_address };
                let _ = feed.send(FeedItem {
                    event_id: row.event_id,
                    kind: "ticket_sold",
                    client_id: None,
                    identity: Some(wallet),
                    role: None,
                    at: row.created_at,
                    detail: serde_json::json!({
                        "ticket_id": row.id,
                        "chain": row.chain,
                        "currency": row.currency,
                        "amount_units": row.amount_paid_units,
                    }),
                    relayed: false,
                });
            }
            let floor = (watermark - RESCAN).max(start);
            seen = seen.split_off(&(floor + 1));
            if let Some(reversals) = reversals.as_mut() {
                reversals.poll(&store, &feed).await;
            }
        }
    })
}

#[derive(sqlx::FromRow)]
struct ReversalRow {
    id: i64,
    at: i64,
    event_id: Option<i64>,
    subject: Option<String>,
    detail: String,
}

/// The `payment.reversed` audit rows seen so far (the same watermark and late-commit re-read as tickets).
struct Reversals {
    start: i64,
    watermark: i64,
    seen: BTreeSet<i64>,
}

impl Reversals {
    async fn start(store: &ticketing::Store, shutdown: &CancellationToken) -> Option<Reversals> {
        loop {
            match sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM audit_log").fetch_one(store.pool()).await {
                Ok(max) => {
                    let start = max.unwrap_or(0);
                    return Some(Reversals { start, watermark: start, seen: BTreeSet::new() });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "sales feed cannot read the audit log; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    async fn poll(&mut self, store: &ticketing::Store, feed: &broadcast::Sender<FeedItem>) {
        let floor = (self.watermark - RESCAN).max(self.start);
        let rows = sqlx::query_as::<_, ReversalRow>(
            "SELECT id, at, event_id, subject, detail FROM audit_log WHERE id > $1 AND action = 'payment.reversed' ORDER BY id LIMIT 1000",
        )
        .bind(floor)
        .fetch_all(store.pool())
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(error = %err, "reversal feed poll failed");
                return;
            }
        };
        for row in rows {
            self.watermark = self.watermark.max(row.id);
            if !self.seen.insert(row.id) {
                continue;
            }
            let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap_or_default();
            let (Some(event_id), Some(ticket_id)) = (row.event_id, detail.get("ticket_id").and_then(serde_json::Value::as_i64)) else {
                continue; // not a sale (a refund's payment, a stray one): nothing for the creator's feed
            };
            let _ = feed.send(FeedItem {
                event_id,
                kind: "payment_reversed",
                client_id: None,
                identity: None,
                role: None,
                at: row.at,
                detail: serde_json::json!({
                    "ticket_id": ticket_id,
                    "chain": detail.get("chain"),
                    "txid": row.subject,
                    "output_index": detail.get("output_index"),
                }),
                relayed: false,
            });
        }
        let floor = (self.watermark - RESCAN).max(self.start);
        self.seen = self.seen.split_off(&(floor + 1));
    }
}
