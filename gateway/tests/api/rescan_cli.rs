//! `gateway admin rescan` as an operator runs it: the binary, a configuration file naming the Bitcoin watcher
//! (the Esplora test server), and a payment to a quote closed longer ago than the watch window.

use crate::esplora;

use std::process::Command;

use chains::derive::BtcAccount;
use chains::signature::BtcNetwork;
use chains::{Amount, Currency};
use serde_json::Value;
use ticketing::purchases::{PaymentSettings, Purchases, QuoteRequest};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use ticketing::testing::TestDb;
use ticketing::Backend;

use esplora::{payment, Esplora};

const ZPUB: &str =
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
const DAY: i64 = 24 * 3_600_000;

fn rescan(config: &std::path::Path, db_url: &str, from: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--config", config.to_str().unwrap(), "admin", "rescan", "--chain", "btc", "--from", from])
        .env("DATABASE_URL", db_url)
        .env("GATEWAY_LOG__FILTER", "warn")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    // The report is the JSON object at the end of stdout (log lines come before it).
    let start = text.find("{\n").expect("a JSON report");
    serde_json::from_str(&text[start..]).unwrap()
}

async fn run(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.btc = Some(BtcAccount::parse(ZPUB, BtcNetwork::Mainnet).unwrap());
    let p = Purchases::new(store.clone(), std::sync::Arc::new(StaticRates::development()), settings, &[0x11; 32]);
    let now = ticketing::now_ms();
    store
        .set_tier(
            &ticketing::creators::AccountName::parse("alice").unwrap(),
            ticketing::creators::Tier::Premium,
            None,
            "t",
        )
        .await
        .unwrap();
    let price = Amount::parse(Currency::Btc, "0.001").unwrap();
    let event_id: i64 = ticketing::testing::SeedEvent::new(now - 10 * DAY)
        .title("Old")
        .space_id("hall")
        .price(&price.units.to_string(), "BTC")
        .accepts("BTC")
        .starts(now + DAY)
        .ends(now + 2 * DAY)
        .insert(&store)
        .await;
    let request = QuoteRequest {
        event_id,
        currency: Currency::Btc,
        wallet_address: "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g".into(),
    };
    let q = p.create_quote(request, now - 9 * DAY).await.unwrap();
    p.expire_quotes(None, now).await.unwrap();
    sqlx::query("UPDATE quotes SET updated_at = expires_at WHERE id = $1")
        .bind(&q.id)
        .execute(store.raw_pool())
        .await
        .unwrap();

    let esplora = Esplora::start(100).await;
    let txid = esplora.broadcast(payment(42, &[(&q.payment_address, 100_000)]));
    esplora.mine();
    esplora.mine_empty(2);

    let dir = std::env::temp_dir().join(format!("gateway-rescan-{}-{:?}", std::process::id(), backend));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "secret = \"{}\"\n[rates]\nsource = \"static\"\n[payments]\nbtc_xpub = \"{ZPUB}\"\n[watchers.btc]\nesplora_url = \"{}\"\n",
            "11".repeat(32),
            esplora.url
        ),
    )
    .unwrap();

    let report = rescan(&config, &db.url, "100");
    assert_eq!(
        (report["chain"].as_str(), report["quotes"].as_u64(), report["reported"].as_u64()),
        (Some("btc"), Some(1), Some(1)),
        "{report}"
    );
    let row: (String, Option<String>) = sqlx::query_as("SELECT status, quote_id FROM payments WHERE txid = $1")
        .bind(txid.to_string())
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(row, ("credited".to_string(), Some(q.id.clone())));
    assert!(p.ticket_for_quote(&q.id).await.unwrap().is_some());

    // Again, from a date: the same payment, recognised; nothing new written.
    let date = chrono::DateTime::from_timestamp_millis(now - 10 * DAY).unwrap().format("%Y-%m-%d").to_string();
    let again = rescan(&config, &db.url, &date);
    assert_eq!(again["reported"].as_u64(), Some(1), "{again}");
    let counts: (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM payments), (SELECT COUNT(*) FROM ledger_entries)")
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
    assert_eq!(counts, (1, 2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescan_records_a_late_payment_once_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescan_records_a_late_payment_once_postgres() {
    run(Backend::Postgres).await;
}
