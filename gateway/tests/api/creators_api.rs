//! Creator sign-in with real Hive signatures against a local Hive API node, profiles and own events, end to end.

use crate::{common, creator_support};

use creator_support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use ticketing::testing::RawSql;

async fn challenge(app: &common::TestApp, account: &str) -> Value {
    let res = app.get(&format!("/api/creators/login/challenge?account={account}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn login(app: &common::TestApp, account: &str, message: &str, signature: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.url("/api/creators/login"))
        .json(&json!({ "account": account, "message": message, "signature": signature }))
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

/// A Hive API node that does not answer: the 503 names the URL to fix (its origin, not a key in its query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_hive_node_is_named_in_the_503() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let api = format!("{dead}/rpc?api_key=private");
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| s.hive_api_url = api).await;
    let issued = challenge(&app, "alice").await;
    let message = issued["message"].as_str().unwrap();
    let (status, body) = login(&app, "alice", message, &HiveKey::generate().sign(message)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "hive_unavailable");
    let text = body["error"]["message"].as_str().unwrap();
    assert!(text.contains(&format!("the Hive API at {dead}")) && !text.contains("private"), "{text}");
}

hive_app_test!(login_issues_a_session_and_refuses_a_replay, |app, hive| async move {
    let issued = challenge(&app, "alice").await;
    let message = issued["message"].as_str().unwrap();
    assert!(message.contains("alice"), "{message}");
    assert!(message.contains(issued["nonce"].as_str().unwrap()));
    let signature = hive.key("alice").sign(message);

    let (status, session) = login(&app, "alice", message, &signature).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["account"], "alice");
    assert_eq!(session["tier"], "free");
    let token = session["token"].as_str().unwrap();
    let res = app.client.get(app.url("/api/creators/me/events")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!([]));

    // The same signed challenge again: refused, it was single-use.
    let (status, body) = login(&app, "alice", message, &signature).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "challenge_used");
    let used: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM used_challenges WHERE kind = 'nonce' AND wallet = 'alice'")
            .fetch_one(app.store.raw_pool())
            .await
            .unwrap();
    assert_eq!(used, 1);
    let audit = app.store.audit_entries(Some("creator.login"), 10).await.unwrap();
    assert_eq!(audit.len(), 1);
});

hive_app_test!(forged_and_mismatched_signatures_are_refused, |app, hive| async move {
    let issued = challenge(&app, "alice").await;
    let message = issued["message"].as_str().unwrap();

    // Signed by a key that is not alice's.
    let (status, body) = login(&app, "alice", message, &hive.mallory.sign(message)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "wrong_signer");
    // Bob's valid signature of alice's challenge is still not alice.
    let (_, body) = login(&app, "alice", message, &hive.key("bob").sign(message)).await;
    assert_eq!(body["error"]["code"], "wrong_signer");
    // Garbage.
    let (status, body) = login(&app, "alice", message, "zz").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "bad_encoding");
    // A message the server never issued, correctly signed.
    let forged = message.replace(issued["nonce"].as_str().unwrap(), "AAAAAAAAAAAAAAAAAAAAAA");
    let (_, body) = login(&app, "alice", &forged, &hive.key("alice").sign(&forged)).await;
    assert_eq!(body["error"]["code"], "unknown_challenge");
    // Alice's challenge presented for bob, signed by bob.
    let (_, body) = login(&app, "bob", message, &hive.key("bob").sign(message)).await;
    assert_eq!(body["error"]["code"], "challenge_mismatch");
    // An account the Hive node does not know.
    let issued = challenge(&app, "nobody").await;
    let message = issued["message"].as_str().unwrap();
    let (_, body) = login(&app, "nobody", message, &hive.mallory.sign(message)).await;
    assert_eq!(body["error"]["code"], "unknown_account");

    // None of the failures consumed alice's challenge: her own signature still works, once.
    let issued = challenge(&app, "alice").await;
    let message = issued["message"].as_str().unwrap();
    let (status, _) = login(&app, "alice", message, &hive.key("alice").sign(message)).await;
    assert_eq!(status, StatusCode::OK);
});

