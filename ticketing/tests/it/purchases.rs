//! The money path, on SQLite and PostgreSQL.

use std::sync::Arc;

use chains::derive::BtcAccount;
use chains::signature::BtcNetwork;
use chains::{Amount, Chain, Currency};
use ticketing::creators::{AccountName, Tier};
use ticketing::payouts::SettleError;
use ticketing::purchases::{
    on_event_cancelled, PaymentOutcome, PaymentReport, PaymentSettings, PurchaseError, Purchases, QuoteLimits,
    QuoteRequest, QuoteScope,
};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use ticketing::{store_test, Store};

const ZPUB: &str =
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
const NOW: i64 = 1_900_000_000_000;
const HOUR: i64 = 3_600_000;
const BTC_BUYER: &str = "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g";

fn purchases(store: &Store) -> Purchases {
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.btc = Some(BtcAccount::parse(ZPUB, BtcNetwork::Mainnet).unwrap());
    Purchases::new(store.clone(), Arc::new(StaticRates::development()), settings, &[7u8; 32])
}

/// An event on sale now, starting in a day. Price as (currency, decimal text).
async fn event(store: &Store, seats: i64, price: (Currency, &str), accepts: &str) -> i64 {
    let creator = AccountName::parse("alice").unwrap();
    store.set_tier(&creator, Tier::Premium, None, "test").await.unwrap();
    let amount = Amount::parse(price.0, price.1).unwrap();
    sqlx::query_scalar(
        "INSERT INTO events (creator_account, title, space_type, space_id, price_units, price_currency, supported_crypto, \
         max_attendees, event_start, event_end, sales_start, sales_end, created_at, updated_at) \
         VALUES ('alice', 'Concert', 'custom', 'hall', $1, $2, $3, $4, $5, $6, $7, $5, $7, $7) RETURNING id",
    )
    .bind(amount.units.to_string())
    .bind(price.0.symbol())
    .bind(accepts)
    .bind(seats)
    .bind(NOW + 24 * HOUR)
    .bind(NOW + 27 * HOUR)
    .bind(NOW - HOUR)
    .fetch_one(store.raw_pool())
    .await
    .unwrap()
}

fn hive_quote(event_id: i64, wallet: &str) -> QuoteRequest {
    QuoteRequest { event_id, currency: Currency::Hive, wallet_address: wallet.into() }
}

fn report(
    quote: &ticketing::purchases::QuoteRow,
    txid: &str,
    units: u128,
    confirmations: i64,
    is_final: bool,
) -> PaymentReport {
    let currency = quote.currency().unwrap();
    PaymentReport {
        chain: quote.chain().unwrap(),
        txid: txid.into(),
        output_index: 0,
        quote_id: None,
        memo: quote.memo.clone(),
        amount: Amount::new(currency, units),
        to_address: quote.payment_address.clone(),
        from_address: Some(quote.wallet_address.clone()),
        block_height: Some(100),
        block_hash: Some("00ab".into()),
        confirmations,
        is_final,
    }
}

async fn seats(store: &Store, event_id: i64) -> (i64, i64) {
    sqlx::query_as("SELECT seats_held, tickets_sold FROM events WHERE id = $1")
        .bind(event_id)
        .fetch_one(store.raw_pool())
        .await
        .unwrap()
}

store_test!(thousand_concurrent_quotes_for_ten_seats_yield_ten, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 10, (Currency::Hive, "25"), "HIVE").await;
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let p = p.clone();
        tasks.push(tokio::spawn(
            async move { p.create_quote(hive_quote(event_id, &format!("buyer{i:04}")), NOW).await },
        ));
    }
    let (mut ok, mut sold_out) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(PurchaseError::SoldOut) => sold_out += 1,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!((ok, sold_out), (10, 990));
    assert_eq!(seats(&store, event_id).await, (10, 0));
    let live: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM quotes WHERE event_id = $1 AND status = 'awaiting_payment'")
            .bind(event_id)
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
    assert_eq!(live, 10);
});

fn limited(store: &Store, limits: QuoteLimits) -> Purchases {
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.quote_limits = limits;
    Purchases::new(store.clone(), Arc::new(StaticRates::development()), settings, &[7u8; 32])
}

