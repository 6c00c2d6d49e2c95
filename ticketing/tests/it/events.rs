//! Event, marketplace and rating store tests: each runs on SQLite and on PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use chains::{Amount, Chain, Currency};
use rust_decimal::Decimal;
use ticketing::creators::{AccountName, Tier};
use ticketing::events::{
    EventChangeError, EventInput, EventPatch, EventStatus, MarketQuery, NewEvent, SortBy, StoredStatus, Window,
};
use ticketing::rates::StaticRates;
use ticketing::ratings::{NewRating, RatingError, Stars};
use ticketing::testing::RawSql;
use ticketing::{now_ms, store_test, Store};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn input(start: i64) -> EventInput {
    EventInput {
        title: "Concert".into(),
        description: "A VR concert".into(),
        space_type: "custom".into(),
        space_id: "room-1".into(),
        ticket_price: "25".into(),
        ticket_currency: "USD".into(),
        max_attendees: 10,
        shard_size: None,
        event_start: start,
        event_end: start + 2 * HOUR,
        sales_start: None,
        sales_end: None,
        supported_crypto: None,
        require_camera: true,
        require_microphone: false,
        age_restriction: Some(18),
        category: Some("music".into()),
        cover_image_url: Some("https://img.example/c.png".into()),
        min_certificate_secs: Some(600),
    }
}

async fn creator(store: &Store, name: &str) -> AccountName {
    let account = AccountName::parse(name).unwrap();
    store.set_tier(&account, Tier::Premium, None, "test").await.unwrap();
    account
}

async fn new_event(store: &Store, who: &AccountName, input: EventInput) -> i64 {
    let now = now_ms();
    let event = NewEvent::parse(input, now).unwrap();
    store.create_event(who, &event, false, now).await.unwrap().id
}

async fn quote(store: &Store, event_id: i64, chain: &str, wallet: &str, status: &str, holds_seat: bool) -> String {
    let n: u64 = rand::random();
    let id = format!("q{n:016x}");
    sqlx::query(
        "INSERT INTO quotes (id, event_id, currency, chain, wallet_address, amount_units, payment_address, status, \
         holds_seat, confirmations_required, created_at, expires_at, updated_at) \
         VALUES ($1, $2, 'HIVE', $3, $4, '100000', $5, $6, $7, 1, 0, $8, 0)",
    )
    .bind(&id)
    .bind(event_id)
    .bind(chain)
    .bind(wallet)
    .bind(format!("addr-{n:x}"))
    .bind(status)
    .bind(holds_seat as i64)
    .bind(now_ms() + HOUR)
    .execute(store.raw_pool())
    .await
    .unwrap();
    id
}

async fn ticket(store: &Store, event_id: i64, chain: &str, wallet: &str, currency: &str, units: &str) -> i64 {
    let quote_id = quote(store, event_id, chain, wallet, "paid", false).await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO tickets (event_id, quote_id, token, chain, wallet_address, currency, amount_paid_units, \
         access_signature, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 's', 0, 0) RETURNING id",
    )
    .bind(event_id)
    .bind(&quote_id)
    .bind(format!("t-{quote_id}"))
    .bind(chain)
    .bind(wallet)
    .bind(currency)
    .bind(units)
    .fetch_one(store.raw_pool())
    .await
    .unwrap();
    sqlx::query("UPDATE events SET tickets_sold = tickets_sold + 1 WHERE id = $1")
        .bind(event_id)
        .execute(store.raw_pool())
        .await
        .unwrap();
    id
}

async fn end_event(store: &Store, id: i64) {
    let now = now_ms();
    sqlx::query("UPDATE events SET event_start = $2, event_end = $3, sales_start = $4, sales_end = $3 WHERE id = $1")
        .bind(id)
        .bind(now - 2 * DAY)
        .bind(now - DAY)
        .bind(now - 3 * DAY)
        .execute(store.raw_pool())
        .await
        .unwrap();
}

store_test!(events_round_trip_with_every_field, |store: Store| async move {
    let alice = creator(&store, "alice").await;
    let start = now_ms() + DAY;
    let id = new_event(&store, &alice, input(start)).await;
    let e = store.event(id).await.unwrap().unwrap();
    assert_eq!(e.creator_account, "alice");
    assert_eq!(e.price, Amount::new(Currency::Usd, 2_500));
    assert_eq!(e.supported_crypto, Currency::PAYABLE.to_vec());
    assert_eq!((e.event_start, e.event_end, e.sales_end), (start, start + 2 * HOUR, start + 2 * HOUR));
    assert!(e.require_camera && !e.require_microphone);
    assert_eq!((e.age_restriction, e.min_certificate_secs), (Some(18), Some(600)));
    assert_eq!(e.cover_image_url.as_deref(), Some("https://img.example/c.png"));
    assert_eq!(e.stored_status, StoredStatus::Published);
    assert_eq!(e.status_at(now_ms()), EventStatus::Published);
    assert_eq!(e.status_at(start + HOUR), EventStatus::Live);
    let listing = store.event_listing(id).await.unwrap().unwrap();
    assert_eq!(listing.creator_rating.count, 0);
    assert_eq!(listing.event, e);
    let audit = store.audit_entries(Some("event.create"), 5).await.unwrap();
    assert_eq!(audit[0].event_id, Some(id));
    assert!(store.event(id + 1000).await.unwrap().is_none());
});

