//! The Solana watcher against a local JSON-RPC server replaying mainnet-shaped `getSignaturesForAddress` and
//! `getTransaction` (`jsonParsed`) responses, reporting to ticketing on SQLite and PostgreSQL.

use crate::jsonrpc_replay;

use std::collections::HashMap;
use std::sync::Arc;

use chains::{Amount, Chain, Currency};
use jsonrpc_replay::{fixture, result_of, ReplayServer};
use serde_json::{json, Value};
use ticketing::creators::{AccountName, Tier};
use ticketing::purchases::{PaymentOutcome, PaymentSettings, Purchases, QuoteRequest, QuoteRow};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use ticketing::{store_test, Store};
use watchers::solana::{read_transaction, SolanaConfig, SolanaWatcher, Transfer};
use watchers::{ChainMetrics, PaymentWatcher, RetryPolicy, WatchContext};

const NOW: i64 = 1_900_000_000_000;
const HOUR: i64 = 3_600_000;
const USDC_MINT: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
const CASES: [&str; 7] = ["good", "failed", "wrong_recipient", "partial", "overpaid", "usdc", "usdc_failed"];

fn keys() -> HashMap<String, String> {
    serde_json::from_value(fixture("solana/keys.json", &[])).unwrap()
}

fn reference_of(case: &str) -> String {
    let k = keys();
    let name = match case {
        "good" => "r_good",
        "failed" => "r_failed",
        "wrong_recipient" => "r_wrong",
        "partial" => "r_partial",
        "overpaid" => "r_over",
        "usdc_failed" => "r_usdc_failed",
        _ => "r_usdc",
    };
    k[name].clone()
}

/// Serves each case's recorded responses, by reference and by signature, paging signature lists the way the
/// node does (`before`, `limit`). `lists` replaces a reference's list.
async fn replay_with(lists: HashMap<String, Value>) -> ReplayServer {
    let mut by_reference: HashMap<String, Value> = HashMap::new();
    let mut by_signature: HashMap<String, Value> = HashMap::new();
    for case in CASES {
        let sigs = result_of(fixture(&format!("solana/getSignaturesForAddress_{case}.json"), &[]));
        let tx = result_of(fixture(&format!("solana/getTransaction_{case}.json"), &[]));
        by_signature.insert(sigs[0]["signature"].as_str().unwrap().to_owned(), tx);
        by_reference.insert(reference_of(case), sigs);
    }
    by_reference.extend(lists);
    ReplayServer::start(move |method, params| {
        let key = params[0].as_str().unwrap_or_default();
        match method {
            "getSignaturesForAddress" => {
                assert_eq!(params[1]["commitment"], "finalized");
                let list = by_reference.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
                let skip = match params[1]["before"].as_str() {
                    Some(before) => list.iter().position(|s| s["signature"] == before).map_or(list.len(), |i| i + 1),
                    None => 0,
                };
                let limit = params[1]["limit"].as_u64().unwrap_or(1000) as usize;
                Ok(Value::Array(list.into_iter().skip(skip).take(limit).collect()))
            }
            "getTransaction" => {
                assert_eq!(params[1]["encoding"], "jsonParsed");
                assert_eq!(params[1]["commitment"], "finalized");
                assert_eq!(params[1]["maxSupportedTransactionVersion"], 0);
                Ok(by_signature.get(key).cloned().unwrap_or(Value::Null))
            }
            _ => Err(json!({"code": -32601, "message": "Method not found"})),
        }
    })
    .await
}

async fn replay() -> ReplayServer {
    replay_with(HashMap::new()).await
}

fn purchases(store: &Store) -> Purchases {
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.sol_account = Some(keys()["platform"].clone());
    settings.tokens.insert(Currency::UsdcSol, USDC_MINT).unwrap();
    Purchases::new(store.clone(), Arc::new(StaticRates::development()), settings, &[7u8; 32])
}