store_test!(open_quotes_are_limited_per_client_address_and_per_wallet, |store: Store| async move {
    let p = limited(&store, QuoteLimits { per_client: Some(2), per_wallet: Some(3), hold_share_permille: 1000 });
    let event_id = event(&store, 50, (Currency::Hive, "25"), "HIVE").await;
    let other = event(&store, 50, (Currency::Hive, "25"), "HIVE").await;
    p.create_quote_from(hive_quote(event_id, "bob"), Some("10.0.0.1"), NOW).await.unwrap();
    p.create_quote_from(hive_quote(event_id, "carol"), Some("10.0.0.1"), NOW + 1000).await.unwrap();
    // A third from the address is refused, whatever the wallet; the answer says when its oldest quote expires.
    match p.create_quote_from(hive_quote(event_id, "dave"), Some("10.0.0.1"), NOW + 2000).await {
        Err(PurchaseError::TooManyQuotes { scope: QuoteScope::Client, limit: 2, retry_after_secs }) => {
            assert_eq!(retry_after_secs, 15 * 60 - 2)
        }
        other => panic!("expected too_many_quotes_from_address, got {other:?}"),
    }
    // Other addresses, another event, and callers without an address are not counted against it.
    p.create_quote_from(hive_quote(other, "dave"), Some("10.0.0.1"), NOW).await.unwrap();
    p.create_quote_from(hive_quote(event_id, "bob"), Some("10.0.0.2"), NOW).await.unwrap();
    p.create_quote_from(hive_quote(event_id, "bob"), None, NOW).await.unwrap();
    // bob has three open quotes for the event now: a fourth is refused from any address.
    let err = p.create_quote_from(hive_quote(event_id, "bob"), Some("10.0.0.3"), NOW).await.unwrap_err();
    assert!(matches!(err, PurchaseError::TooManyQuotes { scope: QuoteScope::Wallet, limit: 3, .. }), "{err:?}");
    assert_eq!(err.code(), "too_many_quotes_for_wallet");
    // A quote being paid is no longer an open, unpaid quote: it frees its slot.
    let first: ticketing::purchases::QuoteRow =
        sqlx::query_as("SELECT id, event_id, currency, chain, wallet_address, amount_units, usd_rate, payment_address, memo, \
             reference, derivation_index, status, holds_seat, received_units, confirmations, confirmations_required, created_at, \
             expires_at FROM quotes WHERE client_address = '10.0.0.1' AND event_id = $1 ORDER BY created_at LIMIT 1")
            .bind(event_id).fetch_one(store.raw_pool()).await.unwrap();
    p.report_payment(report(&first, "tx-first", first.amount().unwrap().units, 1, true), NOW + 3000).await.unwrap();
    p.create_quote_from(hive_quote(event_id, "erin"), Some("10.0.0.1"), NOW + 3000).await.unwrap();
    // And once the quotes expire, the address may ask again.
    let later = NOW + 15 * 60 * 1000 + 5000;
    p.create_quote_from(hive_quote(event_id, "frank"), Some("10.0.0.1"), later).await.unwrap();
    p.create_quote_from(hive_quote(event_id, "frank"), Some("10.0.0.1"), later).await.unwrap();
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM quotes WHERE client_address = '10.0.0.1'")
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(recorded, 6, "every quote records the address that asked for it");
});

store_test!(unpaid_holds_are_capped_and_quotes_past_the_cap_are_unreserved, |store: Store| async move {
    let p = limited(&store, QuoteLimits { per_client: None, per_wallet: None, hold_share_permille: 500 });
    let event_id = event(&store, 10, (Currency::Hive, "25"), "HIVE").await;
    let mut quotes = Vec::new();
    for i in 0..7 {
        quotes.push(p.create_quote(hive_quote(event_id, &format!("buyer{i}")), NOW).await.unwrap());
    }
    let held: Vec<i64> = quotes.iter().map(|q| q.holds_seat).collect();
    assert_eq!(held, [1, 1, 1, 1, 1, 0, 0], "half of the 10 unsold seats may be held");
    assert_eq!(seats(&store, event_id).await, (5, 0));
    // An unreserved quote's payment takes a free seat, at the quote's price.
    let outcome = p
        .report_payment(report(&quotes[5], "tx5", quotes[5].amount().unwrap().units, 1, true), NOW + 1000)
        .await
        .unwrap();
    assert!(matches!(outcome, PaymentOutcome::TicketIssued { .. }), "{outcome:?}");
    assert_eq!(seats(&store, event_id).await, (5, 1));
    // The cap follows the seats not yet sold: 9 unsold, 4 may be held, 5 are: the next is unreserved too.
    assert_eq!(p.create_quote(hive_quote(event_id, "late"), NOW).await.unwrap().holds_seat, 0);
    // Expiry gives back only the seats that were held.
    p.expire_quotes(Some(event_id), NOW + 16 * 60 * 1000).await.unwrap();
    assert_eq!(seats(&store, event_id).await, (0, 1));
    // At least one seat may always be held, and a sold-out event still says so.
    let one = event(&store, 1, (Currency::Hive, "25"), "HIVE").await;
    assert_eq!(p.create_quote(hive_quote(one, "anna"), NOW).await.unwrap().holds_seat, 1);
    assert!(matches!(p.create_quote(hive_quote(one, "bert"), NOW).await, Err(PurchaseError::SoldOut)));
});

