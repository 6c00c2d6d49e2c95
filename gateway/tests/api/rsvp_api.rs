//! Free events: a wallet reserves a seat with a signed access challenge (`POST /api/events/{id}/rsvp`), gets an
//! ordinary ticket and joins with it. Capacity and one ticket per wallet hold under concurrent RSVPs; no payment
//! or ledger row is ever written. Both databases, real EVM signatures.

use crate::common;

use common::wallets::EvmWallet;
use reqwest::StatusCode;
use serde_json::{json, Value};
use ticketing::creators::{AccountName, Tier};
use ticketing::testing::RawSql;

/// A free event by `alice` with `seats` seats, on sale since a second ago; its room opened a minute ago.
async fn free_event(app: &common::TestApp, seats: i64) -> i64 {
    app.store.set_tier(&AccountName::parse("alice").unwrap(), Tier::Pro, None, "test").await.unwrap();
    let now = ticketing::now_ms();
    ticketing::testing::SeedEvent::new(now - 1000)
        .title("Free meetup")
        .price("0", "USD")
        .capacity(seats)
        .starts(now - 60_000)
        .ends(now + 3_600_000)
        .sales(now - 1000, Some(now + 3_600_000))
        .insert(&app.store)
        .await
}

/// The join body for `wallet`, signed over a fresh challenge for `event_id`.
async fn signed(app: &common::TestApp, event_id: i64, wallet: &EvmWallet) -> Value {
    let res = app.get(&format!("/api/events/{event_id}/challenge?chain=eth&wallet={}", wallet.address())).await;
    assert_eq!(res.status(), StatusCode::OK);
    let message = res.json::<Value>().await.unwrap()["message"].as_str().unwrap().to_owned();
    json!({ "wallet_address": wallet.address(), "chain": "eth", "signature": wallet.sign(&message), "message": message })
}

async fn post(app: &common::TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(path)).json(body).send().await.unwrap()
}

async fn count(app: &common::TestApp, sql: &str, event_id: i64) -> i64 {
    sqlx::query_scalar(sql).bind(event_id).fetch_one(app.store.raw_pool()).await.unwrap()
}

