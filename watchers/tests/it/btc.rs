//! The Bitcoin watcher against an Esplora-compatible server serving real blocks and transactions (built with
//! the `bitcoin` crate) that pay addresses ticketing derived from the BIP-84 test account. SQLite and PostgreSQL.

use crate::{esplora, fixtures};

use chains::{Chain, Currency};
use ticketing::store_test;
use ticketing::testing::RawSql;
use watchers::{BtcWatcher, BtcWatcherConfig, PaymentWatcher, WatchContext};

use esplora::{payment, Esplora};
use fixtures::*;

const PRICE: u64 = 100_000; // 0.001 BTC
/// The BIP-84 test account's first receiving address (ticketing derives index 0 for the first quote).
const FIRST_ADDRESS: &str = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu";

async fn started(esplora: &Esplora, ctx: &WatchContext) -> BtcWatcher {
    let mut config = BtcWatcherConfig::new(&esplora.url);
    config.poll_interval_ms = 50;
    let mut watcher = BtcWatcher::new(config).unwrap();
    watcher.resume(ctx).await.unwrap();
    watcher.poll_once(ctx).await.unwrap(); // cursor at the tip
    watcher
}

/// A change address that is not a quote's: a P2WPKH of some other key.
const OTHER: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";

store_test!(payment_in_two_outputs_is_credited_after_two_blocks, |store: Store| async move {
    let esplora = Esplora::start(100).await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Btc, "0.001").await;
    let ctx = context(&p, Chain::Btc);
    let mut w = started(&esplora, &ctx).await;
    let q = quote(&p, event_id, Currency::Btc).await;
    assert_eq!(q.payment_address, FIRST_ADDRESS, "the BIP-84 account's first receiving address");

    let txid =
        esplora.broadcast(payment(1, &[(&q.payment_address, 60_000), (OTHER, 5_000), (&q.payment_address, 40_000)]));
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reported_pending, 2, "two outputs seen in the mempool");
    assert_eq!(reload(&p, &q).await.status, "seen");

    esplora.mine();
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!((r.reported_pending, r.reported_final), (2, 0));
    let q1 = reload(&p, &q).await;
    assert_eq!((q1.status.as_str(), q1.confirmations), ("confirming", 1));
    assert!(ticket(&p, &q).await.is_none(), "1 confirmation is not final");

    esplora.mine_empty(1);
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reported_final, 2);
    let t = ticket(&p, &q).await.expect("ticket after 2 confirmations");
    assert_eq!(t.amount_paid_units, PRICE.to_string());
    let outputs: Vec<(String, i64)> = payments(&store, &q).await.into_iter().map(|(t, i, _)| (t, i)).collect();
    assert_eq!(outputs, vec![(txid.to_string(), 0), (txid.to_string(), 2)]);
    assert_eq!(ctx.metrics().payments_confirmed.get(), 2);
});

// A quote paid and confirmed before the watcher's first tick ever (a node slow to answer at start-up, say): the
// first tick starts a reorganisation's depth below the tip, so the payment's block is scanned, not skipped.
store_test!(a_payment_mined_before_the_watcher_s_first_tick_is_still_credited, |store: Store| async move {
    let esplora = Esplora::start(100).await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Btc, "0.001").await;
    let ctx = context(&p, Chain::Btc);
    let q = quote(&p, event_id, Currency::Btc).await;
    esplora.broadcast(payment(7, &[(&q.payment_address, PRICE)]));
    esplora.mine();
    esplora.mine_empty(1);
    let mut w = BtcWatcher::new(BtcWatcherConfig::new(&esplora.url)).unwrap();
    w.resume(&ctx).await.unwrap();
    assert!(w.follower().cursor().is_none(), "no cursor stored yet");
    w.poll_once(&ctx).await.unwrap();
    let t = ticket(&p, &q).await.expect("credited from a block mined before the first tick");
    assert_eq!(t.amount_paid_units, PRICE.to_string());
});