store_test!(unreserved_payment_finding_no_seat_is_refunded, |store: Store| async move {
    let p = limited(&store, QuoteLimits { per_client: None, per_wallet: None, hold_share_permille: 500 });
    let event_id = event(&store, 2, (Currency::Hive, "25"), "HIVE").await;
    let held = p.create_quote(hive_quote(event_id, "anna"), NOW).await.unwrap();
    let unreserved = p.create_quote(hive_quote(event_id, "bert"), NOW).await.unwrap();
    let racer = p.create_quote(hive_quote(event_id, "cleo"), NOW).await.unwrap();
    assert_eq!((held.holds_seat, unreserved.holds_seat, racer.holds_seat), (1, 0, 0));
    p.report_payment(report(&racer, "tx-c", racer.amount().unwrap().units, 1, true), NOW).await.unwrap();
    assert_eq!(seats(&store, event_id).await, (1, 1));
    // The held seat is still anna's; bert paid for a seat nobody had free: refunded, no oversell.
    let outcome =
        p.report_payment(report(&unreserved, "tx-b", unreserved.amount().unwrap().units, 1, true), NOW).await.unwrap();
    assert_eq!(outcome, PaymentOutcome::RefundDue { reason: "sold_out" });
    assert!(matches!(
        p.report_payment(report(&held, "tx-a", held.amount().unwrap().units, 1, true), NOW).await.unwrap(),
        PaymentOutcome::TicketIssued { .. }
    ));
    assert_eq!(seats(&store, event_id).await, (0, 2));
});

store_test!(concurrent_quotes_from_one_address_respect_the_limit_and_the_cap, |store: Store| async move {
    let p = limited(&store, QuoteLimits { per_client: Some(4), per_wallet: Some(4), hold_share_permille: 500 });
    let event_id = event(&store, 100, (Currency::Hive, "25"), "HIVE").await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let p = p.clone();
        // 100 asks from one address; 100 from 100 addresses.
        let client = if i % 2 == 0 { "10.9.9.9".to_string() } else { format!("10.1.0.{i}") };
        tasks.push(tokio::spawn(async move {
            p.create_quote_from(hive_quote(event_id, &format!("wallet{i:03}")), Some(&client), NOW).await
        }));
    }
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => granted += 1,
            Err(PurchaseError::TooManyQuotes { scope: QuoteScope::Client, .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let from_one: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM quotes WHERE client_address = '10.9.9.9'")
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(from_one, 4, "the limit holds under concurrency");
    assert_eq!(granted, 104);
    assert_eq!(seats(&store, event_id).await, (50, 0), "holds capped at half of the unsold seats");
});

store_test!(quotes_carry_per_chain_instructions, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 5, (Currency::Usd, "25"), "HIVE,BTC,ETH").await;
    let hive = p.create_quote(hive_quote(event_id, "bob"), NOW).await.unwrap();
    assert_eq!(hive.payment_address, "dlux-tickets");
    assert_eq!(hive.memo.as_deref(), Some(format!("event:{event_id}:wallet:bob:quote:{}", hive.id).as_str()));
    assert_eq!(hive.amount().unwrap(), Amount::parse(Currency::Hive, "100").unwrap()); // $25 at $0.25
    assert_eq!(hive.expires_at, NOW + 15 * 60 * 1000);
    let btc1 = p
        .create_quote(QuoteRequest { event_id, currency: Currency::Btc, wallet_address: BTC_BUYER.into() }, NOW)
        .await
        .unwrap();
    let btc2 = p
        .create_quote(QuoteRequest { event_id, currency: Currency::Btc, wallet_address: BTC_BUYER.into() }, NOW)
        .await
        .unwrap();
    assert_eq!(btc1.payment_address, "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu");
    assert_eq!(btc2.payment_address, "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g");
    assert_eq!(btc1.amount().unwrap().units, 41_667);
    assert_eq!(btc1.confirmations_required, 2);
    let uri = ticketing::purchases::payment_uri(&btc1, p.settings()).unwrap();
    assert_eq!(uri, "bitcoin:bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu?amount=0.00041667");
    // Not configured on this gateway, not accepted by the event, bad wallet, unknown event:
    let eth = p
        .create_quote(
            QuoteRequest {
                event_id,
                currency: Currency::Eth,
                wallet_address: "0x9858effd232b4033e47d90003d41ec34ecaeda94".into(),
            },
            NOW,
        )
        .await;
    assert!(matches!(eth, Err(PurchaseError::PaymentMethodUnavailable(Currency::Eth))));
    let sol = p
        .create_quote(
            QuoteRequest {
                event_id,
                currency: Currency::Sol,
                wallet_address: "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM".into(),
            },
            NOW,
        )
        .await;
    assert!(matches!(sol, Err(PurchaseError::CurrencyNotAccepted(Currency::Sol))));
    let bad =
        p.create_quote(QuoteRequest { event_id, currency: Currency::Btc, wallet_address: "bc1qbad".into() }, NOW).await;
    assert!(matches!(bad, Err(PurchaseError::InvalidWallet(_))));
    assert!(matches!(p.create_quote(hive_quote(999, "bob"), NOW).await, Err(PurchaseError::EventNotFound(999))));
    assert!(matches!(
        p.create_quote(hive_quote(event_id, "bob"), NOW + 24 * HOUR).await,
        Err(PurchaseError::NotOnSale(_))
    ));
});

/// The same account as `ZPUB`, as a BIP-84 key for test networks.
const VPUB: &str =
    "vpub5YvMuJNjRSYon44z9QmCfdf8SqJRVNvz6m55Qy5iVjZQxDfUgtiQjnc7CC1fAbED2tAGCZRERUfvtn2DstZGU6HMns6dXXH2wujSc2wfi2x";

