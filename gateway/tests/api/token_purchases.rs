//! Buying with stablecoins over HTTP: token quotes in both request forms, their payment URIs and QR codes,
//! refusal of tokens whose contract is not configured, and a credited token payment, on both databases.

use crate::common;

use std::str::FromStr;
use std::sync::Arc;

use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use chains::derive::EvmAccount;
use chains::{Amount, Chain, Currency};
use reqwest::StatusCode;
use serde_json::{json, Value};
use ticketing::purchases::{PaymentOutcome, PaymentReport, PaymentSettings, Purchases};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;

const USDC_ETH: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
const USDT_ETH: &str = "0xdac17f958d2ee523a2206206994597c13d831ec7";
const USDT_BNB: &str = "0x55d398326f99059ff775485246999027b3197955";
const USDC_SOL: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
const SOL_PLATFORM: &str = "4vrde3cq8yD6cB9qJV7jRXocpa1KDNd9MJPMX3R891xV";
const SOL_BUYER: &str = "PFard8DpoLVVcC25FbyaC4WVVLr2U53CBAY27XHXdmD";
const EVM_BUYER: &str = "0x9858effd232b4033e47d90003d41ec34ecaeda94";

fn evm_xpub() -> String {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let master = Xpriv::new_master(bitcoin::Network::Bitcoin, &[42u8; 32]).unwrap();
    let account = master.derive_priv(&secp, &DerivationPath::from_str("m/44'/60'/0'").unwrap()).unwrap();
    Xpub::from_priv(&secp, &account).to_string()
}

