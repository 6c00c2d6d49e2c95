//! The EVM watcher against a real local node (anvil), on SQLite and PostgreSQL.

use crate::{anvil, fixtures};

use chains::{Chain, Currency};
use ticketing::purchases::PaymentOutcome;
use ticketing::testing::RawSql;
use ticketing::{store_test, Store};
use watchers::{EvmWatcher, EvmWatcherConfig, PaymentWatcher, TokenConfig, WatchContext};

use anvil::Anvil;
use fixtures::*;

const PRICE: u128 = 10_000_000_000_000_000; // 0.01 ETH

/// An ETH watcher counting `confirmations` blocks (no finalized tag), starting at the node's current head.
fn counting(anvil: &Anvil, confirmations: u32) -> EvmWatcherConfig {
    let mut config = EvmWatcherConfig::new(Chain::Eth, &anvil.url);
    config.confirmations = Some(confirmations);
    config.use_finalized_tag = Some(false);
    config.chain_id = Some(31337);
    config.poll_interval_ms = 50;
    config
}

async fn started(config: EvmWatcherConfig, ctx: &WatchContext) -> EvmWatcher {
    let mut watcher = EvmWatcher::new(config).unwrap();
    watcher.resume(ctx).await.unwrap();
    watcher
}

store_test!(payment_is_credited_once_final_with_progress_before, |store: Store| async move {
    let anvil = Anvil::start().await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Eth, "0.01").await;
    let ctx = context(&p, Chain::Eth);
    let mut w = started(counting(&anvil, 3), &ctx).await;
    w.poll_once(&ctx).await.unwrap(); // cursor at the head
    let q = quote(&p, event_id, Currency::Eth).await;

    let txid = anvil.pay(1, &q.payment_address, PRICE).await;
    anvil.mine(1).await;
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!((r.reported_pending, r.reported_final), (1, 0));
    let seen = reload(&p, &q).await;
    assert_eq!((seen.status.as_str(), seen.confirmations), ("confirming", 1));
    assert!(ticket(&p, &q).await.is_none());

    anvil.mine(1).await;
    w.poll_once(&ctx).await.unwrap();
    assert_eq!(reload(&p, &q).await.confirmations, 2, "confirming 2/3");
    assert!(ticket(&p, &q).await.is_none(), "never credited before the policy says final");

    anvil.mine(1).await;
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reported_final, 1);
    let t = ticket(&p, &q).await.expect("ticket after 3 confirmations");
    assert_eq!(t.amount_paid_units, PRICE.to_string());
    assert_eq!(payments(&store, &q).await, vec![(txid, 0, "credited".to_string())]);
    assert_eq!(reload(&p, &q).await.status, "paid");
    let m = ctx.metrics();
    assert_eq!((m.payments_seen.get(), m.payments_confirmed.get()), (1, 1));
    assert_eq!(m.head_height.get(), anvil.head().await);
    assert_eq!(m.lag_blocks.get(), 0);
});

store_test!(finalized_tag_policy_waits_for_the_finalized_block, |store: Store| async move {
    let anvil = Anvil::start().await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Eth, "0.01").await;
    let ctx = context(&p, Chain::Eth);
    let config = EvmWatcherConfig::new(Chain::Eth, &anvil.url); // ETH default: the `finalized` tag
    assert_eq!(config.finality(), watchers::Finality::FinalizedTag { fallback: 12 });
    let mut w = started(config, &ctx).await;
    w.poll_once(&ctx).await.unwrap();
    let q = quote(&p, event_id, Currency::Eth).await;
    anvil.pay(1, &q.payment_address, PRICE).await;
    anvil.mine(20).await;
    w.poll_once(&ctx).await.unwrap();
    let pending = reload(&p, &q).await;
    assert_eq!((pending.status.as_str(), pending.confirmations), ("confirming", 20));
    assert!(ticket(&p, &q).await.is_none(), "20 blocks on top, but not finalized yet");
    anvil.mine(100).await;
    w.poll_once(&ctx).await.unwrap();
    assert!(ticket(&p, &q).await.is_some(), "credited once below anvil's finalized block");
});

