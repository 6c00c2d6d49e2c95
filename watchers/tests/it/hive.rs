//! The Hive watcher against a local JSON-RPC server that answers `account_history_api.get_account_history` and
//! `database_api.get_dynamic_global_properties` from a recorded, real-shaped history of the platform account,
//! with hived's paging rules. Reports go to ticketing on SQLite and PostgreSQL.

use crate::jsonrpc_replay;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chains::{Amount, Chain, Currency};
use jsonrpc_replay::{fixture, result_of, ReplayServer};
use serde_json::{json, Value};
use ticketing::creators::{AccountName, Tier};
use ticketing::purchases::{PaymentOutcome, PaymentSettings, Purchases, QuoteRequest};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use ticketing::{store_test, Store};
use watchers::hive::{HiveConfig, HiveWatcher};
use watchers::{ChainMetrics, PaymentWatcher, RetryPolicy, WatchContext};

const NOW: i64 = 1_900_000_000_000;
const HOUR: i64 = 3_600_000;
const ACCOUNT: &str = "dlux-tickets";

/// A hived stand-in: the recorded history, served the way hived pages it (entries at or below `start`, the
/// newest `limit` of them, oldest first; `limit` may not reach below sequence 0), with the operation filter
/// applied. It returns operations of reversible blocks even though the watcher asks it not to, as a node
/// without that parameter would: the watcher must hold them back by itself.
async fn hived(vars: &[(&str, String)], irreversible: Arc<AtomicI64>) -> ReplayServer {
    let history: Vec<Value> =
        result_of(fixture("hive/get_account_history.json", vars))["history"].as_array().unwrap().clone();
    hived_serving(history, irreversible).await
}

/// [`hived`] over a given history.
async fn hived_serving(history: Vec<Value>, irreversible: Arc<AtomicI64>) -> ReplayServer {
    let props = result_of(fixture("hive/get_dynamic_global_properties.json", &[]));
    ReplayServer::start(move |method, params| match method {
        "database_api.get_dynamic_global_properties" => {
            let mut p = props.clone();
            p["last_irreversible_block_num"] = json!(irreversible.load(Ordering::SeqCst));
            Ok(p)
        }
        "account_history_api.get_account_history" => {
            assert_eq!(params["account"], ACCOUNT);
            assert_eq!(params["operation_filter_low"], 4, "transfer_operation only");
            assert_eq!(params["include_reversible"], false);
            let start = params["start"].as_i64().unwrap();
            let limit = params["limit"].as_i64().unwrap();
            if !(1..=1000).contains(&limit) || (start >= 0 && limit > start + 1) {
                return Err(json!({"code": -32003, "message": "Assert Exception:args.limit <= 1000 && args.start >= args.limit - 1"}));
            }
            let matching: Vec<&Value> = history
                .iter()
                .filter(|e| e[1]["op"]["type"] == "transfer_operation")
                .filter(|e| start < 0 || e[0].as_i64().unwrap() <= start)
                .collect();
            let page: Vec<&Value> = matching.iter().rev().take(limit as usize).rev().copied().collect();
            Ok(json!({ "history": page }))
        }
        _ => Err(json!({"code": -32601, "message": "Method not found"})),
    })
    .await
}

async fn event(store: &Store, price: &str, currency: &str) -> i64 {
    let creator = AccountName::parse("alice").unwrap();
    store.set_tier(&creator, Tier::Premium, None, "test").await.unwrap();
    ticketing::testing::SeedEvent::new(NOW - HOUR)
        .space_id("hall")
        .price(price, currency)
        .accepts(currency)
        .starts(NOW + 24 * HOUR)
        .ends(NOW + 27 * HOUR)
        .insert(store)
        .await
}

