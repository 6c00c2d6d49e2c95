//! Derivation indexes stay within a bounded gap of the last paid one: expired unpaid quotes' indexes are reused
//! (after the watch window, or at once when the gap is full), and `derivation_report` says what a restored wallet
//! must scan. On SQLite and PostgreSQL.

use std::sync::Arc;

use chains::derive::BtcAccount;
use chains::signature::BtcNetwork;
use chains::{Amount, Chain, Currency};
use ticketing::creators::{AccountName, Tier};
use ticketing::purchases::derivation::AddressReuse;
use ticketing::purchases::{PaymentReport, PaymentSettings, PurchaseError, Purchases, QuoteRequest, QuoteRow};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use ticketing::{store_test, Store};

const ZPUB: &str =
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
const NOW: i64 = 1_900_000_000_000;
const MINUTE: i64 = 60_000;
const BUYER: &str = "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g";

fn purchases(store: &Store) -> Purchases {
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.btc = Some(BtcAccount::parse(ZPUB, BtcNetwork::Mainnet).unwrap());
    settings.address_reuse = AddressReuse { reuse_after_ms: 60 * MINUTE, max_gap: 3 };
    Purchases::new(store.clone(), Arc::new(StaticRates::development()), settings, &[7u8; 32])
}

async fn event(store: &Store) -> i64 {
    store.set_tier(&AccountName::parse("alice").unwrap(), Tier::Premium, None, "test").await.unwrap();
    sqlx::query_scalar(
        "INSERT INTO events (creator_account, title, space_type, space_id, price_units, price_currency, supported_crypto, \
         max_attendees, event_start, event_end, sales_start, sales_end, created_at, updated_at) \
         VALUES ('alice', 'Concert', 'custom', 'hall', '100000', 'BTC', 'BTC', 100, $1, $2, $3, $1, $3, $3) RETURNING id",
    )
    .bind(NOW + 24 * 60 * MINUTE)
    .bind(NOW + 27 * 60 * MINUTE)
    .bind(NOW - MINUTE)
    .fetch_one(store.raw_pool())
    .await
    .unwrap()
}

async fn quote(p: &Purchases, event_id: i64, at: i64) -> Result<QuoteRow, PurchaseError> {
    p.create_quote(QuoteRequest { event_id, currency: Currency::Btc, wallet_address: BUYER.into() }, at).await
}

fn paid(q: &QuoteRow) -> PaymentReport {
    PaymentReport {
        chain: Chain::Btc,
        txid: "ab".repeat(32),
        output_index: 0,
        quote_id: Some(q.id.clone()),
        memo: None,
        amount: Amount::new(Currency::Btc, 100_000),
        to_address: q.payment_address.clone(),
        from_address: None,
        block_height: Some(100),
        block_hash: None,
        confirmations: 2,
        is_final: true,
    }
}

store_test!(anonymous_quotes_cannot_push_the_derivation_index_past_the_gap, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store).await;
    let account = BtcAccount::parse(ZPUB, BtcNetwork::Mainnet).unwrap();
    let mut quotes = Vec::new();
    for i in 0..3 {
        quotes.push(quote(&p, event_id, NOW + i).await.unwrap());
    }
    assert_eq!(quotes.iter().map(|q| q.derivation_index).collect::<Vec<_>>(), vec![Some(0), Some(1), Some(2)]);
    p.report_payment(paid(&quotes[1]), NOW + 10).await.unwrap();
    // Two more fit in the gap of 3 past the paid index 1; the next would leave it: refused while all are open.
    assert_eq!(quote(&p, event_id, NOW + 20).await.unwrap().derivation_index, Some(3));
    assert_eq!(quote(&p, event_id, NOW + 21).await.unwrap().derivation_index, Some(4));
    let refused = quote(&p, event_id, NOW + 22).await.unwrap_err();
    assert!(matches!(refused, PurchaseError::AddressGapFull(3)), "{refused:?}");
    assert_eq!(refused.code(), "address_gap_full");

    // Expired unpaid: with the gap full, the lowest such index is reused at once, with its address.
    p.expire_quotes(None, NOW + 16 * MINUTE).await.unwrap();
    let reused = quote(&p, event_id, NOW + 17 * MINUTE).await.unwrap();
    assert_eq!(reused.derivation_index, Some(0));
    assert_eq!(reused.payment_address, account.address(0).unwrap());
    let released: Option<i64> = sqlx::query_scalar("SELECT derivation_index FROM quotes WHERE id = $1")
        .bind(&quotes[0].id)
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(released, None, "the expired quote gave its index up");
    let mut payment = paid(&reused);
    payment.txid = "cd".repeat(32);
    p.report_payment(payment, NOW + 18 * MINUTE).await.unwrap();
    // After the watch window an expired unpaid index is reused before a fresh one is taken, even with room.
    let later = quote(&p, event_id, NOW + 2 * 60 * MINUTE).await.unwrap();
    assert_eq!(later.derivation_index, Some(2));

    let report =
        store.derivation_report(Chain::Btc, AddressReuse { reuse_after_ms: 60 * MINUTE, max_gap: 3 }).await.unwrap();
    assert_eq!(
        (report.next_index, report.highest_paid_index, report.largest_unpaid_run, report.max_gap),
        (5, Some(1), 3, 3)
    );
    // Paid: 0 (the reused index's new quote) and 1; 2 (reused again), 3 and 4 unpaid: a run of 3 after the last paid.
    assert_eq!(report.indexes_in_use, 5);
    let audited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'derivation.reused'")
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(audited, 2);
});

store_test!(concurrent_quotes_never_share_a_reused_index, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store).await;
    for i in 0..3 {
        quote(&p, event_id, NOW + i).await.unwrap();
    }
    p.expire_quotes(None, NOW + 16 * MINUTE).await.unwrap();
    let at = NOW + 2 * 60 * MINUTE;
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { quote(&p, event_id, at).await })
        })
        .collect();
    let mut indexes = Vec::new();
    for task in tasks {
        if let Ok(q) = task.await.unwrap() {
            indexes.push(q.derivation_index.unwrap());
        }
    }
    indexes.sort();
    let mut unique = indexes.clone();
    unique.dedup();
    assert_eq!(indexes, unique, "no index handed out twice");
    // 0..2 reused, then fresh ones up to the gap of 3 past nothing paid (indexes 0, 1, 2): 3 quotes at most.
    assert_eq!(indexes, vec![0, 1, 2]);
});