store_test!(buyer_btc_wallets_are_on_the_configured_network, |store: Store| async move {
    let account = BtcAccount::parse(VPUB, BtcNetwork::Regtest).unwrap();
    let buyer = account.address(99).unwrap();
    assert!(buyer.starts_with("bcrt1"), "{buyer}");
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.btc = Some(account);
    settings.btc_network = BtcNetwork::Regtest;
    let p = Purchases::new(store.clone(), Arc::new(StaticRates::development()), settings, &[7u8; 32]);
    let event_id = event(&store, 5, (Currency::Usd, "25"), "BTC").await;
    let quote = p
        .create_quote(QuoteRequest { event_id, currency: Currency::Btc, wallet_address: buyer.clone() }, NOW)
        .await
        .unwrap();
    assert!(quote.payment_address.starts_with("bcrt1"), "{}", quote.payment_address);
    assert_eq!(quote.wallet_address, buyer);
    // A mainnet wallet on a regtest gateway is not a wallet this network can refund to.
    let mainnet =
        p.create_quote(QuoteRequest { event_id, currency: Currency::Btc, wallet_address: BTC_BUYER.into() }, NOW).await;
    assert!(matches!(mainnet, Err(PurchaseError::InvalidWallet(_))), "{mainnet:?}");
});

store_test!(double_reported_payment_issues_one_ticket, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 3, (Currency::Hive, "25"), "HIVE").await;
    let quote = p.create_quote(hive_quote(event_id, "bob"), NOW).await.unwrap();
    let seen = p.report_payment(report(&quote, "tx1", 25_000, 0, false), NOW + 1).await.unwrap();
    assert_eq!(seen, PaymentOutcome::Pending { confirmations: 0, required: 1 });
    assert_eq!(p.quote(&quote.id).await.unwrap().unwrap().status, "seen");
    // Reported final by two watcher instances at once, then once more.
    let (a, b) = tokio::join!(
        p.report_payment(report(&quote, "tx1", 25_000, 1, true), NOW + 2),
        p.report_payment(report(&quote, "tx1", 25_000, 1, true), NOW + 2)
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(outcomes.iter().filter(|o| matches!(o, PaymentOutcome::TicketIssued { .. })).count(), 1, "{outcomes:?}");
    assert!(outcomes.contains(&PaymentOutcome::AlreadyProcessed));
    assert_eq!(
        p.report_payment(report(&quote, "tx1", 25_000, 5, true), NOW + 3).await.unwrap(),
        PaymentOutcome::AlreadyProcessed
    );
    let tickets = p.tickets_for_wallet(Chain::Hive, "bob").await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].access_signature, p.access_signature(event_id, "hive", "bob", &tickets[0].token));
    assert!(tickets[0].token.len() >= 43);
    assert_eq!(seats(&store, event_id).await, (0, 1));
    let ledger = p.ledger_for_event(event_id).await.unwrap();
    let amounts: Vec<(&str, &str)> = ledger.iter().map(|l| (l.kind.as_str(), l.amount_units.as_str())).collect();
    assert_eq!(amounts, vec![("commission", "5000"), ("payout", "20000")]);
    assert_eq!(p.quote(&quote.id).await.unwrap().unwrap().status, "paid");
});

store_test!(underpaid_stays_open_then_refund_due_at_expiry, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 3, (Currency::Hive, "25"), "HIVE").await;
    let quote = p.create_quote(hive_quote(event_id, "bob"), NOW).await.unwrap();
    let partial = p.report_payment(report(&quote, "tx1", 10_000, 1, true), NOW + 1).await.unwrap();
    assert_eq!(partial, PaymentOutcome::Partial { remaining: Amount::new(Currency::Hive, 15_000) });
    let q = p.quote(&quote.id).await.unwrap().unwrap();
    assert_eq!((q.status.as_str(), q.received_units.as_str()), ("seen", "10000"));
    assert_eq!(p.expire_quotes(None, NOW + 16 * 60 * 1000).await.unwrap(), 1);
    assert_eq!(p.quote(&quote.id).await.unwrap().unwrap().status, "refund_due");
    assert_eq!(seats(&store, event_id).await, (0, 0));
    let refunds = p.ledger("refund", true, NOW).await.unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!((refunds[0].reason.as_str(), refunds[0].amount_units.as_str()), ("underpaid", "10000"));
    assert_eq!(refunds[0].recipient.as_deref(), Some("bob"));
});

store_test!(two_outputs_complete_a_quote, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 3, (Currency::Hive, "25"), "HIVE").await;
    let quote = p.create_quote(hive_quote(event_id, "bob"), NOW).await.unwrap();
    assert!(matches!(
        p.report_payment(report(&quote, "tx1", 20_000, 1, true), NOW + 1).await.unwrap(),
        PaymentOutcome::Partial { .. }
    ));
    assert!(matches!(
        p.report_payment(report(&quote, "tx2", 5_000, 1, true), NOW + 2).await.unwrap(),
        PaymentOutcome::TicketIssued { .. }
    ));
    let credited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE quote_id = $1 AND status = 'credited'")
        .bind(&quote.id)
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(credited, 2);
});

