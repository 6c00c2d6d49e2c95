//! Paying creators on Bitcoin end to end: a buyer pays a quote on the Esplora test server (real transactions),
//! the gateway's own Bitcoin watcher credits it, the creator proves a payout address with a BIP-137 signature,
//! the operator exports the batch as a PSBT spending that very payment, broadcasts a transaction, and settlement
//! checks it against the node. Also the CSV, the Hive transfers, the commission per chain and the addresses report.

use crate::{common, creator_support, esplora};

use std::sync::Arc;
use std::time::Duration;

use chains::{Amount, Chain, Currency};
use common::wallets::BtcWallet;
use creator_support::token_for;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use ticketing::purchases::{PaymentReport, PaymentSettings, Purchases};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;

/// BIP-84's test account (mnemonic `abandon … about`), master fingerprint 73c5da0a.
const ZPUB: &str =
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
const BUYER: &str = "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g";

async fn prove_btc(app: &common::TestApp, creator: &str, wallet: &BtcWallet) {
    let address = wallet.address();
    let issued: Value = app
        .client
        .get(app.url(&format!("/api/creators/me/payout-addresses/challenge?chain=btc&address={address}")))
        .bearer_auth(token_for(creator))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = issued["message"].as_str().unwrap();
    let res = app
        .client
        .put(app.url("/api/creators/me/payout-addresses/btc"))
        .bearer_auth(token_for(creator))
        .json(&json!({ "address": address, "message": message, "signature": wallet.sign(message) }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn make_payouts_due(app: &common::TestApp) {
    sqlx::query("UPDATE ledger_entries SET due_at = $1 WHERE kind IN ('payout', 'commission')")
        .bind(ticketing::now_ms() - 1000)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
}

async fn export(app: &common::TestApp, query: &str) -> (StatusCode, String) {
    let res = app.admin(Method::GET, &format!("/api/admin/payouts/export?{query}")).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

mod bitcoin_payouts_are_exported_as_one_psbt_and_settled_against_the_node {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::bitcoin_batch(ticketing::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::bitcoin_batch(ticketing::Backend::Postgres).await;
    }
}

async fn bitcoin_batch(backend: ticketing::Backend) {
    let node = esplora::Esplora::start(100).await;
    let url = node.url.clone();
    let app = common::spawn_app_with(backend, |s| {
        s.payments.btc_xpub = Some(ZPUB.into());
        s.payments.btc_key_origin = Some("[73c5da0a/84'/0'/0']".into());
        s.payments.watched_elsewhere.retain(|c| c != "btc");
        s.watchers.btc = Some(serde_json::from_value(json!({ "esplora_url": url, "poll_interval_ms": 50 })).unwrap());
    })
    .await;
    let event_id = app.usd_event_on_sale("Show", 10, "BTC").await;
    let res = app
        .client
        .post(app.url("/api/events/purchase"))
        .json(&json!({ "event_id": event_id, "payment_method": "btc", "wallet_address": BUYER }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let quote: Value = res.json().await.unwrap();
    let price: u64 = quote["amount_units"]
        .as_str()
        .map(|u| u.parse().unwrap())
        .unwrap_or_else(|| Amount::parse(Currency::Btc, quote["amount"].as_str().unwrap()).unwrap().units as u64);
    // The buyer pays; two blocks; the gateway's watcher credits it.
    let payment = node.broadcast(esplora::payment(9, &[(quote["payment_address"].as_str().unwrap(), price)]));
    node.mine();
    node.mine();
    let quote_path = format!("/api/quotes/{}", quote["quote_id"].as_str().unwrap());
    common::eventually("the payment to be credited", Duration::from_secs(20), || async {
        app.get(&quote_path).await.json::<Value>().await.unwrap()["status"] == "paid"
    })
    .await;
    make_payouts_due(&app).await;

    // Held without an address: nothing to put in a PSBT.
    let (status, body) = export(&app, "format=psbt").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("nothing_due"), "{body}");
    let creator = BtcWallet::new(42);
    prove_btc(&app, "alice", &creator).await;

    let (status, body) = export(&app, "format=psbt&fee_rate=2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let batch: Value = serde_json::from_str(&body).unwrap();
    let psbt = chains::psbt::from_base64(batch["psbt"].as_str().unwrap()).unwrap();
    let tx = &psbt.unsigned_tx;
    assert_eq!(tx.input.len(), 1);
    assert_eq!(
        tx.input[0].previous_output,
        bitcoin::OutPoint { txid: payment, vout: 0 },
        "it spends the buyer's payment"
    );
    let payout_units = Amount::new(Currency::Btc, u128::from(price)).split().payout.units as u64;
    let to_creator = bitcoin::Address::from_str(&creator.address()).unwrap().assume_checked().script_pubkey();
    assert_eq!(tx.output[0].script_pubkey, to_creator);
    assert_eq!(tx.output[0].value.to_sat(), payout_units);
    let fee = batch["fee_sats"].as_u64().unwrap();
    assert_eq!(fee, 2 * batch["vsize"].as_u64().unwrap());
    assert_eq!(price, payout_units + fee + batch["change_sats"].as_u64().unwrap_or(0));
    let (_, (fingerprint, path)) = psbt.inputs[0].bip32_derivation.iter().next().unwrap();
    assert_eq!((fingerprint.to_string(), path.to_string()), ("73c5da0a".to_owned(), "84'/0'/0'/0/0".to_owned()));
    let entry = batch["entries"][0].as_i64().unwrap();

    // CSV and the commission per chain.
    let (status, csv) = export(&app, "format=csv&chain=btc").await;
    assert_eq!(status, StatusCode::OK);
    let amount = Amount::new(Currency::Btc, u128::from(payout_units));
    assert_eq!(csv, format!("chain,currency,address,amount,amount_units,creators,entries\nbtc,BTC,{},{amount},{payout_units},alice,{entry}\n", creator.address()));
    let commission: Value = app.admin(Method::GET, "/api/admin/commission").send().await.unwrap().json().await.unwrap();
    assert_eq!(commission[0]["chain"], "btc");
    assert_eq!(commission[0]["earned"].as_str().unwrap().parse::<u64>().unwrap(), price - payout_units);

    // Settling: a transaction that does not exist, one paying someone else, then the real one.
    let settle = |txid: String| {
        app.admin(Method::POST, &format!("/api/admin/ledger/{entry}/settle")).json(&json!({ "txid": txid })).send()
    };
    let res = settle("ee".repeat(32)).await.unwrap();
    assert_eq!(
        (res.status(), res.json::<Value>().await.unwrap()["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("transaction_not_found"))
    );
    let elsewhere = node.broadcast(esplora::payment(10, &[(BUYER, payout_units)]));
    let res = settle(elsewhere.to_string()).await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "transaction_pays_elsewhere");
    let short = node.broadcast(esplora::payment(11, &[(&creator.address(), payout_units - 1)]));
    let res = settle(short.to_string()).await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "transaction_pays_too_little");
    // The operator's wallet signs and broadcasts the PSBT's transaction (its unsigned form is enough here: the
    // test node does not check scripts).
    let sent = node.broadcast(tx.clone());
    let res = settle(sent.to_string()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let settled: Value = res.json().await.unwrap();
    assert_eq!(
        (settled["checked"].as_str(), settled["paid_to"].as_str()),
        (Some("on_chain"), Some(creator.address().as_str()))
    );
    // The coin is spent now: nothing is left to batch, and the next batch's change goes to 1/1.
    let (status, _) = export(&app, "format=psbt").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(app.store.next_btc_change_index().await.unwrap(), 1);

    // The receiving addresses in use and what a restored wallet needs.
    let report: Value =
        app.admin(Method::GET, "/api/admin/addresses?chain=btc").send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (report["next_index"].as_u64(), report["highest_paid_index"].as_u64(), report["wallet_gap_limit"].as_u64()),
        (Some(1), Some(0), Some(1001))
    );
    assert_eq!(
        report["descriptor"],
        format!("wpkh([73c5da0a/84'/0'/0']{}/0/*)", bitcoin::bip32::Xpub::decode(&xpub_bytes()).unwrap())
    );
    let res = app.admin(Method::GET, "/api/admin/addresses?chain=hive").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// The zpub's key bytes with the xpub version (what `Xpub` prints).
fn xpub_bytes() -> Vec<u8> {
    let mut data = bitcoin::base58::decode_check(ZPUB).unwrap();
    data[..4].copy_from_slice(&[0x04, 0x88, 0xB2, 0x1E]);
    data
}

app_test!(hive_payouts_are_transfer_operations_and_every_chain_has_a_csv_line, |app| async move {
    let event_id = app.usd_event_on_sale("Show", 10, "HIVE").await;
    let res = app
        .client
        .post(app.url("/api/events/purchase"))
        .json(&json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": "carol" }))
        .send()
        .await
        .unwrap();
    let quote: Value = res.json().await.unwrap();
    let report = PaymentReport {
        chain: Chain::Hive,
        txid: "hivetx1".into(),
        output_index: 0,
        quote_id: None,
        memo: quote["memo"].as_str().map(String::from),
        amount: Amount::new(Currency::Hive, 100_000),
        to_address: "dlux-tickets".into(),
        from_address: Some("carol".into()),
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
    make_payouts_due(&app).await;
    // Held: no operation, and the batch names it.
    let (status, body) = export(&app, "format=hive").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "[]"));
    let (_, batches) = export(&app, "format=batches").await;
    let batches: Value = serde_json::from_str(&batches).unwrap();
    assert_eq!((batches[0]["chain"].as_str(), batches[0]["held"].as_array().unwrap().len()), (Some("hive"), 1));
    app.store
        .set_payout_address(
            &ticketing::creators::AccountName::parse("alice").unwrap(),
            Chain::Hive,
            "alice",
            None,
            ticketing::now_ms(),
        )
        .await
        .unwrap();
    let (_, body) = export(&app, "format=hive").await;
    let ops: Value = serde_json::from_str(&body).unwrap();
    let entry = batches[0]["held"][0].as_i64().unwrap();
    assert_eq!(
        ops,
        json!([["transfer", { "from": "dlux-tickets", "to": "alice", "amount": "80.000 HIVE", "memo": format!("dlux payout: ledger entries {entry}") }]])
    );
    let (_, csv) = export(&app, "format=csv").await;
    assert_eq!(
        csv,
        format!(
            "chain,currency,address,amount,amount_units,creators,entries\nhive,HIVE,alice,80,80000,alice,{entry}\n"
        )
    );
    // A PSBT needs a Bitcoin account; an unknown format or parameter is refused.
    let (status, body) = export(&app, "format=psbt").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(export(&app, "format=xls").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(export(&app, "formats=csv").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.client.get(app.url("/api/admin/payouts/export")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
});

use std::str::FromStr;
