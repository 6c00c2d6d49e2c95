//! Looking up the transaction an operator settles a payout with: against the Esplora test server (real Bitcoin
//! transactions) and a real local EVM node (anvil: native ETH and an ERC-20).

use crate::{anvil, esplora};

use bitcoin::hashes::Hash as _;
use chains::{Amount, Chain, Currency};
use watchers::lookup::{TransferCheck, TransferLookup};
use watchers::{BtcWatcherConfig, EvmWatcherConfig, TokenConfig, WatchersConfig};

use anvil::Anvil;
use esplora::{payment, Esplora};

const CREATOR: &str = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu";
const OTHER: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";

#[tokio::test]
async fn a_bitcoin_transaction_is_checked_against_the_address_it_should_pay() {
    let esplora = Esplora::start(10).await;
    let lookup =
        TransferLookup::new(&WatchersConfig { btc: Some(BtcWatcherConfig::new(&esplora.url)), ..Default::default() })
            .unwrap();
    assert!(lookup.watches(Chain::Btc) && !lookup.watches(Chain::Eth));
    // Two outputs to the creator (summed) and change elsewhere; found in the mempool and once mined.
    let txid = esplora.broadcast(payment(1, &[(CREATOR, 60_000), (OTHER, 5_000), (CREATOR, 40_000)])).to_string();
    let check = lookup.check(Currency::Btc, &txid, CREATOR).await.unwrap();
    assert_eq!(check, Some(TransferCheck::Pays(Amount::new(Currency::Btc, 100_000))));
    esplora.mine();
    assert_eq!(
        lookup.check(Currency::Btc, &txid, CREATOR).await.unwrap(),
        Some(TransferCheck::Pays(Amount::new(Currency::Btc, 100_000)))
    );
    let elsewhere = esplora.broadcast(payment(2, &[(OTHER, 100_000)])).to_string();
    assert_eq!(lookup.check(Currency::Btc, &elsewhere, CREATOR).await.unwrap(), Some(TransferCheck::PaysElsewhere));
    let unknown = "ab".repeat(32);
    assert_eq!(lookup.check(Currency::Btc, &unknown, CREATOR).await.unwrap(), Some(TransferCheck::NotFound));
    // Whether an output is spent: the funding outpoint of `payment(1, …)` is; the new outputs are not.
    let funding = bitcoin::Txid::from_byte_array([1; 32]).to_string();
    assert_eq!(lookup.btc_spent(&funding, 0).await.unwrap(), Some(true));
    assert_eq!(lookup.btc_spent(&txid, 0).await.unwrap(), Some(false));
    // A chain without a watcher here is not looked up.
    assert_eq!(lookup.check(Currency::Eth, &unknown, CREATOR).await.unwrap(), None);
}

#[tokio::test]
async fn an_evm_transaction_is_checked_for_the_coin_and_a_configured_token() {
    let anvil = Anvil::start().await;
    let token = anvil.deploy_token().await;
    let mut config = EvmWatcherConfig::new(Chain::Eth, &anvil.url);
    config.tokens = vec![TokenConfig {
        symbol: "USDC".into(),
        contract: token.clone(),
        decimals: 6,
        currency: Some(Currency::UsdcEth),
    }];
    let lookup = TransferLookup::new(&WatchersConfig { evm: vec![config], ..Default::default() }).unwrap();
    let creator = "0x00000000000000000000000000000000c0ffee01";
    let native = anvil.pay(1, creator, 3_000_000_000_000_000).await;
    let usdc = anvil.pay_token(&token, creator, 25_000_000).await;
    let elsewhere = anvil.pay(1, "0x00000000000000000000000000000000000bad01", 1_000).await;
    anvil.mine(1).await;
    // The address is compared case-insensitively (EIP-55 or lower case).
    let shouted = creator.to_ascii_uppercase().replacen("0X", "0x", 1);
    assert_eq!(
        lookup.check(Currency::Eth, &native, &shouted).await.unwrap(),
        Some(TransferCheck::Pays(Amount::new(Currency::Eth, 3_000_000_000_000_000)))
    );
    assert_eq!(
        lookup.check(Currency::UsdcEth, &usdc, creator).await.unwrap(),
        Some(TransferCheck::Pays(Amount::new(Currency::UsdcEth, 25_000_000)))
    );
    // The token transfer pays no ETH to the creator, the ETH payment no USDC; another recipient nothing.
    assert_eq!(lookup.check(Currency::Eth, &usdc, creator).await.unwrap(), Some(TransferCheck::PaysElsewhere));
    assert_eq!(lookup.check(Currency::UsdcEth, &native, creator).await.unwrap(), Some(TransferCheck::PaysElsewhere));
    assert_eq!(lookup.check(Currency::Eth, &elsewhere, creator).await.unwrap(), Some(TransferCheck::PaysElsewhere));
    let unknown = format!("0x{}", "cd".repeat(32));
    assert_eq!(lookup.check(Currency::Eth, &unknown, creator).await.unwrap(), Some(TransferCheck::NotFound));
}

