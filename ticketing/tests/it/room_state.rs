//! Rooms' persistent entities in the store (issue 26): each test runs on SQLite and on PostgreSQL.

use serde_json::json;
use ticketing::room_state::EntityWrite;
use ticketing::store_test;
use ticketing::testing::RawSql;

fn upsert(event_id: i64, id: &str, owner: &str, x: i64) -> EntityWrite {
    EntityWrite::Upsert {
        event_id,
        network_id: id.into(),
        owner: owner.into(),
        data: json!({ "networkId": id, "owner": owner, "persistent": true, "components": { "0": { "x": x } } }),
    }
}

store_test!(entities_are_upserted_removed_and_read_back_per_room, |store: Store| async move {
    assert!(store.room_entities(7, 10).await.unwrap().is_empty());
    store
        .write_room_entities(&[upsert(7, "box", "a", 1), upsert(7, "lamp", "a", 2), upsert(8, "box", "z", 9)], 1_000)
        .await
        .unwrap();
    // A later write of the same entity replaces it (ownership passed to c, moved); a removal forgets one.
    store
        .write_room_entities(
            &[upsert(7, "box", "c", 5), EntityWrite::Remove { event_id: 7, network_id: "lamp".into() }],
            2_000,
        )
        .await
        .unwrap();
    let kept = store.room_entities(7, 10).await.unwrap();
    assert_eq!(
        kept,
        vec![json!({ "networkId": "box", "owner": "c", "persistent": true, "components": { "0": { "x": 5 } } })]
    );
    // Rooms do not see each other's entities; the read is bounded.
    assert_eq!(store.room_entities(8, 10).await.unwrap()[0]["owner"], "z");
    store
        .write_room_entities(&[upsert(9, "a", "o", 1), upsert(9, "b", "o", 1), upsert(9, "c", "o", 1)], 3_000)
        .await
        .unwrap();
    assert_eq!(store.room_entities(9, 2).await.unwrap().len(), 2);
    // Nothing to write is not an error, and removing what is not there neither.
    store.write_room_entities(&[], 4_000).await.unwrap();
    store.write_room_entities(&[EntityWrite::Remove { event_id: 7, network_id: "none".into() }], 4_000).await.unwrap();
});

store_test!(a_failed_batch_writes_nothing, |store: Store| async move {
    // The store fails mid-batch (here: its table is gone): nothing of the batch is written.
    store.write_room_entities(&[upsert(7, "box", "a", 1)], 1_000).await.unwrap();
    sqlx::query("ALTER TABLE room_entities RENAME TO room_entities_gone").execute(store.raw_pool()).await.unwrap();
    assert!(store.write_room_entities(&[upsert(7, "box", "b", 2)], 2_000).await.is_err());
    sqlx::query("ALTER TABLE room_entities_gone RENAME TO room_entities").execute(store.raw_pool()).await.unwrap();
    assert_eq!(store.room_entities(7, 10).await.unwrap()[0]["owner"], "a");
});