app_test!(rsvp_with_a_real_signature_gives_a_ticket_that_joins, |app| async move {
    let event_id = free_event(&app, 10).await;
    let wallet = EvmWallet::new(7);
    let body = signed(&app, event_id, &wallet).await;
    let res = post(&app, &format!("/api/events/{event_id}/rsvp"), &body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let reserved: Value = res.json().await.unwrap();
    assert_eq!(reserved["created"], true);
    let ticket = &reserved["ticket"];
    assert_eq!(ticket["status"], "valid");
    assert_eq!(ticket["chain"], "eth");
    assert_eq!(ticket["wallet_address"], wallet.address().as_str());
    assert_eq!(ticket["amount_paid"], "0");
    assert!(ticket["token"].as_str().is_some_and(|t| !t.is_empty()));
    let ticket_id = ticket["ticket_id"].as_i64().unwrap();

    // The same signature again is a replay, refused before anything is reserved.
    let replay = post(&app, &format!("/api/events/{event_id}/rsvp"), &body).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(replay.json::<Value>().await.unwrap()["error"]["code"], "replayed");

    // A second RSVP by the same wallet gets the ticket it holds: one ticket per wallet.
    let again = post(&app, &format!("/api/events/{event_id}/rsvp"), &signed(&app, event_id, &wallet).await).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["created"], false);
    assert_eq!(again["ticket"]["ticket_id"], ticket_id);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tickets WHERE event_id = $1", event_id).await, 1);
    assert_eq!(count(&app, "SELECT tickets_sold FROM events WHERE id = $1", event_id).await, 1);

    // The ticket joins exactly as a paid one does.
    let res = post(&app, &format!("/api/events/{event_id}/join"), &signed(&app, event_id, &wallet).await).await;
    assert_eq!(res.status(), StatusCode::OK);
    let granted: Value = res.json().await.unwrap();
    assert_eq!(granted["access_granted"], true);
    assert_eq!(granted["ticket_id"], ticket_id);
    let url =
        format!("{}?token={}", granted["websocket_url"].as_str().unwrap(), granted["session_token"].as_str().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let welcome = loop {
        use futures_util::StreamExt;
        match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await.unwrap() {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                break serde_json::from_str::<Value>(&t).unwrap()
            }
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(welcome["type"], "welcome");

    // No money anywhere: no payment, no ledger row; the reservation is audited.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM ledger_entries WHERE event_id = $1", event_id).await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payments p JOIN quotes q ON q.id = p.quote_id WHERE q.event_id = $1",
            event_id
        )
        .await,
        0
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_log WHERE event_id = $1 AND action = 'ticket.reserved'", event_id)
            .await,
        1
    );
    // Analytics count the RSVP as a ticket (and its entry); sales (revenue) stay empty.
    // (The entry is written when the attendance batch is flushed: polled.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let check_in = loop {
        let check_in = app.store.check_in(event_id).await.unwrap();
        if check_in.tickets_used == 1 || std::time::Instant::now() > deadline {
            break check_in;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!((check_in.tickets_sold, check_in.tickets_used), (1, 1));
    let sales = app.state.purchases.sales_summary("alice").await.unwrap();
    assert!(sales.iter().all(|line| line.event_id != event_id), "{sales:?}");
});

app_test!(one_wallet_racing_itself_gets_one_ticket, |app| async move {
    let event_id = free_event(&app, 10).await;
    let wallet = EvmWallet::new(5);
    let mut bodies = Vec::new();
    for _ in 0..5 {
        bodies.push(signed(&app, event_id, &wallet).await);
    }
    let path = app.url(&format!("/api/events/{event_id}/rsvp"));
    let results = futures_util::future::join_all(bodies.iter().map(|body| {
        let (client, url) = (app.client.clone(), path.clone());
        async move {
            let res = client.post(url).json(body).send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    }))
    .await;
    let created = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let held = results.iter().filter(|(s, b)| *s == StatusCode::OK && b["created"] == false).count();
    assert_eq!((created, held), (1, 4), "{results:?}");
    let ids: std::collections::BTreeSet<i64> =
        results.iter().map(|(_, b)| b["ticket"]["ticket_id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(count(&app, "SELECT tickets_sold FROM events WHERE id = $1", event_id).await, 1);
});

app_test!(paid_event_refuses_rsvp_and_free_event_refuses_quotes, |app| async move {
    let paid = app.usd_event_on_sale("Paid", 10, "ETH").await;
    let wallet = EvmWallet::new(9);
    let res = post(&app, &format!("/api/events/{paid}/rsvp"), &signed(&app, paid, &wallet).await).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "not_free");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tickets WHERE event_id = $1", paid).await, 0);

    let free = free_event(&app, 10).await;
    let res = post(
        &app,
        "/api/events/purchase",
        &json!({ "event_id": free, "payment_method": "ETH", "wallet_address": wallet.address() }),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "free_event");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM quotes WHERE event_id = $1", free).await, 0);

    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let refusal = doc["paths"]["/api/events/{id}/rsvp"]["post"]["responses"]["422"]["description"].as_str().unwrap();
    assert!(refusal.contains("not_free"), "{refusal}");
});

app_test!(cancelling_a_free_event_cancels_its_tickets_without_refunds, |app| async move {
    let event_id = free_event(&app, 10).await;
    for seed in 1..=3u8 {
        let wallet = EvmWallet::new(seed);
        let res = post(&app, &format!("/api/events/{event_id}/rsvp"), &signed(&app, event_id, &wallet).await).await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    app.store.cancel_event(event_id, "alice", ticketing::now_ms()).await.unwrap();
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND status = 'cancelled'", event_id).await,
        3
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM ledger_entries WHERE event_id = $1", event_id).await, 0);
    let late =
        post(&app, &format!("/api/events/{event_id}/rsvp"), &signed(&app, event_id, &EvmWallet::new(4)).await).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    assert_eq!(late.json::<Value>().await.unwrap()["error"]["code"], "not_on_sale");
});

/// 30 wallets racing for 10 seats, each with its own signed challenge: exactly 10 tickets, the rest `sold_out`.
async fn race_for_seats(backend: ticketing::Backend) {
    let app = common::spawn_app_with(backend, |s| {
        // Every request comes from 127.0.0.1; this test measures capacity, not the per-address limiter.
        s.access.ip_attempts_per_minute = 1000;
        s.access.ip_challenges_per_minute = 1000;
    })
    .await;
    let event_id = free_event(&app, 10).await;
    let mut bodies = Vec::new();
    for seed in 1..=30u8 {
        bodies.push(signed(&app, event_id, &EvmWallet::new(seed)).await);
    }
    let path = format!("/api/events/{event_id}/rsvp");
    let results = futures_util::future::join_all(bodies.iter().map(|body| {
        let (client, url) = (app.client.clone(), app.url(&path));
        async move {
            let res = client.post(url).json(body).send().await.unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        }
    }))
    .await;
    let created = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let sold_out =
        results.iter().filter(|(s, b)| *s == StatusCode::CONFLICT && b["error"]["code"] == "sold_out").count();
    assert_eq!((created, sold_out), (10, 20), "{results:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tickets WHERE event_id = $1", event_id).await, 10);
    assert_eq!(count(&app, "SELECT tickets_sold FROM events WHERE id = $1", event_id).await, 10);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM ledger_entries WHERE event_id = $1", event_id).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rsvps_never_exceed_capacity_sqlite() {
    race_for_seats(ticketing::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rsvps_never_exceed_capacity_postgres() {
    race_for_seats(ticketing::Backend::Postgres).await;
}