store_test!(underpaid_and_overpaid, |store: Store| async move {
    let anvil = Anvil::start().await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Eth, "0.01").await;
    let ctx = context(&p, Chain::Eth);
    let mut w = started(counting(&anvil, 1), &ctx).await;
    w.poll_once(&ctx).await.unwrap();
    let under = quote(&p, event_id, Currency::Eth).await;
    let over = quote(&p, event_id, Currency::Eth).await;
    assert_ne!(under.payment_address, over.payment_address, "a fresh address per quote");

    anvil.pay(1, &under.payment_address, PRICE / 2).await;
    anvil.pay(2, &over.payment_address, PRICE + 5).await;
    anvil.mine(1).await;
    w.poll_once(&ctx).await.unwrap();
    let u = reload(&p, &under).await;
    assert_eq!((u.status.as_str(), u.received_units.as_str()), ("seen", (PRICE / 2).to_string().as_str()));
    assert!(ticket(&p, &under).await.is_none());
    assert!(ticket(&p, &over).await.is_some());
    assert_eq!(refunds(&store, &over).await, vec![("overpaid".to_string(), "5".to_string())]);

    // The rest of the underpaid quote, in a second transaction: now it is paid.
    anvil.pay(1, &under.payment_address, PRICE / 2).await;
    anvil.mine(1).await;
    w.poll_once(&ctx).await.unwrap();
    assert!(ticket(&p, &under).await.is_some());
    assert_eq!(payments(&store, &under).await.len(), 2);
});

store_test!(erc20_transfers_are_found_in_logs, |store: Store| async move {
    let anvil = Anvil::start().await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Eth, "0.01").await;
    let ctx = context(&p, Chain::Eth);
    let token = anvil.deploy_token().await;
    let mut config = counting(&anvil, 2);
    config.tokens = vec![TokenConfig { symbol: "USDC".into(), contract: token.clone(), decimals: 6, currency: None }];
    let mut w = started(config, &ctx).await;
    w.poll_once(&ctx).await.unwrap();
    let q = quote(&p, event_id, Currency::Eth).await;

    let txid = anvil.pay_token(&token, &q.payment_address, 25_000_000).await; // 25 USDC
    anvil.pay_token(&token, EVM_BUYER, 1).await; // not to a quote: ignored
    anvil.mine(1).await;
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.token_transfers.len(), 1);
    let t = &r.token_transfers[0];
    assert_eq!(
        (t.symbol.as_str(), t.units, t.txid.as_str(), t.contract.as_str()),
        ("USDC", 25_000_000, txid.as_str(), token.as_str())
    );
    assert_eq!((t.quote_id.as_deref(), t.confirmations, t.is_final), (Some(q.id.as_str()), 1, false));
    assert_eq!(t.from_address.as_deref(), Some(anvil.accounts[0].as_str()));

    anvil.mine(1).await;
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.token_transfers.len(), 1);
    assert!(r.token_transfers[0].is_final);
    // A token without a ticketing currency is only listed: nothing was reported, the quote is untouched.
    assert_eq!(reload(&p, &q).await.status, "awaiting_payment");
    assert!(payments(&store, &q).await.is_empty());
});

/// The ETH watcher crediting `token` as USDC.ETH, counting 2 confirmations.
fn with_usdc(anvil: &Anvil, token: &str) -> EvmWatcherConfig {
    let mut config = counting(anvil, 2);
    config.tokens = vec![TokenConfig {
        symbol: "USDC".into(),
        contract: token.into(),
        decimals: 6,
        currency: Some(Currency::UsdcEth),
    }];
    config
}

