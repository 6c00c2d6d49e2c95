//! Reports in bulk: a block's worth of watcher sightings in one transaction, with the common case — a final
//! payment that covers an open, seat-holding quote and is the only one for it — credited set-wise in a fixed
//! number of statements. Everything else goes through [`Purchases::report_in_tx`] one report at a time, in the
//! same transaction. Both paths write the same rows (the store tests compare them).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::*;
use crate::store::{now_ms, Backend};

/// Reports per transaction: a full block costs a few statements per chunk, and every statement's bound
/// parameters (at most 12 per ledger row, 3 ledger rows per report) stay well under SQLite's 32,766.
const CHUNK: usize = 250;

/// Bind placeholders for one statement, in the order they are bound: `$1, $2, …` on PostgreSQL, anonymous `?`
/// on SQLite. (sqlx binds SQLite's numbered ones by looking each name up, a linear scan per parameter: with
/// thousands of parameters in a statement that quadratic lookup was most of the bulk path's time.)
struct Params {
    numbered: bool,
    next: usize,
}

impl Params {
    fn new(backend: Backend) -> Self {
        Params { numbered: backend == Backend::Postgres, next: 0 }
    }

    fn one(&mut self) -> String {
        self.next += 1;
        if self.numbered {
            format!("${}", self.next)
        } else {
            "?".to_owned()
        }
    }

    /// `n` placeholders, comma-separated.
    fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.one()).collect::<Vec<_>>().join(", ")
    }

    /// `(…), (…)`: `rows` tuples of `cols` placeholders.
    fn tuples(&mut self, rows: usize, cols: usize) -> String {
        (0..rows).map(|_| format!("({})", self.list(cols))).collect::<Vec<_>>().join(", ")
    }
}

type Key = (String, String, i64);

fn key(report: &PaymentReport) -> Key {
    (report.chain.as_str().to_owned(), report.txid.clone(), report.output_index)
}

/// Whether a final `report` for `quote` (as read under its lock) can take the set-wise path: the quote is
/// open, holds its seat, has not expired, and the report alone covers it in the quote's currency.
fn creditable(quote: &QuoteRow, report: &PaymentReport, now: i64) -> bool {
    report.is_final
        && quote.is_open()
        && quote.holds_seat == 1
        && quote.expires_at > now
        && super::stray_reason(quote, report).is_none()
        && quote.currency().is_ok_and(|c| c == report.amount.currency)
        && quote.amount().is_ok_and(|required| report.amount.units >= required.units)
}

impl Purchases {
    /// Records a batch of sightings (a block's, say) and credits the final ones, in order: the same outcome
    /// per report as [`Purchases::report_payment`] on each in turn, in one transaction per chunk of reports.
    /// A store failure fails the call; chunks before the failing one are kept (their reports are then
    /// `AlreadyProcessed` when sent again).
    #[tracing::instrument(skip(self, reports), fields(reports = reports.len()))]
    pub async fn report_payments(
        &self,
        reports: &[PaymentReport],
        now: i64,
    ) -> Result<Vec<Result<PaymentOutcome, PurchaseError>>, StoreError> {
        let mut outcomes = Vec::with_capacity(reports.len());
        for chunk in reports.chunks(CHUNK) {
            outcomes.extend(self.report_chunk(chunk, now).await?);
        }
        Ok(outcomes)
    }

    /// Turns the set-wise path off, so every report goes the general way (for the tests that compare them).
    #[doc(hidden)]
    pub fn with_bulk_credit(mut self, on: bool) -> Self {
        self.bulk_credit = on;
        self
    }

