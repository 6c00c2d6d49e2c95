//! Attendees' data rights on SQLite and PostgreSQL: everything kept about a wallet comes out, erasure leaves no
//! trace of the address while the ledger's totals stay, and old attendance rows are anonymised.

use std::collections::BTreeMap;
use std::sync::Arc;

use chains::{Amount, Currency};
use ticketing::attendance::AttendanceChange;
use ticketing::creators::{AccountName, Tier};
use ticketing::privacy::ErasureError;
use ticketing::purchases::{PaymentOutcome, PaymentReport, PaymentSettings, Purchases, QuoteRequest};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use ticketing::{store_test, Store};

const NOW: i64 = 1_900_000_000_000;
const HOUR: i64 = 3_600_000;
const CAROL: &str = "carol-gdpr";
const DAVE: &str = "dave-keeps";
const TOKEN: &str = "erased-0123456789abcdef";

fn purchases(store: &Store) -> Purchases {
    Purchases::new(
        store.clone(),
        Arc::new(StaticRates::development()),
        PaymentSettings::new("dlux-tickets"),
        &[7u8; 32],
    )
}

/// A 10 HIVE event on sale now, from NOW + 1 h to NOW + 3 h.
async fn event(store: &Store) -> i64 {
    store.set_tier(&AccountName::parse("alice").unwrap(), Tier::Premium, None, "test").await.unwrap();
    sqlx::query_scalar(
        "INSERT INTO events (creator_account, title, space_type, space_id, price_units, price_currency, supported_crypto, \
         max_attendees, event_start, event_end, sales_start, sales_end, created_at, updated_at) \
         VALUES ('alice', 'Concert', 'custom', 'hall', '10000', 'HIVE', 'HIVE', 10, $1, $2, $3, $1, $3, $3) RETURNING id",
    )
    .bind(NOW + HOUR)
    .bind(NOW + 3 * HOUR)
    .bind(NOW - HOUR)
    .fetch_one(store.raw_pool())
    .await
    .unwrap()
}

/// A ticket for `wallet`, paid with `extra` base units more than asked (an overpayment is owed back).
async fn buy(p: &Purchases, event_id: i64, wallet: &str, extra: u128) -> i64 {
    let quote = p
        .create_quote(QuoteRequest { event_id, currency: Currency::Hive, wallet_address: wallet.into() }, NOW)
        .await
        .unwrap();
    let units: u128 = quote.amount_units.parse().unwrap();
    let report = PaymentReport {
        chain: chains::Chain::Hive,
        txid: format!("tx-{wallet}"),
        output_index: 0,
        quote_id: None,
        memo: quote.memo.clone(),
        amount: Amount::new(Currency::Hive, units + extra),
        to_address: quote.payment_address.clone(),
        from_address: Some(wallet.into()),
        block_height: Some(1),
        block_hash: None,
        confirmations: 1,
        is_final: true,
    };
    match p.report_payment(report, NOW).await.unwrap() {
        PaymentOutcome::TicketIssued { ticket_id } => ticket_id,
        other => panic!("{other:?}"),
    }
}

async fn attend(store: &Store, event_id: i64, ticket_id: i64, wallet: &str, session: &str, at: i64) {
    let sid = session.to_owned();
    store
        .record_attendance(&[
            AttendanceChange::Opened {
                session_id: sid.clone(),
                event_id,
                ticket_id: Some(ticket_id),
                wallet: wallet.into(),
                role: "attendee",
                client_id: format!("c-{session}"),
                node_id: "node-1".into(),
                at,
            },
            AttendanceChange::Located { session_id: sid.clone(), country: "DE".into() },
            AttendanceChange::Engagement {
                session_id: sid.clone(),
                chat_messages: 3,
                voice_secs: 5,
                screen_share_secs: 0,
            },
            AttendanceChange::Closed { session_id: sid, at: at + 60_000, reason: "left".into() },
        ])
        .await
        .unwrap();
}

/// Sum of every ledger amount by (kind, currency), and the number of entries.
async fn ledger_totals(store: &Store) -> (BTreeMap<(String, String), u128>, usize) {
    let rows: Vec<(String, String, String)> = sqlx::query_as("SELECT kind, currency, amount_units FROM ledger_entries")
        .fetch_all(store.raw_pool())
        .await
        .unwrap();
    let mut totals = BTreeMap::new();
    for (kind, currency, units) in &rows {
        *totals.entry((kind.clone(), currency.clone())).or_insert(0u128) += units.parse::<u128>().unwrap();
    }
    (totals, rows.len())
}

/// Rows of any table that still carry `text` in a text column that may hold a wallet.
async fn traces(store: &Store, text: &str) -> i64 {
    let mut n = 0;
    for sql in [
        "SELECT COUNT(*) FROM quotes WHERE wallet_address = $1",
        "SELECT COUNT(*) FROM tickets WHERE wallet_address = $1",
        "SELECT COUNT(*) FROM payments WHERE from_address = $1",
        "SELECT COUNT(*) FROM ledger_entries WHERE recipient = $1 OR paid_to = $1",
        "SELECT COUNT(*) FROM attendance_sessions WHERE wallet = $1",
        "SELECT COUNT(*) FROM ratings WHERE wallet_address = $1",
        "SELECT COUNT(*) FROM used_challenges WHERE wallet = $1",
        "SELECT COUNT(*) FROM audit_log WHERE actor = $1 OR subject = $1 OR detail <> REPLACE(detail, $1, '')",
    ] {
        n += sqlx::query_scalar::<_, i64>(sql).bind(text).fetch_one(store.raw_pool()).await.unwrap();
    }
    n
}