store_test!(reorg_orphans_a_confirming_payment, |store: Store| async move {
    let esplora = Esplora::start(100).await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Btc, "0.001").await;
    let ctx = context(&p, Chain::Btc);
    let mut w = started(&esplora, &ctx).await;
    let q = quote(&p, event_id, Currency::Btc).await;

    let txid = esplora.broadcast(payment(2, &[(&q.payment_address, PRICE)]));
    esplora.mine();
    w.poll_once(&ctx).await.unwrap();
    assert_eq!(reload(&p, &q).await.confirmations, 1);

    esplora.reorg(1); // the payment's block is replaced by a longer fork without it
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.orphaned, 1, "{r:?}");
    assert_eq!(payments(&store, &q).await, vec![(txid.to_string(), 0, "orphaned".to_string())]);
    assert_eq!(reload(&p, &q).await.status, "awaiting_payment");
    esplora.mine_empty(3);
    w.poll_once(&ctx).await.unwrap();
    assert!(ticket(&p, &q).await.is_none(), "never credited from a block that left the chain");
    assert_eq!(ctx.metrics().payments_orphaned.get(), 1);
});

store_test!(replaced_by_fee_transaction_is_orphaned_and_the_replacement_credited, |store: Store| async move {
    let esplora = Esplora::start(100).await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Btc, "0.001").await;
    let ctx = context(&p, Chain::Btc);
    let mut w = started(&esplora, &ctx).await;
    let q = quote(&p, event_id, Currency::Btc).await;

    let first = esplora.broadcast(payment(3, &[(&q.payment_address, PRICE), (OTHER, 50_000)]));
    w.poll_once(&ctx).await.unwrap();
    assert_eq!(reload(&p, &q).await.status, "seen");
    // Same input, higher fee (less change): the first transaction disappears.
    let second = esplora.replace(first, payment(3, &[(&q.payment_address, PRICE), (OTHER, 40_000)]));
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!((r.orphaned, r.reported_pending), (1, 1), "{r:?}");

    esplora.mine();
    esplora.mine_empty(1);
    w.poll_once(&ctx).await.unwrap();
    assert!(ticket(&p, &q).await.is_some());
    assert_eq!(
        payments(&store, &q).await,
        vec![(first.to_string(), 0, "orphaned".to_string()), (second.to_string(), 0, "credited".to_string())]
    );
});

store_test!(restart_resumes_and_a_rescan_credits_nothing_twice, |store: Store| async move {
    let esplora = Esplora::start(100).await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Btc, "0.001").await;
    let ctx = context(&p, Chain::Btc);
    let mut w = started(&esplora, &ctx).await;
    let q = quote(&p, event_id, Currency::Btc).await;
    esplora.broadcast(payment(4, &[(&q.payment_address, PRICE)]));
    esplora.mine();
    w.poll_once(&ctx).await.unwrap();
    drop(w);

    esplora.mine_empty(2);
    let mut w = BtcWatcher::new(BtcWatcherConfig::new(&esplora.url)).unwrap();
    w.resume(&ctx).await.unwrap();
    assert_eq!(w.follower().cursor().unwrap().0, 101);
    assert_eq!(w.follower().pending().count(), 1);
    w.poll_once(&ctx).await.unwrap();
    assert!(ticket(&p, &q).await.is_some());

    // Back to before the payment's block: it is scanned and reported again; ticketing keeps one credit.
    let hash = esplora_hash(&esplora, 100).await;
    store.save_watcher_cursor(Chain::Btc, 100, &hash, ticketing::now_ms()).await.unwrap();
    let mut w = BtcWatcher::new(BtcWatcherConfig::new(&esplora.url)).unwrap();
    w.resume(&ctx).await.unwrap();
    let r = w.poll_once(&ctx).await.unwrap();
    // The paid quote is still watched (the watch window, read from the store): the output is reported again
    // and ticketing recognises it (AlreadyProcessed).
    assert_eq!((r.blocks_scanned, r.reported_final), (3, 1), "{r:?}");
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(store.raw_pool()).await.unwrap();
    assert_eq!(tickets, 1);
    assert_eq!(payments(&store, &q).await.len(), 1);
});

async fn esplora_hash(esplora: &Esplora, height: i64) -> String {
    reqwest::get(format!("{}/block-height/{height}", esplora.url)).await.unwrap().text().await.unwrap()
}