    /// How many reports the set-wise path has credited (for the tests that check it runs).
    #[doc(hidden)]
    pub fn bulk_credited(&self) -> u64 {
        self.bulk_credited.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn report_chunk(
        &self,
        reports: &[PaymentReport],
        now: i64,
    ) -> Result<Vec<Result<PaymentOutcome, PurchaseError>>, StoreError> {
        // Before the transaction: the quote each report pays, the terms of its event, today's prices.
        let ids: Vec<&str> =
            reports.iter().filter_map(|r| r.quote_id.as_deref()).collect::<HashSet<_>>().into_iter().collect();
        let known = self.quotes_by_id(&ids).await?;
        let mut quotes = Vec::with_capacity(reports.len());
        for report in reports {
            quotes.push(match &report.quote_id {
                Some(id) => known.get(id).filter(|q| q.chain == report.chain.as_str()).cloned(),
                None => self.match_quote(report).await?,
            });
        }
        let event_ids: Vec<i64> =
            quotes.iter().flatten().map(|q| q.event_id).collect::<HashSet<_>>().into_iter().collect();
        let events = self.events_terms(&event_ids).await?;
        let mut prices: HashMap<(i64, Currency), Option<Amount>> = HashMap::new();
        for (report, quote) in reports.iter().zip(&quotes) {
            let (Some(quote), true) = (quote, report.is_final) else { continue };
            let Some(event) = events.get(&quote.event_id) else { continue };
            let currency = quote.currency()?;
            if let std::collections::hash_map::Entry::Vacant(slot) = prices.entry((event.id, currency)) {
                slot.insert(self.current_price(event, currency).await?);
            }
        }

        // A quote paid by more than one report of the chunk goes the general way, in order.
        let mut per_quote: HashMap<&str, usize> = HashMap::new();
        for quote in quotes.iter().flatten() {
            *per_quote.entry(quote.id.as_str()).or_default() += 1;
        }
        let candidates: Vec<usize> = if self.bulk_credit {
            (0..reports.len())
                .filter(|&i| {
                    quotes[i].as_ref().is_some_and(|q| {
                        per_quote[q.id.as_str()] == 1
                            && events.get(&q.event_id).is_some_and(|e| e.status != "cancelled")
                            && creditable(q, &reports[i], now)
                    })
                })
                .collect()
        } else {
            Vec::new()
        };

        let mut tx = self.store.pool().begin().await?;
        let mut outcomes: Vec<Option<Result<PaymentOutcome, PurchaseError>>> =
            (0..reports.len()).map(|_| None).collect();
        if !candidates.is_empty() {
            let credited =
                self.credit_batch(&mut tx, reports, &quotes, &events, candidates, now, &mut outcomes).await?;
            self.bulk_credited.fetch_add(credited as u64, std::sync::atomic::Ordering::Relaxed);
        }
        for (i, outcome) in outcomes.iter_mut().enumerate() {
            if outcome.is_some() {
                continue;
            }
            let quote = quotes[i].as_ref();
            let event = quote.and_then(|q| events.get(&q.event_id));
            let price = match (quote, event) {
                (Some(q), Some(e)) => q.currency().ok().and_then(|c| prices.get(&(e.id, c)).copied().flatten()),
                _ => None,
            };
            match self.report_in_tx(&mut tx, &reports[i], quote, event, price, now).await {
                Err(PurchaseError::Store(err)) => return Err(err),
                result => *outcome = Some(result),
            }
        }
        tx.commit().await?;
        Ok(outcomes.into_iter().map(|o| o.expect("every report has an outcome")).collect())
    }

    fn params(&self) -> Params {
        Params::new(self.store.backend())
    }

    async fn quotes_by_id(&self, ids: &[&str]) -> Result<HashMap<String, QuoteRow>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!("SELECT {QUOTE_COLUMNS} FROM quotes WHERE id IN ({})", self.params().list(ids.len()));
        let mut query = sqlx::query_as::<_, QuoteRow>(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        Ok(query.fetch_all(self.store.pool()).await?.into_iter().map(|q| (q.id.clone(), q)).collect())
    }

    async fn events_terms(&self, ids: &[i64]) -> Result<HashMap<i64, EventTerms>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!("SELECT {EVENT_TERMS_COLUMNS} FROM events WHERE id IN ({})", self.params().list(ids.len()));
        let mut query = sqlx::query_as::<_, EventTerms>(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        Ok(query.fetch_all(self.store.pool()).await?.into_iter().map(|e| (e.id, e)).collect())
    }

    /// Credits `candidates` set-wise where each still qualifies under its quote's lock; sets their outcomes
    /// and leaves the rest `None` for the general path. Returns how many it credited.
    ///
    /// The steps, each one statement over the whole set: lock and re-read the quotes; leave to the general path
    /// any output already on record and any quote with another payment waiting; sell the held seats per event;
    /// then write the payments, the tickets, the ledger entries, the quotes' new state and the audit trail.
    #[allow(clippy::too_many_arguments)]
    async fn credit_batch(
        &self,
        tx: &mut Transaction<'static, Any>,
        reports: &[PaymentReport],
        quotes: &[Option<QuoteRow>],
        events: &HashMap<i64, EventTerms>,
        mut candidates: Vec<usize>,
        now: i64,
        outcomes: &mut [Option<Result<PaymentOutcome, PurchaseError>>],
    ) -> Result<usize, StoreError> {
        let bulk = Bulk { reports, quotes, now };
        let fresh = self.lock_quotes(tx, &bulk, &mut candidates).await?;
        if candidates.is_empty() {
            return Ok(0);
        }
        self.keep_unrecorded_outputs(tx, &bulk, &mut candidates).await?;
        self.sell_seats(tx, &bulk, &mut candidates).await?;
        if candidates.is_empty() {
            return Ok(0);
        }
        let n = candidates.len();
        let payment_ids = self.insert_credited_payments(tx, &bulk, &candidates).await?;
        let ticket_ids = self.insert_tickets(tx, &bulk, &fresh, &candidates).await?;
        if payment_ids.len() != n || ticket_ids.len() != n {
            return Err(StoreError::Corrupt(format!(
                "bulk credit wrote {} payments and {} tickets for {n} reports",
                payment_ids.len(),
                ticket_ids.len()
            )));
        }
        let sold = Sold { fresh: &fresh, payment_ids: &payment_ids, ticket_ids: &ticket_ids };
        self.insert_sale_entries(tx, &bulk, &sold, events, &candidates).await?;
        self.mark_quotes_paid(tx, &bulk, &candidates).await?;
        self.audit_tickets(tx, &bulk, &sold, &candidates).await?;
        for &i in &candidates {
            outcomes[i] = Some(Ok(PaymentOutcome::TicketIssued { ticket_id: ticket_ids[bulk.quote_id(i)] }));
        }
        Ok(n)
    }

    /// Locks the candidates' quotes (as the general path does, by writing them first), re-reads them, and keeps
    /// the candidates still creditable under the lock. Returns the quotes as re-read, by id.
    async fn lock_quotes(
        &self,
        tx: &mut Transaction<'static, Any>,
        bulk: &Bulk<'_>,
        candidates: &mut Vec<usize>,
    ) -> Result<HashMap<String, QuoteRow>, StoreError> {
        let mut p = self.params();
        let sql = format!(
            "UPDATE quotes SET updated_at = {} WHERE id IN ({}) RETURNING {QUOTE_COLUMNS}",
            p.one(),
            p.list(candidates.len())
        );
        let mut query = sqlx::query_as::<_, QuoteRow>(&sql).bind(bulk.now);
        for &i in candidates.iter() {
            query = query.bind(bulk.quote_id(i));
        }
        let fresh: HashMap<String, QuoteRow> =
            query.fetch_all(&mut **tx).await?.into_iter().map(|q| (q.id.clone(), q)).collect();
        candidates.retain(|&i| fresh.get(bulk.quote_id(i)).is_some_and(|q| creditable(q, &bulk.reports[i], bulk.now)));
        Ok(fresh)
    }

    /// Leaves to the general path an output already on record as final or for another quote, and a quote with
    /// another final payment waiting to be counted.
    async fn keep_unrecorded_outputs(
        &self,
        tx: &mut Transaction<'static, Any>,
        bulk: &Bulk<'_>,
        candidates: &mut Vec<usize>,
    ) -> Result<(), StoreError> {
        let reports = bulk.reports;
        // Chains first, so both engines look the outputs up by the (chain, txid, output_index) key.
        let chains: BTreeSet<&str> = candidates.iter().map(|&i| reports[i].chain.as_str()).collect();
        let mut p = self.params();
        let sql = format!(
            "SELECT chain, txid, output_index, status, quote_id FROM payments WHERE chain IN ({}) AND txid IN ({})",
            p.list(chains.len()),
            p.list(candidates.len())
        );
        let mut query = sqlx::query_as::<_, (String, String, i64, String, Option<String>)>(&sql);
        for chain in &chains {
            query = query.bind(*chain);
        }
        for &i in candidates.iter() {
            query = query.bind(&reports[i].txid);
        }
        let existing: HashMap<Key, (String, Option<String>)> =
            query.fetch_all(&mut **tx).await?.into_iter().map(|(c, t, o, s, q)| ((c, t, o), (s, q))).collect();
        let sql = format!(
            "SELECT quote_id FROM payments WHERE status = 'confirmed' AND quote_id IN ({})",
            self.params().list(candidates.len())
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for &i in candidates.iter() {
            query = query.bind(bulk.quote_id(i));
        }
        let waiting: HashSet<String> = query.fetch_all(&mut **tx).await?.into_iter().collect();
        candidates.retain(|&i| {
            let fits = match existing.get(&key(&reports[i])) {
                Some((status, quote)) => !is_final_payment_status(status) && quote.as_deref() == Some(bulk.quote_id(i)),
                None => true,
            };
            fits && !waiting.contains(bulk.quote_id(i))
        });
        Ok(())
    }

    /// Each event's held seats become sold ones, unless it was cancelled meanwhile (then its candidates go to
    /// the general path, which refunds). In event order, so concurrent batches take the events' locks in one
    /// order.
    async fn sell_seats(
        &self,
        tx: &mut Transaction<'static, Any>,
        bulk: &Bulk<'_>,
        candidates: &mut Vec<usize>,
    ) -> Result<(), StoreError> {
        let mut by_event: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for &i in candidates.iter() {
            by_event.entry(bulk.quotes[i].as_ref().expect("candidate").event_id).or_default().push(i);
        }
        for (event_id, members) in &by_event {
            let sold = sqlx::query(
                "UPDATE events SET seats_held = seats_held - $2, tickets_sold = tickets_sold + $2, updated_at = $3 \
                 WHERE id = $1 AND status <> 'cancelled'",
            )
            .bind(event_id)
            .bind(members.len() as i64)
            .bind(bulk.now)
            .execute(&mut **tx)
            .await?;
            if sold.rows_affected() == 0 {
                candidates.retain(|i| !members.contains(i));
            }
        }
        Ok(())
    }

    /// The payments, credited. Returns their ids by output.
    async fn insert_credited_payments(
        &self,
        tx: &mut Transaction<'static, Any>,
        bulk: &Bulk<'_>,
        candidates: &[usize],
    ) -> Result<HashMap<Key, i64>, StoreError> {
        let now = bulk.now;
        let sql = format!(
            "INSERT INTO payments (chain, txid, output_index, quote_id, currency, amount_units, from_address, to_address, \
             memo, block_height, block_hash, confirmations, status, first_seen_at, updated_at) VALUES {} \
             ON CONFLICT (chain, txid, output_index) DO UPDATE SET block_height = excluded.block_height, \
             block_hash = excluded.block_hash, confirmations = excluded.confirmations, status = excluded.status, \
             updated_at = excluded.updated_at RETURNING id, chain, txid, output_index",
            self.params().tuples(candidates.len(), 15)
        );
        let mut query = sqlx::query_as::<_, (i64, String, String, i64)>(&sql);
        for &i in candidates {
            let r = &bulk.reports[i];
            query = query
                .bind(r.chain.as_str())
                .bind(&r.txid)
                .bind(r.output_index)
                .bind(bulk.quote_id(i))
                .bind(r.amount.currency.symbol())
                .bind(r.amount.units.to_string())
                .bind(&r.from_address)
                .bind(r.stored_to_address())
                .bind(&r.memo)
                .bind(r.block_height)
                .bind(&r.block_hash)
                .bind(r.confirmations)
                .bind(PaymentStatus::Credited.as_str())
                .bind(now)
                .bind(now);
        }
        Ok(query.fetch_all(&mut **tx).await?.into_iter().map(|(id, c, t, o)| ((c, t, o), id)).collect())
    }

    /// The tickets, valid. Returns their ids by quote id.
    async fn insert_tickets(
        &self,
        tx: &mut Transaction<'static, Any>,
        bulk: &Bulk<'_>,
        fresh: &HashMap<String, QuoteRow>,
        candidates: &[usize],
    ) -> Result<HashMap<String, i64>, StoreError> {
        let now = bulk.now;
        let sql = format!(
            "INSERT INTO tickets (event_id, quote_id, token, chain, wallet_address, currency, amount_paid_units, \
             access_signature, status, created_at, updated_at) VALUES {} RETURNING id, quote_id",
            self.params().tuples(candidates.len(), 11)
        );
        let mut query = sqlx::query_as::<_, (i64, String)>(&sql);
        for &i in candidates {
            let q = &fresh[bulk.quote_id(i)];
            let token = new_ticket_token();
            let signature = self.access_signature(q.event_id, &q.chain, &q.wallet_address, &token);
            query = query
                .bind(q.event_id)
                .bind(&q.id)
                .bind(token)
                .bind(&q.chain)
                .bind(&q.wallet_address)
                .bind(&q.currency)
                .bind(bulk.reports[i].amount.units.to_string())
                .bind(signature)
                .bind(TicketStatus::Valid.as_str())
                .bind(now)
                .bind(now);
        }
        Ok(query.fetch_all(&mut **tx).await?.into_iter().map(|(id, q)| (q, id)).collect())
    }

    /// The ledger: commission and payout of the price, and anything paid beyond it owed back.
    async fn insert_sale_entries(
        &self,
        tx: &mut Transaction<'static, Any>,
        bulk: &Bulk<'_>,
        sold: &Sold<'_>,
        events: &HashMap<i64, EventTerms>,
        candidates: &[usize],
    ) -> Result<(), StoreError> {
        let now = bulk.now;
        let mut entries = Vec::with_capacity(candidates.len() * 3);
        for &i in candidates {
            let q = &sold.fresh[bulk.quote_id(i)];
            let price = q.amount()?;
            let paid = bulk.reports[i].amount;
            let split = price.split();
            let event = &events[&q.event_id];
            let due_at = event.event_end + self.settings.payout_delay_ms;
            let (ticket, payment) = (sold.ticket_ids[&q.id], sold.payment_ids[&key(&bulk.reports[i])]);
            entries.push((q, ticket, payment, "commission", "sale", split.commission, "platform", "pending", due_at));
            entries.push((
                q,
                ticket,
                payment,
                "payout",
                "sale",
                split.payout,
                event.creator_account.as_str(),
                "pending",
                due_at,
            ));
            if let Some(excess) = paid.checked_sub(price).filter(|e| e.units > 0) {
                let status = super::minimums::refund_status(excess);
                entries.push((
                    q,
                    ticket,
                    payment,
                    "refund",
                    "overpaid",
                    excess,
                    q.wallet_address.as_str(),
                    status,
                    now,
                ));
            }
        }
        let sql = format!(
            "INSERT INTO ledger_entries (event_id, ticket_id, quote_id, payment_id, kind, reason, currency, amount_units, \
             recipient, status, due_at, created_at) VALUES {}",
            self.params().tuples(entries.len(), 12)
        );
        let mut query = sqlx::query(&sql);
        for (q, ticket, payment, kind, reason, amount, recipient, status, due_at) in entries {
            query = query
                .bind(q.event_id)
                .bind(ticket)
                .bind(&q.id)
                .bind(payment)
                .bind(kind)
                .bind(reason)
                .bind(amount.currency.symbol())
                .bind(amount.units.to_string())
                .bind(recipient)
                .bind(status)
                .bind(due_at)
                .bind(now);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

    /// The quotes, paid: seat released into the sale, confirmations complete, what was received recorded.
    async fn mark_quotes_paid(
        &self,
        tx: &mut Transaction<'static, Any>,
        bulk: &Bulk<'_>,
        candidates: &[usize],
    ) -> Result<(), StoreError> {
        let n = candidates.len();
        let mut p = self.params();
        let sql = format!(
            "UPDATE quotes SET status = 'paid', holds_seat = 0, confirmations = confirmations_required, updated_at = {}, \
             received_units = CASE id {} END WHERE id IN ({})",
            p.one(),
            (0..n).map(|_| format!("WHEN {} THEN {}", p.one(), p.one())).collect::<Vec<_>>().join(" "),
            p.list(n)
        );
        let mut query = sqlx::query(&sql).bind(bulk.now);
        for &i in candidates {
            query = query.bind(bulk.quote_id(i)).bind(bulk.reports[i].amount.units.to_string());
        }
        for &i in candidates {
            query = query.bind(bulk.quote_id(i));
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

    /// The audit trail, as the general path writes it.
    async fn audit_tickets(
        &self,
        tx: &mut Transaction<'static, Any>,
        bulk: &Bulk<'_>,
        sold: &Sold<'_>,
        candidates: &[usize],
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO audit_log (at, actor, action, event_id, subject, detail, remote_addr) VALUES {}",
            self.params().tuples(candidates.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        let at = now_ms();
        for &i in candidates {
            let q = &sold.fresh[bulk.quote_id(i)];
            let paid = bulk.reports[i].amount;
            let detail = serde_json::json!({ "ticket_id": sold.ticket_ids[&q.id], "paid": paid.to_string(), "currency": paid.currency });
            query = query
                .bind(at)
                .bind("watcher")
                .bind("ticket.issued")
                .bind(q.event_id)
                .bind(&q.id)
                .bind(detail.to_string())
                .bind(None::<String>);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }
}

/// A chunk's reports and the quote each pays, as one set-wise credit sees them; candidates are indexes into both.
struct Bulk<'a> {
    reports: &'a [PaymentReport],
    quotes: &'a [Option<QuoteRow>],
    now: i64,
}

impl<'a> Bulk<'a> {
    fn quote_id(&self, i: usize) -> &'a str {
        self.quotes[i].as_ref().expect("candidates have quotes").id.as_str()
    }
}

/// What the credit wrote so far: the quotes as locked, the payments' ids by output and the tickets' by quote.
struct Sold<'a> {
    fresh: &'a HashMap<String, QuoteRow>,
    payment_ids: &'a HashMap<Key, i64>,
    ticket_ids: &'a HashMap<String, i64>,
}
