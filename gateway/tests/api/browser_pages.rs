//! The buyer and creator pages (`web/pages/`, issue 13) in headless Chromium against the real gateway, driven
//! by browser-tests/pages.mjs. This test is the orchestrator: it seeds events through the real API, reports the
//! buyer's payment stage by stage through `ticketing::purchases::Purchases::report_payment` (as a watcher would),
//! sells and admits the other ticket holders with real signatures, and runs a Hive API node holding the
//! creator's posting key, which the page's fake Hive Keychain signs with.
//!
//! What the browser does: browses and filters the marketplace, buys with an EIP-1193 wallet holding a real
//! secp256k1 key, watches the QR checkout's status turn from seen through confirming to paid over
//! Server-Sent Events, lists the wallet's tickets, meets the join page's refusals (no ticket, not live yet with a
//! countdown) and its paste-a-signature flow, joins by signing, enters the A-Frame scene where a second ticket
//! holder sees its avatar; then a creator signs in with Keychain, has an event refused and then created, and
//! sees an attendee of it join in the live feed. Screenshots land in `test-artifacts/pages-*.png`.

use crate::browser::repo_root;
use crate::{common, creator_support};

use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use chains::derive::EvmAccount;
use chains::{Amount, Currency};
use common::wallets::EvmWallet;
use creator_support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use ticketing::purchases::{PaymentOutcome, PaymentReport, PaymentSettings, Purchases, QuoteRequest};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BUYER: u8 = 31;
const BOB: u8 = 32;
const CAROL: u8 = 33;

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

async fn create(app: &common::TestApp, title: &str, category: &str, price: &str, start_in_ms: i64) -> i64 {
    let start = ticketing::now_ms() + start_in_ms;
    let body = json!({
        "title": title, "description": "Seen in the browser test", "space_type": "custom", "space_id": title,
        "ticket_price": price, "ticket_currency": "USD", "max_attendees": 10,
        "event_start": rfc3339(start), "event_end": rfc3339(start + 2 * HOUR),
        "supported_crypto": ["ETH", "HIVE"], "event_category": category, "require_microphone": true, "age_restriction": 16,
    });
    create_event(app, "alice", &body).await["id"].as_i64().unwrap()
}

/// A payment for `quote` as a watcher sees it.
fn payment(quote: &Value, confirmations: i64, is_final: bool) -> PaymentReport {
    let id = quote["quote_id"].as_str().unwrap();
    let currency: Currency = quote["currency"].as_str().unwrap().parse().unwrap();
    PaymentReport {
        chain: currency.chain().unwrap(),
        txid: format!("tx-{id}"),
        output_index: 0,
        quote_id: Some(id.to_owned()),
        memo: quote["memo"].as_str().map(str::to_owned),
        amount: Amount::parse(currency, quote["amount"].as_str().unwrap()).unwrap(),
        to_address: quote["payment_address"].as_str().unwrap().to_owned(),
        from_address: Some(quote["wallet_address"].as_str().unwrap().to_owned()),
        block_height: Some(100),
        block_hash: Some("0xab".into()),
        confirmations,
        is_final,
    }
}

/// A single-use session token for `wallet`'s ticket, from the join endpoint with a real signature.
async fn session_token(app: &common::TestApp, event_id: i64, wallet: &EvmWallet) -> String {
    let address = wallet.address();
    let res = app.get(&format!("/api/events/{event_id}/challenge?chain=eth&wallet={address}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let message = res.json::<Value>().await.unwrap()["message"].as_str().unwrap().to_owned();
    let body =
        json!({ "wallet_address": address, "chain": "eth", "signature": wallet.sign(&message), "message": message });
    let res = app.client.post(app.url(&format!("/api/events/{event_id}/join"))).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["session_token"].as_str().unwrap().to_owned()
}

/// Runs `browser-tests/{script}`; `on_step` answers its progress lines on its stdin. Returns the result line.
async fn run_driver<F, Fut>(script: &str, args: Value, mut on_step: F) -> Value
where
    F: FnMut(Value) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let root = repo_root();
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(std::path::Path::new(&chromium).exists(), "Chromium is not installed at {chromium}: run ./scripts/test");
    assert!(
        root.join("browser-tests/node_modules/playwright-core").exists(),
        "browser-tests/node_modules is missing: run ./scripts/test (npm ci --prefix browser-tests)"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(root.join("browser-tests").join(script))
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
        let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .expect("the driver says something within 120 s")
            .unwrap()
            .expect("the driver ended without a result");
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if value.get("step").is_none() {
            break value;
        }
        let answer = on_step(value).await;
        stdin.write_all(format!("{answer}\n").as_bytes()).await.unwrap();
    };
    let status = child.wait().await.unwrap();
    assert_eq!(result["ok"], true, "driver failed: {}", result["error"].as_str().unwrap_or(&result.to_string()));
    assert!(status.success());
    result
}

/// The gateway the page tests drive: the checkout's web files, a local Hive node for creator sign-in, EVM
/// quotes; doors open an hour early, so an event ten minutes away can be entered, and tokens outlive a buyer's flow.
async fn pages_app() -> (HiveNode, common::TestApp) {
    let hive = HiveNode::start().await;
    let hive_url = hive.url.clone();
    let web = repo_root().join("web");
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.hive_api_url = hive_url;
        s.web_dir = Some(web);
        s.payments.evm_xpub = Some(evm_xpub());
        s.rooms.early_open_secs = 3600;
        s.rooms.session_token_ttl_secs = 600;
    })
    .await;
    (hive, app)
}

