//! Attendees' data rights over HTTP, on both stores: a wallet signs a data-rights challenge (the access
//! machinery, with a statement of its own), downloads what is kept about it, and has it erased; each signed
//! challenge serves once, an event's challenge or an altered text is refused, and a ticket still in use blocks
//! erasure.

use crate::{attendance_support, common, creator_support};

use common::wallets::EvmWallet;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn signed(app: &common::TestApp, wallet: &EvmWallet) -> Value {
    let res = app.get(&format!("/api/privacy/challenge?chain=eth&wallet={}", wallet.address())).await;
    assert_eq!(res.status(), StatusCode::OK);
    let challenge: Value = res.json().await.unwrap();
    let message = challenge["message"].as_str().unwrap();
    assert!(message.contains("Sign in to see or erase the data kept about this wallet."), "{message}");
    json!({ "chain": "eth", "wallet_address": wallet.address(), "message": message, "signature": wallet.sign(message) })
}

async fn post(app: &common::TestApp, path: &str, body: &Value) -> (StatusCode, Value, Option<String>) {
    let res = app.client.post(app.url(path)).json(body).send().await.unwrap();
    let disposition = res.headers().get("content-disposition").map(|v| v.to_str().unwrap().to_owned());
    (res.status(), res.json().await.unwrap(), disposition)
}

app_test!(a_wallet_downloads_then_erases_what_is_kept_about_it, |app| async move {
    let store = &app.store;
    let wallet = EvmWallet::new(9);
    let ended = attendance_support::event(store, 10, -3 * 3_600_000).await;
    let ticket = creator_support::insert_ticket(store, ended, "eth", &wallet.address(), "valid").await;

    let proof = signed(&app, &wallet).await;
    let (status, data, disposition) = post(&app, "/api/privacy/export", &proof).await;
    assert_eq!(status, StatusCode::OK, "{data}");
    assert!(disposition.unwrap().starts_with("attachment"), "a download");
    assert_eq!(
        (data["wallet"].as_str(), data["tickets"][0]["id"].as_i64()),
        (Some(wallet.address().as_str()), Some(ticket)),
        "{data}"
    );
    assert_eq!(data["quotes"].as_array().unwrap().len(), 1);
    let (status, body, _) = post(&app, "/api/privacy/export", &proof).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("replayed")), "one use");

    // An event's challenge, an altered text, another signer: refused.
    let event_challenge: Value = app
        .get(&format!("/api/events/{ended}/challenge?chain=eth&wallet={}", wallet.address()))
        .await
        .json()
        .await
        .unwrap();
    let message = event_challenge["message"].as_str().unwrap();
    let wrong = json!({ "chain": "eth", "wallet_address": wallet.address(), "message": message, "signature": wallet.sign(message) });
    let (status, body, _) = post(&app, "/api/privacy/export", &wrong).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_challenge")), "{body}");
    let fresh = signed(&app, &wallet).await;
    let altered =
        fresh["message"].as_str().unwrap().replace("see or erase the data kept about this wallet", "access event 0");
    let tampered = json!({ "chain": "eth", "wallet_address": wallet.address(), "message": altered, "signature": wallet.sign(&altered) });
    assert_eq!(post(&app, "/api/privacy/export", &tampered).await.1["error"]["code"], "wrong_challenge");
    let mut foreign = fresh.clone();
    foreign["signature"] = json!(EvmWallet::new(10).sign(fresh["message"].as_str().unwrap()));
    assert_eq!(post(&app, "/api/privacy/erase", &foreign).await.0, StatusCode::UNAUTHORIZED);

    let (status, erased, _) = post(&app, "/api/privacy/erase", &signed(&app, &wallet).await).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!((erased["tickets"].as_u64(), erased["quotes"].as_u64()), (Some(1), Some(1)), "{erased}");
    let token = erased["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("erased-") && !token.contains(&wallet.address()[2..10]));
    let (_, after, _) = post(&app, "/api/privacy/export", &signed(&app, &wallet).await).await;
    assert_eq!(
        (after["tickets"].as_array().unwrap().len(), after["quotes"].as_array().unwrap().len()),
        (0, 0),
        "{after}"
    );
    // The export before the erasure and the erasure are audited, under the token now.
    assert!(store.privacy_audit_count(&token).await.unwrap() >= 2);

    // A ticket that still opens a door blocks erasure.
    let holder = EvmWallet::new(11);
    let upcoming = attendance_support::event(store, 10, 3_600_000).await;
    creator_support::insert_ticket(store, upcoming, "eth", &holder.address(), "valid").await;
    let (status, body, _) = post(&app, "/api/privacy/erase", &signed(&app, &holder).await).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("ticket_in_use")), "{body}");

    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    for path in ["/api/privacy/challenge", "/api/privacy/export", "/api/privacy/erase"] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
});