/// The ledger of a quote's sale: (kind, currency, units), by kind.
async fn ledger(store: &Store, q: &ticketing::purchases::QuoteRow) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT kind, currency, amount_units FROM ledger_entries WHERE quote_id = $1 ORDER BY kind, id")
        .bind(&q.id)
        .fetch_all(store.raw_pool())
        .await
        .unwrap()
}

store_test!(usdc_payment_issues_the_ticket_with_the_exact_split, |store: Store| async move {
    let anvil = Anvil::start().await;
    let token = anvil.deploy_token().await;
    let p = purchases_with_tokens(&store, &[(Currency::UsdcEth, &token)]);
    // 25.000003 USDC: the 20% commission is rounded down to the micro-USDC, the creator gets the rest.
    let event_id = event(&store, 10, Currency::UsdcEth, "25.000003").await;
    let ctx = context(&p, Chain::Eth);
    let mut w = started(with_usdc(&anvil, &token), &ctx).await;
    w.poll_once(&ctx).await.unwrap();
    let q = quote(&p, event_id, Currency::UsdcEth).await;
    assert_eq!((q.currency.as_str(), q.chain.as_str(), q.amount_units.as_str()), ("USDC.ETH", "eth", "25000003"));

    let txid = anvil.pay_token(&token, &q.payment_address, 25_000_003).await;
    anvil.mine(1).await;
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!((r.reported_pending, r.reported_final, r.token_transfers.len()), (1, 0, 0), "{r:?}");
    assert_eq!(reload(&p, &q).await.status, "confirming");
    assert!(ticket(&p, &q).await.is_none(), "not final yet");

    anvil.mine(1).await;
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reported_final, 1);
    let t = ticket(&p, &q).await.expect("ticket once the token transfer is final");
    assert_eq!(
        (t.currency.as_str(), t.amount_paid_units.as_str(), t.wallet_address.as_str()),
        ("USDC.ETH", "25000003", EVM_BUYER)
    );
    // The transfer is output 1 + logIndex (the block's only log: index 0).
    assert_eq!(payments(&store, &q).await, vec![(txid, 1, "credited".to_string())]);
    assert_eq!(
        ledger(&store, &q).await,
        vec![
            ("commission".to_string(), "USDC.ETH".to_string(), "5000000".to_string()),
            ("payout".to_string(), "USDC.ETH".to_string(), "20000003".to_string()),
        ]
    );
    assert_eq!(reload(&p, &q).await.status, "paid");
});