fn ids(cards: &Value) -> Vec<i64> {
    cards.as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_buys_and_joins_and_a_creator_watches_the_room() {
    let (hive, app) = pages_app().await;
    set_tier(&app, "alice", "pro", None).await;
    let concert = create(&app, "Browser Concert", "music", "5", 10 * 60_000).await;
    let talk = create(&app, "Evening Lecture", "talks", "50", 48 * HOUR).await;
    let late = create(&app, "Late Show", "art", "10", 24 * HOUR).await;
    // Doors open, and the buyer holds no ticket for it: the join page's `no_ticket`.
    let rehearsal = create(&app, "Open Rehearsal", "art", "5", 5 * 60_000).await;
    let watcher = watcher(&app);
    let (buyer, bob, carol) = (EvmWallet::new(BUYER), EvmWallet::new(BOB), EvmWallet::new(CAROL));
    sold_quote(&watcher, concert, &bob).await;
    sold_quote(&watcher, late, &buyer).await;
    let bob_token = session_token(&app, concert, &bob).await;

    let artifacts = repo_root().join("test-artifacts");
    let args = json!({
        "base_url": app.address, "artifacts_dir": artifacts, "timeout_ms": 150_000,
        "wallet_key": hex::encode([BUYER; 32]), "hive_key": hive.key("alice").secret_hex(), "creator": "alice",
        "events": { "concert": concert, "talk": talk, "late": late, "rehearsal": rehearsal }, "bob_token": bob_token,
    });
    let mut quote = Value::Null;
    let mut reported = Vec::new();
    let result = run_driver("pages.mjs", args, |step| {
        let (app, watcher) = (&app, &watcher);
        if step["step"] == "quote" {
            quote = step["quote"].clone();
        }
        let quote = quote.clone();
        let kind = step["step"].as_str().unwrap_or_default().to_owned();
        let status = step["quote"]["status"].as_str().unwrap_or_default().to_owned();
        reported.push(format!("{kind}:{status}"));
        let carol = &carol;
        async move {
            let now = ticketing::now_ms();
            // Each stage is reported once the page shows the one before, so the page sees every stage.
            let report = match (kind.as_str(), status.as_str()) {
                ("quote", "awaiting_payment") => Some(payment(&quote, 0, false)),
                ("status", "seen") => Some(payment(&quote, 1, false)),
                ("status", "confirming") => Some(payment(&quote, 12, true)),
                _ => None,
            };
            if let Some(report) = report {
                let outcome = watcher.report_payment(report, now).await.unwrap();
                if status == "confirming" {
                    assert!(matches!(outcome, PaymentOutcome::TicketIssued { .. }), "{outcome:?}");
                }
                return "ok".to_owned();
            }
            if kind == "created" {
                let event_id = step["event_id"].as_i64().expect("the created event's id");
                sold_quote(watcher, event_id, carol).await;
                return session_token(app, event_id, carol).await;
            }
            panic!("unexpected step {step}");
        }
    })
    .await;
    assert_eq!(reported, ["quote:awaiting_payment", "status:seen", "status:confirming", "created:"]);
    for record in result["records"].as_array().unwrap() {
        assert_eq!(record["errors"], json!([]), "page errors in {}", record["name"]);
        assert_eq!(record["external"], json!([]), "requests outside the gateway from {}", record["name"]);
    }
    assert_eq!(result["wallet"], buyer.address());

    // The marketplace and its filters.
    let m = &result["market"];
    assert_eq!(ids(&m["all"]), vec![rehearsal, concert, late, talk]);
    assert!(m["all"][1]["seats"].as_str().unwrap().contains("9 of 10 seats left"), "{}", m["all"][1]);
    let prices: Vec<&str> = m["all"][1]["prices"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(prices.iter().any(|p| p.ends_with(" ETH")) && prices.iter().any(|p| p.ends_with(" HIVE")), "{prices:?}");
    assert_eq!(ids(&m["music"]), vec![concert]);
    assert_eq!(ids(&m["pricey"]), vec![talk]);
    assert_eq!(ids(&m["search"]), vec![talk]);
    assert_eq!(ids(&m["nobody"]), Vec::<i64>::new());
    assert_eq!(m["nobodyText"], "No events match these filters.");
    assert!(!ids(&m["live"]).contains(&talk));

    assert_eq!(result["keyboard"]["first"], "skip", "the first Tab reaches the skip link");
    assert_eq!(result["keyboard"]["hash"], "#main");

    // The event page and the checkout.
    assert_eq!(result["event"]["title"], "Browser Concert");
    assert_eq!(result["event"]["requirements"], "microphone, age 16+");
    assert!(result["event"]["creator"].as_str().unwrap().contains("@alice"));
    assert_eq!(result["event"]["currencies"], json!(["hive", "eth"]), "the event's prices, in the API's order");
    assert_eq!(result["connected"], buyer.address());
    let c = &result["checkout"];
    assert_eq!(c["address"], quote["payment_address"]);
    assert_eq!(c["amount"], format!("{} ETH", quote["amount"].as_str().unwrap()));
    assert_eq!(c["qr"], format!("/api/quotes/{}/qr.svg", quote["quote_id"].as_str().unwrap()));
    assert!(c["qrWidth"].as_u64().unwrap() > 20, "the QR image rendered");
    assert_eq!(c["uri"], quote["payment_uri"]);
    assert!(c["countdown"].as_str().unwrap().contains("min"), "{}", c["countdown"]);
    assert_eq!(c["hash"], format!("#quote={}", quote["quote_id"].as_str().unwrap()));
    // The QR the page showed encodes the quote's payment URI (the route draws exactly that).
    let svg = app.get(c["qr"].as_str().unwrap()).await;
    assert_eq!(svg.status(), StatusCode::OK);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert_eq!(svg.text().await.unwrap(), gateway::routes::qr::qr_svg(quote["payment_uri"].as_str().unwrap()).unwrap());
    let statuses = result["statuses"].as_array().unwrap();
    assert_eq!(
        statuses.iter().map(|s| s["data"].as_str().unwrap()).collect::<Vec<_>>(),
        ["seen", "confirming", "paid"]
    );
    // ETH waits for the `finalized` tag: the page says so rather than counting.
    assert!(statuses[1]["text"].as_str().unwrap().contains("waiting for finality"), "{}", statuses[1]);
    assert!(statuses[2]["text"].as_str().unwrap().starts_with("Paid"));
    assert!(result["paid"].as_str().unwrap().contains(&buyer.address()));
    assert_eq!(
        result["payBoxWhenSeen"],
        json!({ "payBox": false, "form": false }),
        "nothing asks for money once a payment is seen"
    );
    assert_eq!(result["receiptOnScreen"], true);

    // My tickets: the concert's, and the late show's seeded one.
    let tickets: Vec<&str> = result["tickets"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    assert!(tickets.iter().any(|t| t.contains("Browser Concert") && t.contains("Valid")), "{tickets:?}");

    // Join refusals and the paste flow.
    assert_eq!(result["noTicket"]["code"], "no_ticket");
    assert!(result["noTicket"]["text"].as_str().unwrap().contains("no ticket"));
    assert!(result["pasteChallenge"].as_str().unwrap().contains(&format!("{talk}")), "{}", result["pasteChallenge"]);
    assert_eq!(result["notLive"]["code"], "not_live");
    assert!(result["notLive"]["text"].as_str().unwrap().contains("doors open at"));
    assert!(result["notLive"]["countdown"].as_str().unwrap().starts_with("Doors open at"), "{}", result["notLive"]);

    // The join and the scene: the second ticket holder sees the buyer's avatar, and the buyer sees theirs.
    assert_eq!(result["joinForm"], json!({ "event": concert.to_string(), "chain": "eth", "wallet": buyer.address() }));
    assert_eq!(result["scene"]["status"], "connected", "{}", result["scene"]);
    let buyer_id = result["scene"]["clientId"].as_str().unwrap();
    assert!(result["bobSees"].as_array().unwrap().iter().any(|o| o == buyer_id));
    assert!(result["buyerSees"].as_array().unwrap().iter().any(|o| o == &result["bobId"]));
    let buttons = result["sceneButtons"].to_string();
    assert!(
        buttons.contains("Microphone") && buttons.contains("Share screen") && buttons.contains("Send"),
        "{buttons}"
    );

    // The creator: signed in with Keychain, a refusal on the right field, the created event, the live join.
    assert!(result["who"].as_str().unwrap().contains("@alice (pro tier)"), "{}", result["who"]);
    for id in [concert, talk, late] {
        assert!(result["myEvents"].as_array().unwrap().contains(&json!(id)));
    }
    assert_eq!(result["invalid"]["code"], "end_before_start", "{}", result["invalid"]);
    assert_eq!(result["invalid"]["field"], "f-end");
    assert!(
        result["invalid"]["text"].as_str().unwrap().contains("the end must be after the start"),
        "{}",
        result["invalid"]
    );
    assert_eq!(result["invalid"]["ariaInvalid"], "true");
    let created = result["created"]["id"].as_i64().unwrap();
    assert_eq!(
        result["editForm"],
        json!({ "title": "Browser Premiere", "seats": "20", "heading": "Edit “Browser Premiere”" })
    );
    assert_eq!(result["edited"], "Browser Premiere (extended)");
    let event: Value = app.get(&format!("/api/events/{created}")).await.json().await.unwrap();
    assert_eq!(event["title"], "Browser Premiere (extended)");
    assert_eq!(event["category"], "music");
    assert_eq!(event["creator"]["account"], "alice");
    let carol_id = result["carolId"].as_str().unwrap();
    let joined =
        result["feed"].as_array().unwrap().iter().find(|f| f["kind"] == "joined" && f["client_id"] == carol_id);
    assert!(joined.is_some(), "{}", result["feed"]);
    assert!(result["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["client_id"] == carol_id && a["wallet"] == carol.address()));
    assert!(result["feedText"].as_array().unwrap().iter().any(|t| t.as_str().unwrap().contains("joined")));
    assert!(result["mutedRow"].as_str().unwrap().contains("muted by you"), "{}", result["mutedRow"]);
    assert!(result["salesChart"].as_u64().unwrap() > 0);
    assert!(result["cancelled"].as_str().unwrap().contains("Cancelled"));
    let talk_now: Value = app.get(&format!("/api/events/{talk}")).await.json().await.unwrap();
    assert_eq!(talk_now["status"], "cancelled");

    // Responsive down to a phone: nothing wider than the screen outside the tables' own scroll boxes.
    assert_eq!(result["market"]["phoneOverflow"], json!([]), "marketplace at 390 px");
    assert_eq!(result["dashboardPhoneOverflow"], json!([]), "dashboard at 390 px");

    for shot in [
        "marketplace",
        "marketplace-phone",
        "checkout",
        "paid",
        "tickets",
        "join",
        "join-not-live",
        "scene-buyer",
        "dashboard",
    ] {
        assert!(artifacts.join(format!("pages-{shot}.png")).exists(), "screenshot {shot}");
    }
}

/// Issue 28: a headset with no wallet enters by signing on a phone. The headset's join page opens a pairing and
/// shows its QR code; the phone (another Chromium, with a real EVM key behind an injected wallet) opens the
/// link, signs the event's challenge there, and the headset continues into the scene by itself. The used link
/// is refused on the phone; a code the orchestrator expires is refused on both sides; doors that are not open
/// give a countdown, not a pairing; and a creator signs in to the dashboard with the phone's Keychain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headset_joins_by_signing_on_a_phone() {
    let (hive, app) = pages_app().await;
    set_tier(&app, "alice", "pro", None).await;
    let live = create(&app, "Headset Concert", "music", "5", 10 * 60_000).await;
    let early = create(&app, "Tomorrow's Talk", "talks", "5", 24 * HOUR).await;
    let ended = create(&app, "Last Week's Gig", "music", "5", 24 * HOUR).await;
    let watcher = watcher(&app);
    let buyer = EvmWallet::new(BUYER);
    sold_quote(&watcher, live, &buyer).await;
    sold_quote(&watcher, early, &buyer).await;
    sold_quote(&watcher, ended, &buyer).await;
    let now = ticketing::now_ms();
    reschedule(&app.store, ended, now - 7 * DAY, now - 7 * DAY + 2 * HOUR).await;

    let artifacts = repo_root().join("test-artifacts");
    let args = json!({
        "base_url": app.address, "artifacts_dir": artifacts, "timeout_ms": 120_000,
        "wallet_key": hex::encode([BUYER; 32]), "hive_key": hive.key("alice").secret_hex(), "creator": "alice",
        "events": { "live": live, "early": early, "ended": ended },
    });
    let mut expired = Vec::new();
    let result = run_driver("pairing.mjs", args, |step| {
        let store = app.store.clone();
        let code = step["code"].as_str().unwrap_or_default().to_owned();
        expired.push(code.clone());
        async move {
            assert_eq!(step["step"], "expire", "unexpected step {step}");
            // The pairing's five minutes are up.
            let done = sqlx::query("UPDATE pairings SET expires_at = $1 WHERE code = $2")
                .bind(ticketing::now_ms() - 1)
                .bind(&code)
                .execute(store.raw_pool())
                .await
                .unwrap();
            assert_eq!(done.rows_affected(), 1, "pairing {code}");
            "ok".to_owned()
        }
    })
    .await;
    for record in result["records"].as_array().unwrap() {
        assert_eq!(record["errors"], json!([]), "page errors in {}", record["name"]);
        assert_eq!(record["external"], json!([]), "requests outside the gateway from {}", record["name"]);
    }
    // The headset had no wallet, and said where to go instead.
    assert_eq!(result["noWallet"]["code"], "no_wallet", "{}", result["noWallet"]);
    assert!(result["noWallet"]["text"].as_str().unwrap().contains("Sign on my phone"), "{}", result["noWallet"]);
    // The pairing: a code shown as ABCD-EFGH, a link on this gateway without the waiting page's secret.
    let code = result["pairing"]["code"].as_str().unwrap();
    assert_eq!(code.len(), 8);
    assert_eq!(result["pairing"]["shown"], format!("{}-{}", &code[..4], &code[4..]));
    assert_eq!(result["pairing"]["link"], format!("{}/pages/pair.html?code={code}", app.address));
    assert_eq!(result["pairing"]["qr"], format!("/api/pairings/{code}/qr.svg"));
    let svg = app.get(&format!("/api/pairings/{code}/qr.svg")).await.text().await.unwrap();
    assert_eq!(svg, gateway::routes::qr::qr_svg(result["pairing"]["link"].as_str().unwrap()).unwrap());
    assert!(result["phoneAsked"].as_str().unwrap().contains("Headset Concert"), "{}", result["phoneAsked"]);
    assert_eq!(result["phoneSigned"]["status"], "signed", "{}", result["phoneSigned"]);
    // The headset entered the room on the phone's signature, with no wallet of its own.
    assert_eq!(
        result["scene"],
        json!({ "status": "connected", "failure": null, "wallet": "none" }),
        "{}",
        result["scene"]
    );
    // The signature went to the waiting page once: the row says so on every node.
    let status: String = sqlx::query_scalar("SELECT status FROM pairings WHERE code = $1")
        .bind(code)
        .fetch_one(app.store.raw_pool())
        .await
        .unwrap();
    assert_eq!(status, "delivered");
    // Single use, short-lived.
    assert_eq!(result["reused"]["code"], "pairing_used", "{}", result["reused"]);
    assert_eq!(expired.len(), 1);
    assert_eq!(result["expiredHeadset"]["code"], "pairing_expired", "{}", result["expiredHeadset"]);
    assert_eq!(result["expiredPhone"]["code"], "pairing_expired", "{}", result["expiredPhone"]);
    // Too early: a countdown, no pairing, no wallet error.
    assert_eq!(result["early"]["code"], "not_live", "{}", result["early"]);
    assert!(result["early"]["countdown"].as_str().unwrap().starts_with("Doors open at"), "{}", result["early"]);
    assert_eq!(result["early"]["pairingShown"], false);
    assert_eq!(result["earlyWallet"], "not_live");
    // An ended event's ticket is not "valid" with a Join button: it asks for a rating, which the phone signed.
    assert!(result["endedTicket"]["text"].as_str().unwrap().contains("Event ended"), "{}", result["endedTicket"]);
    assert_eq!(result["endedTicket"]["join"], false);
    assert_eq!(result["rateAsked"], format!("Rate event {ended}: 4 stars"));
    assert_eq!(result["rated"]["events"], json!([ended]), "{}", result["rated"]);
    let ratings: Value = app.get(&format!("/api/events/{ended}/ratings")).await.json().await.unwrap();
    assert_eq!(ratings[0]["stars"], 4, "{ratings}");
    assert_eq!(ratings[0]["wallet_address"], buyer.address().to_lowercase());
    // The creator signed in on the headset with the phone's Keychain.
    assert!(result["creatorAsked"]["heading"].as_str().unwrap().contains("alice"), "{}", result["creatorAsked"]);
    assert_eq!(result["creatorPhone"], "signed");
    assert!(result["creatorWho"].as_str().unwrap().contains("@alice"), "{}", result["creatorWho"]);
}

/// A ticket for `wallet`, paid in full; returns the quote's id (its checkout then shows the receipt).
async fn sold_quote(watcher: &Purchases, event_id: i64, wallet: &EvmWallet) -> String {
    let now = ticketing::now_ms();
    let quote = watcher
        .create_quote(QuoteRequest { event_id, currency: Currency::Eth, wallet_address: wallet.address() }, now)
        .await
        .unwrap();
    let report = PaymentReport {
        chain: chains::Chain::Eth,
        txid: format!("tx-{}", quote.id),
        output_index: 0,
        quote_id: Some(quote.id.clone()),
        memo: None,
        amount: quote.amount().unwrap(),
        to_address: quote.payment_address.clone(),
        from_address: Some(wallet.address()),
        block_height: Some(10),
        block_hash: Some("0xab".into()),
        confirmations: 64,
        is_final: true,
    };
    let outcome = watcher.report_payment(report, now).await.unwrap();
    assert!(matches!(outcome, PaymentOutcome::TicketIssued { .. }), "{outcome:?}");
    quote.id
}

/// Issue 28: every page at 390×844 and 1366×900, with a marketplace of live, coming and ended events (covers as
/// gateway paths and https URLs), a wallet holding tickets to each, an open checkout and a paid one, a pairing
/// to sign, and a creator with sales and a live room. Each must fit the screen's width, keep its primary
/// actions reachable, and pass axe-core with no serious or critical violation; screenshots are
/// `test-artifacts/layout-<page>-<phone|desktop>.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_phone_and_a_desktop_and_passes_axe() {
    let web = repo_root().join("web");
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.web_dir = Some(web);
        s.payments.evm_xpub = Some(evm_xpub());
        s.rooms.early_open_secs = 3600;
    })
    .await;
    set_tier(&app, "alice", "pro", None).await;
    let event = |title: &str, category: &str, price: &str, start_in_ms: i64, cover: &str| {
        let start = ticketing::now_ms() + start_in_ms;
        json!({
            "title": title, "space_type": "custom", "space_id": "neon-room",
            "description": "Doors open fifteen minutes early. Bring headphones; a microphone is optional.",
            "ticket_price": price, "ticket_currency": "USD", "max_attendees": 120,
            "event_start": rfc3339(start), "event_end": rfc3339(start + 2 * HOUR),
            "supported_crypto": ["ETH", "HIVE", "HBD", "BTC", "SOL", "USDC.POL"], "event_category": category,
            "require_microphone": false, "cover_image_url": cover,
        })
    };
    let live = create_event(
        &app,
        "alice",
        &event("Neon Nights: a live DJ set in VR", "music", "12.5", 10 * 60_000, "/scenes/icon.svg"),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let talk = create_event(
        &app,
        "alice",
        &event("Spatial audio for beginners", "talks", "4", 2 * DAY, "https://images.example/audio.jpg"),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let ended = create_event(&app, "alice", &event("Gallery opening: light sculptures", "art", "8", 3 * DAY, "")).await
        ["id"]
        .as_i64()
        .unwrap();
    let _games = create_event(&app, "alice", &event("Retro game night", "gaming", "2.5", 5 * DAY, "")).await["id"]
        .as_i64()
        .unwrap();
    let watcher = watcher(&app);
    let buyer = EvmWallet::new(BUYER);
    let paid = sold_quote(&watcher, live, &buyer).await;
    sold_quote(&watcher, ended, &buyer).await;
    for n in 40..46 {
        sold_quote(&watcher, live, &EvmWallet::new(n)).await;
    }
    // The gallery opening is over (the API refuses a past schedule; the store is moved directly).
    let now = ticketing::now_ms();
    reschedule(&app.store, ended, now - 2 * DAY, now - 2 * DAY + 2 * HOUR).await;
    let open = watcher
        .create_quote(QuoteRequest { event_id: talk, currency: Currency::Eth, wallet_address: buyer.address() }, now)
        .await
        .unwrap();
    // A Hive quote: paid by transfer with a memo, which the box offers to copy.
    let hive = watcher
        .create_quote(QuoteRequest { event_id: talk, currency: Currency::Hive, wallet_address: "bob".into() }, now)
        .await
        .unwrap();
    assert!(hive.memo.is_some());
    let res = app
        .client
        .post(app.url("/api/pairings"))
        .json(&json!({ "purpose": "join", "event_id": live, "chain": "eth" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let code = res.json::<Value>().await.unwrap()["code"].as_str().unwrap().to_owned();
    let session = json!({ "token": token_for("alice"), "token_type": "Bearer", "account": "alice", "tier": "pro",
        "expires_at": rfc3339(now + HOUR) });
    let wallet = buyer.address();
    let scene = |token: String| format!("/scenes/event.html?event={live}#token={token}");
    let scene_paths = json!({ "phone": scene(session_token(&app, live, &buyer).await), "desktop": scene(session_token(&app, live, &buyer).await) });
    let pages = json!([
        { "name": "marketplace", "path": "/pages/index.html", "primary": ["#events li.card h2 a", "#filters button[type=submit]"],
          "first_screen": ["#events li.card"] },
        { "name": "event", "path": format!("/pages/event.html?id={talk}"), "primary": ["#get-quote", "#connect"] },
        { "name": "checkout", "path": format!("/pages/event.html?id={talk}#quote={}", open.id),
          "primary": ["#qr", "#q-amount", "#copy-address button"], "first_screen": ["#quote-status"] },
        { "name": "checkout-hive", "path": format!("/pages/event.html?id={talk}#quote={}", hive.id),
          "primary": ["#q-memo-row:not([hidden]) #copy-memo button", "#memo-warn:not([hidden])"] },
        { "name": "paid", "path": format!("/pages/event.html?id={live}#quote={paid}"), "primary": ["#join-link"],
          "first_screen": ["#paid"] },
        { "name": "tickets", "path": format!("/pages/tickets.html?wallet={wallet}&chain=eth"),
          "primary": ["#tickets li[data-state=valid] a.button", "#tickets form.rate button[type=submit]"] },
        { "name": "join", "path": format!("/pages/join.html?event={live}&chain=eth"), "primary": ["#sign-join", "#sign-phone"] },
        { "name": "pair", "path": format!("/pages/pair.html?code={code}"), "primary": ["#request:not([hidden]) #sign"] },
        { "name": "scene", "paths": scene_paths, "primary": ["#chat-send", "#chat-input"] },
        { "name": "dashboard-sign-in", "path": "/pages/dashboard.html", "primary": ["#sign-in", "#sign-in-phone"] },
        { "name": "dashboard", "path": "/pages/dashboard.html", "session": session,
          "primary": [format!("#my-events tr[data-event-id=\"{live}\"] [data-action=watch]"), format!("#my-events tr[data-event-id=\"{live}\"] [data-action=edit]"),
                      "#revenue tr td", "#save", "#held:not([hidden])", "#pa-chain", "#pa-manual"] },
    ]);
    let artifacts = repo_root().join("test-artifacts");
    let args = json!({ "base_url": app.address, "artifacts_dir": artifacts, "timeout_ms": 150_000, "pages": pages });
    let result = run_driver("layout.mjs", args, |step| async move { panic!("unexpected step {step}") }).await;
    let checked = result["pages"].as_array().unwrap();
    assert_eq!(checked.len(), 2 * pages.as_array().unwrap().len());
    let mut problems = Vec::new();
    for page in checked {
        let name = format!("{} at {}", page["name"].as_str().unwrap(), page["size"].as_str().unwrap());
        for (what, list) in [
            ("overflows", &page["overflow"]),
            ("hides actions", &page["hidden_actions"]),
            ("starts below the first screen", &page["below_fold"]),
            ("has accessibility violations", &page["violations"]),
            ("has page errors", &page["errors"]),
        ] {
            if list.as_array().is_some_and(|l| !l.is_empty()) {
                problems.push(format!("{name} {what}: {list}"));
            }
        }
        // The only request leaving the gateway is the https cover, which the browser may load (the CSP allows it).
        for url in page["external"].as_array().unwrap() {
            assert!(url.as_str().unwrap().starts_with("https://images.example/"), "{name} asked {url}");
        }
        let shot =
            artifacts.join(format!("layout-{}-{}.png", page["name"].as_str().unwrap(), page["size"].as_str().unwrap()));
        assert!(shot.exists(), "{shot:?}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The pages' Content-Security-Policy allows https images, and only this gateway for the rest.
    let res = app.get("/pages/index.html").await;
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("img-src 'self' https:") && csp.contains("script-src 'self'"), "{csp}");
}

/// Issue 19: a creator whose payout is held for want of an address sees so on the dashboard (at a phone's
/// width), proves an Ethereum address with the browser's wallet, a Bitcoin one by pasting a BIP-137 signature
/// made elsewhere, and a Polygon one signed on a phone through a pairing; the held payout then goes to the
/// Ethereum address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creator_proves_payout_addresses_in_the_dashboard() {
    let web = repo_root().join("web");
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.web_dir = Some(web);
        s.payments.evm_xpub = Some(evm_xpub());
    })
    .await;
    set_tier(&app, "alice", "pro", None).await;
    let event_id = create(&app, "Payout night", "music", "5", 2 * DAY).await;
    sold_quote(&watcher(&app), event_id, &EvmWallet::new(BUYER)).await;
    let creator_wallet = EvmWallet::new(51);
    let btc = common::wallets::BtcWallet::new(52);
    let now = ticketing::now_ms();
    let session = json!({ "token": token_for("alice"), "token_type": "Bearer", "account": "alice", "tier": "pro", "expires_at": rfc3339(now + HOUR) });
    let artifacts = repo_root().join("test-artifacts");
    let args = json!({ "base_url": app.address, "artifacts_dir": artifacts, "session": session,
        "wallet_key": hex::encode(creator_wallet.0.secret_bytes()), "btc_address": btc.address() });
    let btc_ref = &btc;
    let result = run_driver("payouts.mjs", args, |step| async move {
        assert_eq!(step["step"], "sign");
        btc_ref.sign(step["message"].as_str().unwrap())
    })
    .await;
    let held = result["held"].as_str().unwrap();
    assert!(held.contains("no payout address") && held.contains("ETH") && held.contains("Ethereum"), "{held}");
    assert_eq!(result["payoutTo"], json!(["Held: no payout address on Ethereum"]));
    assert!(result["emptyList"].as_str().unwrap().contains("No payout address yet"), "{}", result["emptyList"]);
    assert_eq!(result["offeredChain"], "eth", "the form offers the chain a payout waits on");
    assert_eq!(result["phoneOverflow"], json!([]), "the section fits 390 px");
    assert!(result["ethSaved"].as_str().unwrap().contains("1 payout not yet sent"), "{}", result["ethSaved"]);
    assert_eq!(result["browserButtonForBtc"], false, "no browser wallet signs Bitcoin messages here");
    assert_eq!(result["refused"], "bad_encoding", "a pasted signature that is not one is refused with the reason");
    assert!(
        result["phoneAsked"].as_str().unwrap().contains("Sign to receive your creator payouts at this wallet."),
        "{}",
        result["phoneAsked"]
    );
    assert_eq!(result["phoneStatus"], "signed");
    assert_eq!(result["pairingShownAt390"], json!([]));
    assert!(result["polSaved"].as_str().unwrap().contains("Polygon payouts go to"), "{}", result["polSaved"]);
    let evm = creator_wallet.address();
    assert_eq!(result["addresses"], json!([["btc", btc.address()], ["eth", evm], ["pol", evm]]));
    assert_eq!(result["phoneOverflowAfter"], json!([]));
    assert_eq!(result["errors"], json!([]));
    assert_eq!(result["external"], json!([]));
    // The held payout now goes to the proven Ethereum address.
    let payouts: Value =
        app.admin(reqwest::Method::GET, "/api/admin/payouts?all=true").send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (payouts[0]["payout_address"].as_str(), payouts[0]["held"].as_str()),
        (Some(creator_wallet.address().as_str()), None)
    );
}