store_test!(edits_respect_sold_and_held_seats, |store: Store| async move {
    let alice = creator(&store, "alice").await;
    let start = now_ms() + DAY;
    let id = new_event(&store, &alice, input(start)).await;
    sqlx::query("UPDATE events SET seats_held = 2 WHERE id = $1").bind(id).execute(store.raw_pool()).await.unwrap();
    let now = now_ms();
    // Held seats alone: the price may drop, the schedule may not move.
    let e = store
        .update_event(id, &EventPatch { ticket_price: Some("20".into()), ..Default::default() }, "alice", now)
        .await
        .unwrap();
    assert_eq!(e.price.units, 2_000);
    let moved = EventPatch { event_start: Some(start + HOUR), event_end: Some(start + 3 * HOUR), ..Default::default() };
    assert!(matches!(store.update_event(id, &moved, "alice", now).await, Err(EventChangeError::ScheduleLocked)));
    ticket(&store, id, "hive", "carol", "HIVE", "80000").await;
    let lower = EventPatch { ticket_price: Some("19.99".into()), ..Default::default() };
    assert!(matches!(store.update_event(id, &lower, "alice", now).await, Err(EventChangeError::PriceLowered)));
    let small = EventPatch { max_attendees: Some(2), ..Default::default() };
    let r = store.update_event(id, &small, "alice", now).await;
    assert!(matches!(r, Err(EventChangeError::CapacityBelowSold)), "{r:?}");
    let fits = EventPatch { max_attendees: Some(3), ticket_price: Some("21".into()), ..Default::default() };
    let e = store.update_event(id, &fits, "alice", now).await.unwrap();
    assert_eq!((e.max_attendees, e.seats_left(), e.price.units), (3, 0, 2_100));
    let bad = EventPatch { title: Some(" ".into()), ..Default::default() };
    assert_eq!(store.update_event(id, &bad, "alice", now).await.unwrap_err().code(), "title_required");
    assert_eq!(store.audit_entries(Some("event.update"), 10).await.unwrap().len(), 2);
});

store_test!(drafts_publish_once, |store: Store| async move {
    let alice = creator(&store, "alice").await;
    let now = now_ms();
    let draft = NewEvent::parse(input(now + DAY), now).unwrap();
    let id = store.create_event(&alice, &draft, true, now).await.unwrap().id;
    assert_eq!(store.event(id).await.unwrap().unwrap().status_at(now), EventStatus::Draft);
    let market = store
        .marketplace(&MarketQuery { limit: 10, ..Default::default() }, &StaticRates::development(), now)
        .await
        .unwrap();
    assert!(market.items.is_empty());
    assert_eq!(store.publish_event(id, "alice", now).await.unwrap().stored_status, StoredStatus::Published);
    assert!(matches!(store.publish_event(id, "alice", now).await, Err(EventChangeError::NotDraft)));
});

store_test!(cancel_releases_holds_and_cancels_tickets, |store: Store| async move {
    let alice = creator(&store, "alice").await;
    let id = new_event(&store, &alice, input(now_ms() + DAY)).await;
    let open = quote(&store, id, "hive", "bob", "awaiting_payment", true).await;
    sqlx::query("UPDATE events SET seats_held = 1 WHERE id = $1").bind(id).execute(store.raw_pool()).await.unwrap();
    let sold = ticket(&store, id, "hive", "carol", "HIVE", "100000").await;
    let now = now_ms();
    let e = store.cancel_event(id, "alice", now).await.unwrap();
    assert_eq!((e.stored_status, e.cancelled_at, e.seats_held), (StoredStatus::Cancelled, Some(now), 0));
    let status: String = sqlx::query_scalar("SELECT status FROM quotes WHERE id = $1")
        .bind(&open)
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(status, "cancelled");
    let status: String = sqlx::query_scalar("SELECT status FROM tickets WHERE id = $1")
        .bind(sold)
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(status, "cancelled");
    assert!(matches!(store.cancel_event(id, "alice", now).await, Err(EventChangeError::AlreadyCancelled)));
    let actions: HashSet<String> = store.audit_entries(None, 50).await.unwrap().into_iter().map(|a| a.action).collect();
    assert!(actions.contains("event.cancel") && actions.contains("event.money_cancelled"), "{actions:?}");
    // Ended events cannot be cancelled.
    let other = new_event(&store, &alice, input(now_ms() + DAY)).await;
    end_event(&store, other).await;
    assert!(matches!(store.cancel_event(other, "alice", now_ms()).await, Err(EventChangeError::AlreadyEnded)));
});