store_test!(overpaid_issues_ticket_and_refunds_excess_exactly, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 3, (Currency::Hive, "25.001"), "HIVE").await;
    let quote = p.create_quote(hive_quote(event_id, "bob"), NOW).await.unwrap();
    let out = p.report_payment(report(&quote, "tx1", 30_000, 1, true), NOW + 1).await.unwrap();
    assert!(matches!(out, PaymentOutcome::TicketIssued { .. }));
    let ledger = p.ledger_for_event(event_id).await.unwrap();
    let by =
        |kind: &str| ledger.iter().find(|l| l.kind == kind).map(|l| l.amount_units.parse::<u128>().unwrap()).unwrap();
    assert_eq!((by("commission"), by("payout"), by("refund")), (5_000, 20_001, 4_999));
    assert_eq!(by("commission") + by("payout") + by("refund"), 30_000);
    // A further payment to the paid quote is owed back in full.
    assert_eq!(
        p.report_payment(report(&quote, "tx2", 1_000, 1, true), NOW + 2).await.unwrap(),
        PaymentOutcome::RefundDue { reason: "overpaid" }
    );
});

store_test!(payment_after_expiry_gets_a_ticket_only_if_a_seat_is_left, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 1, (Currency::Hive, "25"), "HIVE").await;
    let late = p.create_quote(hive_quote(event_id, "bob"), NOW).await.unwrap();
    let after = NOW + 20 * 60 * 1000;
    p.expire_quotes(None, after).await.unwrap();
    // The seat is free again; the late payment covers the price: ticket.
    assert!(matches!(
        p.report_payment(report(&late, "tx1", 25_000, 1, true), after + 1).await.unwrap(),
        PaymentOutcome::TicketIssued { .. }
    ));
    assert_eq!(seats(&store, event_id).await, (0, 1));
    // Sold out now: another late payer is refunded.
    let event2 = event(&store, 1, (Currency::Hive, "25"), "HIVE").await;
    let q1 = p.create_quote(hive_quote(event2, "carol"), NOW).await.unwrap();
    p.expire_quotes(None, after).await.unwrap();
    let q2 = p.create_quote(hive_quote(event2, "dave"), after).await.unwrap();
    assert!(matches!(
        p.report_payment(report(&q2, "tx2", 25_000, 1, true), after + 1).await.unwrap(),
        PaymentOutcome::TicketIssued { .. }
    ));
    assert_eq!(
        p.report_payment(report(&q1, "tx3", 25_000, 1, true), after + 2).await.unwrap(),
        PaymentOutcome::RefundDue { reason: "late_sold_out" }
    );
    assert_eq!(seats(&store, event2).await, (0, 1));
});

store_test!(cancellation_refunds_tickets_and_cancels_payouts, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 5, (Currency::Hive, "25"), "HIVE").await;
    let paid = p.create_quote(hive_quote(event_id, "bob"), NOW).await.unwrap();
    p.report_payment(report(&paid, "tx1", 26_000, 1, true), NOW + 1).await.unwrap();
    let open = p.create_quote(hive_quote(event_id, "carol"), NOW).await.unwrap();
    let mut tx = store.raw_pool().begin().await.unwrap();
    sqlx::query("UPDATE events SET status = 'cancelled' WHERE id = $1").bind(event_id).execute(&mut *tx).await.unwrap();
    on_event_cancelled(&mut tx, event_id, NOW + 2).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(p.quote(&open.id).await.unwrap().unwrap().status, "cancelled");
    assert_eq!(p.tickets_for_wallet(Chain::Hive, "bob").await.unwrap()[0].status, "cancelled");
    let ledger = p.ledger_for_event(event_id).await.unwrap();
    let states: Vec<(&str, &str, &str, &str)> = ledger
        .iter()
        .map(|l| (l.kind.as_str(), l.reason.as_str(), l.status.as_str(), l.amount_units.as_str()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("commission", "sale", "cancelled", "5000"),
            ("payout", "sale", "cancelled", "20000"),
            ("refund", "overpaid", "due", "1000"),
            ("refund", "event_cancelled", "due", "25000"),
        ]
    );
    // Money arriving for the cancelled event is owed back.
    assert_eq!(
        p.report_payment(report(&open, "tx2", 25_000, 1, true), NOW + 3).await.unwrap(),
        PaymentOutcome::RefundDue { reason: "event_cancelled" }
    );
});

