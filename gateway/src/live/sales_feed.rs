//! `ticket_sold` feed items: a short poll of new `tickets` rows; and `payment_reversed` items: a poll of new
//! `payment.reversed` audit rows that name a ticket (a credited payment whose block left the chain, see
//! `ticketing::purchases::reversal`), read the same way.
//!
//! Tickets are issued inside `Purchases::report_payment`, by whichever process saw the payment: the watchers
//! in this gateway, another node's, or an operator's CLI. Polling the table (the truth all of them write) is
//! the one source that sees every issue on every node without teaching `ticketing` about feeds; a callback
//! inside `Purchases` would only see this process's sales. Every `interval` (250 ms: well inside the feed's
//! one-second promise) a `ticketing::new_rows::Follower` per table returns the rows added since (late commits
//! included, each once).

use std::time::Duration;

use ticketing::new_rows::{Appended, Follower, IssuedTicket, ReversedPayment};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::live::attendance::{wallet_hash, FeedItem};

/// Starts following before it returns (call it before the gateway serves): a sale or a reversal made once the
/// gateway answers is never older than the followers' start, so none is missed. A store that does not answer yet
/// is retried in the background.
pub async fn spawn(
    store: ticketing::Store,
    feed: broadcast::Sender<FeedItem>,
    interval: Duration,
    anonymise: bool,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let tickets_now = Follower::<IssuedTicket>::start(&store).await.ok();
    let reversals_now = Follower::<ReversedPayment>::start(&store).await.ok();
    tokio::spawn(async move {
        // Only tickets issued from now on are news.
        let tickets = match tickets_now {
            Some(follower) => Some(follower),
            None => follow::<IssuedTicket>(&store, &shutdown, "tickets").await,
        };
        let Some(mut tickets) = tickets else { return };
        let mut reversals = match reversals_now {
            Some(follower) => Some(follower),
            None => follow::<ReversedPayment>(&store, &shutdown, "the audit log").await,
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            match tickets.poll(&store).await {
                Ok(rows) => rows.into_iter().for_each(|row| {
                    let _ = feed.send(ticket_sold(row, anonymise));
                }),
                Err(err) => {
                    tracing::warn!(error = %err, "sales feed poll failed");
                    continue;
                }
            }
            if let Some(reversals) = reversals.as_mut() {
                match reversals.poll(&store).await {
                    Ok(rows) => rows.into_iter().filter_map(payment_reversed).for_each(|item| {
                        let _ = feed.send(item);
                    }),
                    Err(err) => tracing::warn!(error = %err, "reversal feed poll failed"),
                }
            }
        }
    })
}

/// A follower of `R`'s table from now on, retrying each second while the store does not answer; `None` once
/// shutting down.
async fn follow<R: Appended>(
    store: &ticketing::Store,
    shutdown: &CancellationToken,
    what: &str,
) -> Option<Follower<R>> {
    loop {
        match Follower::<R>::start(store).await {
            Ok(follower) => return Some(follower),
            Err(err) => {
                tracing::warn!(error = %err, "sales feed cannot read {what}; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

fn ticket_sold(row: IssuedTicket, anonymise: bool) -> FeedItem {
    let wallet = if anonymise { wallet_hash(&row.wallet_address) } else { row.wallet_address };
    FeedItem {
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
    }
}

/// The feed item of a reversed sale; `None` for a reversal that was not a sale (a refund's payment, a stray one).
fn payment_reversed(row: ReversedPayment) -> Option<FeedItem> {
    let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap_or_default();
    let (Some(event_id), Some(ticket_id)) = (row.event_id, detail.get("ticket_id").and_then(serde_json::Value::as_i64))
    else {
        return None;
    };
    Some(FeedItem {
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
    })
}