hive_app_test!(expired_challenges_are_refused, |app, hive| async move {
    let issued = challenge(&app, "alice").await;
    let message = issued["message"].as_str().unwrap();
    sqlx::query("UPDATE creator_login_challenges SET expires_at = $1")
        .bind(ticketing::now_ms() - 1)
        .execute(app.store.raw_pool())
        .await
        .unwrap();
    let (status, body) = login(&app, "alice", message, &hive.key("alice").sign(message)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "challenge_expired");
    let res = app.get("/api/creators/login/challenge?account=Not%20Valid").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Issuing is unauthenticated, so storage is bounded: expired rows are pruned and an account keeps its newest
    // five open challenges.
    let mut messages = Vec::new();
    for _ in 0..7 {
        messages.push(challenge(&app, "alice").await["message"].as_str().unwrap().to_owned());
        // Distinct issue times, so "newest" is well defined.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM creator_login_challenges")
        .fetch_one(app.store.raw_pool())
        .await
        .unwrap();
    assert_eq!(open, 5);
    let (_, body) = login(&app, "alice", &messages[0], &hive.key("alice").sign(&messages[0])).await;
    assert_eq!(body["error"]["code"], "unknown_challenge");
    let (status, _) = login(&app, "alice", &messages[6], &hive.key("alice").sign(&messages[6])).await;
    assert_eq!(status, StatusCode::OK);
});

hive_app_test!(seed_header_form_authorises_one_request, |app, hive| async move {
    set_tier(&app, "alice", "premium", None).await;
    let issued = challenge(&app, "alice").await;
    let signature = hive.key("alice").sign(issued["message"].as_str().unwrap());
    let header = format!("Bearer {signature}:alice");
    let create = |header: String| {
        app.client.post(app.url("/api/events/create")).header("authorization", header).json(&event_body(3)).send()
    };
    let res = create(header.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let event: Value = res.json().await.unwrap();
    assert_eq!(event["creator"]["account"], "alice");

    // Replayed: the challenge is gone.
    let res = create(header).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "no_open_challenge");
    // Mallory's signature over a fresh challenge of alice's.
    let issued = challenge(&app, "alice").await;
    let forged = hive.mallory.sign(issued["message"].as_str().unwrap());
    let res = create(format!("Bearer {forged}:alice")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "wrong_signer");
});

hive_app_test!(session_tokens_are_checked, |app, _hive| async move {
    let path = app.url("/api/creators/me/events");
    let res = app.client.get(&path).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "missing_token");
    let token = token_for("alice");
    let tampered = format!("{}x", token);
    let res = app.client.get(&path).bearer_auth(tampered).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "invalid_token");
    // A token signed with another secret.
    let other = gateway::auth::creator::issue_session(
        &[9u8; 32],
        &ticketing::creators::AccountName::parse("alice").unwrap(),
        ticketing::now_ms(),
    )
    .0;
    let res = app.client.get(&path).bearer_auth(other).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app.client.get(&path).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
});