store_test!(transfers_are_matched_by_memo_once_irreversible, |store: Store| async move {
    let p =
        Purchases::new(store.clone(), Arc::new(StaticRates::development()), PaymentSettings::new(ACCOUNT), &[7u8; 32]);
    let e_hive = event(&store, "25000", "HIVE").await;
    let e_hbd = event(&store, "10000", "HBD").await;
    let quote = |event_id: i64, currency: Currency, wallet: &str| {
        let p = p.clone();
        let wallet = wallet.to_owned();
        async move { p.create_quote(QuoteRequest { event_id, currency, wallet_address: wallet }, NOW).await.unwrap() }
    };
    let q_exact = quote(e_hive, Currency::Hive, "buyer-one").await;
    let q_wrongcur = quote(e_hive, Currency::Hive, "buyer-two").await;
    let q_partial = quote(e_hive, Currency::Hive, "buyer-three").await;
    let q_hbd = quote(e_hbd, Currency::Hbd, "buyer-five").await;
    let q_seed = quote(e_hive, Currency::Hive, "buyer-six").await;
    let q_late = quote(e_hive, Currency::Hive, "buyer-seven").await;
    let vars = [
        ("E_HIVE", e_hive.to_string()),
        ("E_HBD", e_hbd.to_string()),
        ("Q_EXACT", q_exact.id.clone()),
        ("Q_WRONGCUR", q_wrongcur.id.clone()),
        ("Q_PARTIAL", q_partial.id.clone()),
        ("Q_HBD", q_hbd.id.clone()),
        ("Q_LATE", q_late.id.clone()),
    ];
    let irreversible = Arc::new(AtomicI64::new(99_001_050));
    let server = hived(&vars, irreversible.clone()).await;
    let ctx = WatchContext::new(Chain::Hive, p.clone(), Arc::new(ChainMetrics::default())).with_clock(Arc::new(|| NOW));
    let config = HiveConfig { page_size: 3, ..HiveConfig::new(&server.url, ACCOUNT) };
    let retry = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
    let mut w = HiveWatcher::new(config.clone()).with_retry_policy(retry.clone());
    w.resume(&ctx).await.unwrap();

    let pass = w.scan(&ctx).await.unwrap();
    // 11 transfers in pages of 3, newest first, down to the start of the history.
    assert_eq!(pass.pages, 4);
    let outcomes: Vec<(String, i64, Option<PaymentOutcome>)> =
        pass.reported.iter().map(|(r, o)| (r.from_address.clone().unwrap(), r.output_index, o.clone())).collect();
    let outcome_of = |from: &str| {
        outcomes
            .iter()
            .find(|(f, _, _)| f == from)
            .map(|(_, _, o)| o.clone())
            .unwrap_or_else(|| panic!("{from} not reported"))
    };
    assert!(matches!(outcome_of("buyer-one"), Some(PaymentOutcome::TicketIssued { .. })));
    assert_eq!(outcome_of("buyer-two"), Some(PaymentOutcome::RefundDue { reason: "wrong_currency" }));
    assert_eq!(
        outcome_of("buyer-three"),
        Some(PaymentOutcome::Partial { remaining: Amount::new(Currency::Hive, 15_000) })
    );
    assert_eq!(
        outcome_of("buyer-four"),
        Some(PaymentOutcome::RefundDue { reason: "unmatched" }),
        "a memo for an event that does not exist"
    );
    assert!(matches!(outcome_of("buyer-five"), Some(PaymentOutcome::TicketIssued { .. })), "HBD in the NAI form");
    assert!(
        matches!(outcome_of("buyer-six"), Some(PaymentOutcome::TicketIssued { .. })),
        "the seed's memo without a quote id"
    );
    assert!(p.ticket_for_quote(&q_seed.id).await.unwrap().is_some());
    assert_eq!(pass.reported.len(), 6, "{outcomes:?}");
    // The encrypted memo and the HBD payment share a transaction: the payment is output 1.
    assert_eq!(outcomes.iter().find(|(f, _, _)| f == "buyer-five").unwrap().1, 1);
    // The payout to alice is ours, the thank-you and the encrypted memo name no quote: not refunded, counted.
    assert_eq!(pass.skipped.get("malformed_memo"), Some(&2));
    assert_eq!(ctx.metrics().skipped.get(), 2);
    // buyer-seven's transfer is in a reversible block: held back, the cursor stops before it.
    assert_eq!(pass.waiting_reversible, 1);
    assert_eq!(w.cursor().sequence, 10);
    assert_eq!(p.quote(&q_late.id).await.unwrap().unwrap().status, "awaiting_payment");
    let refund = p.ledger("refund", true, NOW).await.unwrap();
    let reasons: Vec<(&str, &str)> =
        refund.iter().map(|r| (r.reason.as_str(), r.recipient.as_deref().unwrap_or(""))).collect();
    assert!(reasons.contains(&("wrong_currency", "buyer-two")), "{reasons:?}");
    assert!(reasons.contains(&("unmatched", "buyer-four")), "{reasons:?}");

    // Nothing new while the block stays reversible; the pass pages only down to the cursor.
    let calls = server.count("account_history_api.get_account_history");
    let idle = w.scan(&ctx).await.unwrap();
    assert!(idle.reported.is_empty());
    assert_eq!(server.count("account_history_api.get_account_history") - calls, 1);

    // The block becomes irreversible: the ticket is issued.
    irreversible.store(99_001_200, Ordering::SeqCst);
    let report = w.poll_once(&ctx).await.unwrap();
    assert_eq!(report.reported_final, 1);
    assert!(p.ticket_for_quote(&q_late.id).await.unwrap().is_some());
    assert_eq!(w.cursor().sequence, 11);

    // A restarted watcher resumes from the saved cursor and reports nothing twice.
    let mut restarted = HiveWatcher::new(config).with_retry_policy(retry);
    restarted.resume(&ctx).await.unwrap();
    assert_eq!(restarted.cursor().sequence, 11);
    let pass = restarted.scan(&ctx).await.unwrap();
    assert!(pass.reported.is_empty());
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(store.raw_pool()).await.unwrap();
    assert_eq!(tickets, 4);
});