store_test!(payment_seen_before_expiry_is_followed_after_it, |store: Store| async move {
    let esplora = Esplora::start(100).await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Btc, "0.001").await;
    let later = ticketing::now_ms() + 20 * 60 * 1000; // after the quote's 15 minutes
    let ctx = context(&p, Chain::Btc);
    let mut w = started(&esplora, &ctx).await;
    let q = quote(&p, event_id, Currency::Btc).await;
    esplora.broadcast(payment(5, &[(&q.payment_address, PRICE)]));
    w.poll_once(&ctx).await.unwrap();
    assert_eq!(reload(&p, &q).await.status, "seen");

    // The quote expires (the sweeper runs) before the block comes; the watcher still follows the payment.
    assert_eq!(p.expire_quotes(None, later).await.unwrap(), 1);
    assert!(p.open_quotes(Chain::Btc).await.unwrap().is_empty());
    let ctx = ctx.with_clock(std::sync::Arc::new(move || later));
    esplora.mine();
    esplora.mine_empty(1);
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reported_final, 1, "{r:?}");
    assert!(ticket(&p, &q).await.is_some(), "a late payment that still covers the price gets a seat");
});

// Durable watching: what a watcher looks for is read from the store, so a payment to a quote that expired
// while the process was down, and a second payment after another restart, are dealt with exactly as without a
// restart; past the watch window the address is no longer looked at (that is `gateway admin rescan`'s job).
store_test!(after_restarts_payments_to_an_expired_quote_are_credited_then_refunded, |store: Store| async move {
    let esplora = Esplora::start(100).await;
    let event_id = event(&store, 10, Currency::Btc, "0.001").await;
    let q = {
        let p = purchases(&store);
        let ctx = context(&p, Chain::Btc);
        let _w = started(&esplora, &ctx).await;
        quote(&p, event_id, Currency::Btc).await
    }; // the process stops: watcher and Purchases dropped

    // A new process, 20 minutes later: the quote expired meanwhile and never was open during this run.
    let later = ticketing::now_ms() + 20 * 60 * 1000;
    let p = purchases(&store);
    assert_eq!(p.expire_quotes(None, later).await.unwrap(), 1);
    let ctx = context(&p, Chain::Btc).with_clock(std::sync::Arc::new(move || later));
    let mut w = BtcWatcher::new(BtcWatcherConfig::new(&esplora.url)).unwrap();
    w.resume(&ctx).await.unwrap();
    let first = esplora.broadcast(payment(6, &[(&q.payment_address, PRICE)]));
    esplora.mine();
    esplora.mine_empty(1);
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reported_final, 1, "{r:?}");
    assert!(ticket(&p, &q).await.is_some(), "a late payment covering the price gets a free seat");
    assert_eq!(ctx.metrics().payments_seen.get(), 1);
    drop(w);

    // Another restart (as the supervisor does after an RPC error); the buyer pays a second time.
    let mut w = BtcWatcher::new(BtcWatcherConfig::new(&esplora.url)).unwrap();
    w.resume(&ctx).await.unwrap();
    let second = esplora.broadcast(payment(7, &[(&q.payment_address, PRICE)]));
    esplora.mine();
    esplora.mine_empty(1);
    w.poll_once(&ctx).await.unwrap();
    assert_eq!(refunds(&store, &q).await, vec![("overpaid".to_string(), PRICE.to_string())]);
    assert_eq!(
        payments(&store, &q).await,
        vec![(first.to_string(), 0, "credited".to_string()), (second.to_string(), 0, "refund_due".to_string())]
    );

    // Past the window (7 days after the quote's last change) the address is no longer watched.
    let past = later + 8 * 24 * 3_600_000;
    let ctx = context(&p, Chain::Btc).with_clock(std::sync::Arc::new(move || past));
    let mut w = BtcWatcher::new(BtcWatcherConfig::new(&esplora.url)).unwrap();
    w.resume(&ctx).await.unwrap();
    esplora.broadcast(payment(8, &[(&q.payment_address, PRICE)]));
    esplora.mine();
    esplora.mine_empty(1);
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reported_final + r.reported_pending, 0, "{r:?}");
    assert_eq!(payments(&store, &q).await.len(), 2);
});

