//! Buying over HTTP: quotes, status, tickets, and the operators' ledger, on both databases.

use crate::common;

use std::sync::Arc;

use chains::{Amount, Chain, Currency};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use ticketing::purchases::{PaymentReport, PaymentSettings, Purchases};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;

async fn on_sale_event(app: &common::TestApp, seats: i64) -> i64 {
    app.usd_event_on_sale("Show", seats, "HIVE,HBD,BTC").await
}

/// A watcher's view of the same database (reports go through the ticketing crate, as in production).
fn watcher(app: &common::TestApp) -> Purchases {
    Purchases::new(
        app.store.clone(),
        Arc::new(StaticRates::development()),
        PaymentSettings::new("dlux-tickets"),
        &[0x11; 32],
    )
}

async fn buy(app: &common::TestApp, body: Value) -> reqwest::Response {
    app.client.post(app.url("/api/events/purchase")).json(&body).send().await.unwrap()
}

app_test!(quote_pay_and_see_the_ticket, |app| async move {
    let event_id = on_sale_event(&app, 2).await;
    let res =
        buy(&app, json!({ "event_id": event_id.to_string(), "payment_method": "hive", "wallet_address": "bob" })).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let quote: Value = res.json().await.unwrap();
    assert_eq!(quote["amount"], "100");
    assert_eq!(quote["currency"], "HIVE");
    assert_eq!(quote["payment_address"], "dlux-tickets");
    assert_eq!(quote["status"], "awaiting_payment");
    let memo = quote["memo"].as_str().unwrap();
    assert!(memo.starts_with(&format!("event:{event_id}:wallet:bob:quote:")));
    assert!(quote["payment_uri"]
        .as_str()
        .unwrap()
        .starts_with("https://hivesigner.com/sign/transfer?to=dlux-tickets&amount=100.000%20HIVE"));
    assert!(chrono::DateTime::parse_from_rfc3339(quote["expires_at"].as_str().unwrap()).is_ok());
    let id = quote["quote_id"].as_str().unwrap();

    let report = PaymentReport {
        chain: Chain::Hive,
        txid: "hivetx1".into(),
        output_index: 0,
        quote_id: None,
        memo: Some(memo.into()),
        amount: Amount::new(Currency::Hive, 100_000),
        to_address: "dlux-tickets".into(),
        from_address: Some("bob".into()),
        block_height: Some(5),
        block_hash: None,
        confirmations: 1,
        is_final: true,
    };
    watcher(&app).report_payment(report, ticketing::now_ms()).await.unwrap();
    let status: Value = app.get(&format!("/api/quotes/{id}")).await.json().await.unwrap();
    assert_eq!(status["status"], "paid");
    assert_eq!(status["remaining"], "0");
    assert_eq!(status["ticket"]["wallet_address"], "bob");
    assert_eq!(status["ticket"]["status"], "valid");
    let tickets: Value = app.get("/api/tickets?wallet=bob&chain=hive").await.json().await.unwrap();
    assert_eq!(tickets.as_array().unwrap().len(), 1);
    assert_eq!(tickets[0]["ticket_id"], status["ticket"]["ticket_id"]);
    assert!(tickets[0].get("token").is_none(), "a public list carries no ticket secret");
    let none: Value = app.get("/api/tickets?wallet=carol&chain=hbd").await.json().await.unwrap();
    assert_eq!(none, json!([]));
});

