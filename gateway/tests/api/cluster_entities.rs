//! NAF persistent entities in one room spread over two real gateway processes (real `redis-server`, real
//! PostgreSQL, real WebSocket clients): an entity created by a peer on one node is in the snapshot of a peer that
//! joins later on the other, as on one node.

use crate::attendance_support::*;
use crate::cluster_support::*;

use cluster::testing::RedisServer;
use futures_util::SinkExt;
use serde_json::json;
use ticketing::testing::TestDb;
use ticketing::Backend;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_entity_made_on_one_node_is_in_the_snapshot_of_a_later_joiner_on_the_other() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = ticketing::Store::connect(&db.url, 8).await.unwrap();
    let redis = RedisServer::start();
    let (n1, n2) = (Node::start("n1", &db.url, &redis.url()), Node::start("n2", &db.url, &redis.url()));
    let event_id = event(&store, 10, 0).await;
    let tickets = [ticket(&store, event_id, "wal-a").await, ticket(&store, event_id, "wal-b").await];
    let late = ticket(&store, event_id, "wal-c").await;

    let mut a = connect(&n1.base, event_id, &token(event_id, tickets[0], "wal-a")).await;
    let a_id = next_of(&mut a, "welcome").await["client_id"].as_str().unwrap().to_owned();
    // b holds the room open on node 2 before the entity exists, so node 2 cannot have it from the store's load.
    let mut b = connect(&n2.base, event_id, &token(event_id, tickets[1], "wal-b")).await;
    next_of(&mut b, "welcome").await;
    let joined = next_of(&mut a, "peer_joined").await;
    assert_ne!(joined["client_id"], a_id.as_str());

    let entity = json!({"networkId": "lamp", "owner": a_id, "creator": a_id, "lastOwnerTime": 1, "template": "#lamp",
        "persistent": true, "isFirstSync": true, "components": {"0": {"x": 1, "y": 2, "z": 3}}});
    let frame = json!({"type": "broadcast", "data_type": "u", "data": entity, "guaranteed": true});
    a.send(Message::Text(frame.to_string().into())).await.unwrap();
    // Node 2 has relayed it to b: it has passed through node 2's mirror.
    let relayed = next_of(&mut b, "broadcast").await;
    assert_eq!(relayed["data"]["networkId"], "lamp");

    let mut c = connect(&n2.base, event_id, &token(event_id, late, "wal-c")).await;
    next_of(&mut c, "welcome").await;
    let snapshot = next_of(&mut c, "snapshot").await;
    let entities = snapshot["entities"].as_array().expect("entities");
    assert_eq!(entities.len(), 1, "{snapshot}");
    assert_eq!(entities[0]["networkId"], "lamp");
    assert_eq!(entities[0]["components"]["0"], json!({"x": 1, "y": 2, "z": 3}));
}