store_test!(payouts_become_due_only_after_the_delay_and_settle_once, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 5, (Currency::Hive, "25"), "HIVE").await;
    let quote = p.create_quote(hive_quote(event_id, "bob"), NOW).await.unwrap();
    p.report_payment(report(&quote, "tx1", 25_000, 1, true), NOW + 1).await.unwrap();
    let event_end = NOW + 27 * HOUR;
    let due_at = event_end + 7 * 24 * HOUR;
    assert!(p.ledger("payout", true, due_at - 1).await.unwrap().is_empty());
    let payout_id = p.ledger("payout", false, NOW).await.unwrap()[0].id;
    assert!(matches!(p.settle(payout_id, "hive-tx-early", "op", due_at - 1).await, Err(SettleError::NotDue(_))));
    let due = p.ledger("payout", true, due_at).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].recipient.as_deref(), Some("alice"));
    // Held until the creator has a payout address on the chain.
    assert!(matches!(
        p.settle(payout_id, "hive-tx-1", "op", due_at).await,
        Err(SettleError::NoPayoutAddress { chain: Chain::Hive, .. })
    ));
    let alice = AccountName::parse("alice").unwrap();
    store.set_payout_address(&alice, Chain::Hive, "alice.pay", None, NOW).await.unwrap();
    let settled = p.settle(payout_id, "hive-tx-1", "op", due_at).await.unwrap();
    assert_eq!(settled.paid_to.as_deref(), Some("alice.pay"));
    assert!(matches!(p.settle(payout_id, "hive-tx-2", "op", due_at).await, Err(SettleError::AlreadySettled(_))));
    assert!(p.ledger("payout", true, due_at).await.unwrap().is_empty());
    // A refund after the payout is due is refused; the ticket stays valid.
    let ticket = &p.tickets_for_wallet(Chain::Hive, "bob").await.unwrap()[0];
    assert!(matches!(p.refund_ticket(ticket.id, "op", due_at).await, Err(PurchaseError::NotRefundable(..))));
    let summary = p.sales_summary("alice").await.unwrap();
    assert_eq!(summary.len(), 1);
    assert_eq!(
        (summary[0].tickets_sold, summary[0].gross.units, summary[0].commission.units, summary[0].net_payout.units),
        (1, 25_000, 5_000, 20_000)
    );
});

store_test!(refund_before_payout_frees_the_seat, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 1, (Currency::Hive, "25"), "HIVE").await;
    let quote = p.create_quote(hive_quote(event_id, "bob"), NOW).await.unwrap();
    let PaymentOutcome::TicketIssued { ticket_id } =
        p.report_payment(report(&quote, "tx1", 25_000, 1, true), NOW + 1).await.unwrap()
    else {
        panic!()
    };
    assert!(matches!(p.create_quote(hive_quote(event_id, "carol"), NOW + 2).await, Err(PurchaseError::SoldOut)));
    p.refund_ticket(ticket_id, "op", NOW + 3).await.unwrap();
    assert!(matches!(p.refund_ticket(ticket_id, "op", NOW + 3).await, Err(PurchaseError::NotRefundable(..))));
    assert_eq!(seats(&store, event_id).await, (0, 0));
    let refunds = p.ledger("refund", true, NOW + 3).await.unwrap();
    assert_eq!(refunds.iter().map(|r| r.amount_units.as_str()).collect::<Vec<_>>(), vec!["25000"]);
    assert!(p.create_quote(hive_quote(event_id, "carol"), NOW + 4).await.is_ok());
});

store_test!(unmatched_memo_is_refund_due, |store: Store| async move {
    let p = purchases(&store);
    let r = PaymentReport {
        chain: Chain::Hive,
        txid: "tx9".into(),
        output_index: 0,
        quote_id: None,
        memo: Some("event:4242:wallet:bob".into()),
        amount: Amount::new(Currency::Hive, 5_000),
        to_address: "dlux-tickets".into(),
        from_address: Some("bob".into()),
        block_height: Some(1),
        block_hash: None,
        confirmations: 1,
        is_final: true,
    };
    assert_eq!(p.report_payment(r.clone(), NOW).await.unwrap(), PaymentOutcome::RefundDue { reason: "unmatched" });
    assert_eq!(p.report_payment(r, NOW).await.unwrap(), PaymentOutcome::AlreadyProcessed);
    let refunds = p.ledger("refund", true, NOW).await.unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!((refunds[0].event_id, refunds[0].recipient.as_deref()), (None, Some("bob")));
});

store_test!(orphaned_sighting_returns_quote_to_awaiting, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 2, (Currency::Btc, "0.001"), "BTC").await;
    let quote = p
        .create_quote(QuoteRequest { event_id, currency: Currency::Btc, wallet_address: BTC_BUYER.into() }, NOW)
        .await
        .unwrap();
    let mut r = report(&quote, "ab".repeat(32).as_str(), 100_000, 1, false);
    r.memo = None;
    assert_eq!(
        p.report_payment(r.clone(), NOW + 1).await.unwrap(),
        PaymentOutcome::Pending { confirmations: 1, required: 2 }
    );
    assert_eq!(p.quote(&quote.id).await.unwrap().unwrap().status, "confirming");
    assert!(p.orphan_payment(Chain::Btc, &r.txid, 0, NOW + 2).await.unwrap());
    assert_eq!(p.quote(&quote.id).await.unwrap().unwrap().status, "awaiting_payment");
    assert!(p.tickets_for_wallet(Chain::Btc, BTC_BUYER).await.unwrap().is_empty());
    // It lands again and becomes final: one ticket.
    r.is_final = true;
    r.confirmations = 2;
    assert!(matches!(p.report_payment(r, NOW + 3).await.unwrap(), PaymentOutcome::TicketIssued { .. }));
});

