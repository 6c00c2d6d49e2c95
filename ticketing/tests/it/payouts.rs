//! Creator payouts: payout addresses per chain, payouts held without one, batches per chain, settlement to the
//! recorded address, and the commission per chain; on SQLite and PostgreSQL.

use std::sync::Arc;

use chains::{Amount, Chain, Currency};
use ticketing::creators::{AccountName, Tier};
use ticketing::payouts::{batches, HoldReason, SettleError};
use ticketing::purchases::{PaymentReport, PaymentSettings, Purchases, QuoteRequest};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use ticketing::{store_test, Store};

const NOW: i64 = 1_900_000_000_000;
const HOUR: i64 = 3_600_000;
/// The event ends at NOW + 27 h; payouts are due 7 days later.
const DUE: i64 = NOW + 27 * HOUR + 7 * 24 * HOUR;

fn purchases(store: &Store) -> Purchases {
    Purchases::new(
        store.clone(),
        Arc::new(StaticRates::development()),
        PaymentSettings::new("dlux-tickets"),
        &[7u8; 32],
    )
}

fn account(name: &str) -> AccountName {
    AccountName::parse(name).unwrap()
}

/// An event by `creator` priced 25 HIVE, on sale now.
async fn event(store: &Store, creator: &str) -> i64 {
    store.set_tier(&account(creator), Tier::Premium, None, "test").await.unwrap();
    sqlx::query_scalar(
        "INSERT INTO events (creator_account, title, space_type, space_id, price_units, price_currency, supported_crypto, \
         max_attendees, event_start, event_end, sales_start, sales_end, created_at, updated_at) \
         VALUES ($1, 'Concert', 'custom', 'hall', '25000', 'HIVE', 'HIVE', 10, $2, $3, $4, $2, $4, $4) RETURNING id",
    )
    .bind(creator)
    .bind(NOW + 24 * HOUR)
    .bind(NOW + 27 * HOUR)
    .bind(NOW - HOUR)
    .fetch_one(store.raw_pool())
    .await
    .unwrap()
}

/// One ticket sold to `buyer` for exactly the price: a 5,000 commission and a 20,000 payout (milli-HIVE).
async fn sell(p: &Purchases, event_id: i64, buyer: &str, txid: &str) {
    let quote = p
        .create_quote(QuoteRequest { event_id, currency: Currency::Hive, wallet_address: buyer.into() }, NOW)
        .await
        .unwrap();
    let report = PaymentReport {
        chain: Chain::Hive,
        txid: txid.into(),
        output_index: 0,
        quote_id: None,
        memo: quote.memo.clone(),
        amount: Amount::new(Currency::Hive, 25_000),
        to_address: quote.payment_address.clone(),
        from_address: Some(buyer.into()),
        block_height: Some(100),
        block_hash: None,
        confirmations: 1,
        is_final: true,
    };
    p.report_payment(report, NOW + 1).await.unwrap();
}

