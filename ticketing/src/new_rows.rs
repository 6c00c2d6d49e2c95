//! Rows appended by any process, read as they appear: new `tickets` and new `payment.reversed` audit rows, which
//! the gateway's sales feed turns into `ticket_sold` and `payment_reversed` items.
//!
//! Tickets are issued by whichever process saw the payment (this node's watchers, another node's, an operator's
//! CLI), so the table they all write is the one source that sees every sale. A [`Follower`] remembers the
//! highest id it has read (the watermark) and asks for rows above it. Ids are allocated before commit, so a row
//! can appear below a higher id already seen; the last [`RESCAN`] ids below the watermark are read again and
//! de-duplicated, so such a late commit is still reported once.

use std::collections::BTreeSet;
use std::marker::PhantomData;

use sqlx::any::AnyRow;

use crate::store::{Store, StoreError};

/// How many ids below the watermark each poll reads again, for rows whose commit came late.
pub const RESCAN: i64 = 256;

/// At most this many rows per poll; the rest come on the next one.
const PAGE: i64 = 1000;

/// A table read by a [`Follower`]: how to find its highest id and its rows above an id.
pub trait Appended: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin {
    /// `SELECT MAX(id) …` of the rows followed.
    const MAX_ID: &'static str;
    /// The rows followed with `id > $1`, by id, at most `$2`.
    const AFTER: &'static str;
    fn id(&self) -> i64;
}

/// A ticket as issued (the sales feed's `ticket_sold`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IssuedTicket {
    pub id: i64,
    pub event_id: i64,
    pub chain: String,
    pub wallet_address: String,
    pub currency: String,
    pub amount_paid_units: String,
    pub created_at: i64,
}

impl Appended for IssuedTicket {
    const MAX_ID: &'static str = "SELECT MAX(id) FROM tickets";
    const AFTER: &'static str = "SELECT id, event_id, chain, wallet_address, currency, amount_paid_units, created_at \
         FROM tickets WHERE id > $1 ORDER BY id LIMIT $2";
    fn id(&self) -> i64 {
        self.id
    }
}

/// A `payment.reversed` audit row (see `purchases::reversal`); its `detail` names the ticket, if it was a sale.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReversedPayment {
    pub id: i64,
    pub at: i64,
    pub event_id: Option<i64>,
    pub subject: Option<String>,
    pub detail: String,
}

impl Appended for ReversedPayment {
    const MAX_ID: &'static str = "SELECT MAX(id) FROM audit_log";
    const AFTER: &'static str = "SELECT id, at, event_id, subject, detail FROM audit_log \
         WHERE id > $1 AND action = 'payment.reversed' ORDER BY id LIMIT $2";
    fn id(&self) -> i64 {
        self.id
    }
}

/// Follows one table from the moment it started: each [`Follower::poll`] returns the rows not returned before.
#[derive(Debug)]
pub struct Follower<R> {
    start: i64,
    watermark: i64,
    seen: BTreeSet<i64>,
    rows: PhantomData<fn() -> R>,
}

impl<R: Appended> Follower<R> {
    /// Starts after the newest row now in the table: only rows added from now on are news.
    pub async fn start(store: &Store) -> Result<Follower<R>, StoreError> {
        let max: Option<i64> = sqlx::query_scalar(R::MAX_ID).fetch_one(store.pool()).await?;
        let start = max.unwrap_or(0);
        Ok(Follower { start, watermark: start, seen: BTreeSet::new(), rows: PhantomData })
    }

    /// The rows added since the last poll (or since the start), oldest first, each returned once.
    pub async fn poll(&mut self, store: &Store) -> Result<Vec<R>, StoreError> {
        let rows = sqlx::query_as::<_, R>(R::AFTER).bind(self.floor()).bind(PAGE).fetch_all(store.pool()).await?;
        let mut news = Vec::with_capacity(rows.len());
        for row in rows {
            self.watermark = self.watermark.max(row.id());
            if self.seen.insert(row.id()) {
                news.push(row);
            }
        }
        // Ids at or below the floor are never read again, so they need not be remembered.
        self.seen = self.seen.split_off(&(self.floor() + 1));
        Ok(news)
    }

    fn floor(&self) -> i64 {
        (self.watermark - RESCAN).max(self.start)
    }
}