/// One mixed batch of reports, as a watcher sends a block's: run with the set-wise path on or off. Returns the
/// outcomes (ticket ids dropped) and every row the money path writes, keyed by what is stable across runs.
async fn mixed_batch(store: &Store, bulk: bool) -> (Vec<String>, Vec<String>, u64) {
    let p = purchases(store).with_bulk_credit(bulk);
    let event_id = event(store, 10, (Currency::Hive, "25"), "HIVE,HBD").await;
    let mut q = Vec::new();
    for i in 0..8 {
        q.push(p.create_quote(hive_quote(event_id, &format!("buyer{i}")), NOW).await.unwrap());
    }
    // A sighting before the batch (final in it), and a late payer whose quote expired and was swept.
    p.report_payment(report(&q[5], "tx5", 25_000, 0, false), NOW + 1).await.unwrap();
    let late = p.create_quote(hive_quote(event_id, "late"), NOW - 20 * 60 * 1000).await.unwrap();
    assert_eq!(p.expire_quotes(None, NOW + 1).await.unwrap(), 1);
    let by_id = |quote: &ticketing::purchases::QuoteRow, txid: &str, units: u128| PaymentReport {
        quote_id: Some(quote.id.clone()),
        memo: None,
        ..report(quote, txid, units, 3, true)
    };
    let batch = vec![
        report(&q[0], "tx0", 25_000, 3, true),                                      // exact
        by_id(&q[1], "tx1", 30_000),                                                // overpaid, named by id
        report(&q[2], "tx2", 10_000, 3, true),                                      // underpaid
        report(&q[3], "tx3a", 20_000, 3, true),                                     // two outputs ...
        report(&q[4], "tx4", 25_000, 0, false),                                     // not final yet
        PaymentReport { output_index: 1, ..report(&q[3], "tx3a", 5_000, 3, true) }, // ... of one quote
        report(&q[5], "tx5", 25_000, 3, true),                                      // seen before, final now
        report(&late, "tx-late", 25_000, 3, true),                                  // expired, seat left
        PaymentReport { amount: Amount::new(Currency::Hbd, 25_000), ..report(&q[6], "tx6", 0, 3, true) }, // wrong currency
        PaymentReport { memo: Some("event:999:wallet:mallory".into()), ..report(&q[7], "tx7", 25_000, 3, true) }, // unknown event
    ];
    let mut outcomes: Vec<String> = p
        .report_payments(&batch, NOW + 2)
        .await
        .unwrap()
        .into_iter()
        .map(|o| match o {
            Ok(PaymentOutcome::TicketIssued { .. }) => "ticket".to_owned(),
            Ok(other) => format!("{other:?}"),
            Err(err) => format!("error: {err}"),
        })
        .collect();
    // And once more, all of it already dealt with except the pending one.
    outcomes.push(format!("{:?}", p.report_payment(report(&q[0], "tx0", 25_000, 9, true), NOW + 3).await.unwrap()));

    let rows = |sql: &'static str| async move {
        sqlx::query_as::<_, (String,)>(sql)
            .fetch_all(store.raw_pool())
            .await
            .unwrap()
            .into_iter()
            .map(|(r,)| r)
            .collect::<Vec<_>>()
    };
    let mut dump = Vec::new();
    dump.extend(rows("SELECT wallet_address || '|' || status || '|' || holds_seat || '|' || received_units || '|' || confirmations \
                      FROM quotes ORDER BY wallet_address").await);
    dump.extend(rows("SELECT p.txid || '|' || p.output_index || '|' || COALESCE(q.wallet_address, '-') || '|' || p.status || '|' || \
                      p.currency || '|' || p.amount_units || '|' || p.confirmations || '|' || COALESCE(p.block_hash, '-') || '|' || \
                      p.to_address || '|' || COALESCE(p.memo, '-') FROM payments p LEFT JOIN quotes q ON q.id = p.quote_id \
                      ORDER BY p.txid, p.output_index").await);
    dump.extend(
        rows(
            "SELECT t.wallet_address || '|' || t.amount_paid_units || '|' || t.currency || '|' || t.status || '|' || \
                      length(t.token) || '|' || length(t.access_signature) FROM tickets t ORDER BY t.wallet_address",
        )
        .await,
    );
    dump.extend(rows("SELECT COALESCE(q.wallet_address, '-') || '|' || COALESCE(p.txid, '-') || '|' || l.kind || '|' || l.reason || '|' || \
                      l.currency || '|' || l.amount_units || '|' || COALESCE(l.recipient, '-') || '|' || l.status || '|' || \
                      COALESCE(l.due_at, 0) || '|' || (CASE WHEN l.ticket_id IS NULL THEN 'no ticket' ELSE 'ticket' END) \
                      FROM ledger_entries l LEFT JOIN quotes q ON q.id = l.quote_id LEFT JOIN payments p ON p.id = l.payment_id \
                      ORDER BY 1").await);
    dump.extend(
        rows(
            "SELECT action || '|' || COALESCE(subject, '-') FROM audit_log WHERE action <> 'ticket.issued' ORDER BY 1",
        )
        .await,
    );
    dump.extend(
        rows(
            "SELECT q.wallet_address || '|' || a.action FROM audit_log a JOIN quotes q ON q.id = a.subject \
                      WHERE a.action = 'ticket.issued' ORDER BY 1",
        )
        .await,
    );
    dump.extend(rows("SELECT seats_held || '|' || tickets_sold FROM events").await);
    // Quote ids are random: keep their place, not their value.
    let dump = dump
        .into_iter()
        .map(|row| {
            let mut out = String::new();
            let mut rest = row.as_str();
            while let Some(at) = rest.find("q_") {
                out.push_str(&rest[..at]);
                out.push_str("q_*");
                rest = rest[at + 2..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
            }
            out + rest
        })
        .collect();
    (outcomes, dump, p.bulk_credited())
}