app_test!(purchase_errors_are_precise, |app| async move {
    let event_id = on_sale_event(&app, 1).await;
    let cases = [
        (
            json!({ "event_id": event_id, "payment_method": "doge", "wallet_address": "bob" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_payment_method",
        ),
        (
            json!({ "event_id": event_id, "payment_method": "usd", "wallet_address": "bob" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_payment_method",
        ),
        (
            json!({ "event_id": event_id, "payment_method": "sol", "wallet_address": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency_not_accepted",
        ),
        (
            json!({ "event_id": event_id, "payment_method": "btc", "wallet_address": "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_method_unavailable",
        ),
        (
            json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": "Not A Wallet" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_wallet",
        ),
        (
            json!({ "event_id": "abc", "payment_method": "hive", "wallet_address": "bob" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event_id",
        ),
        (
            json!({ "event_id": 99999, "payment_method": "hive", "wallet_address": "bob" }),
            StatusCode::NOT_FOUND,
            "event_not_found",
        ),
        (json!({ "payment_method": "hive" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let res = buy(&app, body.clone()).await;
        assert_eq!(res.status(), status, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], code, "{body}");
    }
    assert_eq!(
        buy(&app, json!({ "event_id": event_id, "payment_method": "hbd", "wallet_address": "bob" })).await.status(),
        StatusCode::CREATED
    );
    let res = buy(&app, json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": "carol" })).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "sold_out");
    assert_eq!(app.get("/api/quotes/q_nope").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/tickets?wallet=bob&chain=doge").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
});

app_test!(operators_list_and_settle_refunds_once, |app| async move {
    let event_id = on_sale_event(&app, 2).await;
    let quote: Value = buy(&app, json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": "bob" }))
        .await
        .json()
        .await
        .unwrap();
    let report = PaymentReport {
        chain: Chain::Hive,
        txid: "over1".into(),
        output_index: 0,
        quote_id: None,
        memo: quote["memo"].as_str().map(String::from),
        amount: Amount::new(Currency::Hive, 100_500),
        to_address: "dlux-tickets".into(),
        from_address: None,
        block_height: Some(5),
        block_hash: None,
        confirmations: 1,
        is_final: true,
    };
    watcher(&app).report_payment(report, ticketing::now_ms()).await.unwrap();
    assert_eq!(app.client.get(app.url("/api/admin/refunds")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let refunds: Value = app.admin(Method::GET, "/api/admin/refunds").send().await.unwrap().json().await.unwrap();
    assert_eq!(refunds.as_array().unwrap().len(), 1);
    assert_eq!(refunds[0]["amount_units"], "500");
    assert_eq!(refunds[0]["reason"], "overpaid");
    let payouts: Value = app.admin(Method::GET, "/api/admin/payouts").send().await.unwrap().json().await.unwrap();
    assert_eq!(payouts, json!([]), "payouts are not due before the event ends plus the delay");
    let all: Value = app.admin(Method::GET, "/api/admin/payouts?all=true").send().await.unwrap().json().await.unwrap();
    assert_eq!(all[0]["amount_units"], "80000");
    // One name for "everything" on both the CLI (`--all`) and HTTP; a parameter it does not know is refused.
    for query in ["due=false", "al=true"] {
        let res = app.admin(Method::GET, &format!("/api/admin/payouts?{query}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "invalid_query");
    }
    let id = refunds[0]["id"].as_i64().unwrap();
    let path = format!("/api/admin/ledger/{id}/settle");
    // A Hive transaction id is 40 hex digits; anything else is refused before the ledger is touched.
    let res = app.admin(Method::POST, &path).json(&json!({ "txid": "refund-tx" })).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "invalid_txid");
    let txid = "A1".repeat(20);
    let res = app.admin(Method::POST, &path).json(&json!({ "txid": txid })).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let settled: Value = res.json().await.unwrap();
    assert_eq!(settled["settled_txid"], "a1".repeat(20));
    assert_eq!((settled["paid_to"].as_str(), settled["checked"].as_str()), (Some("bob"), Some("format_only")));
    let res = app.admin(Method::POST, &path).json(&json!({ "txid": "b2".repeat(20) })).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "already_settled");
    let payout_id = all[0]["id"].as_i64().unwrap();
    let res = app
        .admin(Method::POST, &format!("/api/admin/ledger/{payout_id}/settle"))
        .json(&json!({ "txid": "c3".repeat(20) }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "not_due");
    let res = app
        .admin(Method::POST, "/api/admin/ledger/999999/settle")
        .json(&json!({ "txid": "c3".repeat(20) }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
});

/// The value of one sample line of `/metrics`, e.g. `gateway_quotes_total{currency="HIVE",outcome="created"}`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

app_test!(metrics_count_quotes_tickets_revenue_and_refunds, |app| async move {
    let event_id = on_sale_event(&app, 5).await;
    let res =
        buy(&app, json!({ "event_id": event_id.to_string(), "payment_method": "hive", "wallet_address": "bob" })).await;
    let quote: Value = res.json().await.unwrap();
    assert_eq!(
        buy(&app, json!({ "event_id": event_id.to_string(), "payment_method": "doge", "wallet_address": "bob" }))
            .await
            .status(),
        422
    );
    // Paid 1 HIVE too much: a ticket, and a refund of the excess.
    let report = PaymentReport {
        chain: Chain::Hive,
        txid: "metrics-tx".into(),
        output_index: 0,
        quote_id: None,
        memo: Some(quote["memo"].as_str().unwrap().into()),
        amount: Amount::new(Currency::Hive, 101_000),
        to_address: "dlux-tickets".into(),
        from_address: Some("bob".into()),
        block_height: Some(5),
        block_hash: None,
        confirmations: 1,
        is_final: true,
    };
    watcher(&app).report_payment(report, ticketing::now_ms()).await.unwrap();
    let res = app
        .client
        .post(app.url(&format!("/api/events/{event_id}/join")))
        .json(&json!({ "wallet_address": "bob", "chain": "hive", "signature": "00" }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let get = |series: &str| sample(&metrics, series).unwrap_or_else(|| panic!("no `{series}` in /metrics"));
    assert_eq!(get(r#"gateway_quotes_total{currency="HIVE",outcome="created"}"#), 1.0);
    assert_eq!(get(r#"gateway_quotes_total{currency="unknown",outcome="unknown_payment_method"}"#), 1.0);
    assert_eq!(get(r#"gateway_tickets_issued_total{currency="HIVE"}"#), 1.0);
    assert_eq!(get(r#"gateway_revenue_base_units_total{currency="HIVE"}"#), 101_000.0);
    assert_eq!(get(r#"gateway_refunds_total{currency="HIVE"}"#), 1.0);
    assert_eq!(get(r#"gateway_refunded_base_units_total{currency="HIVE"}"#), 1_000.0);
    assert!(metrics.lines().any(|l| l.starts_with("gateway_joins_total{via=\"http\",outcome=\"")), "{metrics}");
});

/// A client whose requests come from `ip` (any 127.0.0.0/8 address reaches the loopback listener).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(std::net::IpAddr::from(ip)).build().unwrap()
}

/// Pays a quote in full, as the Hive watcher would report it.
async fn pay(app: &common::TestApp, quote: &Value, txid: &str) -> ticketing::purchases::PaymentOutcome {
    let report = PaymentReport {
        chain: Chain::Hive,
        txid: txid.into(),
        output_index: 0,
        quote_id: None,
        memo: quote["memo"].as_str().map(String::from),
        amount: Amount::parse(Currency::Hive, quote["amount"].as_str().unwrap()).unwrap(),
        to_address: "dlux-tickets".into(),
        from_address: quote["wallet_address"].as_str().map(String::from),
        block_height: Some(5),
        block_hash: None,
        confirmations: 1,
        is_final: true,
    };
    watcher(app).report_payment(report, ticketing::now_ms()).await.unwrap()
}

// One client (127.0.0.2) asks for quotes as fast as it can, rotating wallets, for a 100-seat event while 20 real
// buyers (127.0.1.x) arrive: every buyer gets a quote and, once paid, a ticket; the squatter holds no more than
// its per-address limit, and never more than the held share.
app_test!(a_squatter_cannot_block_a_sale, |app| async move {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let event_id = on_sale_event(&app, 100).await;
    let limits = app.state.purchases.settings().quote_limits;
    let stop = Arc::new(AtomicBool::new(false));
    let (granted, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let squatter = {
        let (app_url, stop, granted, refused) =
            (app.url("/api/events/purchase"), stop.clone(), granted.clone(), refused.clone());
        tokio::spawn(async move {
            let client = client_from([127, 0, 0, 2]);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body =
                    json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": format!("squat{n:06}") });
                let res = client.post(&app_url).json(&body).send().await.unwrap();
                match res.status() {
                    StatusCode::CREATED => granted.fetch_add(1, Ordering::Relaxed),
                    StatusCode::TOO_MANY_REQUESTS => {
                        let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                        assert!((1..=900).contains(&retry), "Retry-After {retry}");
                        let err: Value = res.json().await.unwrap();
                        assert_eq!(err["error"]["code"], "too_many_quotes_from_address");
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                    other => panic!("squatter got {other}: {}", res.text().await.unwrap()),
                };
            }
        })
    };
    // The buyers arrive once the squatter is refused: it has taken all it may.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while refused.load(Ordering::Relaxed) < 20 {
        assert!(std::time::Instant::now() < deadline, "the squatter was never refused");
        tokio::task::yield_now().await;
    }
    let mut buyers = Vec::new();
    for i in 1..=20u8 {
        let app_url = app.url("");
        buyers.push(tokio::spawn(async move {
            let res = client_from([127, 0, 1, i])
                .post(format!("{app_url}/api/events/purchase"))
                .json(&json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": format!("buyer{i:02}") }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED, "buyer {i}");
            res.json::<Value>().await.unwrap()
        }));
    }
    let mut quotes = Vec::new();
    for b in buyers {
        quotes.push(b.await.unwrap());
    }
    for (i, quote) in quotes.iter().enumerate() {
        let outcome = pay(&app, quote, &format!("buyer-tx-{i}")).await;
        assert!(matches!(outcome, ticketing::purchases::PaymentOutcome::TicketIssued { .. }), "buyer {i}: {outcome:?}");
        let status: Value =
            app.get(&format!("/api/quotes/{}", quote["quote_id"].as_str().unwrap())).await.json().await.unwrap();
        assert_eq!(status["ticket"]["status"], "valid");
        assert_eq!(status["ticket"]["wallet_address"], quote["wallet_address"]);
    }
    stop.store(true, Ordering::Relaxed);
    squatter.await.unwrap();

    let held_by_squatter: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM quotes WHERE event_id = $1 AND client_address = '127.0.0.2' AND holds_seat = 1",
    )
    .bind(event_id)
    .fetch_one(app.store.raw_pool())
    .await
    .unwrap();
    let (held, sold): (i64, i64) = sqlx::query_as("SELECT seats_held, tickets_sold FROM events WHERE id = $1")
        .bind(event_id)
        .fetch_one(app.store.raw_pool())
        .await
        .unwrap();
    let (granted, refused) = (granted.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    eprintln!(
        "squatter: {granted} quotes granted, {refused} refused (429), {held_by_squatter} seats held; \
         buyers: 20 quoted, {sold} tickets; event: {held} seats held, {sold} sold of 100 (hold cap {})",
        limits.hold_cap(100, sold)
    );
    assert_eq!(sold, 20);
    assert_eq!(granted, u64::from(limits.per_client.unwrap()));
    assert!(held_by_squatter <= i64::from(limits.per_client.unwrap()));
    assert!(held_by_squatter <= limits.hold_cap(100, 0));
    assert_eq!(held, held_by_squatter, "only the squatter's quotes still hold seats");
    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let refusal = doc["paths"]["/api/events/purchase"]["post"]["responses"]["429"]["description"].as_str().unwrap();
    assert!(refusal.contains("too_many_quotes_from_address"), "{refusal}");
});

// The same sale against 60 squatting addresses (127.0.2.x), each asking until refused: together they hold no
// more than the held share of the seats; the quotes past it are unreserved, so the 20 buyers still get quotes
// and, once they pay, tickets from the seats nobody may hold.
app_test!(squatters_on_many_addresses_hold_at_most_the_share, |app| async move {
    let event_id = on_sale_event(&app, 100).await;
    let limits = app.state.purchases.settings().quote_limits;
    let mut squatters = Vec::new();
    for a in 1..=60u8 {
        let url = app.url("/api/events/purchase");
        squatters.push(tokio::spawn(async move {
            let client = client_from([127, 0, 2, a]);
            let (mut granted, mut reserved) = (0u32, 0u32);
            for n in 0.. {
                let body = json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": format!("sq{a:03}x{n:04}") });
                let res = client.post(&url).json(&body).send().await.unwrap();
                if res.status() == StatusCode::TOO_MANY_REQUESTS {
                    break;
                }
                assert_eq!(res.status(), StatusCode::CREATED);
                let quote: Value = res.json().await.unwrap();
                granted += 1;
                reserved += u32::from(quote["seat_reserved"] == true);
            }
            (granted, reserved)
        }));
    }
    let (mut granted, mut reserved) = (0, 0);
    for s in squatters {
        let (g, r) = s.await.unwrap();
        granted += g;
        reserved += r;
    }
    let mut tickets = 0;
    for i in 1..=20u8 {
        let res = client_from([127, 0, 1, i])
            .post(app.url("/api/events/purchase"))
            .json(&json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": format!("buyer{i:02}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "buyer {i}");
        let quote: Value = res.json().await.unwrap();
        let outcome = pay(&app, &quote, &format!("buyer-tx-{i}")).await;
        assert!(matches!(outcome, ticketing::purchases::PaymentOutcome::TicketIssued { .. }), "buyer {i}: {outcome:?}");
        tickets += 1;
    }
    let (held, sold): (i64, i64) = sqlx::query_as("SELECT seats_held, tickets_sold FROM events WHERE id = $1")
        .bind(event_id)
        .fetch_one(app.store.raw_pool())
        .await
        .unwrap();
    eprintln!(
        "60 squatting addresses: {granted} quotes granted, {reserved} holding a seat; buyers: 20 quoted, {tickets} tickets; \
         event: {held} seats held, {sold} sold of 100 (hold cap before the sale {})",
        limits.hold_cap(100, 0)
    );
    assert_eq!(granted, 60 * limits.per_client.unwrap());
    assert_eq!(i64::from(reserved), limits.hold_cap(100, 0));
    assert_eq!((held, sold), (limits.hold_cap(100, 0), 20));
});

/// A rate so close to zero that the price is more base units than an amount holds: the buyer's request cannot
/// be served at this rate, which is not an outage (503) but an answer of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_that_cannot_be_represented_is_422() {
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |settings| {
        settings.rates.table.insert("HIVE".into(), "0.0000000000000000000000000001".into());
    })
    .await;
    let event_id = on_sale_event(&app, 1).await;
    let res = buy(&app, json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": "bob" })).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "amount_unrepresentable");
    assert!(err["error"]["message"].as_str().unwrap().contains("HIVE"), "{err}");
}

const ZPUB: &str =
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";

/// A currency is quoted only while a watcher credits its chain (here, or declared as watched elsewhere) and
/// its receiving setting is present; the refusal names what is missing, and listings show what is payable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_currencies_a_watcher_credits_are_quoted() {
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |settings| {
        settings.payments.btc_xpub = Some(ZPUB.into());
        settings.payments.watched_elsewhere = vec!["hive".into(), "eth".into()];
    })
    .await;
    let event_id = app.usd_event_on_sale("Show", 5, "HIVE,BTC,ETH").await;

    let res = buy(&app, json!({ "event_id": event_id, "payment_method": "btc", "wallet_address": "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu" })).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "currency_not_payable");
    assert!(err["error"]["message"].as_str().unwrap().contains("[watchers.btc]"), "{err}");

    // Watched elsewhere, but nothing receives ETH here: the receiving setting is named.
    let res = buy(&app, json!({ "event_id": event_id, "payment_method": "eth", "wallet_address": "0x52908400098527886e0f7030069857d2e4169ee7" })).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "payment_method_unavailable");
    assert!(err["error"]["message"].as_str().unwrap().contains("payments.evm_xpub"), "{err}");

    let res = buy(&app, json!({ "event_id": event_id, "payment_method": "hive", "wallet_address": "bob" })).await;
    assert_eq!(res.status(), StatusCode::CREATED);

    let view: Value = app.get(&format!("/api/events/{event_id}")).await.json().await.unwrap();
    assert_eq!(view["supported_crypto"], json!(["HIVE", "BTC", "ETH"]));
    assert_eq!(view["payable"], json!(["HIVE"]));
    let listing: Value = app.get("/api/events").await.json().await.unwrap();
    assert_eq!(listing["items"][0]["payable"], json!(["HIVE"]));

    // What start-up logs, one line per currency: everything but HIVE and HBD, each with its reason.
    let unpayable = gateway::payments::payability::unpayable_currencies(&app.state.purchases);
    let listed: Vec<Currency> = unpayable.iter().map(|(c, _)| *c).collect();
    assert_eq!(listed, Currency::PAYABLE.into_iter().filter(|c| c.chain() != Some(Chain::Hive)).collect::<Vec<_>>());
    let btc = &unpayable.iter().find(|(c, _)| *c == Currency::Btc).unwrap().1;
    assert!(btc.contains("[watchers.btc]"), "{btc}");
}

/// `/readyz` names a chain buyers are quoted on whose watcher here is failing (its node is unreachable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_quotable_chain_whose_watcher_is_unhealthy() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let esplora = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |settings| {
        settings.payments.btc_xpub = Some(ZPUB.into());
        settings.payments.watched_elsewhere = vec![];
        settings.watchers.btc = Some(
            serde_json::from_value(json!({ "esplora_url": esplora, "rpc_attempts": 1, "rpc_timeout_ms": 500 }))
                .unwrap(),
        );
    })
    .await;
    assert!(app.state.purchases.is_payable(Currency::Btc));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let ready: Value = app.get("/readyz").await.json().await.unwrap();
        if ready["unhealthy_quotable_chains"] == json!(["btc"]) {
            assert_eq!(ready["status"], "ready", "a chain's node being down does not take the rooms offline");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reported: {ready}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A price worth less than a chain's dust-safe minimum is refused as such (422), not quoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_below_the_chains_minimum_is_422() {
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |settings| {
        settings.payments.btc_xpub = Some(ZPUB.into());
        // $25 at $60 million per BTC is 42 sat.
        settings.rates.table.insert("BTC".into(), "60000000".into());
    })
    .await;
    let event_id = on_sale_event(&app, 1).await;
    let res = buy(&app, json!({ "event_id": event_id, "payment_method": "btc", "wallet_address": "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu" })).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "amount_below_minimum");
    assert!(err["error"]["message"].as_str().unwrap().contains("0.00000042 BTC"), "{err}");
}