store_test!(underpaid_or_wrong_currency_token_payments_are_not_credited, |store: Store| async move {
    let anvil = Anvil::start().await;
    let token = anvil.deploy_token().await;
    let p = purchases_with_tokens(&store, &[(Currency::UsdcEth, &token)]);
    let usdc_event = event(&store, 10, Currency::UsdcEth, "25").await;
    let eth_event = event(&store, 10, Currency::Eth, "0.01").await;
    let ctx = context(&p, Chain::Eth);
    let other_token = anvil.deploy_token().await; // a contract nobody configured
    let mut w = started(with_usdc(&anvil, &token), &ctx).await;
    w.poll_once(&ctx).await.unwrap();
    let under = quote(&p, usdc_event, Currency::UsdcEth).await;
    let eth = quote(&p, eth_event, Currency::Eth).await;
    let fake = quote(&p, usdc_event, Currency::UsdcEth).await;

    anvil.pay_token(&token, &under.payment_address, 24_999_999).await;
    let wrong = anvil.pay_token(&token, &eth.payment_address, 25_000_000).await;
    anvil.pay_token(&other_token, &fake.payment_address, 25_000_000).await;
    anvil.mine(2).await;
    w.poll_once(&ctx).await.unwrap();

    let u = reload(&p, &under).await;
    assert_eq!((u.status.as_str(), u.received_units.as_str()), ("seen", "24999999"), "one micro-USDC short");
    assert!(ticket(&p, &under).await.is_none());
    // USDC sent to an ETH quote's address: a stray payment, recorded on its own and owed back in USDC to its
    // sender (the Transfer's `from`); the ETH quote is untouched and still payable.
    assert!(ticket(&p, &eth).await.is_none());
    assert_eq!(reload(&p, &eth).await.status, "awaiting_payment");
    assert!(payments(&store, &eth).await.is_empty() && ledger(&store, &eth).await.is_empty());
    // logIndex counts the block's logs: this transfer's is the second.
    let stray: (i64, String, Option<String>) =
        sqlx::query_as("SELECT output_index, status, quote_id FROM payments WHERE txid = $1")
            .bind(&wrong)
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
    assert_eq!(stray, (2, "refund_due".to_string(), None));
    let refund: (String, String, String, Option<String>) = sqlx::query_as(
        "SELECT l.reason, l.currency, l.amount_units, l.recipient FROM ledger_entries l JOIN payments p ON p.id = l.payment_id WHERE p.txid = $1",
    )
    .bind(&wrong)
    .fetch_one(store.raw_pool())
    .await
    .unwrap();
    assert_eq!(refund, ("wrong_currency".into(), "USDC.ETH".into(), "25000000".into(), Some(EVM_BUYER.to_string())));
    // A token with the same symbol from another contract is not USDC.
    assert!(payments(&store, &fake).await.is_empty());
    assert_eq!(reload(&p, &fake).await.status, "awaiting_payment");

    // The missing micro-USDC completes the quote.
    anvil.pay_token(&token, &under.payment_address, 1).await;
    anvil.mine(2).await;
    w.poll_once(&ctx).await.unwrap();
    assert_eq!(ticket(&p, &under).await.expect("paid in two transfers").amount_paid_units, "25000000");
});

#[test]
fn token_currencies_must_belong_to_the_watched_network() {
    let token = |currency, decimals| TokenConfig {
        symbol: "USDC".into(),
        contract: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48".into(),
        decimals,
        currency: Some(currency),
    };
    let watcher = |chain, t: TokenConfig| {
        let mut config = EvmWatcherConfig::new(chain, "http://127.0.0.1:1");
        config.tokens = vec![t];
        EvmWatcher::new(config)
    };
    assert!(watcher(Chain::Eth, token(Currency::UsdcEth, 6)).is_ok());
    assert!(watcher(Chain::Bnb, token(Currency::UsdtBnb, 18)).is_ok());
    assert!(watcher(Chain::Pol, token(Currency::UsdcEth, 6)).is_err(), "USDC.ETH on Polygon");
    assert!(watcher(Chain::Eth, token(Currency::Eth, 18)).is_err(), "token transfers credited as ether");
    assert!(watcher(Chain::Bnb, token(Currency::UsdcBnb, 6)).is_err(), "Binance-Peg USDC has 18 decimals");
    // Read from TOML as the gateway's configuration is.
    let config: EvmWatcherConfig = serde_json::from_value(serde_json::json!({
        "chain": "pol", "rpc_url": "http://x",
        "tokens": [{ "symbol": "USDT", "contract": "0xc2132d05d31c914a87c6611c10748aeb04b58e8f", "decimals": 6, "currency": "usdt-pol" }]
    }))
    .unwrap();
    assert_eq!(config.tokens[0].currency, Some(Currency::UsdtPol));
}