/// A gateway with EVM and Solana receiving configured, and four of the seven tokens (not USDC.POL).
async fn token_app(backend: ticketing::Backend) -> common::TestApp {
    common::spawn_app_with(backend, |s| {
        s.payments.evm_xpub = Some(evm_xpub());
        s.payments.sol_account = Some(SOL_PLATFORM.into());
        s.payments.tokens =
            [("USDC.ETH", USDC_ETH), ("usdt_bnb", USDT_BNB), ("usdc-sol", USDC_SOL), ("USDT.ETH", USDT_ETH)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
    })
    .await
}

macro_rules! token_test {
    ($name:ident, |$app:ident| $body:expr) => {
        ticketing::both_backends!($name, |backend| async move {
            let $app = token_app(backend).await;
            $body.await;
        });
    };
}

/// $25, payable in four stablecoins and ETH.
async fn on_sale_event(app: &common::TestApp) -> i64 {
    app.usd_event_on_sale("Show", 10, "ETH,USDC.ETH,USDC.POL,USDC.SOL,USDT.BNB").await
}

async fn buy(app: &common::TestApp, body: Value) -> (StatusCode, Value) {
    let res = app.client.post(app.url("/api/events/purchase")).json(&body).send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

token_test!(token_quotes_carry_token_transfer_uris, |app| async move {
    let event_id = on_sale_event(&app).await;

    let (status, usdc) =
        buy(&app, json!({ "event_id": event_id, "payment_method": "USDC.ETH", "wallet_address": EVM_BUYER })).await;
    assert_eq!(status, StatusCode::CREATED, "{usdc}");
    assert_eq!(
        (usdc["currency"].as_str(), usdc["amount"].as_str(), usdc["usd_rate"].as_str()),
        (Some("USDC.ETH"), Some("25"), Some("1.00"))
    );
    let to = usdc["payment_address"].as_str().unwrap();
    assert!(to.starts_with("0x") && to.len() == 42, "a per-quote EVM address: {to}");
    assert_eq!(
        usdc["payment_uri"],
        format!("ethereum:{}@1/transfer?address={to}&uint256=25000000", USDC_ETH.to_ascii_lowercase())
    );
    // Its QR code says the same.
    let svg =
        app.get(&format!("/api/quotes/{}/qr.svg", usdc["quote_id"].as_str().unwrap())).await.text().await.unwrap();
    assert_eq!(svg, gateway::routes::qr::qr_svg(usdc["payment_uri"].as_str().unwrap()).unwrap());

    // The second form: the coin, and the chain apart (`currency` is accepted for `payment_method`).
    let (status, sol) =
        buy(&app, json!({ "event_id": event_id, "currency": "USDC", "chain": "solana", "wallet_address": SOL_BUYER }))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{sol}");
    assert_eq!((sol["currency"].as_str(), sol["amount"].as_str()), (Some("USDC.SOL"), Some("25")));
    assert_eq!(sol["payment_address"], SOL_PLATFORM);
    let reference = sol["reference"].as_str().unwrap();
    assert_eq!(
        sol["payment_uri"],
        format!(
            "solana:{SOL_PLATFORM}?amount=25&spl-token={USDC_SOL}&reference={reference}&label=Ticket&memo={}",
            sol["quote_id"].as_str().unwrap()
        )
    );

    // 18 decimals on BNB Smart Chain.
    let (status, usdt) =
        buy(&app, json!({ "event_id": event_id, "payment_method": "usdt-bnb", "wallet_address": EVM_BUYER })).await;
    assert_eq!(status, StatusCode::CREATED, "{usdt}");
    assert_eq!(usdt["currency"], "USDT.BNB");
    let to = usdt["payment_address"].as_str().unwrap();
    assert_eq!(
        usdt["payment_uri"],
        format!("ethereum:{USDT_BNB}@56/transfer?address={to}&uint256=25000000000000000000")
    );

    // Native quotes are unchanged.
    let (_, eth) =
        buy(&app, json!({ "event_id": event_id, "payment_method": "eth", "wallet_address": EVM_BUYER })).await;
    assert!(eth["payment_uri"].as_str().unwrap().contains("?value="), "{eth}");
});

token_test!(token_purchase_errors_are_precise, |app| async move {
    let event_id = on_sale_event(&app).await;
    let cases = [
        // Accepted by the event, but no contract configured on this gateway.
        (
            json!({ "payment_method": "USDC.POL" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_method_unavailable",
            "USDC.POL payments are not configured",
        ),
        (
            json!({ "payment_method": "usdc", "chain": "polygon" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_method_unavailable",
            "USDC.POL",
        ),
        // No network named.
        (
            json!({ "payment_method": "USDC" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_payment_method",
            "USDC.ETH, USDC.POL, USDC.BNB, USDC.SOL",
        ),
        // No such token on that network, or a chain that contradicts the code.
        (
            json!({ "payment_method": "USDT", "chain": "sol" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_payment_method",
            "`USDT` on `sol`",
        ),
        (
            json!({ "payment_method": "USDC.ETH", "chain": "bnb" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_payment_method",
            "on `bnb`",
        ),
        // Configured, but this event does not take it.
        (
            json!({ "payment_method": "USDT", "chain": "eth" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_not_accepted",
            "USDT.ETH",
        ),
    ];
    for (mut body, status, code, message) in cases {
        body["event_id"] = json!(event_id);
        body["wallet_address"] = json!(EVM_BUYER);
        let (got, err) = buy(&app, body.clone()).await;
        assert_eq!(got, status, "{body}: {err}");
        assert_eq!(err["error"]["code"], code, "{body}");
        assert!(err["error"]["message"].as_str().unwrap().contains(message), "{body}: {err}");
    }
    // A Solana wallet cannot be bound to an Ethereum token quote: the network's address rules apply.
    let (status, err) =
        buy(&app, json!({ "event_id": event_id, "payment_method": "USDC.ETH", "wallet_address": SOL_BUYER })).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_wallet")));
});

token_test!(a_final_token_payment_issues_the_ticket_with_the_split_in_token_units, |app| async move {
    let event_id = on_sale_event(&app).await;
    let (_, quote) =
        buy(&app, json!({ "event_id": event_id, "payment_method": "USDC.ETH", "wallet_address": EVM_BUYER })).await;
    let id = quote["quote_id"].as_str().unwrap();
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.evm = Some(EvmAccount::parse(&evm_xpub()).unwrap());
    let watcher = Purchases::new(app.store.clone(), Arc::new(StaticRates::development()), settings, &[0x11; 32]);
    let report = |txid: &str, units: u128| PaymentReport {
        chain: Chain::Eth,
        txid: txid.into(),
        output_index: 3,
        quote_id: None,
        memo: None,
        amount: Amount::new(Currency::UsdcEth, units),
        to_address: quote["payment_address"].as_str().unwrap().into(),
        from_address: Some(EVM_BUYER.into()),
        block_height: Some(10),
        block_hash: Some("0xb".into()),
        confirmations: 12,
        is_final: true,
    };
    let outcome = watcher.report_payment(report("0xaa", 25_000_001), ticketing::now_ms()).await.unwrap();
    assert!(matches!(outcome, PaymentOutcome::TicketIssued { .. }), "{outcome:?}");
    let status: Value = app.get(&format!("/api/quotes/{id}")).await.json().await.unwrap();
    assert_eq!((status["status"].as_str(), status["ticket"]["currency"].as_str()), (Some("paid"), Some("USDC.ETH")));
    assert_eq!(
        (status["ticket"]["amount_paid"].as_str(), status["ticket"]["chain"].as_str()),
        (Some("25.000001"), Some("eth"))
    );
    let ledger: Vec<(String, String, String)> =
        sqlx::query_as("SELECT kind, currency, amount_units FROM ledger_entries WHERE quote_id = $1 ORDER BY kind")
            .bind(id)
            .fetch_all(app.store.raw_pool())
            .await
            .unwrap();
    assert_eq!(
        ledger,
        [("commission", "5000000"), ("payout", "20000000"), ("refund", "1")].map(|(k, u)| (
            k.to_owned(),
            "USDC.ETH".to_owned(),
            u.to_owned()
        ))
    );
    // The buyer's tickets are found by the network's chain.
    let tickets: Value = app.get(&format!("/api/tickets?wallet={EVM_BUYER}&chain=eth")).await.json().await.unwrap();
    assert_eq!(tickets.as_array().unwrap().len(), 1);
});