/// A Hive API node answering `condenser_api.get_transaction` for two known transactions (one in condenser's
/// string amounts, one in the appbase APIs' NAI objects) and hived's error for any other id.
async fn hive_node() -> String {
    use axum::routing::post;
    use serde_json::{json, Value};
    let app = axum::Router::new().route(
        "/",
        post(|axum::Json(request): axum::Json<Value>| async move {
            assert_eq!(request["method"], "condenser_api.get_transaction");
            let id = request["params"][0].as_str().unwrap_or_default().to_owned();
            let transfer = |to: &str, amount: Value| json!(["transfer", { "from": "dlux-tickets", "to": to, "amount": amount, "memo": "dlux payout" }]);
            let result = match id.as_str() {
                "6f1e54a1d2c3b4a5968778695a4b3c2d1e0f1a2b" => json!({
                    "ref_block_num": 4242, "ref_block_prefix": 123456, "expiration": "2025-11-25T10:01:00",
                    "operations": [transfer("alice", json!("60.000 HIVE")), transfer("alice", json!("20.000 HIVE")), transfer("alice", json!("5.000 HBD")), transfer("bob", json!("1.000 HIVE"))],
                    "extensions": [], "signatures": [], "transaction_id": id, "block_num": 99000990, "transaction_num": 3,
                }),
                "7d3c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2a1" => json!({
                    "operations": [{ "type": "transfer_operation", "value": { "from": "dlux-tickets", "to": "alice",
                        "amount": { "amount": "80000", "precision": 3, "nai": "@@000000021" }, "memo": "" } }],
                    "transaction_id": id,
                }),
                _ => return axum::Json(json!({ "jsonrpc": "2.0", "id": request["id"], "error": { "code": -32003,
                    "message": format!("Assert Exception:false: Unknown Transaction {id}") } })),
            };
            axum::Json(json!({ "jsonrpc": "2.0", "id": request["id"], "result": result }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn a_hive_transaction_is_checked_for_transfers_to_the_account() {
    let url = hive_node().await;
    let config = WatchersConfig {
        hive: Some(serde_json::from_value(serde_json::json!({ "rpc_url": url, "account": "dlux-tickets" })).unwrap()),
        ..Default::default()
    };
    let lookup = TransferLookup::new(&config).unwrap();
    let condenser = "6f1e54a1d2c3b4a5968778695a4b3c2d1e0f1a2b";
    // Two HIVE transfers to alice are summed; the HBD one counts for HBD only; bob's for bob.
    assert_eq!(
        lookup.check(Currency::Hive, condenser, "alice").await.unwrap(),
        Some(TransferCheck::Pays(Amount::new(Currency::Hive, 80_000)))
    );
    assert_eq!(
        lookup.check(Currency::Hbd, condenser, "alice").await.unwrap(),
        Some(TransferCheck::Pays(Amount::new(Currency::Hbd, 5_000)))
    );
    assert_eq!(lookup.check(Currency::Hive, condenser, "carol").await.unwrap(), Some(TransferCheck::PaysElsewhere));
    let appbase = "7d3c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2a1";
    assert_eq!(
        lookup.check(Currency::Hive, appbase, "alice").await.unwrap(),
        Some(TransferCheck::Pays(Amount::new(Currency::Hive, 80_000)))
    );
    assert_eq!(lookup.check(Currency::Hive, &"00".repeat(20), "alice").await.unwrap(), Some(TransferCheck::NotFound));
}

/// A Solana node answering `getTransaction` with the watcher tests' recorded responses, by signature.
async fn solana_node() -> (String, serde_json::Value) {
    use axum::routing::post;
    use serde_json::{json, Value};
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/solana");
    let keys: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("keys.json")).unwrap()).unwrap();
    let mut by_signature = std::collections::HashMap::new();
    for name in ["good", "usdc", "failed", "wrong_recipient"] {
        let answer: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("getTransaction_{name}.json"))).unwrap())
                .unwrap();
        let signature = answer["result"]["transaction"]["signatures"][0].as_str().unwrap().to_owned();
        by_signature.insert(signature, (name, answer));
    }
    let names: Value = by_signature
        .iter()
        .map(|(sig, (name, _))| (name.to_string(), json!(sig)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let by_signature = std::sync::Arc::new(by_signature);
    let app = axum::Router::new().route(
        "/",
        post(move |axum::Json(request): axum::Json<Value>| {
            let by_signature = by_signature.clone();
            async move {
                assert_eq!(request["method"], "getTransaction");
                let signature = request["params"][0].as_str().unwrap_or_default();
                axum::Json(match by_signature.get(signature) {
                    Some((_, answer)) => answer.clone(),
                    None => json!({ "jsonrpc": "2.0", "id": request["id"], "result": null }),
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, json!({ "keys": keys, "signatures": names }))
}

#[tokio::test]
async fn a_solana_transaction_is_checked_for_lamports_and_usdc_to_the_address() {
    let (url, known) = solana_node().await;
    let config = WatchersConfig {
        solana: Some(
            serde_json::from_value(
                serde_json::json!({ "rpc_url": url, "usdc_mint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v" }),
            )
            .unwrap(),
        ),
        ..Default::default()
    };
    let lookup = TransferLookup::new(&config).unwrap();
    let to = known["keys"]["platform"].as_str().unwrap();
    let sig = |name: &str| known["signatures"][name].as_str().unwrap().to_owned();
    assert_eq!(
        lookup.check(Currency::Sol, &sig("good"), to).await.unwrap(),
        Some(TransferCheck::Pays(Amount::new(Currency::Sol, 500_000_000)))
    );
    assert_eq!(
        lookup.check(Currency::UsdcSol, &sig("usdc"), to).await.unwrap(),
        Some(TransferCheck::Pays(Amount::new(Currency::UsdcSol, 12_500_000)))
    );
    // The SOL payment is no USDC; another address got nothing; a failed transaction moved nothing.
    assert_eq!(lookup.check(Currency::UsdcSol, &sig("good"), to).await.unwrap(), Some(TransferCheck::PaysElsewhere));
    let other = known["keys"]["other"].as_str().unwrap();
    assert_eq!(lookup.check(Currency::Sol, &sig("good"), other).await.unwrap(), Some(TransferCheck::PaysElsewhere));
    assert_eq!(
        lookup.check(Currency::Sol, &sig("wrong_recipient"), to).await.unwrap(),
        Some(TransferCheck::PaysElsewhere)
    );
    assert_eq!(lookup.check(Currency::Sol, &sig("failed"), to).await.unwrap(), Some(TransferCheck::NotFound));
    assert_eq!(
        lookup
            .check(Currency::Sol, "1111111111111111111111111111111111111111111111111111111111111111", to)
            .await
            .unwrap(),
        Some(TransferCheck::NotFound)
    );
}