// A reorganisation deeper than the confirmation policy after crediting: the payment is reversed (ticket
// `payment_reversed`, joins refused with that reason, seat back on sale, sale entries cancelled: the payout is
// held; an audit row, the metric). When the same transaction lands again, the quote gets its ticket back.
store_test!(a_reorg_after_crediting_reverses_the_payment_and_a_relanded_one_restores_it, |store: Store| async move {
    let esplora = Esplora::start(100).await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Btc, "0.001").await;
    let ctx = context(&p, Chain::Btc);
    let mut w = started(&esplora, &ctx).await;
    let q = quote(&p, event_id, Currency::Btc).await;
    let txid = esplora.broadcast(payment(9, &[(&q.payment_address, PRICE)]));
    esplora.mine();
    esplora.mine_empty(1);
    w.poll_once(&ctx).await.unwrap();
    let t = ticket(&p, &q).await.expect("credited at 2 confirmations");
    assert_eq!(t.status, "valid");

    esplora.reorg(2); // both blocks replaced by a longer fork without the payment
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reversed, 1, "{r:?}");
    assert_eq!(ticket(&p, &q).await.unwrap().status, "payment_reversed");
    let refused = store.check_ticket_admission(event_id, t.id, ticketing::now_ms() + 24 * 3_600_000, 0).await.unwrap();
    assert_eq!(refused.unwrap_err(), ticketing::attendance::Refusal::TicketInvalid("payment_reversed".into()));
    assert_eq!(payments(&store, &q).await, vec![(txid.to_string(), 0, "orphaned".to_string())]);
    let sale: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, status FROM ledger_entries WHERE quote_id = $1 ORDER BY id")
            .bind(&q.id)
            .fetch_all(store.raw_pool())
            .await
            .unwrap();
    assert_eq!(sale, vec![("commission".into(), "cancelled".into()), ("payout".into(), "cancelled".into())]);
    let (held, sold): (i64, i64) = sqlx::query_as("SELECT seats_held, tickets_sold FROM events WHERE id = $1")
        .bind(event_id)
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!((held, sold), (0, 0), "the seat is back on sale");
    let q1 = reload(&p, &q).await;
    assert_eq!((q1.status.as_str(), q1.received_units.as_str()), ("awaiting_payment", "0"));
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'payment.reversed' AND subject = $1")
            .bind(txid.to_string())
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
    assert_eq!(audited, 1);
    assert_eq!(ctx.metrics().payments_reversed.get(), 1);
    // Reversing is idempotent: the next tick finds nothing more to reverse.
    assert_eq!(w.poll_once(&ctx).await.unwrap().reversed, 0);

    // The same transaction is mined again in the new chain: the quote's ticket comes back, credited once.
    esplora.broadcast(payment(9, &[(&q.payment_address, PRICE)]));
    esplora.mine();
    esplora.mine_empty(1);
    w.poll_once(&ctx).await.unwrap();
    let back = ticket(&p, &q).await.unwrap();
    assert_eq!((back.id, back.status.as_str()), (t.id, "valid"));
    assert_eq!(payments(&store, &q).await, vec![(txid.to_string(), 0, "credited".to_string())]);
    let sale: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, status FROM ledger_entries WHERE quote_id = $1 ORDER BY id")
            .bind(&q.id)
            .fetch_all(store.raw_pool())
            .await
            .unwrap();
    assert_eq!(sale, vec![("commission".into(), "pending".into()), ("payout".into(), "pending".into())]);
});

// `gateway admin rescan`: a payment to a quote closed longer ago than the watch window is not seen by the
// watcher; a rescan from a height finds it and records it (here a ticket: the seat is free, the price in BTC
// unchanged), a second rescan changes nothing, the watcher's cursor is left alone, and a rescan from a time
// looks only for quotes made since.
store_test!(a_rescan_records_a_payment_made_after_the_watch_window, |store: Store| async move {
    use watchers::rescan::{rescan, RescanFrom};
    let esplora = Esplora::start(100).await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Btc, "0.001").await;
    let now = ticketing::now_ms();
    let days = |n: i64| n * 24 * 3_600_000;
    sqlx::query("UPDATE events SET sales_start = $2 WHERE id = $1")
        .bind(event_id)
        .bind(now - days(10))
        .execute(store.raw_pool())
        .await
        .unwrap();
    let q = p
        .create_quote(
            ticketing::purchases::QuoteRequest { event_id, currency: Currency::Btc, wallet_address: BTC_BUYER.into() },
            now - days(9),
        )
        .await
        .unwrap();
    assert_eq!(p.expire_quotes(None, now).await.unwrap(), 1);
    // Closed nine days ago, as far as the store says.
    sqlx::query("UPDATE quotes SET updated_at = expires_at WHERE id = $1")
        .bind(&q.id)
        .execute(store.raw_pool())
        .await
        .unwrap();

    let ctx = context(&p, Chain::Btc);
    let mut w = started(&esplora, &ctx).await;
    let txid = esplora.broadcast(payment(10, &[(&q.payment_address, PRICE)]));
    esplora.mine();
    esplora.mine_empty(1);
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reported_final + r.reported_pending, 0, "past the window: not watched {r:?}");
    assert!(payments(&store, &q).await.is_empty());
    let cursor = store.watcher_cursor(Chain::Btc).await.unwrap().unwrap();

    let config = watchers::WatchersConfig { btc: Some(BtcWatcherConfig::new(&esplora.url)), ..Default::default() };
    let since_an_hour = rescan(&config, Chain::Btc, RescanFrom::Time(now - 3_600_000), p.clone()).await.unwrap();
    assert_eq!((since_an_hour.quotes, since_an_hour.reported), (0, 0), "{since_an_hour:?}");

    let report = rescan(&config, Chain::Btc, RescanFrom::Height(100), p.clone()).await.unwrap();
    assert_eq!((report.quotes, report.reported, report.to_height), (1, 1, esplora.height() - 1), "{report:?}");
    assert_eq!(payments(&store, &q).await, vec![(txid.to_string(), 0, "credited".to_string())]);
    assert!(ticket(&p, &q).await.is_some());

    let again = rescan(&config, Chain::Btc, RescanFrom::Height(100), p.clone()).await.unwrap();
    assert_eq!(again.reported, 1, "reported again, recognised");
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(store.raw_pool()).await.unwrap();
    let entries: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries").fetch_one(store.raw_pool()).await.unwrap();
    assert_eq!((tickets, entries, payments(&store, &q).await.len()), (1, 2, 1));
    let after = store.watcher_cursor(Chain::Btc).await.unwrap().unwrap();
    assert_eq!(
        (after.height, after.block_hash),
        (cursor.height, cursor.block_hash),
        "the watcher's cursor is not moved"
    );
});

