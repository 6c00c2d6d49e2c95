//! networked-aframe in a real browser (issue 9): headless Chromium loads the example event scene from the
//! gateway's own static files — A-Frame, networked-aframe and the dlux adapter, nothing from outside — and two
//! ticket holders see each other's avatars move; a ticket of another event gets NAF's connect-failure callback
//! with 4403, and a third ticket holder in a room of two gets 4409.
//!
//! This test is the orchestrator: it starts the real gateway on SQLite, sells tickets through the real money
//! path, joins with real wallet signatures, then runs `node browser-tests/naf.mjs '<json>'` and asserts on the
//! JSON it prints. `./scripts/test` installs Chromium and the driver's node_modules.

use crate::browser::{browser_prerequisites, position_close, repo_root, run_driver};
use crate::common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use chains::derive::EvmAccount;
use chains::Currency;
use common::wallets::EvmWallet;
use reqwest::StatusCode;
use serde_json::{json, Value};
use ticketing::creators::{AccountName, Tier};
use ticketing::purchases::{PaymentOutcome, PaymentReport, PaymentSettings, Purchases, QuoteRequest};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;

const SECRET: [u8; 32] = [0x11; 32];

fn purchases(app: &common::TestApp) -> Purchases {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let master = Xpriv::new_master(bitcoin::Network::Bitcoin, &[42u8; 32]).unwrap();
    let account = master.derive_priv(&secp, &DerivationPath::from_str("m/44'/60'/0'").unwrap()).unwrap();
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.evm = Some(EvmAccount::parse(&Xpub::from_priv(&secp, &account).to_string()).unwrap());
    Purchases::new(app.store.clone(), Arc::new(StaticRates::development()), settings, &SECRET)
}

/// An event on now, for `seats` attendees.
async fn live_event(app: &common::TestApp, seats: i64) -> i64 {
    app.store.set_tier(&AccountName::parse("alice").unwrap(), Tier::Pro, None, "test").await.unwrap();
    let now = ticketing::now_ms();
    ticketing::testing::SeedEvent::new(now - 120_000)
        .capacity(seats)
        .price("500", "USD")
        .starts(now - 60_000)
        .ends(now + 3_600_000)
        .sales(now - 120_000, Some(now + 3_600_000))
        .insert(&app.store)
        .await
}

/// A ticket bought as a buyer does: a quote, then a final payment reported as a watcher would.
async fn buy(app: &common::TestApp, event_id: i64, wallet: &str) -> i64 {
    let p = purchases(app);
    let now = ticketing::now_ms();
    let quote = p
        .create_quote(QuoteRequest { event_id, currency: Currency::Eth, wallet_address: wallet.into() }, now)
        .await
        .unwrap();
    let report = PaymentReport {
        chain: quote.chain().unwrap(),
        txid: format!("tx-{}", quote.id),
        output_index: 0,
        quote_id: Some(quote.id.clone()),
        memo: None,
        amount: quote.amount().unwrap(),
        to_address: quote.payment_address.clone(),
        from_address: Some(wallet.into()),
        block_height: Some(10),
        block_hash: Some("0xab".into()),
        confirmations: 64,
        is_final: true,
    };
    match p.report_payment(report, now).await.unwrap() {
        PaymentOutcome::TicketIssued { ticket_id } => ticket_id,
        other => panic!("{other:?}"),
    }
}

