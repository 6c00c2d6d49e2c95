//! networked-aframe over two nodes (issue 23): two real gateway processes in cluster mode (one `redis-server`, one
//! PostgreSQL); headless Chromium loads the example scene from each node's own origin, one page per node, and the
//! two ticket holders see each other's avatars and one's move reaches the other through the cross-node relay.
//!
//! The orchestrator starts the nodes and runs `node browser-tests/cluster.mjs '<json>'`, then asserts on the JSON
//! it prints. `./scripts/test` starts PostgreSQL and installs Chromium, `redis-server` and the driver's packages.

use crate::{attendance_support, common};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use attendance_support::{event, ticket, SECRET};
use cluster::testing::RedisServer;
use serde_json::{json, Value};
use ticketing::testing::TestDb;
use ticketing::Backend;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// A gateway process in cluster mode serving `web/`; killed when dropped.
struct Node {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Node {
    fn start(name: &str, db_url: &str, redis_url: &str) -> Node {
        let dir = std::env::temp_dir().join(format!("gateway-bcluster-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .env("GATEWAY_SERVER__PORT", "0")
            .env("GATEWAY_SERVER__NODE_ID", name)
            .env("GATEWAY_SERVER__SHUTDOWN_GRACE_SECS", "1")
            .env("GATEWAY_DATA_DIR", &dir)
            .env("GATEWAY_WEB_DIR", repo_root().join("web"))
            .env("GATEWAY_SECRET", "11".repeat(32))
            .env("GATEWAY_RATES__SOURCE", "static")
            .env("GATEWAY_LOG__FORMAT", "json")
            .env("GATEWAY_LOG__FILTER", "info,sqlx=warn")
            .env("GATEWAY_CLUSTER__REDIS_URL", redis_url)
            .env("GATEWAY_CLUSTER__HEARTBEAT_MS", "200")
            .env("GATEWAY_CLUSTER__NODE_TTL_MS", "2000")
            .env("DATABASE_URL", db_url)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gateway binary");
        let base = common::listening_address(&mut child, Duration::from_secs(60));
        Node { child, base, dir }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Fails with a clear message when the browser or the driver's packages are not installed.
fn browser_prerequisites() -> PathBuf {
    let root = repo_root();
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is not installed at {chromium}: run ./scripts/test, or set CHROMIUM_PATH"
    );
    assert!(
        root.join("browser-tests/node_modules/playwright-core").exists(),
        "browser-tests/node_modules is missing: run ./scripts/test (it runs `npm ci --prefix browser-tests`)"
    );
    root
}

async fn run_driver(script: &str, args: &Value, limit: Duration) -> Value {
    let root = browser_prerequisites();
    let child = tokio::process::Command::new("node")
        .arg(root.join("browser-tests").join(script))
        .arg(args.to_string())
        .current_dir(&root)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, child)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {limit:?}"))
        .expect("node runs (is nodejs installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let result: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script} printed no JSON result ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    assert_eq!(result["ok"], true, "{script} failed: {}\nstderr:\n{stderr}", result["error"].as_str().unwrap_or(""));
    eprintln!("{script} stderr:\n{stderr}");
    result
}

fn position_close(position: &Value, target: [f64; 3]) -> bool {
    let Some(p) = position.as_array() else { return false };
    p.len() == 3 && p.iter().zip(target).all(|(v, t)| v.as_f64().is_some_and(|v| (v - t).abs() < 0.01))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_on_two_nodes_see_each_others_avatars() {
    let started = Instant::now();
    browser_prerequisites();
    let db = TestDb::new(Backend::Postgres).await;
    let store = ticketing::Store::connect(&db.url, 4).await.unwrap();
    let redis = RedisServer::start();
    let (n1, n2) = (Node::start("node-1", &db.url, &redis.url()), Node::start("node-2", &db.url, &redis.url()));
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