store_test!(reorg_before_finality_orphans_the_payment, |store: Store| async move {
    let anvil = Anvil::start().await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Eth, "0.01").await;
    let ctx = context(&p, Chain::Eth);
    let mut w = started(counting(&anvil, 4), &ctx).await;
    anvil.mine(5).await;
    w.poll_once(&ctx).await.unwrap();
    let q = quote(&p, event_id, Currency::Eth).await;

    let txid = anvil.pay(1, &q.payment_address, PRICE).await;
    anvil.mine(2).await;
    w.poll_once(&ctx).await.unwrap();
    assert_eq!(reload(&p, &q).await.confirmations, 2);

    anvil.reorg(3).await; // the payment's block and the one after it are replaced by empty blocks
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.orphaned, 1);
    assert!(r.rewound >= 2, "{r:?}");
    assert_eq!(payments(&store, &q).await, vec![(txid.clone(), 0, "orphaned".to_string())]);
    let back = reload(&p, &q).await;
    assert_eq!((back.status.as_str(), back.confirmations), ("awaiting_payment", 0));
    assert!(ticket(&p, &q).await.is_none());
    assert_eq!(ctx.metrics().reorgs.get(), 1);

    // Whatever happens to the dropped transaction later (anvil may mine it again), nothing is credited from
    // the orphaned block, and a re-mined transaction is credited only once, after the policy.
    anvil.mine(6).await;
    w.poll_once(&ctx).await.unwrap();
    let credited = ticket(&p, &q).await.is_some();
    let statuses: Vec<String> = payments(&store, &q).await.into_iter().map(|(_, _, s)| s).collect();
    assert_eq!(statuses, vec![if credited { "credited" } else { "orphaned" }.to_string()]);
});

store_test!(restart_resumes_from_the_cursor_and_credits_nothing_twice, |store: Store| async move {
    let anvil = Anvil::start().await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Eth, "0.01").await;
    let ctx = context(&p, Chain::Eth);
    let mut w = started(counting(&anvil, 3), &ctx).await;
    w.poll_once(&ctx).await.unwrap();
    let q = quote(&p, event_id, Currency::Eth).await;
    anvil.pay(1, &q.payment_address, PRICE).await;
    anvil.mine(1).await;
    let first = w.poll_once(&ctx).await.unwrap();
    drop(w); // crash with one payment pending

    anvil.mine(5).await;
    let mut w = started(counting(&anvil, 3), &ctx).await;
    assert_eq!(w.follower().cursor().unwrap().0, first.cursor_height, "resumed from the stored cursor");
    assert_eq!(w.follower().pending().count(), 1, "pending sighting reloaded from the store");
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!((r.blocks_scanned, r.reported_final), (5, 1));
    let t = ticket(&p, &q).await.expect("credited after the restart");

    // A stored cursor whose block the node does not know (as after a reorg while the watcher was down): the
    // watcher goes back and rescans, reports the payment again, ticketing recognises it, nothing changes.
    store.save_watcher_cursor(Chain::Eth, first.cursor_height, "0xlost", ticketing::now_ms()).await.unwrap();
    let mut w = started(counting(&anvil, 3), &ctx).await;
    let r = w.poll_once(&ctx).await.unwrap();
    assert!(r.rewound > 0 && r.blocks_scanned >= 7, "{r:?}");
    assert_eq!(ctx.metrics().reorgs.get(), 1);
    let outcome = p.report_payment(payment_row(&store, &q).await, ticketing::now_ms()).await.unwrap();
    assert_eq!(outcome, PaymentOutcome::AlreadyProcessed);
    assert_eq!(ticket(&p, &q).await.unwrap().id, t.id);
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(store.raw_pool()).await.unwrap();
    let sales: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries").fetch_one(store.raw_pool()).await.unwrap();
    assert_eq!((tickets, sales), (1, 2), "one ticket, one commission and one payout");
});

