//! A free event's checkout page in headless Chromium (browser-tests/free.mjs): no payment step, the wallet
//! signs the access challenge through the SDK's `rsvp`, the receipt shows the ticket; the ticket then joins.

use crate::browser::repo_root;
use crate::common;

use std::process::Stdio;

use common::wallets::EvmWallet;
use reqwest::StatusCode;
use serde_json::{json, Value};
use ticketing::creators::{AccountName, Tier};
use ticketing::testing::RawSql;

const WALLET_SEED: u8 = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_event_is_reserved_with_a_wallet_signature_and_joined() {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(std::path::Path::new(&chromium).exists(), "Chromium is not installed at {chromium}: run ./scripts/test");
    let root = repo_root();
    assert!(
        root.join("browser-tests/node_modules/playwright-core").exists(),
        "browser-tests/node_modules is missing: run ./scripts/test (npm ci --prefix browser-tests)"
    );
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| s.web_dir = Some(root.join("web"))).await;
    app.store.set_tier(&AccountName::parse("alice").unwrap(), Tier::Pro, None, "test").await.unwrap();
    let now = ticketing::now_ms();
    let event_id: i64 = ticketing::testing::SeedEvent::new(now - 1000)
        .title("Free meetup")
        .price("0", "USD")
        .capacity(5)
        .starts(now - 60_000)
        .ends(now + 3_600_000)
        .sales(now - 1000, Some(now + 3_600_000))
        .insert(&app.store)
        .await;
    let args = json!({ "base_url": app.address, "wallet_key": hex::encode([WALLET_SEED; 32]), "event_id": event_id });
    let output = tokio::process::Command::new("node")
        .arg(root.join("browser-tests/free.mjs"))
        .arg(args.to_string())
        .current_dir(&root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: Value = serde_json::from_str(stdout.lines().last().expect("a result line")).unwrap();
    assert_eq!(result["ok"], true, "driver failed: {result}");

    let wallet = EvmWallet::new(WALLET_SEED);
    assert_eq!(result["wallet"], wallet.address().as_str());
    assert!(result["card"]["text"].as_str().unwrap().contains("Free — reserve with your wallet"), "{result}");
    assert_eq!(result["card"]["prices"], 0);
    assert_eq!(result["before"]["heading"], "Free — reserve with your wallet");
    assert_eq!(result["before"]["price"], "Free");
    assert_eq!(result["before"]["button"], "Reserve with your wallet");
    assert!(!result["before"]["chains"].as_array().unwrap().iter().any(|c| c == "btc"), "{result}");
    let after = &result["after"];
    assert!(after["receipt"].as_str().unwrap().starts_with("You're in: ticket #"), "{after}");
    assert!(after["paid"].as_str().unwrap().contains("Free"), "{after}");
    assert_eq!(after["payBoxHidden"], true);
    assert_eq!(after["formHidden"], true);
    assert!(after["join"].as_str().unwrap().contains(&format!("event={event_id}")), "{after}");
    assert_eq!(result["errors"], json!([]));
    assert_eq!(result["external"], json!([]));

    // The ticket the page reserved is bound to the wallet and joins like a paid one; no money was recorded.
    let (ticket_id, amount): (i64, String) = sqlx::query_as(
        "SELECT id, amount_paid_units FROM tickets WHERE event_id = $1 AND wallet_address = $2 AND status = 'valid'",
    )
    .bind(event_id)
    .bind(wallet.address())
    .fetch_one(app.store.raw_pool())
    .await
    .unwrap();
    assert_eq!(amount, "0");
    let res = app.get(&format!("/api/events/{event_id}/challenge?chain=eth&wallet={}", wallet.address())).await;
    let message = res.json::<Value>().await.unwrap()["message"].as_str().unwrap().to_owned();
    let body = json!({ "wallet_address": wallet.address(), "chain": "eth", "signature": wallet.sign(&message), "message": message });
    let res = app.client.post(app.url(&format!("/api/events/{event_id}/join"))).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["ticket_id"], ticket_id);
    let ledger: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(app.store.raw_pool())
        .await
        .unwrap();
    assert_eq!(ledger, 0);
}