store_test!(a_restarted_watcher_reports_idempotently, |store: Store| async move {
    // Without a saved cursor the whole history is read again; ticketing answers AlreadyProcessed.
    let p =
        Purchases::new(store.clone(), Arc::new(StaticRates::development()), PaymentSettings::new(ACCOUNT), &[7u8; 32]);
    let e_hive = event(&store, "25000", "HIVE").await;
    let q = p
        .create_quote(
            QuoteRequest { event_id: e_hive, currency: Currency::Hive, wallet_address: "buyer-one".into() },
            NOW,
        )
        .await
        .unwrap();
    let vars = [
        ("E_HIVE", e_hive.to_string()),
        ("E_HBD", "424242".into()),
        ("Q_EXACT", q.id.clone()),
        ("Q_WRONGCUR", "q_none1".into()),
        ("Q_PARTIAL", "q_none2".into()),
        ("Q_HBD", "q_none3".into()),
        ("Q_LATE", "q_none4".into()),
    ];
    let server = hived(&vars, Arc::new(AtomicI64::new(99_002_000))).await;
    let ctx = WatchContext::new(Chain::Hive, p.clone(), Arc::new(ChainMetrics::default())).with_clock(Arc::new(|| NOW));
    let first = HiveWatcher::new(HiveConfig::new(&server.url, ACCOUNT)).scan(&ctx).await.unwrap();
    assert_eq!(first.pages, 1);
    assert!(matches!(first.reported[0].1, Some(PaymentOutcome::TicketIssued { .. })));
    let again = HiveWatcher::new(HiveConfig::new(&server.url, ACCOUNT)).scan(&ctx).await.unwrap();
    assert_eq!(again.reported.len(), first.reported.len());
    assert!(again.reported.iter().all(|(_, o)| *o == Some(PaymentOutcome::AlreadyProcessed)), "{:?}", again.reported);

    // Watching an account other than the one quotes name is a configuration error, not a quiet no-op.
    let mut misconfigured = HiveWatcher::new(HiveConfig::new(&server.url, "someone-else"));
    assert!(matches!(misconfigured.resume(&ctx).await, Err(watchers::WatchError::Config(_))));
});

/// One history entry: a transfer to the platform account, in hived's NAI form (HIVE `@@000000021`, HBD
/// `@@000000013`), in block `block`.
fn transfer(sequence: i64, block: i64, from: &str, units: u64, nai: &str, memo: &str) -> Value {
    json!([sequence, {
        "trx_id": format!("{:040x}", 0xabc000 + sequence), "block": block, "trx_in_block": 1, "op_in_trx": 0,
        "virtual_op": false, "timestamp": "2025-11-25T10:00:00",
        "op": {"type": "transfer_operation", "value": {"from": from, "to": ACCOUNT,
            "amount": {"amount": units.to_string(), "precision": 3, "nai": nai}, "memo": memo}}
    }])
}