store_test!(marketplace_pages_are_disjoint_and_complete, |store: Store| async move {
    let alice = creator(&store, "alice").await;
    let base = now_ms() + DAY;
    let mut ids = Vec::new();
    for n in 0..9i64 {
        let mut i = input(base + (n % 3) * HOUR);
        i.ticket_price = ["5", "7.5", "5"][(n % 3) as usize].into();
        if n == 4 {
            i.ticket_currency = "HIVE".into();
            i.ticket_price = "40".into();
        }
        i.title = format!("Show {n} 100%");
        ids.push(new_event(&store, &alice, i).await);
    }
    let rates = StaticRates::development();
    for sort in [SortBy::Start, SortBy::Price, SortBy::Popularity] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let q = MarketQuery { sort, after, limit: 2, ..Default::default() };
            let page = store.marketplace(&q, &rates, now_ms()).await.unwrap();
            seen.extend(page.items.iter().map(|i| i.listing.event.id));
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 9, "{sort:?}: {seen:?}");
        assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), ids.iter().copied().collect::<HashSet<_>>());
    }
    // The HIVE-priced show is $10 at 0.25 USD/HIVE.
    let q = MarketQuery { min_usd_cents: Some(1_000), limit: 50, ..Default::default() };
    let page = store.marketplace(&q, &rates, now_ms()).await.unwrap();
    assert_eq!(page.items.iter().map(|i| i.listing.event.id).collect::<Vec<_>>(), vec![ids[4]]);
    assert_eq!(page.items[0].prices.usd_cents, Some(1_000));
    // Literal `%` in the search, and an escaped `_` that must not match any character.
    let q = MarketQuery { text: Some("0 100%".into()), limit: 50, ..Default::default() };
    assert_eq!(store.marketplace(&q, &rates, now_ms()).await.unwrap().items.len(), 1);
    let q = MarketQuery { text: Some("Show_".into()), limit: 50, ..Default::default() };
    assert!(store.marketplace(&q, &rates, now_ms()).await.unwrap().items.is_empty());
    let q = MarketQuery { window: Window::Live, limit: 50, ..Default::default() };
    assert!(store.marketplace(&q, &rates, now_ms()).await.unwrap().items.is_empty());
    // A currency range compares in that currency: $5 = 20 HIVE, $7.50 = 30 HIVE.
    let range = (Currency::Hive, Some(Amount::parse(Currency::Hive, "25").unwrap()), None);
    let q = MarketQuery { currency_range: Some(range), limit: 50, ..Default::default() };
    let page = store.marketplace(&q, &rates, now_ms()).await.unwrap();
    assert_eq!(page.items.len(), 3, "the two $7.50 shows (30 HIVE) and the 40 HIVE one");
    let mut custom = StaticRates::default();
    custom.0.insert(Currency::Hive, Decimal::from_str("0.5").unwrap());
    let q = MarketQuery { min_usd_cents: Some(2_000), limit: 50, ..Default::default() };
    assert_eq!(store.marketplace(&q, &custom, now_ms()).await.unwrap().items.len(), 1, "rates drive USD filters");
});

