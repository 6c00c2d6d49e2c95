//! Creator payouts over HTTP: payout addresses proven by real wallet signatures (Hive, Bitcoin, Ethereum, Solana),
//! payouts held without one, the operators' list, and settlement to the recorded address; on both databases.

use crate::{common, creator_support};

use std::sync::Arc;

use chains::{Amount, Chain, Currency};
use common::wallets::{BtcWallet, EvmWallet, SolWallet};
use creator_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use ticketing::purchases::{PaymentReport, PaymentSettings, Purchases};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;

async fn payout_challenge(app: &common::TestApp, creator: &str, chain: &str, address: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .get(app.url(&format!("/api/creators/me/payout-addresses/challenge?chain={chain}&address={address}")))
        .bearer_auth(token_for(creator))
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

async fn set_address(app: &common::TestApp, creator: &str, chain: &str, body: Value) -> (StatusCode, Value) {
    let res = app
        .client
        .put(app.url(&format!("/api/creators/me/payout-addresses/{chain}")))
        .bearer_auth(token_for(creator))
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

/// Asks a challenge for `address` on `chain` as `creator`, signs it with `sign` and sets it.
async fn prove(
    app: &common::TestApp,
    creator: &str,
    chain: &str,
    address: &str,
    sign: impl Fn(&str) -> String,
) -> (StatusCode, Value) {
    let (status, issued) = payout_challenge(app, creator, chain, address).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    let message = issued["message"].as_str().unwrap();
    set_address(app, creator, chain, json!({ "address": address, "message": message, "signature": sign(message) }))
        .await
}

async fn mine(app: &common::TestApp, creator: &str) -> Value {
    let res = app
        .client
        .get(app.url("/api/creators/me/payout-addresses"))
        .bearer_auth(token_for(creator))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

hive_app_test!(payout_addresses_are_proven_by_the_wallet_on_each_chain, |app, hive| async move {
    let eth = EvmWallet::new(7);
    let btc = BtcWallet::new(8);
    let sol = SolWallet::new(9);
    let (status, body) = prove(&app, "alice", "eth", &eth.address(), |m| eth.sign(m)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["chain"].as_str(), body["previous"].as_str(), body["unsettled_payouts"].as_i64()),
        (Some("eth"), None, Some(0))
    );
    let (status, body) = prove(&app, "alice", "btc", &btc.address(), |m| btc.sign(m)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = prove(&app, "alice", "sol", &sol.address(), |m| sol.sign(m)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // On Hive the address is an account, proven by its key (bob receives alice's HIVE payouts).
    let (status, body) = prove(&app, "alice", "hive", "bob", |m| hive.key("bob").sign(m)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = mine(&app, "alice").await;
    let addresses: Vec<(&str, &str)> = listed["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["chain"].as_str().unwrap(), a["address"].as_str().unwrap()))
        .collect();
    let (eth_address, btc_address, sol_address) = (eth.address(), btc.address(), sol.address());
    assert_eq!(
        addresses,
        vec![
            ("hive", "bob"),
            ("btc", btc_address.as_str()),
            ("eth", eth_address.as_str()),
            ("sol", sol_address.as_str())
        ]
    );

    // Changing one is audited with what it replaced.
    let other = EvmWallet::new(10);
    let (status, body) = prove(&app, "alice", "eth", &other.address(), |m| other.sign(m)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["previous"].as_str(), Some(eth_address.as_str()));
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'payout_address.set' AND actor = 'alice'")
            .fetch_one(app.store.raw_pool())
            .await
            .unwrap();
    assert_eq!(audited, 5);
    // The API description names the three endpoints.
    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    for path in [
        "/api/creators/me/payout-addresses",
        "/api/creators/me/payout-addresses/challenge",
        "/api/creators/me/payout-addresses/{chain}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not in /api/openapi.json");
    }
});

hive_app_test!(a_payout_address_is_refused_without_the_wallets_own_signature, |app, hive| async move {
    let eth = EvmWallet::new(7);
    let mallory = EvmWallet::new(66);
    // Signed by another key.
    let (status, body) = prove(&app, "alice", "eth", &eth.address(), |m| mallory.sign(m)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_signer")), "{body}");
    // A Hive account's challenge signed by a key that is not the account's.
    let (status, body) = prove(&app, "alice", "hive", "bob", |m| hive.mallory.sign(m)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A challenge is bound to the creator who asked for it: carol cannot set her address with alice's.
    let (_, issued) = payout_challenge(&app, "alice", "eth", &eth.address()).await;
    let message = issued["message"].as_str().unwrap().to_owned();
    let signed = json!({ "address": eth.address(), "message": message, "signature": eth.sign(&message) });
    let (status, body) = set_address(&app, "carol", "eth", signed.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_challenge")),
        "{body}"
    );
    // Used once; the second use is a replay.
    let (status, body) = set_address(&app, "alice", "eth", signed.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = set_address(&app, "alice", "eth", signed).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("replayed")), "{body}");
    // A challenge for one chain does not set another's address; an access challenge is not a payout challenge.
    let (_, issued) = payout_challenge(&app, "alice", "eth", &eth.address()).await;
    let message = issued["message"].as_str().unwrap().to_owned();
    let (status, body) = set_address(
        &app,
        "alice",
        "pol",
        json!({ "address": eth.address(), "message": message, "signature": eth.sign(&message) }),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_challenge")), "{body}");

    // The chain's address rules come first; no session, no challenge.
    let (status, body) = payout_challenge(&app, "alice", "btc", "bc1qnotanaddress").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_wallet")), "{body}");
    let (status, body) = payout_challenge(&app, "alice", "doge", "D8x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let res =
        app.get(&format!("/api/creators/me/payout-addresses/challenge?chain=eth&address={}", eth.address())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, _) =
        set_address(&app, "alice", "doge", json!({ "address": "x", "message": "m", "signature": "s" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
});

/// A watcher's view of the same database: sells one ticket of `event_id` to `buyer` for 100 HIVE.
async fn sell_hive_ticket(app: &common::TestApp, event_id: i64, buyer: &str, txid: &str) {
    let res = app
        .client
        .post(app.url("/api/events/purchase"))
        .json(&json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": buyer }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let quote: Value = res.json().await.unwrap();
    let report = PaymentReport {
        chain: Chain::Hive,
        txid: txid.into(),
        output_index: 0,
        quote_id: None,
        memo: quote["memo"].as_str().map(String::from),
        amount: Amount::new(Currency::Hive, 100_000),
        to_address: "dlux-tickets".into(),
        from_address: Some(buyer.into()),
        block_height: Some(5),
        block_hash: None,
        confirmations: 1,
        is_final: true,
    };
    let watcher = Purchases::new(
        app.store.clone(),
        Arc::new(StaticRates::development()),
        PaymentSettings::new("dlux-tickets"),
        &[0x11; 32],
    );
    watcher.report_payment(report, ticketing::now_ms()).await.unwrap();
}

/// Ends the refund window of every payout now (as if the event ended a week ago).
async fn make_payouts_due(app: &common::TestApp) {
    sqlx::query("UPDATE ledger_entries SET due_at = $1 WHERE kind IN ('payout', 'commission')")
        .bind(ticketing::now_ms() - 1000)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
}

hive_app_test!(a_payout_without_an_address_is_held_until_one_is_proven, |app, hive| async move {
    let event_id = app.usd_event_on_sale("Show", 10, "HIVE").await;
    sell_hive_ticket(&app, event_id, "carol", "hivetx1").await;
    make_payouts_due(&app).await;

    let due: Value = app.admin(Method::GET, "/api/admin/payouts").send().await.unwrap().json().await.unwrap();
    assert_eq!(due.as_array().unwrap().len(), 1, "{due}");
    assert_eq!(
        (due[0]["chain"].as_str(), due[0]["held"].as_str(), due[0]["amount_units"].as_str()),
        (Some("hive"), Some("no_payout_address"), Some("80000"))
    );
    assert!(due[0]["payout_address"].is_null());
    // The creator sees it held, and why.
    let listed = mine(&app, "alice").await;
    assert_eq!(listed["addresses"], json!([]));
    assert_eq!(
        listed["held"],
        json!([{ "chain": "hive", "currency": "HIVE", "amount": "80", "payouts": 1, "reason": "no_payout_address" }])
    );
    // It cannot be settled while held.
    let id = due[0]["id"].as_i64().unwrap();
    let settle = |txid: String| {
        app.admin(Method::POST, &format!("/api/admin/ledger/{id}/settle")).json(&json!({ "txid": txid })).send()
    };
    let res = settle("d4".repeat(20)).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "no_payout_address");

    // Once proven, the same payout goes to the address, and settles to it once.
    let (status, body) = prove(&app, "alice", "hive", "alice", |m| hive.key("alice").sign(m)).await;
    assert_eq!((status, body["unsettled_payouts"].as_i64()), (StatusCode::OK, Some(1)), "{body}");
    let due: Value = app.admin(Method::GET, "/api/admin/payouts").send().await.unwrap().json().await.unwrap();
    assert_eq!((due[0]["payout_address"].as_str(), due[0]["held"].as_str()), (Some("alice"), None));
    assert_eq!(mine(&app, "alice").await["held"], json!([]));
    let res = settle("0x".to_owned() + &"d4".repeat(32)).await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "invalid_txid", "an EVM hash is not a Hive id");
    let res = settle("D4".repeat(20)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let settled: Value = res.json().await.unwrap();
    assert_eq!(
        (settled["status"].as_str(), settled["paid_to"].as_str(), settled["checked"].as_str()),
        (Some("settled"), Some("alice"), Some("format_only"))
    );
    // Ledger times are RFC 3339 UTC with milliseconds, as everywhere in the JSON API.
    for field in ["settled_at", "due_at"] {
        let at = settled[field].as_str().unwrap_or_else(|| panic!("{field}: {settled}"));
        assert!(at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{field}: {at}");
    }
    // A later change of address does not rewrite where a settled payout went.
    prove(&app, "alice", "hive", "bob", |m| hive.key("bob").sign(m)).await;
    let all: Value = app.admin(Method::GET, "/api/admin/payouts?all=true").send().await.unwrap().json().await.unwrap();
    assert_eq!(all[0]["payout_address"].as_str(), Some("alice"));
});

/// The receiving addresses' gap is bounded: with `max_address_gap = 2` and nothing paid, a third open BTC quote
/// would take an index past it, so it is refused with 503 `address_gap_full` and `Retry-After`; the report says
/// what a restored wallet must scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_address_gap_refuses_new_quotes_with_503() {
    const ZPUB: &str = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.payments.btc_xpub = Some(ZPUB.into());
        s.payments.max_address_gap = 2;
    })
    .await;
    let event_id = app.usd_event_on_sale("Show", 50, "BTC").await;
    let buy = |wallet: &'static str| {
        app.client
            .post(app.url("/api/events/purchase"))
            .json(&json!({ "event_id": event_id, "payment_method": "btc", "wallet_address": wallet }))
            .send()
    };
    assert_eq!(buy("bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g").await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(buy("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq").await.unwrap().status(), StatusCode::CREATED);
    let res = buy("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu").await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "address_gap_full");
    let report: Value =
        app.admin(Method::GET, "/api/admin/addresses?chain=btc").send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (report["next_index"].as_u64(), report["largest_unpaid_run"].as_u64(), report["wallet_gap_limit"].as_u64()),
        (Some(2), Some(2), Some(3))
    );
}