store_test!(bulk_and_one_by_one_credit_write_the_same_rows, |store: Store| async move {
    let (bulk_outcomes, bulk_rows, credited) = mixed_batch(&store, true).await;
    let other = ticketing::testing::TestDb::new(store.backend()).await;
    let (outcomes, rows, none) = mixed_batch(&other.store().await, false).await;
    assert_eq!(bulk_outcomes, outcomes);
    assert_eq!(bulk_rows, rows);
    // The set-wise path took the exact, overpaid and seen-before payments; the rest went one by one.
    assert_eq!((credited, none), (3, 0));
    assert_eq!(
        outcomes,
        [
            "ticket",
            "ticket",
            "Partial { remaining: Amount { currency: Hive, units: 15000 } }",
            "Partial { remaining: Amount { currency: Hive, units: 5000 } }",
            "Pending { confirmations: 0, required: 1 }",
            "ticket",
            "ticket",
            "ticket",
            "RefundDue { reason: \"wrong_currency\" }",
            "RefundDue { reason: \"unmatched\" }",
            "AlreadyProcessed",
        ]
    );
    // Seats: q2, q4, q6 (its HBD was a stray payment: the quote is untouched) and q7 still hold theirs; five
    // sold, the late payer's among them.
    assert_eq!(rows.last().map(String::as_str), Some("4|5"), "{rows:#?}");
    assert!(rows.contains(&"buyer6|awaiting_payment|1|0|0".to_string()), "{rows:#?}");
    assert!(rows.contains(&"payment.stray|tx6".to_string()), "{rows:#?}");
});

store_test!(a_quote_below_the_chains_minimum_is_refused, |store: Store| async move {
    let p = purchases(&store);
    // $0.01 at $60,000 is 17 sat: dust on Bitcoin.
    let event_id = event(&store, 2, (Currency::Usd, "0.01"), "BTC,HIVE").await;
    let btc =
        p.create_quote(QuoteRequest { event_id, currency: Currency::Btc, wallet_address: BTC_BUYER.into() }, NOW).await;
    match btc {
        Err(err @ PurchaseError::BelowMinimum(amount, minimum)) => {
            assert_eq!(
                (amount.units, minimum.units),
                (17, ticketing::purchases::minimums::minimum_quote(Currency::Btc))
            );
            assert_eq!(err.code(), "amount_below_minimum");
        }
        other => panic!("{other:?}"),
    }
    // Hive has no dust: 0.040 HIVE is a quote.
    assert_eq!(p.create_quote(hive_quote(event_id, "bob"), NOW).await.unwrap().amount().unwrap().units, 40);
});

store_test!(refunds_below_the_chains_minimum_are_recorded_not_due, |store: Store| async move {
    let p = purchases(&store);
    let event_id = event(&store, 2, (Currency::Btc, "0.001"), "BTC").await;
    let quote = p
        .create_quote(QuoteRequest { event_id, currency: Currency::Btc, wallet_address: BTC_BUYER.into() }, NOW)
        .await
        .unwrap();
    // 17 sat too much (the set-wise crediting path), then a second 500-sat payment to the paid quote (one by one).
    let outcome = p.report_payment(report(&quote, "aa", 100_017, 2, true), NOW + 1).await.unwrap();
    assert!(matches!(outcome, PaymentOutcome::TicketIssued { .. }), "{outcome:?}");
    p.report_payment(report(&quote, "bb", 500, 2, true), NOW + 2).await.unwrap();
    // And one worth sending: 5,000 sat.
    p.report_payment(report(&quote, "cc", 5_000, 2, true), NOW + 3).await.unwrap();
    let mut refunds: Vec<(String, String)> = p
        .ledger_for_event(event_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "refund")
        .map(|e| (e.amount_units, e.status.to_string()))
        .collect();
    refunds.sort();
    assert_eq!(
        refunds,
        vec![
            ("17".into(), "below_minimum".into()),
            ("500".into(), "below_minimum".into()),
            ("5000".into(), "due".into())
        ]
    );
    let due: Vec<String> =
        p.ledger("refund", true, NOW + 4).await.unwrap().into_iter().map(|e| e.amount_units).collect();
    assert_eq!(due, vec!["5000".to_string()]);
});