store_test!(export_then_erase_keeps_the_ledger_and_no_trace_of_the_wallet, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store).await;
    let carol_ticket = buy(&p, event_id, CAROL, 500).await;
    let dave_ticket = buy(&p, event_id, DAVE, 0).await;
    attend(&store, event_id, carol_ticket, CAROL, "s-carol", NOW + HOUR).await;
    attend(&store, event_id, dave_ticket, DAVE, "s-dave", NOW + HOUR).await;
    sqlx::query("INSERT INTO ratings (ticket_id, creator_account, event_id, wallet_address, stars, comment, created_at) VALUES ($1, 'alice', $2, $3, 5, 'great', $4)")
        .bind(carol_ticket)
        .bind(event_id)
        .bind(CAROL)
        .bind(NOW + 4 * HOUR)
        .execute(store.raw_pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO used_challenges (key, kind, event_id, wallet, expires_at, used_at) VALUES ('access:k1', 'nonce', $1, $2, $3, $3)")
        .bind(event_id)
        .bind(CAROL)
        .bind(NOW)
        .execute(store.raw_pool())
        .await
        .unwrap();

    let data = store.wallet_data("hive", CAROL).await.unwrap();
    assert_eq!((data.quotes.len(), data.tickets.len(), data.payments.len()), (1, 1, 1), "{data:#?}");
    assert_eq!(data.tickets[0].id, carol_ticket);
    assert_eq!(data.payments[0].from_address.as_deref(), Some(CAROL));
    assert_eq!(data.refunds.len(), 1, "the overpayment is owed back: {data:#?}");
    assert_eq!(data.refunds[0].amount_units, "500");
    assert_eq!(data.attendance.len(), 1);
    assert_eq!((data.attendance[0].country.as_deref(), data.attendance[0].chat_messages), (Some("DE"), 3));
    assert_eq!((data.ratings.len(), data.used_access_keys), (1, 1));

    // Not while the refund is due, nor while the ticket still opens a door.
    let after_event = NOW + 4 * HOUR;
    assert!(matches!(
        store.erase_wallet("hive", CAROL, TOKEN, after_event).await,
        Err(ErasureError::RefundOutstanding)
    ));
    p.settle(data.refunds[0].id, "refund-tx", "admin", after_event).await.unwrap();
    assert!(matches!(store.erase_wallet("hive", CAROL, TOKEN, NOW + 2 * HOUR).await, Err(ErasureError::TicketInUse)));

    // The quote remembers the client address that asked for it (for the open-quote limits); erasure drops it.
    sqlx::query("UPDATE quotes SET client_address = '192.0.2.7' WHERE wallet_address = $1")
        .bind(CAROL)
        .execute(store.raw_pool())
        .await
        .unwrap();
    let before = ledger_totals(&store).await;
    let erased = store.erase_wallet("hive", CAROL, TOKEN, after_event).await.unwrap();
    let addresses: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM quotes WHERE client_address IS NOT NULL")
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(addresses, 0, "no client address is kept for the erased wallet's quotes");
    assert_eq!((erased.quotes, erased.tickets, erased.payments, erased.refunds), (1, 1, 1, 1), "{erased:?}");
    assert_eq!(
        (erased.attendance_deleted, erased.ratings_deleted, erased.access_keys_deleted),
        (1, 1, 1),
        "{erased:?}"
    );
    assert_eq!(ledger_totals(&store).await, before, "the ledger's totals and entries are unchanged");
    assert_eq!(traces(&store, CAROL).await, 0, "no row names the wallet any more");
    let gone = store.wallet_data("hive", CAROL).await.unwrap();
    assert!(gone.tickets.is_empty() && gone.quotes.is_empty() && gone.attendance.is_empty() && gone.refunds.is_empty());
    // The records the accounts need stay, under the token; the erasure is audited under it.
    let kept = store.wallet_data("hive", TOKEN).await.unwrap();
    assert_eq!((kept.tickets.len(), kept.quotes.len(), kept.refunds.len()), (1, 1, 1));
    assert_eq!(store.privacy_audit_count(TOKEN).await.unwrap(), 1);
    // Another wallet is untouched.
    let dave = store.wallet_data("hive", DAVE).await.unwrap();
    assert_eq!((dave.tickets.len(), dave.attendance.len(), dave.payments.len()), (1, 1, 1));
});

store_test!(attendance_older_than_the_retention_is_anonymised, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store).await;
    let old = buy(&p, event_id, CAROL, 0).await;
    let recent = buy(&p, event_id, DAVE, 0).await;
    attend(&store, event_id, old, CAROL, "s-old", NOW + HOUR).await; // during the event: its minute counts
    attend(&store, event_id, recent, DAVE, "s-recent", NOW + 10 * HOUR).await;
    assert_eq!(store.anonymise_attendance_before(NOW + 5 * HOUR).await.unwrap(), 1);
    assert_eq!(store.anonymise_attendance_before(NOW + 5 * HOUR).await.unwrap(), 0, "once");
    let rows = store.attendance_sessions(event_id).await.unwrap();
    let old_row = rows.iter().find(|r| r.id == "s-old").unwrap();
    assert_eq!(
        (old_row.wallet.as_str(), old_row.ticket_id, old_row.chat_messages),
        ("anonymised", None, 0),
        "{old_row:?}"
    );
    assert_eq!(old_row.duration_secs, Some(60), "times stay for the statistics");
    let recent_row = rows.iter().find(|r| r.id == "s-recent").unwrap();
    assert_eq!((recent_row.wallet.as_str(), recent_row.ticket_id), (DAVE, Some(recent)));
    assert!(store.wallet_data("hive", CAROL).await.unwrap().attendance.is_empty());
});
