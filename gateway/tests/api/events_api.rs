//! Events end to end: create, read, edit, publish, cancel, the marketplace's filters and pages, ratings and the
//! OpenAPI description, on SQLite and PostgreSQL.

use crate::{common, creator_support};

use std::collections::HashSet;

use creator_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use ticketing::testing::RawSql;

async fn send(
    app: &common::TestApp,
    method: Method,
    path: &str,
    account: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token_for(account));
    if let Some(body) = body {
        req = req.json(body);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get_json(app: &common::TestApp, path: &str) -> (StatusCode, Value) {
    let res = app.get(path).await;
    (res.status(), res.json().await.unwrap())
}

fn price_of(view: &Value, currency: &str) -> Option<String> {
    view["prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["currency"] == currency)
        .map(|p| p["amount"].as_str().unwrap().to_owned())
}

app_test!(premium_creator_creates_edits_and_cancels, |app| async move {
    set_tier(&app, "alice", "premium", Some(ticketing::now_ms() + 30 * DAY)).await;
    let created = create_event(&app, "alice", &event_body(3)).await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["status"], "published");
    assert_eq!(created["on_sale"], true);
    assert_eq!(created["price"], json!({ "currency": "USD", "amount": "25" }));
    assert_eq!(created["price_usd"], "25");
    // Static development rates: HIVE 0.25, BTC 60000, ETH 3000, SOL 150 USD.
    assert_eq!(price_of(&created, "HIVE").as_deref(), Some("100"));
    assert_eq!(price_of(&created, "BTC").as_deref(), Some("0.00041667"));
    assert_eq!(price_of(&created, "SOL").as_deref(), Some("0.166666667"));
    assert_eq!(price_of(&created, "XMR"), None, "only the supported currencies are priced");
    assert_eq!(created["preview"]["space"], json!({ "type": "post", "id": "artist/concert-2024" }));
    assert_eq!(created["seats_left"], 500);

    // Read back, with seats held and sold counted.
    insert_ticket(&app.store, id, "hive", "carol", "valid").await;
    sqlx::query("UPDATE events SET seats_held = 2 WHERE id = $1").bind(id).execute(app.store.raw_pool()).await.unwrap();
    let (status, view) = get_json(&app, &format!("/api/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (view["tickets_sold"].as_i64(), view["seats_held"].as_i64(), view["seats_left"].as_i64()),
        (Some(1), Some(2), Some(497))
    );
    assert_eq!(view["creator"]["account"], "alice");
    assert_eq!(view["creator"]["rating"], json!({ "average": null, "count": 0 }));

    // Edit: title and a higher price are fine after a sale.
    let (status, edited) = send(
        &app,
        Method::PATCH,
        &format!("/api/events/{id}"),
        "alice",
        Some(&json!({ "title": "Encore", "ticket_price": "30" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["title"], "Encore");
    assert_eq!(edited["price"]["amount"], "30");

    // Someone else may not edit or cancel it.
    set_tier(&app, "bob", "pro", None).await;
    let (status, body) =
        send(&app, Method::PATCH, &format!("/api/events/{id}"), "bob", Some(&json!({ "title": "Mine" }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "not_owner");
    let (status, _) = send(&app, Method::POST, &format!("/api/events/{id}/cancel"), "bob", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Cancel.
    let (status, cancelled) = send(&app, Method::POST, &format!("/api/events/{id}/cancel"), "alice", None).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["on_sale"], false);
    assert!(cancelled["cancelled_at"].is_string());
    let (status, body) = send(&app, Method::POST, &format!("/api/events/{id}/cancel"), "alice", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "already_cancelled");
    let (status, body) =
        send(&app, Method::PATCH, &format!("/api/events/{id}"), "alice", Some(&json!({ "title": "Back" }))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "event_closed");
    let (_, page) = get_json(&app, "/api/events").await;
    assert_eq!(page["items"], json!([]), "a cancelled event is not listed");

    let actions: Vec<String> = app
        .store
        .audit_entries(None, 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.event_id == Some(id))
        .map(|a| a.action)
        .collect();
    for action in ["event.create", "event.update", "event.cancel"] {
        assert!(actions.iter().any(|a| a == action), "{action} audited: {actions:?}");
    }
});

app_test!(admin_may_cancel_and_unknown_events_are_404, |app| async move {
    set_tier(&app, "alice", "pro", None).await;
    let id = create_event(&app, "alice", &event_body(3)).await["id"].as_i64().unwrap();
    let res = app.admin(Method::POST, &format!("/api/events/{id}/cancel")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.admin(Method::POST, "/api/events/999999/cancel").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (status, body) = get_json(&app, "/api/events/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "event_not_found");
    let res = app.get("/api/events/abc").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // An ended event cannot be cancelled.
    let id = create_event(&app, "alice", &event_body(3)).await["id"].as_i64().unwrap();
    let now = ticketing::now_ms();
    reschedule(&app.store, id, now - 2 * DAY, now - DAY).await;
    let res = app.admin(Method::POST, &format!("/api/events/{id}/cancel")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "event_ended");
});

app_test!(free_and_lapsed_creators_are_refused, |app| async move {
    // Never subscribed (no creator row at all), then explicitly free.
    let (status, body) = send(&app, Method::POST, "/api/events/create", "carol", Some(&event_body(3))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "subscription_required");
    set_tier(&app, "carol", "free", None).await;
    let (status, body) = send(&app, Method::POST, "/api/events/create", "carol", Some(&event_body(3))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "subscription_required");

    // Premium, creates an event, then the subscription lapses.
    set_tier(&app, "dave", "premium", None).await;
    let id = create_event(&app, "dave", &event_body(3)).await["id"].as_i64().unwrap();
    // The subscription lapses (the store's own write: the admin API refuses an `until` in the past).
    app.store
        .set_tier(
            &ticketing::creators::AccountName::parse("dave").unwrap(),
            ticketing::creators::Tier::Premium,
            Some(ticketing::now_ms() - 1_000),
            "test",
        )
        .await
        .unwrap();
    let (status, body) = send(&app, Method::POST, "/api/events/create", "dave", Some(&event_body(3))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "subscription_required");
    let (status, body) =
        send(&app, Method::PATCH, &format!("/api/events/{id}"), "dave", Some(&json!({ "title": "x" }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "subscription_required");
    // The existing event carries on: readable, listed, on sale.
    let (status, view) = get_json(&app, &format!("/api/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["on_sale"], true);
    let (_, page) = get_json(&app, "/api/events").await;
    assert_eq!(page["items"][0]["id"], id);
    // Without any token at all: 401.
    let res = app.client.post(app.url("/api/events/create")).json(&event_body(3)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
});

app_test!(every_validation_rule_has_its_code, |app| async move {
    set_tier(&app, "alice", "premium", None).await;
    let now = ticketing::now_ms();
    let start = now + 3 * DAY;
    let with = |patch: Value| {
        let mut body = event_body(3);
        body["event_start"] = rfc3339(start).into();
        body["event_end"] = rfc3339(start + 3 * HOUR).into();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let cases = [
        (json!({ "title": "   " }), "title_required"),
        (json!({ "title": null }), "title_required"),
        (json!({ "title": "x".repeat(201) }), "title_too_long"),
        (json!({ "description": "x".repeat(20_001) }), "description_too_long"),
        (json!({ "space_type": "room" }), "invalid_space_type"),
        (json!({ "space_id": "" }), "space_id_required"),
        (json!({ "ticket_price": "twenty" }), "invalid_price"),
        (json!({ "ticket_price": true }), "invalid_price"),
        (json!({ "ticket_price": "-1" }), "price_not_positive"),
        (json!({ "ticket_price": "25.001" }), "too_many_decimals"),
        (json!({ "ticket_price": "1000000000000000000" }), "price_too_large"),
        (json!({ "ticket_price": "1000000.01" }), "price_too_large"),
        (json!({ "ticket_price": "2000000", "ticket_currency": "HIVE", "supported_crypto": null }), "price_too_large"),
        (json!({ "ticket_price": "1.0001", "ticket_currency": "HIVE", "supported_crypto": null }), "too_many_decimals"),
        (json!({ "ticket_currency": "DOGE" }), "unknown_currency"),
        (json!({ "supported_crypto": ["HIVE", "USD"] }), "unsupported_crypto"),
        (json!({ "supported_crypto": ["DOGE"] }), "unsupported_crypto"),
        (json!({ "supported_crypto": [] }), "no_supported_crypto"),
        (
            json!({ "ticket_currency": "HIVE", "ticket_price": "10", "supported_crypto": ["HIVE", "BTC"] }),
            "crypto_price_other_currency",
        ),
        (json!({ "max_attendees": 0 }), "capacity_too_small"),
        (json!({ "max_attendees": 100_001 }), "capacity_too_large"),
        (json!({ "event_end": rfc3339(start) }), "end_before_start"),
        (json!({ "event_end": rfc3339(start - HOUR) }), "end_before_start"),
        (json!({ "event_start": rfc3339(now - HOUR), "event_end": rfc3339(now + HOUR) }), "start_in_past"),
        (json!({ "event_start": rfc3339(now - 3 * HOUR), "event_end": rfc3339(now - HOUR) }), "start_in_past"),
        (json!({ "sales_end": rfc3339(start + 4 * HOUR) }), "sales_end_after_event_end"),
        (json!({ "sales_start": rfc3339(start), "sales_end": rfc3339(start - HOUR) }), "sales_end_before_sales_start"),
        (json!({ "age_restriction": 150 }), "invalid_age_restriction"),
        (json!({ "min_certificate_secs": -5 }), "invalid_min_certificate"),
        (json!({ "cover_image_url": "data:image/png;base64,AAAA" }), "invalid_cover_image_url"),
        (json!({ "cover_image_url": "http://img.example/c.png" }), "invalid_cover_image_url"),
        (json!({ "cover_image_url": "//img.example/c.png" }), "invalid_cover_image_url"),
        (json!({ "event_category": "Rock & Roll" }), "invalid_category"),
        (json!({ "event_start": "next friday" }), "invalid_time"),
        (json!({ "max_attendes": 10 }), "invalid_body"),
    ];
    for (patch, code) in cases {
        let (status, body) = send(&app, Method::POST, "/api/events/create", "alice", Some(&with(patch.clone()))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{patch}: {body}");
        assert_eq!(body["error"]["code"], code, "{patch}: {body}");
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(app.store.raw_pool()).await.unwrap();
    assert_eq!(count, 0, "nothing invalid was stored");

    // The price is read from the JSON text, never through a float: 18 decimals of ETH survive. (The body is
    // written by hand because serde_json's own numbers here would be f64.)
    let body = with(json!({ "ticket_price": "PRICE", "ticket_currency": "eth", "supported_crypto": null }))
        .to_string()
        .replace("\"PRICE\"", "0.123456789012345678");
    assert!(body.contains(":0.123456789012345678,"), "{body}");
    let res = app
        .client
        .post(app.url("/api/events/create"))
        .bearer_auth(token_for("alice"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let view: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["price"], json!({ "currency": "ETH", "amount": "0.123456789012345678" }));
    assert_eq!(view["supported_crypto"], json!(["ETH"]));
    let stored: String =
        sqlx::query_scalar("SELECT price_units FROM events").fetch_one(app.store.raw_pool()).await.unwrap();
    assert_eq!(stored, "123456789012345678");
    // Defaults: sales from now to the event's end, every payable currency for a USD price.
    let (_, view) =
        send(&app, Method::POST, "/api/events", "alice", Some(&with(json!({ "supported_crypto": null })))).await;
    assert_eq!(view["supported_crypto"], json!(["HIVE", "HBD", "BTC", "ETH", "SOL", "POL", "BNB", "XMR"]));
    assert_eq!(view["sales_end"], view["event_end"]);
    // Price 0 is a free event (reserved with a wallet signature); only a negative price is refused.
    for zero in [json!(0), json!("0"), json!("0.00")] {
        let (status, view) =
            send(&app, Method::POST, "/api/events", "alice", Some(&with(json!({ "ticket_price": zero })))).await;
        assert_eq!(status, StatusCode::CREATED, "{zero}: {view}");
        assert_eq!(view["price"], json!({ "currency": "USD", "amount": "0" }), "{zero}: {view}");
    }
});

app_test!(edits_after_sales_are_restricted, |app| async move {
    set_tier(&app, "alice", "premium", None).await;
    let mut body = event_body(3);
    body["max_attendees"] = 10.into();
    let id = create_event(&app, "alice", &body).await["id"].as_i64().unwrap();
    let path = format!("/api/events/{id}");
    let patch = |b: Value| {
        let app = &app;
        let path = path.clone();
        async move { send(app, Method::PATCH, &path, "alice", Some(&b)).await }
    };
    // Before any sale, everything may change, within the rules.
    let later = ticketing::now_ms() + 5 * DAY;
    let (status, view) =
        patch(json!({ "ticket_price": "20", "event_start": rfc3339(later), "event_end": rfc3339(later + HOUR) })).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let (status, body) = patch(json!({ "event_end": rfc3339(later - HOUR) })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "end_before_start");
    let (_, body) = patch(json!({ "event_start": rfc3339(ticketing::now_ms() - HOUR) })).await;
    assert_eq!(body["error"]["code"], "start_in_past");
    let (_, body) = patch(json!({ "ticket_currency": "BTC" })).await;
    assert_eq!(body["error"]["code"], "invalid_body", "the currency is not editable");

    // Three sold, two held.
    for wallet in ["carol", "dave", "erin"] {
        insert_ticket(&app.store, id, "hive", wallet, "valid").await;
    }
    sqlx::query("UPDATE events SET seats_held = 2 WHERE id = $1").bind(id).execute(app.store.raw_pool()).await.unwrap();
    let (status, body) = patch(json!({ "max_attendees": 4 })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "capacity_below_sold");
    let (status, body) = patch(json!({ "ticket_price": "19.99" })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "price_decrease_after_sales");
    let (status, body) =
        patch(json!({ "event_start": rfc3339(later + DAY), "event_end": rfc3339(later + DAY + HOUR) })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "schedule_locked");
    let (status, view) =
        patch(json!({ "max_attendees": 5, "ticket_price": "20.50", "description": "Now with lasers" })).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!((view["max_attendees"].as_i64(), view["seats_left"].as_i64()), (Some(5), Some(0)));
    assert_eq!(view["price"]["amount"], "20.5");
    assert_eq!(view["preview"]["description"], "Now with lasers");
    assert_eq!(view["on_sale"], false, "sold out");
});

app_test!(drafts_are_private_until_published, |app| async move {
    set_tier(&app, "alice", "pro", None).await;
    let mut body = event_body(3);
    body["draft"] = true.into();
    let id = create_event(&app, "alice", &body).await["id"].as_i64().unwrap();
    let (status, _) = get_json(&app, &format!("/api/events/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "others do not see drafts");
    let (status, view) = send(&app, Method::GET, &format!("/api/events/{id}"), "alice", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((view["status"].as_str(), view["on_sale"].as_bool()), (Some("draft"), Some(false)));
    let (_, page) = get_json(&app, "/api/events").await;
    assert_eq!(page["items"], json!([]));

    let (status, body) = send(&app, Method::POST, &format!("/api/events/{id}/publish"), "bob", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, view) = send(&app, Method::POST, &format!("/api/events/{id}/publish"), "alice", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "published");
    let (status, body) = send(&app, Method::POST, &format!("/api/events/{id}/publish"), "alice", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "not_draft");
    let (_, page) = get_json(&app, "/api/events").await;
    assert_eq!(page["items"][0]["id"], id);
});

/// Six events across creators, categories, currencies, dates and sales, for the filter tests.
async fn market(app: &common::TestApp) -> Vec<i64> {
    set_tier(app, "alice", "premium", None).await;
    set_tier(app, "bob", "pro", None).await;
    let now = ticketing::now_ms();
    let spec = [
        // (creator, title, category, price, currency, days ahead, tickets sold)
        ("alice", "Jazz night", "music", "25", "USD", 2, 1),    // $25
        ("alice", "Rock 50% off", "music", "40", "HIVE", 4, 3), // $10
        ("bob", "Talk: a_b testing", "talks", "0.001", "BTC", 3, 0), // $60
        ("bob", "Yoga in VR", "wellness", "5", "USD", 6, 2),    // $5
        ("alice", "Rock 500 club", "music", "12.5", "USD", 8, 0), // $12.50
        ("bob", "Chess live", "games", "2", "SOL", 5, 1),       // $300
    ];
    let mut ids = Vec::new();
    for (creator, title, category, price, currency, days, sold) in spec {
        let mut body = event_body(days);
        body["title"] = title.into();
        body["event_category"] = category.into();
        body["ticket_price"] = price.into();
        body["ticket_currency"] = currency.into();
        if currency != "USD" {
            body.as_object_mut().unwrap().remove("supported_crypto");
        }
        let id = create_event(app, creator, &body).await["id"].as_i64().unwrap();
        for n in 0..sold {
            insert_ticket(&app.store, id, "hive", &format!("fan{n}"), "valid").await;
        }
        ids.push(id);
    }
    // One live event and one that has ended: neither is "upcoming".
    let live = create_event(app, "alice", &event_body(1)).await["id"].as_i64().unwrap();
    reschedule(&app.store, live, now - HOUR, now + HOUR).await;
    let ended = create_event(app, "bob", &event_body(1)).await["id"].as_i64().unwrap();
    reschedule(&app.store, ended, now - 2 * DAY, now - DAY).await;
    ids.push(live);
    ids.push(ended);
    ids
}

async fn ids_for(app: &common::TestApp, query: &str) -> Vec<i64> {
    let (status, page) = get_json(app, &format!("/api/events?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page["items"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

app_test!(marketplace_filters, |app| async move {
    let ids = market(&app).await;
    let [jazz, rock50, talk, yoga, rock500, chess, live, _ended] = ids[..] else { panic!() };
    // Default: upcoming, soonest first.
    assert_eq!(ids_for(&app, "").await, vec![jazz, talk, rock50, chess, yoga, rock500]);
    assert_eq!(ids_for(&app, "upcoming=true").await, vec![jazz, talk, rock50, chess, yoga, rock500]);
    assert_eq!(ids_for(&app, "status=live").await, vec![live]);
    assert_eq!(ids_for(&app, "status=all").await[0], live);
    assert_eq!(ids_for(&app, "category=music").await, vec![jazz, rock50, rock500]);
    assert_eq!(ids_for(&app, "category=MUSIC").await, vec![jazz, rock50, rock500]);
    assert_eq!(ids_for(&app, "creator=bob").await, vec![talk, chess, yoga]);
    // USD ranges, inclusive, in both spellings.
    assert_eq!(ids_for(&app, "min_usd=10&max_usd=25").await, vec![jazz, rock50, rock500]);
    assert_eq!(ids_for(&app, "minPrice=12.5&maxPrice=60").await, vec![jazz, talk, rock500]);
    assert_eq!(ids_for(&app, "max_usd=5").await, vec![yoga]);
    // In a currency: only events payable in it, compared at the current rate (HIVE at 0.25 USD).
    assert_eq!(ids_for(&app, "currency=HIVE&max_price=50").await, vec![rock50, yoga, rock500]);
    assert_eq!(ids_for(&app, "currency=hive&min_price=50").await, vec![jazz, rock500]);
    assert_eq!(ids_for(&app, "currency=BTC").await, vec![jazz, talk, yoga, rock500]);
    // Dates.
    let now = ticketing::now_ms();
    let q = format!("from={}&to={}", urlenc(&rfc3339(now + 3 * DAY - HOUR)), urlenc(&rfc3339(now + 6 * DAY)));
    assert_eq!(ids_for(&app, &q).await, vec![talk, rock50, chess, yoga]);
    // Text, case-insensitive, wildcards literal.
    assert_eq!(ids_for(&app, "q=ROCK").await, vec![rock50, rock500]);
    assert_eq!(ids_for(&app, "q=50%25").await, vec![rock50]);
    assert_eq!(ids_for(&app, "q=a_b").await, vec![talk]);
    assert_eq!(ids_for(&app, "q=exclusive%20VR").await.len(), 6, "description matches too");
    // Combined.
    assert_eq!(ids_for(&app, "category=music&creator=alice&max_usd=20").await, vec![rock50, rock500]);
    // Sorts.
    assert_eq!(ids_for(&app, "sort=price").await, vec![yoga, rock50, rock500, jazz, talk, chess]);
    assert_eq!(ids_for(&app, "sort=popularity").await, vec![rock50, yoga, jazz, chess, talk, rock500]);

    // Every item carries seats, prices and its creator's rating.
    let (_, page) = get_json(&app, "/api/events?q=Chess").await;
    let chess_view = &page["items"][0];
    assert_eq!(chess_view["seats_left"], 499);
    assert_eq!(chess_view["price_usd"], "300");
    assert_eq!(chess_view["prices"], json!([{ "currency": "SOL", "amount": "2" }]));
    assert_eq!(chess_view["creator"]["account"], "bob");
    assert_eq!(chess_view["creator"]["rating"]["count"], 0);

    // Bad filters.
    for (query, code) in [
        ("status=soon", "invalid_status"),
        ("sort=hype", "invalid_sort"),
        ("limit=101", "invalid_limit"),
        ("limit=0", "invalid_limit"),
        ("min_usd=1.001", "invalid_price"),
        ("currency=DOGE", "unknown_currency"),
        ("min_price=1", "currency_required"),
        ("from=yesterday", "invalid_time"),
        ("cursor=bm9wZQ", "invalid_cursor"),
    ] {
        let (status, body) = get_json(&app, &format!("/api/events?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["error"]["code"], code, "{query}");
    }
});

fn urlenc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

app_test!(pagination_walks_every_event_once, |app| async move {
    set_tier(&app, "alice", "premium", None).await;
    // Eleven events; several share a start time and a price so the id tie-break matters.
    let base = event_body(3);
    let mut all = HashSet::new();
    for n in 0..11 {
        let mut body = base.clone();
        body["title"] = format!("Event {n}").into();
        body["ticket_price"] = ["10", "20", "10"][n % 3].into();
        all.insert(create_event(&app, "alice", &body).await["id"].as_i64().unwrap());
        if n % 4 == 0 {
            let mut body = event_body(4 + n as i64);
            body["title"] = format!("Later {n}").into();
            all.insert(create_event(&app, "alice", &body).await["id"].as_i64().unwrap());
        }
    }
    for sort in ["start", "price", "popularity"] {
        for limit in [1, 2, 5, 100] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut query = format!("/api/events?sort={sort}&limit={limit}");
                if let Some(c) = &cursor {
                    query.push_str(&format!("&cursor={c}"));
                }
                let (status, page) = get_json(&app, &query).await;
                assert_eq!(status, StatusCode::OK, "{page}");
                let items = page["items"].as_array().unwrap();
                assert!(items.len() <= limit);
                seen.extend(items.iter().map(|e| e["id"].as_i64().unwrap()));
                pages += 1;
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
                assert!(pages < 100, "runaway pagination");
            }
            let unique: HashSet<i64> = seen.iter().copied().collect();
            assert_eq!(unique.len(), seen.len(), "{sort}/{limit}: duplicates in {seen:?}");
            assert_eq!(unique, all, "{sort}/{limit}: missing events");
            let one_page = ids_for(&app, &format!("sort={sort}&limit=100")).await;
            assert_eq!(seen, one_page, "{sort}/{limit}: pages concatenate to the full order");
        }
    }
    // A cursor from one sort is refused by another.
    let (_, page) = get_json(&app, "/api/events?sort=price&limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, body) = get_json(&app, &format!("/api/events?sort=start&cursor={cursor}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_cursor");
});

/// An ended event of alice's with a valid ticket held by carol's Hive account and a refunded one held by dave.
async fn ended_event_with_tickets(app: &common::TestApp) -> (i64, i64) {
    set_tier(app, "alice", "premium", None).await;
    let id = create_event(app, "alice", &event_body(3)).await["id"].as_i64().unwrap();
    insert_ticket(&app.store, id, "hive", "carol", "valid").await;
    insert_ticket(&app.store, id, "hive", "dave", "refunded").await;
    let upcoming = create_event(app, "alice", &event_body(3)).await["id"].as_i64().unwrap();
    insert_ticket(&app.store, upcoming, "hive", "carol", "valid").await;
    let now = ticketing::now_ms();
    reschedule(&app.store, id, now - 2 * DAY, now - DAY).await;
    (id, upcoming)
}

fn rating(event: i64, wallet: &str, stars: i64, signature: String) -> Value {
    json!({
        "wallet_address": wallet,
        "chain": "hive",
        "stars": stars,
        "comment": "Great show",
        "message": format!("Rate event {event}: {stars} stars"),
        "signature": signature,
    })
}

async fn post_rating(app: &common::TestApp, event: i64, body: &Value) -> (StatusCode, Value) {
    let res = app.client.post(app.url(&format!("/api/events/{event}/ratings"))).json(body).send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

hive_app_test!(ratings_only_from_ticket_holders_of_ended_events, |app, hive| async move {
    let (id, upcoming) = ended_event_with_tickets(&app).await;
    let sign =
        |account: &str, event: i64, stars: i64| hive.key(account).sign(&format!("Rate event {event}: {stars} stars"));

    // Not yet ended.
    let (status, body) = post_rating(&app, upcoming, &rating(upcoming, "carol", 5, sign("carol", upcoming, 5))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "event_not_ended");
    // A wallet without a ticket, one with only a refunded ticket.
    let (status, body) = post_rating(&app, id, &rating(id, "bob", 1, sign("bob", id, 1))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "not_a_ticket_holder");
    let (_, body) = post_rating(&app, id, &rating(id, "dave", 1, sign("dave", id, 1))).await;
    assert_eq!(body["error"]["code"], "not_a_ticket_holder");
    // Claiming to be carol with someone else's key.
    let forged = hive.mallory.sign(&format!("Rate event {id}: 1 stars"));
    let (status, body) = post_rating(&app, id, &rating(id, "carol", 1, forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "wrong_signer");
    // Carol's real signature over other words than the rating's.
    let mut body = rating(id, "carol", 5, sign("carol", id, 4));
    let (status, resp) = post_rating(&app, id, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{resp}");
    body["message"] = format!("Rate event {id}: 4 stars").into();
    let (status, resp) = post_rating(&app, id, &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(resp["error"]["code"], "message_mismatch");
    let (status, resp) = post_rating(&app, id, &rating(id, "carol", 6, sign("carol", id, 6))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(resp["error"]["code"], "invalid_stars");

    // The real thing, once.
    let (status, saved) = post_rating(&app, id, &rating(id, "carol", 4, sign("carol", id, 4))).await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    assert_eq!((saved["stars"].as_i64(), saved["wallet_address"].as_str()), (Some(4), Some("carol")));
    let (status, body) = post_rating(&app, id, &rating(id, "carol", 5, sign("carol", id, 5))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "already_rated");

    // The rating shows on the creator and on her events.
    let (_, profile) = get_json(&app, "/api/creators/alice").await;
    assert_eq!(profile["rating"], json!({ "average": 4.0, "count": 1 }));
    let (_, view) = get_json(&app, &format!("/api/events/{upcoming}")).await;
    assert_eq!(view["creator"]["rating"], json!({ "average": 4.0, "count": 1 }));
    let (_, list) = get_json(&app, &format!("/api/events/{id}/ratings")).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["comment"], "Great show");
    let audited = app.store.audit_entries(Some("rating.add"), 10).await.unwrap();
    assert_eq!(audited.len(), 1);
});

hive_app_test!(cancelled_events_cannot_be_rated, |app, hive| async move {
    let (id, _) = ended_event_with_tickets(&app).await;
    sqlx::query("UPDATE events SET status = 'cancelled' WHERE id = $1")
        .bind(id)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    let signature = hive.key("carol").sign(&format!("Rate event {id}: 5 stars"));
    let (status, body) = post_rating(&app, id, &rating(id, "carol", 5, signature)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "event_cancelled");
});

app_test!(openapi_describes_the_endpoints, |app| async move {
    let (status, doc) = get_json(&app, "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/events", "get"),
        ("/api/events/create", "post"),
        ("/api/events/{id}", "get"),
        ("/api/events/{id}", "patch"),
        ("/api/events/{id}/publish", "post"),
        ("/api/events/{id}/cancel", "post"),
        ("/api/events/{id}/ratings", "post"),
        ("/api/creators/login/challenge", "get"),
        ("/api/creators/login", "post"),
        ("/api/creators/{account}", "get"),
        ("/api/creators/me/profile", "put"),
        ("/api/creators/me/events", "get"),
        ("/api/pairings", "post"),
        ("/api/pairings/{code}", "get"),
        ("/api/pairings/{code}/signature", "post"),
        ("/api/pairings/{code}/events", "get"),
        ("/api/pairings/{code}/qr.svg", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing");
    }
    let params: Vec<&str> = doc["paths"]["/api/events"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["status", "upcoming", "minPrice", "maxPrice", "min_usd", "currency", "q", "sort", "cursor", "limit"] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
    assert!(doc["components"]["schemas"]["EventView"].is_object());
    assert!(doc["components"]["securitySchemes"]["creator"].is_object());
});
