//! `gateway admin payouts|commission|addresses|settle`, run as the real binary against a database the real app
//! wrote: the batches an operator sends, the commission per chain, the receiving addresses a restored wallet must
//! scan, and a settlement refused then recorded.

use crate::common;

use std::process::{Command, Output};
use std::sync::Arc;

use chains::{Amount, Chain, Currency};
use serde_json::{json, Value};
use ticketing::creators::AccountName;
use ticketing::purchases::{PaymentReport, PaymentSettings, Purchases, QuoteRequest};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;

const ZPUB: &str =
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";

fn gateway(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .env_remove("GATEWAY_CONFIG")
        .env("DATABASE_URL", db)
        .env("GATEWAY_SECRET", "11".repeat(32))
        .env("GATEWAY_RATES__SOURCE", "static")
        .env("GATEWAY_PAYMENTS__BTC_XPUB", ZPUB)
        // Brackets would make the environment layer read a list: the origin is accepted without them.
        .env("GATEWAY_PAYMENTS__BTC_KEY_ORIGIN", "73c5da0a/84h/0h/0h")
        .output()
        .expect("run the gateway binary")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_export_batches_report_commission_and_addresses_and_settle_from_the_command_line() {
    let app = common::spawn_app(ticketing::Backend::Sqlite).await;
    let event_id = app.usd_event_on_sale("Show", 10, "HIVE").await;
    let watcher = Purchases::new(
        app.store.clone(),
        Arc::new(StaticRates::development()),
        PaymentSettings::new("dlux-tickets"),
        &[0x11; 32],
    );
    let now = ticketing::now_ms();
    let quote = watcher
        .create_quote(QuoteRequest { event_id, currency: Currency::Hive, wallet_address: "carol".into() }, now)
        .await
        .unwrap();
    let report = PaymentReport {
        chain: Chain::Hive,
        txid: "hivetx1".into(),
        output_index: 0,
        quote_id: None,
        memo: quote.memo.clone(),
        amount: Amount::new(Currency::Hive, 100_000),
        to_address: "dlux-tickets".into(),
        from_address: Some("carol".into()),
        block_height: Some(5),
        block_hash: None,
        confirmations: 1,
        is_final: true,
    };
    watcher.report_payment(report, now).await.unwrap();
    sqlx::query("UPDATE ledger_entries SET due_at = $1 WHERE kind IN ('payout', 'commission')")
        .bind(now - 1000)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    let db = app.db_url();

    // Held: listed with the reason, in no batch.
    let listed: Value = serde_json::from_str(&stdout(&gateway(&db, &["admin", "payouts"]))).unwrap();
    assert_eq!((listed[0]["held"].as_str(), listed[0]["chain"].as_str()), (Some("no_payout_address"), Some("hive")));
    let entry = listed[0]["id"].as_i64().unwrap();
    let refused = gateway(&db, &["admin", "settle", &entry.to_string(), &"ab".repeat(20)]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no payout address on hive"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    app.store.set_payout_address(&AccountName::parse("alice").unwrap(), Chain::Hive, "alice", None, now).await.unwrap();
    let csv = stdout(&gateway(&db, &["admin", "payouts", "--format", "csv"]));
    assert_eq!(
        csv,
        format!(
            "chain,currency,address,amount,amount_units,creators,entries\nhive,HIVE,alice,80,80000,alice,{entry}\n"
        )
    );
    let ops: Value = serde_json::from_str(&stdout(&gateway(&db, &["admin", "payouts", "--format", "hive"]))).unwrap();
    assert_eq!(ops[0][1]["amount"], "80.000 HIVE");
    // No Bitcoin payout is due: no PSBT, and the reason.
    let psbt = gateway(&db, &["admin", "payouts", "--format", "psbt"]);
    assert_eq!(psbt.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&psbt.stderr).contains("nothing_due"), "{}", String::from_utf8_lossy(&psbt.stderr));

    let commission: Value = serde_json::from_str(&stdout(&gateway(&db, &["admin", "commission"]))).unwrap();
    assert_eq!(
        commission,
        json!([{ "chain": "hive", "currency": "HIVE", "earned": "20000", "pending": "0", "sales": 1 }])
    );

    let addresses: Value =
        serde_json::from_str(&stdout(&gateway(&db, &["admin", "addresses", "--chain", "btc"]))).unwrap();
    assert_eq!((addresses["next_index"].as_u64(), addresses["wallet_gap_limit"].as_u64()), (Some(0), Some(1001)));
    assert!(
        addresses["descriptor"].as_str().unwrap().starts_with("wpkh([73c5da0a/84'/0'/0']xpub6CatWdiZ"),
        "{addresses}"
    );
    assert!(addresses["change_descriptor"].as_str().unwrap().ends_with("/1/*)"), "{addresses}");
    assert_eq!(gateway(&db, &["admin", "addresses", "--chain", "hive"]).status.code(), Some(1));

    // A txid of the wrong form is refused; the right one settles, to the proven address.
    let bad = gateway(&db, &["admin", "settle", &entry.to_string(), "not-a-txid"]);
    assert_eq!(bad.status.code(), Some(1));
    let done = stdout(&gateway(&db, &["admin", "settle", &entry.to_string(), &"AB".repeat(20)]));
    assert!(
        done.contains(&format!(
            "settled entry {entry} (payout HIVE) with {} to alice (checked: format_only)",
            "ab".repeat(20)
        )),
        "{done}"
    );
}