// The case from issue 18: a third party sends 0.001 HBD with the buyer's memo, then the buyer pays the
// 10 HIVE. The stray HBD is recorded on its own, owed back to its sender; the buyer's quote is untouched by it
// and gets its ticket; nothing is refunded to the buyer. A third party's HIVE with the memo is stray too.
store_test!(a_stray_payment_with_the_buyers_memo_does_not_touch_the_quote, |store: Store| async move {
    let p =
        Purchases::new(store.clone(), Arc::new(StaticRates::development()), PaymentSettings::new(ACCOUNT), &[7u8; 32]);
    let e_hive = event(&store, "10000", "HIVE").await;
    let q = p
        .create_quote(
            QuoteRequest { event_id: e_hive, currency: Currency::Hive, wallet_address: "buyer-one".into() },
            NOW,
        )
        .await
        .unwrap();
    let memo = q.memo.clone().expect("a Hive quote has a memo");
    let history = vec![
        transfer(0, 99_000_001, "mallory", 1, "@@000000013", &memo),
        transfer(1, 99_000_002, "buyer-one", 10_000, "@@000000021", &memo),
        transfer(2, 99_000_003, "mallory", 10_000, "@@000000021", &memo),
    ];
    let irreversible = Arc::new(AtomicI64::new(99_000_001));
    let server = hived_serving(history, irreversible.clone()).await;
    let ctx = WatchContext::new(Chain::Hive, p.clone(), Arc::new(ChainMetrics::default())).with_clock(Arc::new(|| NOW));
    let mut w = HiveWatcher::new(HiveConfig::new(&server.url, ACCOUNT));
    w.resume(&ctx).await.unwrap();

    let pass = w.scan(&ctx).await.unwrap();
    assert_eq!(pass.reported.len(), 1);
    assert_eq!(pass.reported[0].1, Some(PaymentOutcome::RefundDue { reason: "wrong_currency" }));
    let after = p.quote(&q.id).await.unwrap().unwrap();
    assert_eq!(
        (after.status.as_str(), after.received_units.as_str()),
        ("awaiting_payment", "0"),
        "the stray left the quote alone"
    );

    irreversible.store(99_000_003, Ordering::SeqCst);
    let pass = w.scan(&ctx).await.unwrap();
    let outcomes: Vec<_> = pass.reported.iter().map(|(r, o)| (r.from_address.clone().unwrap(), o.clone())).collect();
    assert!(
        matches!(outcomes[0], (ref f, Some(PaymentOutcome::TicketIssued { .. })) if f == "buyer-one"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], ("mallory".to_string(), Some(PaymentOutcome::RefundDue { reason: "third_party" })));
    assert_eq!(p.quote(&q.id).await.unwrap().unwrap().status, "paid");

    // The refunds: each stray owed to its sender, none to the buyer, none filed under the quote.
    type Refund = (String, String, String, Option<String>, Option<String>);
    let refunds: Vec<Refund> = sqlx::query_as(
        "SELECT reason, currency, amount_units, recipient, quote_id FROM ledger_entries WHERE kind = 'refund' ORDER BY id",
    )
    .fetch_all(store.raw_pool())
    .await
    .unwrap();
    assert_eq!(
        refunds,
        vec![
            ("wrong_currency".into(), "HBD".into(), "1".into(), Some("mallory".into()), None),
            ("third_party".into(), "HIVE".into(), "10000".into(), Some("mallory".into()), None),
        ]
    );
    let strays: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT quote_id, status FROM payments WHERE from_address = 'mallory' ORDER BY id")
            .fetch_all(store.raw_pool())
            .await
            .unwrap();
    assert_eq!(strays, vec![(None, "refund_due".to_string()), (None, "refund_due".to_string())]);
    let audited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'payment.stray'")
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(audited, 2);
});
