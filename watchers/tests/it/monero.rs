//! The Monero watcher against a real offline regtest network (monerod and two monero-wallet-rpc), reporting to
//! ticketing on SQLite: a quote's subaddress is paid from another wallet, seen in the pool, followed through
//! the confirmations and credited at the unlock policy (10).
//!
//! Needs Debian's `monero` package (./scripts/test installs it). Takes about 15–30 s.

use crate::monero_regtest;

use std::sync::Arc;
use std::time::Duration;

use chains::{Amount, Chain, Currency};
use monero_regtest::Regtest;
use ticketing::creators::{AccountName, Tier};
use ticketing::purchases::{PaymentOutcome, PaymentSettings, Purchases, QuoteRequest, XmrAddresses};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use ticketing::testing::TestDb;
use ticketing::{Backend, Store};
use watchers::monero::{MoneroConfig, MoneroWalletRpc, MoneroWatcher};
use watchers::{ChainMetrics, PaymentWatcher, WatchContext};

const NOW: i64 = 1_900_000_000_000;
const HOUR: i64 = 3_600_000;
const PRICE: u64 = 500_000_000_000; // 0.5 XMR

async fn xmr_event(store: &Store) -> i64 {
    let creator = AccountName::parse("alice").unwrap();
    store.set_tier(&creator, Tier::Premium, None, "test").await.unwrap();
    ticketing::testing::SeedEvent::new(NOW - HOUR)
        .space_id("hall")
        .price(&PRICE.to_string(), "XMR")
        .accepts("XMR")
        .starts(NOW + 24 * HOUR)
        .ends(NOW + 27 * HOUR)
        .insert(store)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subaddress_payment_is_credited_after_ten_confirmations() {
    let net = Regtest::start().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.xmr = Some(XmrAddresses(Arc::new(MoneroWalletRpc::new(&net.merchant.url, Duration::from_secs(30)))));
    let p = Purchases::new(store.clone(), Arc::new(StaticRates::development()), settings, &[7u8; 32]);
    let event_id = xmr_event(&store).await;

    // Quote time: ticketing asks the wallet for a fresh subaddress of account 0, labelled with the quote id.
    let quote = p
        .create_quote(
            QuoteRequest { event_id, currency: Currency::Xmr, wallet_address: net.buyer.address.clone() },
            NOW,
        )
        .await
        .unwrap();
    let (address, minor) = (quote.payment_address.clone(), u32::try_from(quote.derivation_index.unwrap()).unwrap());
    assert!(minor >= 1, "a subaddress, not the primary address");
    assert_ne!(address, net.merchant.address);

    let ctx = WatchContext::new(Chain::Xmr, p.clone(), Arc::new(ChainMetrics::default())).with_clock(Arc::new(|| NOW));
    let mut w = MoneroWatcher::new(MoneroConfig { poll_interval_ms: 500, ..MoneroConfig::new(&net.merchant.url) });
    w.resume(&ctx).await.unwrap();
    assert_eq!(w.poll_once(&ctx).await.unwrap().reported_final + w.poll_once(&ctx).await.unwrap().reported_pending, 0);

    // One transaction pays the quote's subaddress and, separately, the wallet's primary address.
    let txid = net.buyer.transfer(&[(&address, PRICE), (&net.merchant.address, 100_000_000_000)]).await;

    // In the pool: seen, not final.
    let pass = w.scan(&ctx).await.unwrap();
    let (report, outcome) =
        pass.reported.iter().find(|(r, _)| r.txid == txid).cloned().expect("the pool transfer is reported");
    assert_eq!(outcome, Some(PaymentOutcome::Pending { confirmations: 0, required: 10 }));
    assert_eq!((report.output_index, report.quote_id.as_deref()), (i64::from(minor), Some(quote.id.as_str())));
    assert_eq!(report.amount, Amount::new(Currency::Xmr, u128::from(PRICE)));
    assert_eq!(pass.skipped.get("not_a_quote_address"), Some(&1), "the primary address is never a quote's");
    assert_eq!(p.quote(&quote.id).await.unwrap().unwrap().status, "seen");

    // Mined, 5 confirmations: still pending.
    let miner = net.buyer.address.clone();
    net.mine(5, &miner).await;
    let pass = w.scan(&ctx).await.unwrap();
    let (report, outcome) = pass.reported.iter().find(|(r, _)| r.txid == txid).cloned().unwrap();
    assert_eq!(outcome, Some(PaymentOutcome::Pending { confirmations: 5, required: 10 }));
    assert!(report.block_height.is_some() && !report.is_final);
    assert_eq!(p.quote(&quote.id).await.unwrap().unwrap().status, "confirming");
    assert!(p.ticket_for_quote(&quote.id).await.unwrap().is_none());

    // 10 confirmations: unlocked, final, the ticket is issued.
    net.mine(5, &miner).await;
    let pass = w.scan(&ctx).await.unwrap();
    let (report, outcome) = pass.reported.iter().find(|(r, _)| r.txid == txid).cloned().unwrap();
    assert!(report.is_final);
    assert_eq!(report.confirmations, 10);
    assert!(matches!(outcome, Some(PaymentOutcome::TicketIssued { .. })), "{outcome:?}");
    let ticket = p.ticket_for_quote(&quote.id).await.unwrap().expect("ticket issued");
    assert_eq!(ticket.amount_paid_units, PRICE.to_string());

    // Later ticks ask only above the final height: the credited transfer is not read again.
    net.mine(1, &miner).await;
    let report = w.poll_once(&ctx).await.unwrap();
    assert_eq!(report.reported_final + report.reported_pending, 0, "{report:?}");
    assert!(report.cursor_height > 0);

    // A restarted watcher resumes from the saved height and has nothing pending.
    let mut restarted = MoneroWatcher::new(MoneroConfig::new(&net.merchant.url));
    restarted.resume(&ctx).await.unwrap();
    let report = restarted.poll_once(&ctx).await.unwrap();
    assert_eq!(report.reported_final + report.reported_pending, 0, "{report:?}");

    // A pool transaction that vanishes (dropped, double spent) is withdrawn: the quote awaits payment again.
    let quote2 = p
        .create_quote(
            QuoteRequest { event_id, currency: Currency::Xmr, wallet_address: net.buyer.address.clone() },
            NOW,
        )
        .await
        .unwrap();
    let address2 = quote2.payment_address.clone();
    net.buyer.refresh().await;
    let txid2 = net.buyer.transfer(&[(&address2, PRICE)]).await;
    let report = restarted.poll_once(&ctx).await.unwrap();
    assert_eq!(report.reported_pending, 1, "{report:?}");
    assert_eq!(p.quote(&quote2.id).await.unwrap().unwrap().status, "seen");
    net.flush_txpool(&txid2).await;
    let report = restarted.poll_once(&ctx).await.unwrap();
    assert_eq!(report.orphaned, 1, "{report:?}");
    assert_eq!(p.quote(&quote2.id).await.unwrap().unwrap().status, "awaiting_payment");
    let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE txid = $1")
        .bind(&txid2)
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(status, "orphaned");
}

// A transfer with an unlock time of its own (issue 18: 30 confirmations later it was still "confirming"): it is
// credited once its unlock height is reached, inside the watch window; one locked past the window is recorded at
// once, after the confirmations, as a refund due with reason `locked`. Neither is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_with_an_unlock_time_are_credited_at_the_unlock_or_refunded_as_locked() {
    let net = Regtest::start().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.xmr = Some(XmrAddresses(Arc::new(MoneroWalletRpc::new(&net.merchant.url, Duration::from_secs(30)))));
    let p = Purchases::new(store.clone(), Arc::new(StaticRates::development()), settings, &[7u8; 32]);
    let event_id = xmr_event(&store).await;
    let request = || QuoteRequest { event_id, currency: Currency::Xmr, wallet_address: net.buyer.address.clone() };
    let soon = p.create_quote(request(), NOW).await.unwrap();
    let never = p.create_quote(request(), NOW).await.unwrap();
    let ctx = WatchContext::new(Chain::Xmr, p.clone(), Arc::new(ChainMetrics::default())).with_clock(Arc::new(|| NOW));
    let mut w = MoneroWatcher::new(MoneroConfig::new(&net.merchant.url));
    w.resume(&ctx).await.unwrap();

    let height = net.height().await;
    // Unlocks 15 blocks on (5 past the 10 confirmations); the other about 140 days on (100,000 blocks).
    let soon_tx = net.buyer.transfer_locked(&[(&soon.payment_address, PRICE)], height + 15).await;
    net.buyer.refresh().await;
    let never_tx = net.buyer.transfer_locked(&[(&never.payment_address, PRICE)], height + 100_000).await;
    let miner = net.buyer.address.clone();
    net.mine(11, &miner).await;
    let pass = w.scan(&ctx).await.unwrap();
    let outcome = |txid: &str| pass.reported.iter().find(|(r, _)| r.txid == txid).map(|(r, o)| (r.clone(), o.clone()));
    let (report, pending) = outcome(&soon_tx).expect("the locked transfer is reported");
    assert!(!report.is_final && report.confirmations >= 10, "{report:?}");
    assert!(matches!(pending, Some(PaymentOutcome::Pending { .. })), "{pending:?}");
    assert!(p.ticket_for_quote(&soon.id).await.unwrap().is_none(), "10 confirmations, but still locked");
    assert_eq!(outcome(&never_tx).unwrap().1, Some(PaymentOutcome::RefundDue { reason: "locked" }));
    let locked: (String, String, Option<String>) = sqlx::query_as(
        "SELECT l.reason, l.status, l.recipient FROM ledger_entries l JOIN payments p ON p.id = l.payment_id WHERE p.txid = $1",
    )
    .bind(&never_tx)
    .fetch_one(store.raw_pool())
    .await
    .unwrap();
    assert_eq!(locked, ("locked".to_string(), "due".to_string(), Some(net.buyer.address.clone())));
    assert_eq!(p.quote(&never.id).await.unwrap().unwrap().status, "awaiting_payment");

    // The unlock height is reached: credited.
    net.mine(5, &miner).await;
    let pass = w.scan(&ctx).await.unwrap();
    let (report, issued) = pass.reported.iter().find(|(r, _)| r.txid == soon_tx).cloned().expect("reported again");
    assert!(report.is_final);
    assert!(matches!(issued, Some(PaymentOutcome::TicketIssued { .. })), "{issued:?}");
    // The refunded one is not recorded twice.
    let refunds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries WHERE reason = 'locked'")
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(refunds, 1);
}
