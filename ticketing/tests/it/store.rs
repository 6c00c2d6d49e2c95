//! Store tests: each runs on SQLite and on PostgreSQL.

use ticketing::audit::AuditEntry;
use ticketing::creators::{AccountName, Tier};
use ticketing::store_test;
use ticketing::testing::RawSql;

store_test!(migrations_run_and_ping, |store: Store| async move {
    store.ping().await.unwrap();
    let tables: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM watcher_cursors").fetch_one(store.raw_pool()).await.unwrap();
    assert_eq!(tables, 0);
});

store_test!(set_tier_upserts_and_audits, |store: Store| async move {
    let alice = AccountName::parse("alice").unwrap();
    assert!(store.creator(&alice).await.unwrap().is_none());
    let c = store.set_tier(&alice, Tier::Premium, Some(4_102_444_800_000), "admin").await.unwrap();
    assert_eq!(c.tier, Tier::Premium);
    let c = store.set_tier(&alice, Tier::Pro, None, "admin").await.unwrap();
    assert_eq!((c.tier, c.tier_until), (Tier::Pro, None));
    let audit = store.audit_entries(Some("creator.set_tier"), 10).await.unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].subject.as_deref(), Some("alice"));
    assert!(audit[0].detail.contains("\"pro\""));
});

store_test!(audit_rows_keep_their_fields, |store: Store| async move {
    store.audit(&AuditEntry::new("gateway", "access.denied").subject("0xabc").remote(Some("127.0.0.1"))).await.unwrap();
    let rows = store.audit_entries(None, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].remote_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(rows[0].detail, "{}");
});

store_test!(oversell_is_impossible_at_the_schema_level, |store: Store| async move {
    let alice = AccountName::parse("alice").unwrap();
    store.set_tier(&alice, Tier::Pro, None, "admin").await.unwrap();
    sqlx::query(
        "INSERT INTO events (creator_account, title, space_type, space_id, price_units, price_currency, \
         supported_crypto, max_attendees, event_start, event_end, sales_start, sales_end, created_at, updated_at) \
         VALUES ('alice', 't', 'custom', 's', '100', 'HIVE', 'HIVE', 2, 10, 20, 0, 10, 0, 0)",
    )
    .execute(store.raw_pool())
    .await
    .unwrap();
    let ok = sqlx::query("UPDATE events SET seats_held = 2").execute(store.raw_pool()).await;
    assert!(ok.is_ok());
    let over = sqlx::query("UPDATE events SET tickets_sold = 1").execute(store.raw_pool()).await;
    assert!(over.is_err(), "the CHECK constraint must refuse seats_held + tickets_sold > max_attendees");
});

store_test!(payments_are_unique_per_output, |store: Store| async move {
    let insert = "INSERT INTO payments (chain, txid, output_index, currency, amount_units, to_address, status, \
                  first_seen_at, updated_at) VALUES ('btc', 'ab', 0, 'BTC', '1000', 'bc1q', 'seen', 0, 0)";
    sqlx::query(insert).execute(store.raw_pool()).await.unwrap();
    assert!(sqlx::query(insert).execute(store.raw_pool()).await.is_err());
});

store_test!(attendance_counts_time_before_the_start_apart, |store: Store| async move {
    use ticketing::attendance::AttendanceChange;
    store.set_tier(&AccountName::parse("alice").unwrap(), Tier::Pro, None, "test").await.unwrap();
    // Doors open early: the attendee is in from 60 s before the start until 69 s after a 240 s event ended.
    let start = 1_900_000_000_000_i64;
    let end = start + 240_000;
    let event_id: i64 = sqlx::query_scalar(
        "INSERT INTO events (creator_account, title, space_type, space_id, price_units, price_currency, supported_crypto, \
         max_attendees, event_start, event_end, sales_start, sales_end, created_at, updated_at) \
         VALUES ('alice', 'Early', 'custom', 's', '100', 'HIVE', 'HIVE', 5, $1, $2, 0, $1, 0, 0) RETURNING id",
    )
    .bind(start)
    .bind(end)
    .fetch_one(store.raw_pool())
    .await
    .unwrap();
    let opened = AttendanceChange::Opened {
        session_id: "s-early".into(),
        event_id,
        ticket_id: None,
        wallet: "w".into(),
        role: "attendee",
        client_id: "c".into(),
        node_id: "n".into(),
        at: start - 60_000,
    };
    let closed = AttendanceChange::Closed { session_id: "s-early".into(), at: end + 69_000, reason: "left".into() };
    store.record_attendance(&[opened, closed]).await.unwrap();
    let rows = store.attendance_sessions(event_id).await.unwrap();
    assert_eq!(
        (rows[0].early_secs, rows[0].duration_secs),
        (Some(60), Some(240)),
        "309 s in the room, 240 s of the event"
    );
});

store_test!(a_pairing_is_signed_once_and_delivered_once_even_when_raced, |store: Store| async move {
    use ticketing::pairings::{PairedSignature, PairingStatus, Purpose, SubmitRefusal};
    let now = 1_700_000_000_000;
    let purpose = Purpose::Sign { wallet: "alice".into(), message: "Sign in".into() };
    let opened = store.open_pairing(&purpose, "hive", now, 300_000).await.unwrap();
    assert_eq!(opened.code.len(), ticketing::pairings::CODE_LEN);
    // Only the opener's secret finds it from the waiting side; the row keeps no secret in clear.
    assert!(store.pairing_for_waiter(&opened.code, "guess").await.unwrap().is_none());
    assert!(store.pairing_for_waiter(&opened.code, &opened.secret).await.unwrap().is_some());
    let stored: String =
        sqlx::query_scalar("SELECT secret_hash FROM pairings").fetch_one(store.raw_pool()).await.unwrap();
    assert_ne!(stored, opened.secret);

    // Eight phones submit at once: one wins, the others find it used.
    let signed =
        |n: usize| PairedSignature { wallet: "alice".into(), message: "Sign in".into(), signature: format!("sig{n}") };
    let racers: Vec<_> = (0..8)
        .map(|n| {
            let (store, code, s) = (store.clone(), opened.code.clone(), signed(n));
            tokio::spawn(async move { store.sign_pairing(&code, &s, now + 1).await.unwrap() })
        })
        .collect();
    let mut tries = Vec::new();
    for racer in racers {
        tries.push(racer.await.unwrap());
    }
    assert_eq!(tries.iter().filter(|r| r.is_ok()).count(), 1, "{tries:?}");
    assert!(tries.iter().filter(|r| r.is_err()).all(|r| *r == Err(SubmitRefusal::Used)));
    // Two readers race for the signature: one gets it.
    let (a, b) = tokio::join!(store.deliver_pairing(&opened.code), store.deliver_pairing(&opened.code));
    assert!(a.unwrap() ^ b.unwrap());
    assert_eq!(store.pairing(&opened.code).await.unwrap().unwrap().status, PairingStatus::Delivered);

    // An expired pairing takes no signature, and is pruned when the next one opens.
    let late = store.open_pairing(&purpose, "hive", now, 300_000).await.unwrap();
    assert_eq!(store.sign_pairing(&late.code, &signed(9), now + 300_000).await.unwrap(), Err(SubmitRefusal::Expired));
    assert_eq!(store.sign_pairing("ZZZZZZZZ", &signed(9), now).await.unwrap(), Err(SubmitRefusal::NotFound));
    store.open_pairing(&purpose, "hive", now + 600_000, 300_000).await.unwrap();
    assert!(store.pairing(&late.code).await.unwrap().is_none());
});
