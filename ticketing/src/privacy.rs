//! Attendees' data rights: everything kept about a wallet, as one document, and its erasure; the retention of
//! attendance rows.
//!
//! The caller proves the wallet (this crate knows no signature scheme). What is kept about a wallet: its quotes
//! and tickets (the address that pays and enters), the payments to those quotes (with the paying address),
//! refunds owed or paid to it, its attendance sessions (times, counters, coarse country), its ratings, and the
//! single-use keys of its access signatures.
//!
//! Erasure keeps what the accounts need and removes the rest, in one transaction: quotes, tickets, payments and
//! refund entries stay (the ledger's totals must not move) with the address replaced by a one-way token the
//! caller derives (e.g. a keyed hash); attendance sessions, ratings and used access keys are deleted; audit rows
//! naming the wallet name the token instead and lose their client address. The erasure itself is audited under
//! the token. A wallet with a refund still due, or a valid ticket to an event that has not ended, is refused:
//! the refund must reach the address, and the ticket would stop opening the door.

use serde::Serialize;
use sqlx::Row;

use crate::audit::{self, AuditEntry};
use crate::store::{Store, StoreError};

/// Why an erasure was refused.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("a refund to this wallet is still due: erase after it is paid")]
    RefundOutstanding,
    #[error("this wallet holds a valid ticket to an event that has not ended: erase after the event")]
    TicketInUse,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ErasureError {
    fn from(err: sqlx::Error) -> Self {
        ErasureError::Store(err.into())
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct QuoteData {
    pub id: String,
    pub event_id: i64,
    pub currency: String,
    pub amount_units: String,
    pub payment_address: String,
    pub status: String,
    pub received_units: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct TicketData {
    pub id: i64,
    pub event_id: i64,
    pub quote_id: String,
    pub currency: String,
    pub amount_paid_units: String,
    pub status: String,
    pub first_access_at: Option<i64>,
    pub last_access_at: Option<i64>,
    pub access_count: i64,
    pub total_duration_secs: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct PaymentData {
    pub chain: String,
    pub txid: String,
    pub output_index: i64,
    pub quote_id: Option<String>,
    pub currency: String,
    pub amount_units: String,
    pub from_address: Option<String>,
    pub status: String,
    pub first_seen_at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct RefundData {
    pub id: i64,
    pub event_id: Option<i64>,
    pub reason: String,
    pub currency: String,
    pub amount_units: String,
    pub status: String,
    pub settled_txid: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct AttendanceData {
    pub event_id: i64,
    pub ticket_id: Option<i64>,
    pub joined_at: i64,
    pub left_at: Option<i64>,
    pub duration_secs: Option<i64>,
    pub end_reason: Option<String>,
    pub chat_messages: i64,
    pub voice_secs: i64,
    pub screen_share_secs: i64,
    pub country: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct RatingData {
    pub ticket_id: i64,
    pub event_id: i64,
    pub stars: i64,
    pub comment: Option<String>,
    pub created_at: i64,
}

/// Everything kept about one wallet.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WalletData {
    pub chain: String,
    pub wallet: String,
    pub quotes: Vec<QuoteData>,
    pub tickets: Vec<TicketData>,
    pub payments: Vec<PaymentData>,
    pub refunds: Vec<RefundData>,
    pub attendance: Vec<AttendanceData>,
    pub ratings: Vec<RatingData>,
    /// Single-use access keys still kept (they expire within minutes).
    pub used_access_keys: i64,
}

/// What an erasure changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Erasure {
    pub token: String,
    pub quotes: u64,
    pub tickets: u64,
    pub payments: u64,
    pub refunds: u64,
    pub attendance_deleted: u64,
    pub ratings_deleted: u64,
    pub access_keys_deleted: u64,
    pub audit_rows: u64,
}

const WALLET_QUOTES: &str = "SELECT id FROM quotes WHERE chain = $1 AND wallet_address = $2";
const WALLET_TICKETS: &str = "SELECT id FROM tickets WHERE chain = $1 AND wallet_address = $2";

impl Store {
    /// Everything kept about `wallet` on `chain` (canonical form, as tickets store it).
    pub async fn wallet_data(&self, chain: &str, wallet: &str) -> Result<WalletData, StoreError> {
        let pool = self.pool();
        let quotes = sqlx::query_as(
            "SELECT id, event_id, currency, amount_units, payment_address, status, received_units, created_at \
             FROM quotes WHERE chain = $1 AND wallet_address = $2 ORDER BY created_at, id",
        )
        .bind(chain)
        .bind(wallet)
        .fetch_all(pool)
        .await?;
        let tickets = sqlx::query_as(
            "SELECT id, event_id, quote_id, currency, amount_paid_units, status, first_access_at, last_access_at, \
             access_count, total_duration_secs, created_at FROM tickets WHERE chain = $1 AND wallet_address = $2 ORDER BY id",
        )
        .bind(chain)
        .bind(wallet)
        .fetch_all(pool)
        .await?;
        let payments = sqlx::query_as(&format!(
            "SELECT chain, txid, output_index, quote_id, currency, amount_units, from_address, status, first_seen_at \
             FROM payments WHERE quote_id IN ({WALLET_QUOTES}) OR (chain = $1 AND from_address = $2) ORDER BY id"
        ))
        .bind(chain)
        .bind(wallet)
        .fetch_all(pool)
        .await?;
        let refunds = sqlx::query_as(&format!(
            "SELECT id, event_id, reason, currency, amount_units, status, settled_txid, created_at FROM ledger_entries \
             WHERE kind = 'refund' AND (recipient = $2 OR quote_id IN ({WALLET_QUOTES})) ORDER BY id"
        ))
        .bind(chain)
        .bind(wallet)
        .fetch_all(pool)
        .await?;
        let attendance = sqlx::query_as(&format!(
            "SELECT event_id, ticket_id, joined_at, left_at, duration_secs, end_reason, chat_messages, voice_secs, \
             screen_share_secs, country FROM attendance_sessions \
             WHERE role = 'attendee' AND (ticket_id IN ({WALLET_TICKETS}) OR wallet = $2) ORDER BY joined_at, id"
        ))
        .bind(chain)
        .bind(wallet)
        .fetch_all(pool)
        .await?;
        let ratings = sqlx::query_as(&format!(
            "SELECT ticket_id, event_id, stars, comment, created_at FROM ratings \
             WHERE ticket_id IN ({WALLET_TICKETS}) ORDER BY ticket_id"
        ))
        .bind(chain)
        .bind(wallet)
        .fetch_all(pool)
        .await?;
        let used_access_keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM used_challenges WHERE wallet = $1")
            .bind(wallet)
            .fetch_one(pool)
            .await?;
        Ok(WalletData {
            chain: chain.to_owned(),
            wallet: wallet.to_owned(),
            quotes,
            tickets,
            payments,
            refunds,
            attendance,
            ratings,
            used_access_keys,
        })
    }

    /// Erases `wallet` on `chain` (see the module's doc), replacing it with `token` where records stay. Refused
    /// while a refund to it is due or one of its valid tickets is for an event that has not ended at `now`.
    pub async fn erase_wallet(
        &self,
        chain: &str,
        wallet: &str,
        token: &str,
        now: i64,
    ) -> Result<Erasure, ErasureError> {
        let mut tx = self.pool().begin().await?;
        let owed: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'refund' AND status IN ('pending', 'due') \
             AND (recipient = $2 OR quote_id IN ({WALLET_QUOTES}))"
        ))
        .bind(chain)
        .bind(wallet)
        .fetch_one(&mut *tx)
        .await?;
        if owed > 0 {
            return Err(ErasureError::RefundOutstanding);
        }
        let in_use: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tickets t JOIN events e ON e.id = t.event_id \
             WHERE t.chain = $1 AND t.wallet_address = $2 AND t.status = 'valid' AND e.status <> 'cancelled' AND e.event_end > $3",
        )
        .bind(chain)
        .bind(wallet)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if in_use > 0 {
            return Err(ErasureError::TicketInUse);
        }
        let mut done = Erasure { token: token.to_owned(), ..Erasure::default() };
        // Deleted: what no account needs. Rows are found through the wallet's tickets before those change.
        done.attendance_deleted = sqlx::query(&format!(
            "DELETE FROM attendance_sessions WHERE role = 'attendee' AND (ticket_id IN ({WALLET_TICKETS}) OR wallet = $2)"
        ))
        .bind(chain)
        .bind(wallet)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        done.ratings_deleted = sqlx::query(&format!("DELETE FROM ratings WHERE ticket_id IN ({WALLET_TICKETS})"))
            .bind(chain)
            .bind(wallet)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        done.access_keys_deleted = sqlx::query("DELETE FROM used_challenges WHERE wallet = $1")
            .bind(wallet)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Kept for the accounts, under the token.
        done.payments = sqlx::query(&format!(
            "UPDATE payments SET from_address = $3 WHERE from_address IS NOT NULL \
             AND (quote_id IN ({WALLET_QUOTES}) OR (chain = $1 AND from_address = $2))"
        ))
        .bind(chain)
        .bind(wallet)
        .bind(token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        done.refunds = sqlx::query(&format!(
            "UPDATE ledger_entries SET recipient = $3, paid_to = CASE WHEN paid_to IS NULL THEN NULL ELSE $3 END \
             WHERE kind = 'refund' AND (recipient = $2 OR quote_id IN ({WALLET_QUOTES}))"
        ))
        .bind(chain)
        .bind(wallet)
        .bind(token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        done.tickets = sqlx::query(
            "UPDATE tickets SET wallet_address = $3, access_signature = '', updated_at = $4 \
             WHERE chain = $1 AND wallet_address = $2",
        )
        .bind(chain)
        .bind(wallet)
        .bind(token)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        done.quotes = sqlx::query(
            "UPDATE quotes SET wallet_address = $3, client_address = NULL, updated_at = $4 \
             WHERE chain = $1 AND wallet_address = $2",
        )
        .bind(chain)
        .bind(wallet)
        .bind(token)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        done.audit_rows = sqlx::query(
            "UPDATE audit_log SET detail = REPLACE(detail, $1, $2), \
             subject = CASE WHEN subject = $1 THEN $2 ELSE subject END, \
             actor = CASE WHEN actor = $1 THEN $2 ELSE actor END, remote_addr = NULL \
             WHERE subject = $1 OR actor = $1 OR detail <> REPLACE(detail, $1, $2)",
        )
        .bind(wallet)
        .bind(token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let detail = serde_json::to_value(&done).unwrap_or_default();
        audit::record(&mut *tx, &AuditEntry::new(token, "privacy.erased").subject(token).detail(detail)).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Anonymises attendance sessions that ended before `cutoff` (unix ms): no wallet, no ticket, no country, no
    /// chat count; times and durations stay for the event's statistics. Returns how many rows changed.
    pub async fn anonymise_attendance_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE attendance_sessions SET wallet = 'anonymised', ticket_id = NULL, country = NULL, chat_messages = 0 \
             WHERE left_at IS NOT NULL AND left_at < $1 AND role = 'attendee' AND wallet <> 'anonymised'",
        )
        .bind(cutoff)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Whether a wallet's export or erasure was audited (for tests and operators): the number of `privacy.*`
    /// rows whose subject is `subject`.
    pub async fn privacy_audit_count(&self, subject: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE action LIKE 'privacy.%' AND subject = $1")
            .bind(subject)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }
}
