//! The web client `/sdk/events.js` in headless Chromium against the real gateway (browser-tests/sdk.mjs): the
//! marketplace with its filters, a purchase followed over Server-Sent Events while this test reports the payment
//! as a watcher would, the challenge signed by an EIP-1193 wallet holding a real secp256k1 key, the join, NAF
//! connected through the dlux adapter, and the refusals (sold out, unknown quote, wrong signature, replay, no
//! wallet, expired quote, a late underpayment owed back).

use crate::browser::repo_root;
use crate::{common, creator_support};

use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use chains::derive::EvmAccount;
use chains::{Amount, Chain, Currency};
use common::wallets::EvmWallet;
use creator_support::*;
use serde_json::{json, Value};
use ticketing::purchases::{PaymentOutcome, PaymentReport, PaymentSettings, Purchases};
use ticketing::rates::StaticRates;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const WALLET_SEED: u8 = 7;

fn evm_xpub() -> String {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let master = Xpriv::new_master(bitcoin::Network::Bitcoin, &[42u8; 32]).unwrap();
    let account = master.derive_priv(&secp, &DerivationPath::from_str("m/44'/60'/0'").unwrap()).unwrap();
    Xpub::from_priv(&secp, &account).to_string()
}

/// The watchers' side of the same database: reports go through the ticketing crate, as in production.
fn watcher(app: &common::TestApp) -> Purchases {
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.evm = Some(EvmAccount::parse(&evm_xpub()).unwrap());
    Purchases::new(app.store.clone(), Arc::new(StaticRates::development()), settings, &[0x11; 32])
}

async fn create(
    app: &common::TestApp,
    title: &str,
    category: &str,
    price: &str,
    seats: i64,
    start_in_ms: i64,
    crypto: &[&str],
) -> i64 {
    let start = ticketing::now_ms() + start_in_ms;
    let body = json!({
        "title": title, "description": "in the browser", "space_type": "custom", "space_id": title,
        "ticket_price": price, "ticket_currency": "USD", "max_attendees": seats,
        "event_start": rfc3339(start), "event_end": rfc3339(start + 2 * HOUR),
        "supported_crypto": crypto, "event_category": category,
    });
    create_event(app, "alice", &body).await["id"].as_i64().unwrap()
}

/// A payment for `quote` as a watcher sees it.
fn payment(quote: &Value, amount: Amount, confirmations: i64, is_final: bool) -> PaymentReport {
    let id = quote["quote_id"].as_str().unwrap();
    PaymentReport {
        chain: amount.currency.chain().unwrap(),
        txid: format!("tx-{id}"),
        output_index: 0,
        quote_id: Some(id.to_owned()).filter(|_| amount.currency == Currency::Eth),
        memo: quote["memo"].as_str().map(str::to_owned),
        amount,
        to_address: quote["payment_address"].as_str().unwrap().to_owned(),
        from_address: Some(quote["wallet_address"].as_str().unwrap().to_owned()),
        block_height: Some(100),
        block_hash: Some("0xab".into()),
        confirmations,
        is_final,
    }
}

fn quote_amount(quote: &Value) -> Amount {
    let currency: Currency = quote["currency"].as_str().unwrap().parse().unwrap();
    Amount::parse(currency, quote["amount"].as_str().unwrap()).unwrap()
}

/// Runs the driver; `on_step` answers its progress lines (and may write a line to its stdin). Returns the result.
async fn run_driver<F, Fut>(args: Value, mut on_step: F) -> Value
where
    F: FnMut(Value) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let root = repo_root();
    assert!(
        root.join("browser-tests/node_modules/playwright-core").exists(),
        "browser-tests/node_modules is missing: run `npm ci --prefix browser-tests`"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(root.join("browser-tests/sdk.mjs"))
        .arg(args.to_string())
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let result = loop {
        let line = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .expect("the driver says something within 90 s")
            .unwrap()
            .expect("the driver ended without a result");
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if value.get("step").is_none() {
            break value;
        }
        if let Some(reply) = on_step(value).await {
            stdin.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
        }
    };
    let status = child.wait().await.unwrap();
    assert_eq!(result["ok"], true, "driver failed: {}", result["error"].as_str().unwrap_or(&result.to_string()));
    assert!(status.success());
    result
}