#[test]
fn rescan_starts_parse_as_heights_or_times() {
    use watchers::rescan::RescanFrom;
    assert_eq!("840000".parse::<RescanFrom>(), Ok(RescanFrom::Height(840_000)));
    assert_eq!("2026-01-31".parse::<RescanFrom>(), Ok(RescanFrom::Time(1_769_817_600_000)));
    assert_eq!("2026-01-31T00:00:01Z".parse::<RescanFrom>(), Ok(RescanFrom::Time(1_769_817_601_000)));
    assert!("yesterday".parse::<RescanFrom>().is_err());
    assert!("-5".parse::<RescanFrom>().is_err());
}

// A large quote waits for more confirmations than the chain's policy (BTCPay's speed policy): recorded on the
// quote, followed by the watcher, shown as progress.
store_test!(a_large_quote_waits_for_more_confirmations, |store: Store| async move {
    let esplora = Esplora::start(100).await;
    let mut settings = ticketing::purchases::PaymentSettings::new("dlux-tickets");
    settings.btc = Some(chains::derive::BtcAccount::parse(ZPUB, chains::signature::BtcNetwork::Mainnet).unwrap());
    settings.large_quote_confirmations.insert(Chain::Btc, (100_000, 4));
    let p = ticketing::purchases::Purchases::new(
        store.clone(),
        std::sync::Arc::new(ticketing::rates::StaticRates::development()),
        settings,
        &[7u8; 32],
    );
    let small_event = event(&store, 10, Currency::Btc, "0.00099999").await;
    let large_event = event(&store, 10, Currency::Btc, "0.001").await;
    let ctx = context(&p, Chain::Btc);
    let mut w = started(&esplora, &ctx).await;
    let small = quote(&p, small_event, Currency::Btc).await;
    let large = quote(&p, large_event, Currency::Btc).await;
    assert_eq!((small.confirmations_required, large.confirmations_required), (2, 4));

    esplora.broadcast(payment(11, &[(&small.payment_address, 99_999), (&large.payment_address, PRICE)]));
    esplora.mine();
    esplora.mine_empty(1);
    w.poll_once(&ctx).await.unwrap();
    assert!(ticket(&p, &small).await.is_some(), "the policy's 2 confirmations");
    assert!(ticket(&p, &large).await.is_none(), "2 of 4");
    let l = reload(&p, &large).await;
    assert_eq!((l.status.as_str(), l.confirmations), ("confirming", 2));

    esplora.mine_empty(1);
    w.poll_once(&ctx).await.unwrap();
    assert_eq!(reload(&p, &large).await.confirmations, 3);
    esplora.mine_empty(1);
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reported_final, 1, "{r:?}");
    assert!(ticket(&p, &large).await.is_some(), "4 confirmations");
});
