//! Quote creation per second, on SQLite and (when `TEST_POSTGRES_URL` is set) PostgreSQL: the real
//! `Purchases::create_quote` path — event checks, a rate lookup, the atomic seat hold, the quote row and its
//! audit row in one transaction — from 32 concurrent buyers.
//!
//! `cargo bench -p ticketing --bench quotes` (release). Not a test: it prints figures for docs/BENCHMARKS.md.

use std::sync::Arc;
use std::time::Instant;

use chains::{Amount, Currency};
use ticketing::creators::{AccountName, Tier};
use ticketing::purchases::{PaymentSettings, Purchases, QuoteRequest};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use ticketing::testing::TestDb;
use ticketing::{Backend, Store};

const QUOTES: usize = 5_000;
const CONCURRENCY: usize = 32;

async fn event(store: &Store) -> i64 {
    store.set_tier(&AccountName::parse("alice").unwrap(), Tier::Pro, None, "bench").await.unwrap();
    let now = ticketing::now_ms();
    sqlx::query_scalar(
        "INSERT INTO events (creator_account, title, space_type, space_id, price_units, price_currency, supported_crypto, \
         max_attendees, event_start, event_end, sales_start, sales_end, created_at, updated_at) \
         VALUES ('alice', 'Bench', 'custom', 's', $1, 'USD', 'HIVE,BTC', 1000000, $2, $3, $4, $2, $4, $4) RETURNING id",
    )
    .bind(Amount::parse(Currency::Usd, "25").unwrap().units.to_string())
    .bind(now + 86_400_000)
    .bind(now + 90_000_000)
    .bind(now - 1_000)
    .fetch_one(store.raw_pool())
    .await
    .unwrap()
}

async fn run(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = Store::connect(&db.url, 16).await.unwrap();
    let event_id = event(&store).await;
    let p = Purchases::new(
        store.clone(),
        Arc::new(StaticRates::development()),
        PaymentSettings::new("dlux-tickets"),
        &[1u8; 32],
    );
    // Warm the pool and the statement caches.
    for i in 0..50 {
        p.create_quote(
            QuoteRequest { event_id, currency: Currency::Hive, wallet_address: format!("warm{i:04}") },
            ticketing::now_ms(),
        )
        .await
        .unwrap();
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..QUOTES).step_by(CONCURRENCY) {
                let request =
                    QuoteRequest { event_id, currency: Currency::Hive, wallet_address: format!("buyer{i:05}") };
                p.create_quote(request, ticketing::now_ms()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let held: i64 = sqlx::query_scalar("SELECT seats_held FROM events WHERE id = $1")
        .bind(event_id)
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(held as usize, QUOTES + 50, "every quote holds exactly one seat");
    println!(
        "{backend:?}: {QUOTES} quotes from {CONCURRENCY} concurrent buyers in {secs:.2} s = {:.0} quotes/s",
        QUOTES as f64 / secs
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    run(Backend::Sqlite).await;
    if std::env::var("TEST_POSTGRES_URL").is_ok() {
        run(Backend::Postgres).await;
    } else {
        println!("PostgreSQL: skipped (set TEST_POSTGRES_URL)");
    }
}