async fn sol_event(store: &Store) -> i64 {
    event_priced(store, Amount::new(Currency::Sol, 500_000_000)).await
}

async fn event_priced(store: &Store, price: Amount) -> i64 {
    let creator = AccountName::parse("alice").unwrap();
    store.set_tier(&creator, Tier::Premium, None, "test").await.unwrap();
    ticketing::testing::SeedEvent::new(NOW - HOUR)
        .space_id("hall")
        .price(&price.units.to_string(), price.currency.symbol())
        .accepts(price.currency.symbol())
        .starts(NOW + 24 * HOUR)
        .ends(NOW + 27 * HOUR)
        .insert(store)
        .await
}

/// A SOL quote whose reference is the recorded case's (the watcher only knows quotes by reference).
async fn quote(p: &Purchases, event_id: i64, case: &str) -> QuoteRow {
    quote_in(p, event_id, Currency::Sol, case).await
}

async fn quote_in(p: &Purchases, event_id: i64, currency: Currency, case: &str) -> QuoteRow {
    let q = p
        .create_quote(QuoteRequest { event_id, currency, wallet_address: keys()["buyer"].clone() }, NOW)
        .await
        .unwrap();
    sqlx::query("UPDATE quotes SET reference = $1 WHERE id = $2")
        .bind(reference_of(case))
        .bind(&q.id)
        .execute(p.store().raw_pool())
        .await
        .unwrap();
    p.quote(&q.id).await.unwrap().unwrap()
}

fn context(p: &Purchases) -> WatchContext {
    WatchContext::new(Chain::Sol, p.clone(), Arc::new(ChainMetrics::default())).with_clock(Arc::new(|| NOW))
}

fn watcher(server: &ReplayServer) -> SolanaWatcher {
    let mut config = SolanaConfig::new(&server.url);
    config.usdc_mint = Some(USDC_MINT.into());
    SolanaWatcher::new(config).with_retry_policy(RetryPolicy { attempts: 1, ..RetryPolicy::default() })
}

