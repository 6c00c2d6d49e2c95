//! Completion certificates: refused before the end and below the creator's minimum; issued after, signed with
//! the gateway's ed25519 key, verified by the public endpoint and by the key alone; tampering detected.

use crate::attendance_support;

use attendance_support::*;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use reqwest::StatusCode;
use serde_json::Value;
use ticketing::attendance::AttendanceChange;
use ticketing::testing::RawSql;

app_test!(certificates_after_the_event_above_the_minimum, |app| async move {
    let store = &app.store;
    // Started 20 minutes ago: the sessions below fall inside it, where attendance counts.
    let event_id = event(store, 10, -20 * MIN).await;
    let (t1, t2) = (ticket(store, event_id, "keen-w").await, ticket(store, event_id, "brief-w").await);
    let now = ticketing::now_ms();
    // keen-w: two sessions, 50 s + 80 s = 130 s; brief-w: 30 s. The minimum is 120 s.
    let open = |id: &str, t: i64, w: &str, at: i64| AttendanceChange::Opened {
        session_id: id.into(),
        event_id,
        ticket_id: Some(t),
        wallet: w.into(),
        role: "attendee",
        client_id: id.into(),
        node_id: "n".into(),
        at,
    };
    let close = |id: &str, at: i64| AttendanceChange::Closed { session_id: id.into(), at, reason: "left".into() };
    store
        .record_attendance(&[
            open("a", t1, "keen-w", now - 600_000),
            close("a", now - 550_000),
            open("b", t1, "keen-w", now - 500_000),
            close("b", now - 420_000),
            open("c", t2, "brief-w", now - 500_000),
            close("c", now - 470_000),
        ])
        .await
        .unwrap();
    let url = |w: &str| app.url(&format!("/api/events/{event_id}/certificate?wallet={w}&chain=hive"));
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_owned();

    // The event does not offer certificates yet.
    let res = app.client.get(url("keen-w")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(code(&res.json().await.unwrap()), "no_certificates");
    sqlx::query("UPDATE events SET min_certificate_secs = 120 WHERE id = $1")
        .bind(event_id)
        .execute(store.raw_pool())
        .await
        .unwrap();
    // Not before the end.
    let res = app.client.get(url("keen-w")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(code(&res.json().await.unwrap()), "event_not_ended");
    sqlx::query("UPDATE events SET event_start = $2, event_end = $3 WHERE id = $1")
        .bind(event_id)
        .bind(now - 3_600_000)
        .bind(now - 60_000)
        .execute(store.raw_pool())
        .await
        .unwrap();

    let res = app.client.get(url("brief-w")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(code(&res.json().await.unwrap()), "below_minimum");
    let res = app.client.get(url("nobody-w")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let res = app.client.get(url("keen-w")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cert: Value = res.json().await.unwrap();
    let c = &cert["certificate"];
    assert_eq!(
        (c["event_id"].as_i64(), c["wallet"].as_str(), c["chain"].as_str()),
        (Some(event_id), Some("keen-w"), Some("hive"))
    );
    assert_eq!(
        (c["duration_secs"].as_i64(), c["min_certificate_secs"].as_i64(), c["ticket_id"].as_i64()),
        (Some(130), Some(120), Some(t1))
    );
    assert_eq!(cert["algorithm"], "ed25519");

    // The public key endpoint names the signer; the signature checks with the key alone.
    let key: Value = app.get("/api/certificates/key").await.json().await.unwrap();
    assert_eq!(key["public_key"], cert["public_key"]);
    let b64 = base64::engine::general_purpose::STANDARD;
    let public: [u8; 32] = b64.decode(key["public_key"].as_str().unwrap()).unwrap().try_into().unwrap();
    let signature: [u8; 64] = b64.decode(cert["signature"].as_str().unwrap()).unwrap().try_into().unwrap();
    let signed_bytes =
        serde_json::to_vec(&serde_json::from_value::<gateway::certificates::Certificate>(c.clone()).unwrap()).unwrap();
    VerifyingKey::from_bytes(&public)
        .unwrap()
        .verify(&signed_bytes, &Signature::from_bytes(&signature))
        .expect("signature verifies offline");

    let verify = |body: Value| app.client.post(app.url("/api/certificates/verify")).json(&body).send();
    let res: Value = verify(cert.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(res, serde_json::json!({ "valid": true }));
    let mut tampered = cert.clone();
    tampered["certificate"]["duration_secs"] = 9999.into();
    let res: Value = verify(tampered).await.unwrap().json().await.unwrap();
    assert_eq!(res, serde_json::json!({ "valid": false, "reason": "bad_signature" }));
    let mut extra = cert.clone();
    extra["certificate"]["bonus"] = true.into();
    assert_eq!(verify(extra).await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Banned tickets get none.
    sqlx::query("UPDATE tickets SET status = 'banned' WHERE id = $1").bind(t1).execute(store.raw_pool()).await.unwrap();
    let res = app.client.get(url("keen-w")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
});
