//! networked-aframe over two nodes (issue 23): two real gateway processes in cluster mode (one `redis-server`, one
//! PostgreSQL); headless Chromium loads the example scene from each node's own origin, one page per node, and the
//! two ticket holders see each other's avatars and one's move reaches the other through the cross-node relay.
//!
//! The orchestrator starts the nodes and runs `node browser-tests/cluster.mjs '<json>'`, then asserts on the JSON
//! it prints. `./scripts/test` starts PostgreSQL and installs Chromium, `redis-server` and the driver's packages.

use crate::attendance_support;
use crate::browser::{browser_prerequisites, position_close, repo_root, run_driver};
use crate::cluster_support::*;

use std::time::{Duration, Instant};

use attendance_support::{event, ticket, SECRET};
use cluster::testing::RedisServer;
use serde_json::{json, Value};
use ticketing::testing::TestDb;
use ticketing::Backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_on_two_nodes_see_each_others_avatars() {
    let started = Instant::now();
    browser_prerequisites();
    let db = TestDb::new(Backend::Postgres).await;
    let store = ticketing::Store::connect(&db.url, 4).await.unwrap();
    let redis = RedisServer::start();
    let web = repo_root().join("web");
    let env = [("GATEWAY_WEB_DIR", web.to_str().unwrap())];
    let (n1, n2) = (
        Node::start_with("node-1", &db.url, &redis.url(), &env),
        Node::start_with("node-2", &db.url, &redis.url(), &env),
    );
    assert_ne!(n1.base, n2.base);

    let event_id = event(&store, 10, 0).await;
    let expires = ticketing::now_ms() + 120_000;
    let mut pages = Vec::new();
    for (name, node) in [("first", &n1), ("second", &n2)] {
        let wallet = format!("wallet-{name}");
        let ticket_id = ticket(&store, event_id, &wallet).await;
        let token = gateway::auth::session_token::issue(&SECRET, event_id, Some(ticket_id), None, wallet, expires).0;
        pages.push(json!({ "name": name, "base_url": node.base, "token": token }));
    }
    let args = json!({
        "event_id": event_id,
        "artifacts_dir": repo_root().join("test-artifacts"),
        "pages": pages,
        "timeout_ms": 60_000,
    });
    let result = run_driver("cluster.mjs", &args, Duration::from_secs(70)).await;
    eprintln!("{}", serde_json::to_string_pretty(&result).unwrap());

    let (a, b) = (&result["first"], &result["second"]);
    assert_eq!((a["status"].as_str(), b["status"].as_str()), (Some("connected"), Some("connected")));
    let (a_id, b_id) = (a["clientId"].as_str().unwrap(), b["clientId"].as_str().unwrap());
    assert_ne!(a_id, b_id);
    let owners = |page: &Value| -> Vec<String> {
        page["remote"].as_array().unwrap().iter().map(|e| e["owner"].as_str().unwrap_or("").to_owned()).collect()
    };
    assert_eq!(owners(a), vec![b_id.to_owned()], "the page on node 1 sees exactly the one on node 2: {a}");
    assert_eq!(owners(b), vec![a_id.to_owned()], "the page on node 2 sees exactly the one on node 1: {b}");
    assert!(position_close(&b["remote"][0]["position"], [-1.5, 1.6, 2.25]), "the move crossed nodes: {b}");
    assert_eq!(result["external_requests"], json!([]), "pages reached outside their node");
    assert_eq!(result["page_errors"], json!([]), "uncaught errors in the pages");
    eprintln!(
        "browser cluster test: peer seen in {} / {} ms, move observed in {} ms, whole test {} ms",
        a["sees_peer_ms"],
        b["sees_peer_ms"],
        result["move_observed_ms"],
        started.elapsed().as_millis()
    );
}