hive_app_test!(profiles_show_ratings_and_events, |app, _hive| async move {
    set_tier(&app, "alice", "pro", None).await;
    let res = app
        .client
        .put(app.url("/api/creators/me/profile"))
        .bearer_auth(token_for("alice"))
        .json(&json!({
            "display_name": "Alice Live",
            "bio": "VR concerts",
            "avatar_url": "https://img.example/alice.png",
            "links": ["https://alice.example"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let upcoming = create_event(&app, "alice", &event_body(2)).await;
    let past = create_event(&app, "alice", &event_body(1)).await;
    let past_id = past["id"].as_i64().unwrap();
    let now = ticketing::now_ms();
    reschedule(&app.store, past_id, now - 3 * DAY, now - 2 * DAY).await;
    let draft = create_event(&app, "alice", &{
        let mut b = event_body(4);
        b["draft"] = true.into();
        b
    })
    .await;
    let ticket = insert_ticket(&app.store, past_id, "hive", "carol", "valid").await;
    sqlx::query(
        "INSERT INTO ratings (ticket_id, creator_account, event_id, wallet_address, stars, created_at) \
         VALUES ($1, 'alice', $2, 'carol', 4, 0)",
    )
    .bind(ticket)
    .bind(past_id)
    .execute(app.store.raw_pool())
    .await
    .unwrap();

    let profile: Value = app.get("/api/creators/alice").await.json().await.unwrap();
    assert_eq!(profile["display_name"], "Alice Live");
    assert_eq!(profile["links"], json!(["https://alice.example"]));
    assert_eq!(profile["rating"], json!({ "average": 4.0, "count": 1 }));
    let ids = |key: &str| -> Vec<i64> {
        profile[key].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect()
    };
    assert_eq!(ids("upcoming_events"), vec![upcoming["id"].as_i64().unwrap()]);
    assert_eq!(ids("past_events"), vec![past_id]);
    assert_eq!(profile["past_events"][0]["status"], "ended");
    assert_eq!(profile["upcoming_events"][0]["creator"]["display_name"], "Alice Live");

    let res = app.get("/api/creators/nobody").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Own events: drafts too, with sales.
    let mine: Value = app.get_json_as("/api/creators/me/events", &token_for("alice")).await;
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), 3);
    let draft_row = mine.iter().find(|e| e["event"]["id"] == draft["id"]).unwrap();
    assert_eq!(draft_row["event"]["status"], "draft");
    let past_row = mine.iter().find(|e| e["event"]["id"] == past_id).unwrap();
    assert_eq!(past_row["sales"]["tickets_sold"], 1);
    assert_eq!(past_row["sales"]["seats_left"], 499);
    assert_eq!(past_row["sales"]["revenue"], json!([{ "currency": "HIVE", "amount": "100" }]));
});

hive_app_test!(profile_edits_are_validated, |app, _hive| async move {
    let cases = [
        (json!({ "display_name": "x".repeat(65) }), "display_name_too_long"),
        (json!({ "bio": "x".repeat(2001) }), "bio_too_long"),
        (json!({ "avatar_url": "ftp://x" }), "invalid_avatar_url"),
        (json!({ "links": ["javascript:alert(1)"] }), "invalid_link"),
        (json!({ "links": vec!["https://a.example"; 11] }), "too_many_links"),
        (json!({ "nickname": "x" }), "invalid_body"),
    ];
    for (body, code) in cases {
        let res = app
            .client
            .put(app.url("/api/creators/me/profile"))
            .bearer_auth(token_for("bob"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], code, "{body}");
    }
    let res = app.client.put(app.url("/api/creators/me/profile")).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
});

hive_app_test!(login_challenges_are_rate_limited_and_nobody_evicts_anothers, |app, hive| async move {
    let issued = challenge(&app, "alice").await;
    let message = issued["message"].as_str().unwrap().to_owned();
    // Someone else, from another address, asks for alice's challenges as fast as it can.
    let attacker = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    let mut issued_to_attacker = 0;
    let refused = loop {
        let res = attacker.get(app.url("/api/creators/login/challenge?account=alice")).send().await.unwrap();
        if res.status() != StatusCode::OK {
            break res;
        }
        issued_to_attacker += 1;
        assert!(issued_to_attacker <= 60, "the per-address budget (60 a minute) was not enforced");
    };
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
    // What the attacker left behind is bounded: its own newest five.
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM creator_login_challenges WHERE account = 'alice'")
        .fetch_one(app.store.raw_pool())
        .await
        .unwrap();
    assert_eq!(rows, 1 + 5, "alice's own challenge and the attacker's newest five");
    // Alice's challenge survived all of that.
    let (status, session) = login(&app, "alice", &message, &hive.key("alice").sign(&message)).await;
    assert_eq!(status, StatusCode::OK, "{session}");
});