fn assert_clean_page(record: &Value) {
    assert_eq!(record["errors"], json!([]), "page errors in {}", record["name"]);
    assert_eq!(record["external"], json!([]), "requests outside the gateway from {}", record["name"]);
}

fn assert_api_error(thrown: &Value, code: &str, status: u64) {
    assert_eq!(thrown["name"], "DluxApiError", "{thrown}");
    assert_eq!(thrown["isApiError"], true, "{thrown}");
    assert_eq!(thrown["code"], code, "{thrown}");
    assert_eq!(thrown["status"], status, "{thrown}");
    assert!(!thrown["message"].as_str().unwrap().is_empty());
}

fn assert_no_wallet(thrown: &Value, missing: &str) {
    assert_eq!(thrown["name"], "DluxWalletError", "{thrown}");
    assert_eq!(thrown["isWalletError"], true);
    assert_eq!(thrown["code"], "no_wallet");
    assert_eq!(thrown["missing"], missing);
    assert!(thrown["message"].as_str().unwrap().contains(missing), "{thrown}");
}

async fn buy_and_join(backend: ticketing::Backend) {
    let app = common::spawn_app_with(backend, |s| {
        s.payments.evm_xpub = Some(evm_xpub());
        // Doors open an hour early, so the concert ten minutes from now can be entered.
        s.rooms.early_open_secs = 3600;
    })
    .await;
    set_tier(&app, "alice", "pro", None).await;
    let concert = create(&app, "SDK Concert", "music", "5", 1, 10 * 60_000, &["ETH", "HIVE"]).await;
    let talk = create(&app, "SDK Talk", "talks", "50", 10, 48 * HOUR, &["ETH"]).await;
    let wallet = EvmWallet::new(WALLET_SEED);
    let args = json!({
        "base_url": app.address, "scenario": "buy_and_join", "web_dir": repo_root().join("web"),
        "wallet_key": hex::encode([WALLET_SEED; 32]), "events": { "concert": concert, "talk": talk },
        "timeout_ms": 80_000,
    });
    let watcher = watcher(&app);
    let mut quote = Value::Null;
    let result = run_driver(args, |step| {
        let watcher = &watcher;
        let quote_seen = step["quote"].clone();
        if step["step"] == "quote" {
            quote = quote_seen.clone();
        }
        let quote = quote.clone();
        async move {
            let now = ticketing::now_ms();
            // Each report waits for the page to have seen the previous one, so every stage reaches it.
            let report = match (step["step"].as_str(), step["quote"]["status"].as_str()) {
                (Some("update"), Some("awaiting_payment")) => Some(payment(&quote, quote_amount(&quote), 0, false)),
                (Some("update"), Some("seen")) => Some(payment(&quote, quote_amount(&quote), 1, false)),
                (Some("update"), Some("confirming")) => Some(payment(&quote, quote_amount(&quote), 12, true)),
                _ => None,
            };
            if let Some(report) = report {
                let outcome = watcher.report_payment(report, now).await.unwrap();
                if step["step"] == "update" && step["quote"]["status"] == "confirming" {
                    assert!(matches!(outcome, PaymentOutcome::TicketIssued { .. }), "{outcome:?}");
                }
            }
            None
        }
    })
    .await;
    assert_clean_page(&result["record"]);
    assert_clean_page(&result["bare_record"]);
    assert_eq!(result["wallet"], wallet.address(), "the page's wallet is the key's address");

    let l = &result["listing"];
    let ids = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids(&l["all"]), vec![concert, talk]);
    assert_eq!(ids(&l["music"]), vec![concert]);
    assert_eq!(ids(&l["pricey"]), vec![talk]);
    assert_eq!(ids(&l["cheap"]), vec![concert]);
    assert_eq!(ids(&l["later"]), vec![talk]);
    assert_eq!(ids(&l["first"]), vec![concert]);
    assert_eq!(ids(&l["second"]), vec![talk]);
    assert!(ids(&l["live"]).contains(&concert));
    assert!(l["cursor"].is_string());
    assert_api_error(&l["bad"], "invalid_limit", 422);
    assert_eq!(l["event"]["title"], "SDK Concert");
    assert_eq!(l["event"]["category"], "music");
    assert_api_error(&l["missing"], "event_not_found", 404);
    assert_eq!(l["creator"]["account"], "alice");

    assert_eq!(result["quote"]["status"], "awaiting_payment");
    assert_eq!(result["quote"]["currency"], "ETH");
    assert_eq!(result["quote"]["wallet_address"].as_str().unwrap().to_lowercase(), wallet.address());
    let updates = result["watched"]["updates"].as_array().unwrap();
    let statuses: Vec<&str> = updates.iter().map(|u| u["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["awaiting_payment", "seen", "confirming", "paid"]);
    // ETH waits for the `finalized` tag: progress says so rather than counting.
    assert_eq!(updates[2]["progress"], "waiting for finality", "{}", updates[2]);
    let final_quote = &result["watched"]["final"];
    assert_eq!(final_quote["status"], "paid");
    assert_eq!(final_quote["ticket"]["status"], "valid");
    assert_eq!(final_quote["ticket"]["wallet_address"], wallet.address());
    assert_api_error(&result["sold_out"], "sold_out", 409);
    assert_api_error(&result["unknown_quote"], "quote_not_found", 404);

    let j = &result["join"];
    assert_eq!(j["signed"]["address"].as_str().unwrap().to_lowercase(), wallet.address());
    assert_eq!(j["signed"]["chain"], "eth");
    assert_eq!(j["signed"]["message"], j["challenge"]["message"]);
    // The page's signature is the one the wallet's key makes.
    assert_eq!(j["signed"]["signature"], wallet.sign(j["challenge"]["message"].as_str().unwrap()));
    assert_api_error(&j["bad"], "wrong_signer", 401);
    assert_eq!(j["join"]["access_granted"], true);
    assert_eq!(j["join"]["event_id"], concert);
    assert!(j["join"]["websocket_url"].as_str().unwrap().ends_with(&format!("/event/{concert}")));
    assert!(!j["join"]["session_token"].as_str().unwrap().is_empty());
    // joinEvent(id, address, await signWithWallet(seed message)) — the object passed as it is — is granted.
    assert_eq!(j["natural"]["access_granted"], true, "{}", j["natural"]);
    assert_api_error(&j["replayed"], "replayed", 401);

    let scene = &result["scene"];
    assert_eq!(scene["isDlux"], true);
    assert_eq!(scene["connected"], true);
    assert_eq!(scene["room"], concert.to_string());
    assert!(!scene["clientId"].as_str().unwrap().is_empty());
    assert_eq!(scene["clientId"], scene["nafClientId"]);

    let none = &result["no_wallet"];
    assert_no_wallet(&none["eth"], "window.ethereum");
    assert_no_wallet(&none["sol"], "window.solana");
    assert_no_wallet(&none["hive"], "window.hive_keychain");
    assert_no_wallet(&none["address"], "window.ethereum");
    assert_eq!(none["btc_sign"]["code"], "unsupported_chain", "{none}");
    let btc = &result["btc_challenge"];
    assert_eq!(btc["chain"], "btc", "{btc}");
    assert!(btc["message"].as_str().unwrap().contains("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"), "{btc}");
    assert_eq!(none["chain"]["code"], "unsupported_chain");

    // The server agrees: the wallet holds the ticket.
    let tickets: Value =
        app.get(&format!("/api/tickets?wallet={}&chain=eth", wallet.address())).await.json().await.unwrap();
    assert_eq!(tickets.as_array().unwrap().len(), 1);
    let _ = Chain::Eth;
}

async fn expiry(backend: ticketing::Backend) {
    let app = common::spawn_app_with(backend, |s| s.payments.quote_ttl_secs = 1).await;
    set_tier(&app, "alice", "pro", None).await;
    let concert = create(&app, "Short Quote", "music", "5", 5, 24 * HOUR, &["HIVE"]).await;
    let args = json!({
        "base_url": app.address, "scenario": "expiry", "web_dir": repo_root().join("web"),
        "events": { "concert": concert }, "timeout_ms": 60_000,
    });
    let watcher = watcher(&app);
    let mut quote = Value::Null;
    let result = run_driver(args, |step| {
        if step["step"] == "quote" {
            quote = step["quote"].clone();
        }
        let quote = quote.clone();
        let watcher = &watcher;
        async move {
            if step["step"] != "expired" {
                return None;
            }
            // Half the price arrives after the quote expired: owed back.
            let half = Amount::new(quote_amount(&quote).currency, quote_amount(&quote).units / 2);
            let outcome = watcher.report_payment(payment(&quote, half, 1, true), ticketing::now_ms()).await.unwrap();
            assert!(matches!(outcome, PaymentOutcome::RefundDue { reason: "underpaid" }), "{outcome:?}");
            Some("paid late".to_owned())
        }
    })
    .await;
    assert_clean_page(&result["record"]);
    // The quote lives one second: the page sees it open and then expired (or, on a slow machine, only expired).
    let first = result["first"]["updates"].clone();
    assert!(first == json!(["awaiting_payment", "expired"]) || first == json!(["expired"]), "{first}");
    assert_eq!(result["first"]["final"]["status"], "expired");
    assert!(result["expired_after_ms"].as_i64().unwrap() < 3000, "{}", result["expired_after_ms"]);
    assert_eq!(result["second"]["updates"], json!(["refund_due"]));
    assert_eq!(result["second"]["final"]["status"], "refund_due");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_buys_and_joins_sqlite() {
    buy_and_join(ticketing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_buys_and_joins_postgres() {
    buy_and_join(ticketing::Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_sees_expiry_and_refund_sqlite() {
    expiry(ticketing::Backend::Sqlite).await;
}

/// A scene page on another, allowed origin loads the SDK and the adapter with CORS from the gateway and goes
/// challenge → join → room (NAF connected through the dlux adapter); a page on a foreign origin can't read the
/// API, is refused at the join's preflight, and its WebSocket never opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_joins_and_a_foreign_one_is_refused() {
    const ALLOWED: &str = "http://scenes.test";
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.server.allowed_origins = vec![ALLOWED.into()];
        s.rooms.early_open_secs = 3600;
    })
    .await;
    set_tier(&app, "alice", "pro", None).await;
    let live = create(&app, "Cross-origin show", "music", "5", 10, 10 * 60_000, &["ETH"]).await;
    let wallet = EvmWallet::new(WALLET_SEED);
    insert_ticket(&app.store, live, "eth", &wallet.address(), "valid").await;
    let args = json!({
        "base_url": app.address, "scenario": "cross_origin", "wallet_key": hex::encode([WALLET_SEED; 32]),
        "events": { "live": live }, "allowed_page": ALLOWED, "foreign_page": "http://evil.test", "timeout_ms": 60_000,
    });
    let result = run_driver(args, |_| async { None }).await;
    let allowed = &result["allowed"];
    assert_eq!(allowed["origin"], ALLOWED, "{allowed}");
    assert_eq!(
        (allowed["role"].as_str(), allowed["connected"].as_bool(), allowed["isDlux"].as_bool()),
        (Some("attendee"), Some(true), Some(true)),
        "{allowed}"
    );
    assert!(allowed["clientId"].is_string(), "{allowed}");
    assert_clean_page(&result["record"]);
    let foreign = &result["foreign"];
    assert_eq!(foreign["read"], json!({ "error": "TypeError" }), "the answer names no foreign origin: {foreign}");
    assert_eq!(foreign["join"], json!({ "error": "TypeError" }), "refused at preflight: {foreign}");
    assert_eq!(foreign["socket"], json!({ "opened": false, "code": 1006 }), "{foreign}");
}