store_test!(ratings_follow_the_rules, |store: Store| async move {
    let alice = creator(&store, "alice").await;
    let id = new_event(&store, &alice, input(now_ms() + DAY)).await;
    let wallet = "0x742d35Cc6C4b35F41a5F89b2A9d0a7C97EfE5b2d";
    ticket(&store, id, "eth", wallet, "ETH", "1000").await;
    ticket(&store, id, "eth", wallet, "ETH", "1000").await;
    ticket(&store, id, "hive", "carol", "HIVE", "5000").await;
    let rate = |wallet: &str, chain: Chain, stars: i64| NewRating {
        event_id: id,
        chain,
        wallet_address: wallet.to_owned(),
        stars: Stars::parse(stars).unwrap(),
        comment: Some("  ok ".into()),
    };
    let now = now_ms();
    assert!(matches!(store.add_rating(&rate(wallet, Chain::Eth, 5), now).await, Err(RatingError::EventNotEnded)));
    end_event(&store, id).await;
    // Same address in lowercase: EVM addresses are case-insensitive. Two tickets, two ratings, then no more.
    let lower = wallet.to_ascii_lowercase();
    let first = store.add_rating(&rate(&lower, Chain::Eth, 5), now).await.unwrap();
    assert_eq!((first.wallet_address.as_str(), first.comment.as_deref()), (wallet, Some("ok")));
    store.add_rating(&rate(wallet, Chain::Eth, 4), now).await.unwrap();
    assert!(matches!(store.add_rating(&rate(wallet, Chain::Eth, 3), now).await, Err(RatingError::AlreadyRated)));
    // Same address on another chain holds nothing; case matters for Hive names.
    assert!(matches!(store.add_rating(&rate(wallet, Chain::Bnb, 3), now).await, Err(RatingError::NotATicketHolder)));
    assert!(matches!(store.add_rating(&rate("Carol", Chain::Hive, 3), now).await, Err(RatingError::NotATicketHolder)));
    store.add_rating(&rate("carol", Chain::Hive, 3), now).await.unwrap();
    let summary = store.creator_rating(&alice).await.unwrap();
    assert_eq!((summary.average, summary.count), (Some(4.0), 3));
    assert_eq!(store.event_ratings(id, 10).await.unwrap().len(), 3);
    assert!(Stars::parse(0).is_err() && Stars::parse(6).is_err());
});

store_test!(creator_sales_sum_valid_tickets_by_currency, |store: Store| async move {
    let alice = creator(&store, "alice").await;
    let a = new_event(&store, &alice, input(now_ms() + DAY)).await;
    let b = new_event(&store, &alice, input(now_ms() + 2 * DAY)).await;
    ticket(&store, a, "eth", "0xa", "ETH", "900000000000000000000").await;
    ticket(&store, a, "eth", "0xb", "ETH", "200000000000000000000").await;
    ticket(&store, a, "hive", "carol", "HIVE", "5000").await;
    let refunded = ticket(&store, b, "hive", "dave", "HIVE", "7000").await;
    sqlx::query("UPDATE tickets SET status = 'refunded' WHERE id = $1")
        .bind(refunded)
        .execute(store.raw_pool())
        .await
        .unwrap();
    let sales: HashMap<i64, Vec<Amount>> = store.creator_sales(&alice).await.unwrap();
    assert_eq!(
        sales[&a],
        vec![Amount::new(Currency::Hive, 5_000), Amount::new(Currency::Eth, 1_100_000_000_000_000_000_000)]
    );
    assert!(!sales.contains_key(&b));
});

store_test!(stablecoins_are_accepted_when_listed_and_priced_at_par, |store: Store| async move {
    let alice = creator(&store, "alice").await;
    let start = now_ms() + DAY;
    let listed = EventInput {
        supported_crypto: Some(vec!["ETH".into(), "usdc-pol".into(), "USDT.BNB".into(), "USDC.SOL".into()]),
        ..input(start)
    };
    let id = new_event(&store, &alice, listed).await;
    let e = store.event(id).await.unwrap().unwrap();
    assert_eq!(e.supported_crypto, vec![Currency::Eth, Currency::UsdcPol, Currency::UsdcSol, Currency::UsdtBnb]);
    let prices = ticketing::events::price_event(&e, &StaticRates::development()).await;
    let by: HashMap<Currency, String> = prices.by_currency.iter().map(|a| (a.currency, a.units.to_string())).collect();
    assert_eq!(by[&Currency::UsdcPol], "25000000");
    assert_eq!(by[&Currency::UsdcSol], "25000000");
    assert_eq!(by[&Currency::UsdtBnb], "25000000000000000000");
    // A bare coin names no network; a token only fits a price in that token.
    for (list, currency) in [(vec!["USDC"], "USD"), (vec!["USDT.SOL"], "USD"), (vec!["USDC.ETH"], "ETH")] {
        let bad = EventInput {
            supported_crypto: Some(list.iter().map(|s| s.to_string()).collect()),
            ticket_currency: currency.into(),
            ticket_price: "1".into(),
            ..input(start)
        };
        assert!(NewEvent::parse(bad, now_ms()).is_err(), "{list:?} for a {currency} price");
    }
    // Priced in a token: paid in exactly that token.
    let usdc = EventInput { ticket_currency: "USDC.ETH".into(), ticket_price: "12.5".into(), ..input(start) };
    let id = new_event(&store, &alice, usdc).await;
    let e = store.event(id).await.unwrap().unwrap();
    assert_eq!(
        (e.price, e.supported_crypto.clone()),
        (Amount::new(Currency::UsdcEth, 12_500_000), vec![Currency::UsdcEth])
    );
});