store_test!(a_payout_without_an_address_is_held_and_a_change_moves_every_unsettled_one, |store: Store| async move {
    let p = purchases(&store);
    let alice_event = event(&store, "alice").await;
    let bob_event = event(&store, "bob").await;
    sell(&p, alice_event, "carol", "tx-a1").await;
    sell(&p, alice_event, "dave", "tx-a2").await;
    sell(&p, bob_event, "erin", "tx-b1").await;

    // Nothing due before the refund window ends; then everything due, all held.
    assert!(store.payouts(true, DUE - 1).await.unwrap().is_empty());
    let due = store.payouts(true, DUE).await.unwrap();
    assert_eq!(due.len(), 3);
    assert!(due
        .iter()
        .all(|p| p.held == Some(HoldReason::NoPayoutAddress) && p.payout_address.is_none() && p.chain == Chain::Hive));
    let batch = batches(&due, DUE).unwrap();
    assert_eq!((batch.len(), batch[0].lines.len(), batch[0].held.len()), (1, 0, 3));

    let alice = account("alice");
    let first = store.set_payout_address(&alice, Chain::Hive, "alice.pay", Some("192.0.2.1"), NOW + 2).await.unwrap();
    assert_eq!((first.previous, first.unsettled_payouts), (None, 2));
    let due = store.payouts(true, DUE).await.unwrap();
    let alice_due: Vec<_> = due.iter().filter(|p| p.entry.recipient.as_deref() == Some("alice")).collect();
    assert!(alice_due.iter().all(|p| p.payout_address.as_deref() == Some("alice.pay") && p.held.is_none()));
    let batch = batches(&due, DUE).unwrap();
    assert_eq!(batch[0].lines.len(), 1, "alice's two payouts are one transfer");
    let line = &batch[0].lines[0];
    assert_eq!(
        (line.address.as_str(), line.amount.units, line.entries.len(), line.creators.clone()),
        ("alice.pay", 40_000, 2, vec!["alice".to_owned()])
    );
    assert_eq!(batch[0].held.len(), 1, "bob has no address");

    // Settle one; change the address; the other (unsettled) follows the change, the settled one keeps where it went.
    let [settled_id, other_id] = [alice_due[0].entry.id, alice_due[1].entry.id];
    let row = store.settle_entry(settled_id, "hivetx1", "alice.pay", "op", DUE).await.unwrap();
    assert_eq!((row.status.as_str(), row.paid_to.as_deref()), ("settled", Some("alice.pay")));
    let second = store.set_payout_address(&alice, Chain::Hive, "alice.cold", None, DUE + 1).await.unwrap();
    assert_eq!((second.previous.as_deref(), second.unsettled_payouts), (Some("alice.pay"), 1));
    let mine = store.creator_payouts(&alice).await.unwrap();
    let place = |id| mine.iter().find(|p| p.entry.id == id).unwrap().payout_address.clone();
    assert_eq!((place(settled_id).as_deref(), place(other_id).as_deref()), (Some("alice.pay"), Some("alice.cold")));

    // Settling to the address looked up before the change is refused; a held payout can't be settled at all.
    assert!(matches!(
        store.settle_entry(other_id, "hivetx2", "alice.pay", "op", DUE + 2).await,
        Err(SettleError::DestinationChanged(_))
    ));
    let bob_id = due.iter().find(|p| p.entry.recipient.as_deref() == Some("bob")).unwrap().entry.id;
    assert!(matches!(
        store.settlement_destination(bob_id, DUE).await,
        Err(SettleError::NoPayoutAddress { chain: Chain::Hive, .. })
    ));
    assert!(matches!(
        store.settle_entry(settled_id, "hivetx3", "alice.pay", "op", DUE + 2).await,
        Err(SettleError::AlreadySettled(_))
    ));

    // Every change is audited with what it replaced.
    let audits: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'payout_address.set' ORDER BY id")
            .fetch_all(store.raw_pool())
            .await
            .unwrap();
    assert_eq!(audits.len(), 2);
    let last: serde_json::Value = serde_json::from_str(&audits[1]).unwrap();
    assert_eq!(
        last,
        serde_json::json!({ "chain": "hive", "address": "alice.cold", "previous": "alice.pay", "unsettled_payouts": 1 })
    );
    let settled: String = sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'ledger.settled'")
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert!(settled.contains("\"paid_to\":\"alice.pay\""), "{settled}");
});

store_test!(commission_is_reported_per_chain_earned_once_the_refund_window_ends, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, "alice").await;
    sell(&p, event_id, "carol", "tx1").await;
    sell(&p, event_id, "dave", "tx2").await;
    let before = store.commission_by_chain(NOW + 2).await.unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(
        (before[0].chain, before[0].currency, before[0].earned.units, before[0].pending.units, before[0].sales),
        (Chain::Hive, Currency::Hive, 0, 10_000, 2)
    );
    // A refunded sale's commission is cancelled and no longer reported.
    let ticket = p.tickets_for_wallet(Chain::Hive, "carol").await.unwrap()[0].id;
    p.refund_ticket(ticket, "op", NOW + 3).await.unwrap();
    let after = store.commission_by_chain(DUE).await.unwrap();
    assert_eq!((after[0].earned.units, after[0].pending.units, after[0].sales), (5_000, 0, 1));
});