store_test!(finalized_payments_are_checked_and_reported, |store: Store| async move {
    let server = replay().await;
    let p = purchases(&store);
    let event_id = sol_event(&store).await;
    let mut quotes = HashMap::new();
    for case in CASES {
        quotes.insert(case, quote(&p, event_id, case).await);
    }
    let ctx = context(&p);
    let mut w = watcher(&server);

    let pass = w.scan(&ctx).await.unwrap();
    let outcome = |case: &str| {
        pass.reported
            .iter()
            .find(|(r, _)| r.quote_id.as_deref() == Some(quotes[case].id.as_str()))
            .map(|(r, o)| (r.clone(), o.clone()))
    };
    let (good, issued) = outcome("good").expect("the good payment is reported");
    assert!(matches!(issued, Some(PaymentOutcome::TicketIssued { .. })), "{issued:?}");
    assert_eq!(good.amount, Amount::new(Currency::Sol, 500_000_000));
    assert!(good.is_final);
    assert_eq!(good.from_address.as_deref(), Some(keys()["buyer"].as_str()));
    assert_eq!(good.block_height, Some(381_200_001));
    assert!(p.ticket_for_quote(&quotes["good"].id).await.unwrap().is_some());

    let (_, partial) = outcome("partial").unwrap();
    assert_eq!(partial, Some(PaymentOutcome::Partial { remaining: Amount::new(Currency::Sol, 250_000_000) }));
    assert_eq!(p.quote(&quotes["partial"].id).await.unwrap().unwrap().status, "seen");

    let (_, over) = outcome("overpaid").unwrap();
    assert!(matches!(over, Some(PaymentOutcome::TicketIssued { .. })));
    let refunds = p.ledger("refund", true, NOW).await.unwrap();
    let mut refunds: Vec<(&str, &str, &str)> =
        refunds.iter().map(|r| (r.reason.as_str(), r.currency.as_str(), r.amount_units.as_str())).collect();
    refunds.sort();

    // USDC sent to a SOL quote: reported in USDC.SOL (output 1), owed back in USDC.
    let (usdc, wrong) = outcome("usdc").expect("the USDC transfer is reported");
    assert_eq!((usdc.amount, usdc.output_index), (Amount::new(Currency::UsdcSol, 12_500_000), 1));
    assert_eq!(wrong, Some(PaymentOutcome::RefundDue { reason: "wrong_currency" }));
    assert_eq!(refunds, [("overpaid", "SOL", "100000000"), ("wrong_currency", "USDC.SOL", "12500000")]);
    // A stray payment: recorded on its own (owed to its fee payer), the SOL quote untouched.
    assert_eq!(p.quote(&quotes["usdc"].id).await.unwrap().unwrap().status, "awaiting_payment");
    let recipient: Option<String> = sqlx::query_scalar(
        "SELECT l.recipient FROM ledger_entries l JOIN payments p ON p.id = l.payment_id WHERE l.reason = 'wrong_currency' AND p.quote_id IS NULL",
    )
    .fetch_one(store.raw_pool())
    .await
    .unwrap();
    assert_eq!(recipient, usdc.from_address);
    assert!(recipient.is_some());

    // Failed (SOL or USDC) or paid elsewhere: skipped, counted, quote untouched.
    for case in ["failed", "wrong_recipient", "usdc_failed"] {
        assert!(outcome(case).is_none(), "{case} must not be reported");
        assert_eq!(p.quote(&quotes[case].id).await.unwrap().unwrap().status, "awaiting_payment", "{case}");
    }
    assert_eq!(pass.skipped.get("failed"), Some(&2));
    assert_eq!(pass.skipped.get("wrong_recipient"), Some(&1));
    assert_eq!(ctx.metrics().skipped.get(), 3);
    // A failed signature is known from the list alone: its transaction is never fetched.
    let fetched: Vec<String> = server
        .calls()
        .into_iter()
        .filter(|(m, _)| m == "getTransaction")
        .map(|(_, p)| p[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fetched.len(), 5);

    // The next tick fetches nothing new for settled signatures; open quotes are still asked about.
    let before = server.count("getTransaction");
    let report = w.poll_once(&ctx).await.unwrap();
    assert_eq!((report.reported_final, report.skipped), (0, 0));
    assert_eq!(server.count("getTransaction"), before);

    // A restarted watcher reads everything again: ticketing answers idempotently.
    let mut fresh = watcher(&server);
    fresh.resume(&ctx).await.unwrap();
    let again = fresh.scan(&ctx).await.unwrap();
    // Every quote in the watch window is read again (closed ones too): the four payments are recognised.
    assert_eq!(again.reported.len(), 4);
    assert!(again.reported.iter().all(|(_, o)| *o == Some(PaymentOutcome::AlreadyProcessed)), "{:?}", again.reported);
    assert_eq!(p.ledger("refund", true, NOW).await.unwrap().len(), 2);
});

store_test!(usdc_pays_a_usdc_quote_and_a_failed_transfer_does_not, |store: Store| async move {
    // The failed transfer listed without its error (as a node lagging on status might): its transaction is
    // fetched, and `meta.err` alone refuses it.
    let mut failed = result_of(fixture("solana/getSignaturesForAddress_usdc_failed.json", &[]));
    failed[0]["err"] = Value::Null;
    let server = replay_with(HashMap::from([(reference_of("usdc_failed"), failed)])).await;
    let p = purchases(&store);
    let event_id = event_priced(&store, Amount::parse(Currency::UsdcSol, "12.5").unwrap()).await;
    let paid = quote_in(&p, event_id, Currency::UsdcSol, "usdc").await;
    let unpaid = quote_in(&p, event_id, Currency::UsdcSol, "usdc_failed").await;
    assert_eq!(
        (paid.currency.as_str(), paid.chain.as_str(), paid.amount_units.as_str()),
        ("USDC.SOL", "sol", "12500000")
    );
    assert_eq!(paid.payment_address, keys()["platform"], "the owner: the wallet pays into its USDC account");
    let ctx = context(&p);
    let mut w = watcher(&server);

    let pass = w.scan(&ctx).await.unwrap();
    assert_eq!(pass.reported.len(), 1, "{:?}", pass.reported);
    let (report, outcome) = &pass.reported[0];
    assert!(matches!(outcome, Some(PaymentOutcome::TicketIssued { .. })), "{outcome:?}");
    assert_eq!((report.quote_id.as_deref(), report.output_index, report.is_final), (Some(paid.id.as_str()), 1, true));
    assert_eq!(report.from_address.as_deref(), Some(keys()["buyer"].as_str()));
    let ticket = p.ticket_for_quote(&paid.id).await.unwrap().expect("a ticket for the USDC payment");
    assert_eq!(
        (ticket.currency.as_str(), ticket.amount_paid_units.as_str(), ticket.chain.as_str()),
        ("USDC.SOL", "12500000", "sol")
    );
    let sale: Vec<(String, String, String)> =
        sqlx::query_as("SELECT kind, currency, amount_units FROM ledger_entries WHERE quote_id = $1 ORDER BY kind")
            .bind(&paid.id)
            .fetch_all(store.raw_pool())
            .await
            .unwrap();
    assert_eq!(
        sale,
        [("commission", "2500000"), ("payout", "10000000")].map(|(k, u)| (
            k.to_owned(),
            "USDC.SOL".to_owned(),
            u.to_owned()
        ))
    );

    assert_eq!(pass.skipped.get("failed"), Some(&1));
    assert_eq!(server.count("getTransaction"), 2, "the failed one was read");
    assert_eq!(p.quote(&unpaid.id).await.unwrap().unwrap().status, "awaiting_payment");
    assert!(p.ticket_for_quote(&unpaid.id).await.unwrap().is_none());
    let payments: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE quote_id = $1")
        .bind(&unpaid.id)
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(payments, 0, "a failed transaction is not a payment");
});

store_test!(a_payment_behind_a_flood_of_failed_transactions_is_found, |store: Store| async move {
    // Anyone can mention a reference: seven failed dust transactions bury the payment, the oldest entry.
    let good = result_of(fixture("solana/getSignaturesForAddress_good.json", &[]))[0].clone();
    let mut list: Vec<Value> = (0..7)
        .map(|i| {
            let mut dust = good.clone();
            dust["signature"] = json!(format!("{}{i}", &good["signature"].as_str().unwrap()[..80]));
            dust["slot"] = json!(381_200_100 + i);
            dust["err"] = json!({"InstructionError": [0, {"Custom": 1}]});
            dust
        })
        .rev()
        .collect();
    list.push(good);
    let server = replay_with(HashMap::from([(reference_of("good"), Value::Array(list))])).await;
    let p = purchases(&store);
    let event_id = sol_event(&store).await;
    let q = quote(&p, event_id, "good").await;
    let ctx = context(&p);
    let mut config = SolanaConfig::new(&server.url);
    config.signature_limit = 3;
    let mut w = SolanaWatcher::new(config).with_retry_policy(RetryPolicy { attempts: 1, ..RetryPolicy::default() });
    let pass = w.scan(&ctx).await.unwrap();
    assert_eq!(server.count("getSignaturesForAddress"), 3);
    assert_eq!(pass.skipped.get("failed"), Some(&7));
    assert!(matches!(pass.reported[0].1, Some(PaymentOutcome::TicketIssued { .. })));
    assert!(p.ticket_for_quote(&q.id).await.unwrap().is_some());
});

store_test!(a_payment_finalized_after_expiry_still_reaches_ticketing, |store: Store| async move {
    // The buyer signs just before the quote expires; the transaction is finalized after it.
    let revealed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sigs = result_of(fixture("solana/getSignaturesForAddress_good.json", &[]));
    let tx = result_of(fixture("solana/getTransaction_good.json", &[]));
    let server = {
        let revealed = revealed.clone();
        ReplayServer::start(move |method, _| match method {
            "getSignaturesForAddress" if revealed.load(std::sync::atomic::Ordering::SeqCst) => Ok(sigs.clone()),
            "getSignaturesForAddress" => Ok(json!([])),
            _ => Ok(tx.clone()),
        })
        .await
    };
    let p = purchases(&store);
    let event_id = sol_event(&store).await;
    let q = quote(&p, event_id, "good").await;
    let clock = Arc::new(std::sync::atomic::AtomicI64::new(NOW));
    let ctx = {
        let clock = clock.clone();
        WatchContext::new(Chain::Sol, p.clone(), Arc::new(ChainMetrics::default()))
            .with_clock(Arc::new(move || clock.load(std::sync::atomic::Ordering::SeqCst)))
    };
    let mut w = watcher(&server);
    assert!(w.scan(&ctx).await.unwrap().reported.is_empty());

    let later = NOW + 20 * 60 * 1000;
    clock.store(later, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(p.expire_quotes(None, later).await.unwrap(), 1);
    assert!(p.open_quotes(Chain::Sol).await.unwrap().is_empty());
    revealed.store(true, std::sync::atomic::Ordering::SeqCst);
    let pass = w.scan(&ctx).await.unwrap();
    assert_eq!(pass.reported.len(), 1, "the expired quote is still watched");
    assert_eq!(pass.reported[0].0.quote_id.as_deref(), Some(q.id.as_str()));
    // The seat was free and the price unchanged: ticketing still sells the ticket.
    assert!(matches!(pass.reported[0].1, Some(PaymentOutcome::TicketIssued { .. })), "{:?}", pass.reported[0].1);
});

// Durable watching on Solana: a fresh watcher (a restarted process) over the same store, after the quote
// expired while nothing ran, still looks at its reference and reports the payment.
store_test!(after_a_restart_a_payment_to_an_expired_quote_is_reported, |store: Store| async move {
    let server = replay().await;
    let event_id = sol_event(&store).await;
    let q = quote(&purchases(&store), event_id, "good").await;
    let later = NOW + 20 * 60 * 1000;
    let p = purchases(&store);
    assert_eq!(p.expire_quotes(None, later).await.unwrap(), 1);
    let ctx =
        WatchContext::new(Chain::Sol, p.clone(), Arc::new(ChainMetrics::default())).with_clock(Arc::new(move || later));
    let mut w = watcher(&server);
    w.resume(&ctx).await.unwrap();
    let pass = w.scan(&ctx).await.unwrap();
    let good: Vec<_> = pass.reported.iter().filter(|(r, _)| r.quote_id.as_deref() == Some(q.id.as_str())).collect();
    assert_eq!(good.len(), 1, "{:?}", pass.reported);
    assert!(matches!(good[0].1, Some(PaymentOutcome::TicketIssued { .. })), "{:?}", good[0].1);
    assert_eq!(ctx.metrics().payments_seen.get(), 1);

    // Past the window the reference is no longer asked about.
    let past = later + 8 * 24 * HOUR;
    let ctx = ctx.with_clock(Arc::new(move || past));
    let mut w = watcher(&server);
    w.resume(&ctx).await.unwrap();
    assert!(w.scan(&ctx).await.unwrap().reported.is_empty());
});

// `gateway admin rescan --chain sol`: past the watch window the watcher no longer asks about a quote's
// reference; a rescan does, records the payment, and a second one changes nothing.
store_test!(a_rescan_finds_a_payment_to_a_quote_past_the_window, |store: Store| async move {
    use watchers::rescan::{rescan_solana, RescanFrom};
    let server = replay().await;
    let event_id = sol_event(&store).await;
    let q = quote(&purchases(&store), event_id, "good").await;
    let p = purchases(&store);
    let past = NOW + 8 * 24 * HOUR;
    assert_eq!(p.expire_quotes(None, NOW + 20 * 60 * 1000).await.unwrap(), 1);
    let ctx =
        WatchContext::new(Chain::Sol, p.clone(), Arc::new(ChainMetrics::default())).with_clock(Arc::new(move || past));
    assert!(watcher(&server).scan(&ctx).await.unwrap().reported.is_empty(), "past the window");

    let report = rescan_solana(watcher(&server), RescanFrom::Time(NOW - HOUR), p.clone()).await.unwrap();
    assert_eq!((report.quotes, report.reported), (1, 1), "{report:?}");
    assert!(p.ticket_for_quote(&q.id).await.unwrap().is_some());
    let again = rescan_solana(watcher(&server), RescanFrom::Height(0), p.clone()).await.unwrap();
    assert_eq!(again.reported, 1);
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(store.raw_pool()).await.unwrap();
    let payments: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments").fetch_one(store.raw_pool()).await.unwrap();
    assert_eq!((tickets, payments), (1, 1));
});

#[test]
fn reads_recorded_transactions() {
    let k = keys();
    let tx = |case: &str| result_of(fixture(&format!("solana/getTransaction_{case}.json"), &[]));
    let platform = k["platform"].as_str();
    assert_eq!(
        read_transaction(&tx("good"), platform, &k["r_good"], None),
        Ok(Transfer::Lamports { lamports: 500_000_000, payer: Some(k["buyer"].clone()), slot: 381_200_001 })
    );
    assert_eq!(read_transaction(&tx("failed"), platform, &k["r_failed"], None), Ok(Transfer::Failed));
    assert_eq!(read_transaction(&tx("wrong_recipient"), platform, &k["r_wrong"], None), Ok(Transfer::WrongRecipient));
    assert_eq!(read_transaction(&tx("good"), platform, &k["r_over"], None), Ok(Transfer::NoReference));
    assert_eq!(
        read_transaction(&tx("usdc"), platform, &k["r_usdc"], Some(USDC_MINT)),
        Ok(Transfer::Token {
            mint: USDC_MINT.into(),
            amount: 12_500_000,
            payer: Some(k["buyer"].clone()),
            slot: 381_200_006
        })
    );
    // Without a configured mint the USDC transfer pays the platform no lamports.
    assert_eq!(read_transaction(&tx("usdc"), platform, &k["r_usdc"], None), Ok(Transfer::WrongRecipient));
    // Another mint into the same account is not USDC; neither is USDC into an account someone else owns.
    assert_eq!(
        read_transaction(&tx("usdc"), platform, &k["r_usdc"], Some(k["other"].as_str())),
        Ok(Transfer::WrongRecipient)
    );
    assert_eq!(read_transaction(&tx("usdc"), &k["other"], &k["r_usdc"], Some(USDC_MINT)), Ok(Transfer::WrongRecipient));
    // A transferChecked that failed (insufficient funds) moved nothing.
    assert_eq!(
        read_transaction(&tx("usdc_failed"), platform, &k["r_usdc_failed"], Some(USDC_MINT)),
        Ok(Transfer::Failed)
    );

    // No parsed system transfer (a program moved the lamports): the recipient's balance change counts.
    let mut unparsed = tx("partial");
    unparsed["transaction"]["message"]["instructions"][0] = json!({
        "accounts": [k["buyer"], platform], "data": "3Bxs4Bc3VYuGVB19", "programId": "11111111111111111111111111111111", "stackHeight": null
    });
    assert!(matches!(
        read_transaction(&unparsed, platform, &k["r_partial"], None),
        Ok(Transfer::Lamports { lamports: 250_000_000, .. })
    ));
    // meta.err set even though the signature list said nothing: still a failure.
    let mut failed = tx("good");
    failed["meta"]["err"] = json!({"InstructionError": [0, {"Custom": 1}]});
    assert_eq!(read_transaction(&failed, platform, &k["r_good"], None), Ok(Transfer::Failed));
}