/// The join endpoint's response for `wallet`, after signing the gateway's challenge.
async fn join(app: &common::TestApp, event_id: i64, wallet: &EvmWallet) -> Value {
    let address = wallet.address();
    let res = app.get(&format!("/api/events/{event_id}/challenge?chain=eth&wallet={address}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let message = res.json::<Value>().await.unwrap()["message"].as_str().unwrap().to_owned();
    let body =
        json!({ "wallet_address": address, "chain": "eth", "signature": wallet.sign(&message), "message": message });
    let res = app.client.post(app.url(&format!("/api/events/{event_id}/join"))).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let granted: Value = res.json().await.unwrap();
    assert_eq!(granted["access_granted"], true);
    granted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_attendees_see_each_other_move_and_the_door_refuses_the_rest() {
    let started = Instant::now();
    browser_prerequisites();
    let web = repo_root().join("web");
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| s.web_dir = Some(web)).await;

    // The room holds two; a third ticket exists, sold before the organiser lowered the capacity (the
    // store keeps `tickets_sold <= max_attendees`, so the counter follows, as in rooms_ws.rs).
    let event_id = live_event(&app, 3).await;
    let (alice, bob, carol) = (EvmWallet::new(21), EvmWallet::new(22), EvmWallet::new(23));
    for wallet in [&alice, &bob, &carol] {
        buy(&app, event_id, &wallet.address()).await;
    }
    sqlx::query("UPDATE events SET max_attendees = 2, tickets_sold = 2 WHERE id = $1")
        .bind(event_id)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    // Another event's ticket, presented at this event's door.
    let other_event = live_event(&app, 5).await;
    let dave = EvmWallet::new(24);
    let daves_ticket = buy(&app, other_event, &dave.address()).await;
    let outsider = gateway::auth::session_token::issue(
        &SECRET,
        event_id,
        Some(daves_ticket),
        None,
        dave.address(),
        ticketing::now_ms() + 60_000,
    )
    .0;

    let alice_join = join(&app, event_id, &alice).await;
    let bob_join = join(&app, event_id, &bob).await;
    let carol_join = join(&app, event_id, &carol).await;
    let artifacts = repo_root().join("test-artifacts");
    let args = json!({
        "base_url": app.address,
        "event_id": event_id,
        "artifacts_dir": artifacts,
        "alice": alice_join,
        "bob": bob_join["session_token"],
        "outsider": outsider,
        "extra": carol_join["session_token"],
        "timeout_ms": 75_000,
    });
    let result = run_driver("naf.mjs", &args, Duration::from_secs(85)).await;
    eprintln!("{}", serde_json::to_string_pretty(&result).unwrap());

    // Both joined, each with its own client id, and each sees the other's avatar.
    let (a, b) = (&result["alice"], &result["bob"]);
    assert_eq!(a["status"], "connected", "{a}");
    assert_eq!(b["status"], "connected", "{b}");
    let (a_id, b_id) = (a["clientId"].as_str().unwrap(), b["clientId"].as_str().unwrap());
    assert_ne!(a_id, b_id);
    let owners = |page: &Value| -> Vec<String> {
        page["remote"].as_array().unwrap().iter().map(|e| e["owner"].as_str().unwrap_or("").to_owned()).collect()
    };
    assert_eq!(owners(a), vec![b_id.to_owned()], "alice sees exactly bob: {a}");
    assert_eq!(owners(b), vec![a_id.to_owned()], "bob sees exactly alice: {b}");
    // Alice moved; Bob's copy of her avatar is where she put it.
    assert!(position_close(&b["remote"][0]["position"], [2.5, 1.6, -1.25]), "{b}");
    // Her microphone (Chromium's fake device) reached Bob over WebRTC negotiated through the relay.
    assert!(b["audio_tracks_from_alice"].as_u64().unwrap_or(0) >= 1, "{b}");
    assert_eq!(result["alice_mic_pressed"], "true", "the microphone button does not show the live microphone");
    // Her screen share (Chromium's fake screen, started with the page's button) plays on Bob's stage.
    assert_eq!(result["alice_screen_pressed"], "true");
    assert!(result["bob_sees_screen_width"].as_u64().unwrap_or(0) > 0, "bob's stage shows no screen share");

    // The door: NAF's connect-failure callback carries the gateway's close code.
    assert_eq!(result["outsider"]["failure"]["code"], 4403, "{}", result["outsider"]);
    assert_eq!(result["outsider"]["status"], "failed");
    assert_eq!(result["extra"]["failure"]["code"], 4409, "{}", result["extra"]);
    assert!(result["extra"]["statusText"].as_str().unwrap().contains("full"), "{}", result["extra"]);

    // Everything came from the gateway; the pages ran without errors; WebGL drew the scene.
    assert_eq!(result["external_requests"], json!([]), "pages reached outside the gateway");
    assert_eq!(result["page_errors"], json!([]), "uncaught errors in the pages");
    assert!(result["canvas_colours"].as_u64().unwrap() > 4, "the WebGL canvas is blank: {}", result["canvas_colours"]);
    assert!(artifacts.join("naf-bob.png").exists());

    // The gateway counted the two refusals.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_ws_rejections_total{code=\"4403\"} 1"), "{metrics}");
    assert!(metrics.contains("gateway_ws_rejections_total{code=\"4409\"} 1"), "{metrics}");
    eprintln!(
        "browser NAF test: peer seen in {} / {} ms, move observed in {} ms, driver {} ms, whole test {} ms",
        a["sees_peer_ms"],
        b["sees_peer_ms"],
        result["move_observed_ms"],
        result["elapsed_ms"],
        started.elapsed().as_millis()
    );
}

#[tokio::test]
async fn static_web_assets_are_served_and_unknown_paths_stay_json_404() {
    let web = repo_root().join("web");
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| s.web_dir = Some(web)).await;
    for (path, kind) in [
        ("/scenes/event.html", "text/html"),
        ("/scenes/event.js", "javascript"),
        ("/vendor/aframe/aframe-v1.7.1.min.js", "javascript"),
        ("/vendor/networked-aframe/networked-aframe.min.js", "javascript"),
        ("/naf-dlux-adapter.js", "javascript"),
        ("/", "text/html"),
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let content_type = res.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(content_type.contains(kind), "{path}: {content_type}");
    }
    // No external URL in the scene's own files.
    for file in ["scenes/event.html", "scenes/event.js", "scenes/event.css"] {
        let text = std::fs::read_to_string(repo_root().join("web").join(file)).unwrap();
        assert!(!text.contains("http://") && !text.contains("https://"), "{file} names an external URL");
    }
    // API routes win; what no route and no file answers is the JSON 404, whatever the method.
    assert_eq!(app.get("/api/events").await.status(), StatusCode::OK);
    for (method, path) in [
        (reqwest::Method::GET, "/no/such/file.js"),
        (reqwest::Method::GET, "/scenes/../../Cargo.toml"),
        (reqwest::Method::GET, "/%2e%2e/Cargo.toml"),
        (reqwest::Method::POST, "/scenes/event.html"),
        (reqwest::Method::GET, "/api/nothing-here"),
    ] {
        let res = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
    }
}