// Durable watching on EVM: after a restart, a payment to a quote that expired while the process was down is
// still reported and (the event is priced in ETH, a seat is free) gets its ticket; a second payment after
// another restart is refunded as overpaid.
store_test!(after_a_restart_a_payment_to_an_expired_quote_gets_its_ticket, |store: Store| async move {
    let anvil = Anvil::start().await;
    let event_id = event(&store, 10, Currency::Eth, "0.01").await;
    let q = {
        let p = purchases(&store);
        let ctx = context(&p, Chain::Eth);
        let mut w = started(counting(&anvil, 2), &ctx).await;
        w.poll_once(&ctx).await.unwrap();
        quote(&p, event_id, Currency::Eth).await
    };

    let later = ticketing::now_ms() + 20 * 60 * 1000;
    let p = purchases(&store);
    assert_eq!(p.expire_quotes(None, later).await.unwrap(), 1);
    let ctx = context(&p, Chain::Eth).with_clock(std::sync::Arc::new(move || later));
    let mut w = started(counting(&anvil, 2), &ctx).await;
    let first = anvil.pay(0, &q.payment_address, PRICE).await;
    anvil.mine(2).await;
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reported_final, 1, "{r:?}");
    assert!(ticket(&p, &q).await.is_some());
    drop(w);

    let mut w = started(counting(&anvil, 2), &ctx).await;
    let second = anvil.pay(0, &q.payment_address, PRICE).await;
    anvil.mine(2).await;
    w.poll_once(&ctx).await.unwrap();
    assert_eq!(
        payments(&store, &q).await,
        vec![(first, 0, "credited".to_string()), (second, 0, "refund_due".to_string())]
    );
    assert_eq!(refunds(&store, &q).await, vec![("overpaid".to_string(), PRICE.to_string())]);
});

// A reorganisation deeper than the policy after crediting, on anvil (`anvil_reorg`): the payment is reversed,
// the ticket becomes `payment_reversed`, the payout is held (cancelled) and the metric counts it.
store_test!(a_reorg_after_crediting_reverses_the_payment, |store: Store| async move {
    let anvil = Anvil::start().await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Eth, "0.01").await;
    let ctx = context(&p, Chain::Eth);
    let mut w = started(counting(&anvil, 2), &ctx).await;
    anvil.mine(5).await;
    w.poll_once(&ctx).await.unwrap();
    let q = quote(&p, event_id, Currency::Eth).await;
    let txid = anvil.pay(0, &q.payment_address, PRICE).await;
    anvil.mine(2).await;
    w.poll_once(&ctx).await.unwrap();
    assert_eq!(ticket(&p, &q).await.expect("credited at 2 confirmations").status, "valid");

    anvil.reorg(3).await; // the payment's block and the two after it are replaced by empty blocks
    let r = w.poll_once(&ctx).await.unwrap();
    assert_eq!(r.reversed, 1, "{r:?}");
    assert_eq!(ctx.metrics().payments_reversed.get(), 1);
    let statuses: Vec<String> = payments(&store, &q).await.into_iter().map(|(_, _, s)| s).collect();
    let t = ticket(&p, &q).await.unwrap();
    // anvil may put the dropped transaction back in a new block: then it is credited again, after the policy.
    if statuses == ["orphaned"] {
        assert_eq!(t.status, "payment_reversed");
        let ledger: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, status FROM ledger_entries WHERE quote_id = $1 ORDER BY id")
                .bind(&q.id)
                .fetch_all(store.raw_pool())
                .await
                .unwrap();
        assert_eq!(ledger, vec![("commission".into(), "cancelled".into()), ("payout".into(), "cancelled".into())]);
    } else {
        assert_eq!(statuses, ["credited"]);
        assert_eq!(t.status, "valid");
    }
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'payment.reversed' AND subject = $1")
            .bind(&txid)
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
    assert_eq!(audited, 1);
});

/// The stored payment as a final report (what a rescan sends again).
async fn payment_row(store: &Store, q: &ticketing::purchases::QuoteRow) -> ticketing::purchases::PaymentReport {
    let (txid, height, hash): (String, Option<i64>, Option<String>) =
        sqlx::query_as("SELECT txid, block_height, block_hash FROM payments WHERE quote_id = $1")
            .bind(&q.id)
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
    ticketing::purchases::PaymentReport {
        chain: Chain::Eth,
        txid,
        output_index: 0,
        quote_id: None,
        memo: None,
        amount: q.amount().unwrap(),
        to_address: q.payment_address.clone(),
        from_address: None,
        block_height: height,
        block_hash: hash,
        confirmations: 10,
        is_final: true,
    }
}
