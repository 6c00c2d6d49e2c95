//! Benchmark (not a test): the EVM watcher ingesting 10,000 payments.
//!
//! Starts anvil (see `tests/support/anvil.rs`), creates 10,000 ETH quotes (one derived address each) in a fresh
//! store, sends one exact payment to each from anvil's dev accounts, mines them into full blocks, then times a
//! watcher (1 confirmation) from its first tick until every payment is reported final, i.e. every ticket is
//! issued. Also times the bare scan (the same blocks, no quote addresses) to separate the node from the store.
//!
//!     cargo bench -p watchers --bench ingest                      # SQLite
//!     TEST_POSTGRES_URL=postgres://… cargo bench -p watchers --bench ingest -- postgres
//!
//! `PAYMENTS=n` changes the count.

#[path = "../tests/support/anvil.rs"]
#[allow(dead_code)]
mod anvil;
#[path = "../tests/support/ticketing_fixtures.rs"]
mod fixtures;

use std::time::Instant;

use chains::{Chain, Currency};
use serde_json::json;
use ticketing::store::Backend;
use ticketing::testing::RawSql;
use ticketing::testing::TestDb;
use watchers::{EvmWatcher, EvmWatcherConfig, PaymentWatcher};

use anvil::Anvil;
use fixtures::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let payments: usize = std::env::var("PAYMENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let backend = if std::env::args().any(|a| a == "postgres") { Backend::Postgres } else { Backend::Sqlite };
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let p = purchases(&store);
    let anvil = Anvil::start_with(&["--accounts", "20", "--balance", "1000000"]).await;

    let setup = Instant::now();
    let event_id = event(&store, payments as i64, Currency::Eth, "0.01").await;
    let mut quotes = Vec::with_capacity(payments);
    for chunk in (0..payments).collect::<Vec<_>>().chunks(500) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move { quote(&p, event_id, Currency::Eth).await })
            })
            .collect();
        for t in tasks {
            quotes.push(t.await.unwrap());
        }
    }
    let start_height = anvil.head().await + 1;
    for (n, chunk) in quotes.chunks(500).enumerate() {
        let params = chunk
            .iter()
            .enumerate()
            .map(|(i, q)| {
                // Explicit nonces: anvil would hand the same pending nonce to requests of one batch.
                let k = n * 500 + i;
                let (from, nonce) = (&anvil.accounts[k % anvil.accounts.len()], k / anvil.accounts.len());
                json!([{ "from": from, "to": q.payment_address, "value": format!("0x{:x}", 10_000_000_000_000_000u128),
                         "gas": "0x5208", "nonce": format!("0x{nonce:x}"),
                         // Full blocks raise the base fee (EIP-1559): leave room, or the last ones are dropped.
                         "maxFeePerGas": "0x2540be400", "maxPriorityFeePerGas": "0x1" }])
            })
            .collect();
        let _: Vec<String> = anvil.rpc.batch("eth_sendTransaction", params).await.expect("send");
    }
    let mut blocks = 0;
    loop {
        anvil.mine(1).await;
        blocks += 1;
        let pending: serde_json::Value = anvil.call("txpool_status", json!([])).await;
        if pending["pending"] == "0x0" {
            break;
        }
    }
    let head = anvil.head().await;
    println!(
        "setup: {payments} quotes and payments in {blocks} blocks ({start_height}..={head}) in {:.1?}",
        setup.elapsed()
    );

    let config = || {
        let mut c = EvmWatcherConfig::new(Chain::Eth, &anvil.url);
        c.confirmations = Some(1);
        c.use_finalized_tag = Some(false);
        c.start_height = Some(start_height);
        c.max_blocks_per_tick = 1_000;
        c
    };

    // The bare scan: the same blocks, nothing to report (a chain the quotes are not on).
    let ctx = context(&p, Chain::Pol);
    let mut scan_only = EvmWatcher::new(EvmWatcherConfig { chain: Chain::Pol, ..config() }).unwrap();
    scan_only.resume(&ctx).await.unwrap();
    let t = Instant::now();
    let r = scan_only.poll_once(&ctx).await.unwrap();
    let scan = t.elapsed();
    assert_eq!(r.cursor_height, head);
    println!("scan only: {} blocks, {} transactions in {scan:.2?}", r.blocks_scanned, payments);

    let ctx = context(&p, Chain::Eth);
    let mut watcher = EvmWatcher::new(config()).unwrap();
    watcher.resume(&ctx).await.unwrap();
    let t = Instant::now();
    let mut reported = 0;
    while reported < payments as u64 {
        let r = watcher.poll_once(&ctx).await.unwrap();
        reported += r.reported_final;
        if !r.behind && reported < payments as u64 {
            let by_status: Vec<(String, i64)> = sqlx::query_as("SELECT status, COUNT(*) FROM payments GROUP BY status")
                .fetch_all(store.raw_pool())
                .await
                .unwrap();
            let pool: serde_json::Value = anvil.call("txpool_status", json!([])).await;
            panic!("{r:?}\npayments by status: {by_status:?}, skipped: {}, pool: {pool}", ctx.metrics().skipped.get());
        }
    }
    let ingest = t.elapsed();
    let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets").fetch_one(store.raw_pool()).await.unwrap();
    assert_eq!(tickets, payments as i64);
    println!(
        "ingest ({backend:?}): {payments} payments found, reported and credited ({tickets} tickets) in {ingest:.2?} = {:.0} payments/s",
        payments as f64 / ingest.as_secs_f64()
    );
}
