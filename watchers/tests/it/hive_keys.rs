//! `watchers::HiveRpcKeySource` against a stand-in Hive API node on 127.0.0.1 that answers `condenser_api.get_accounts` with
//! the vector accounts: the request shape, key extraction, unknown accounts, caching and node failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chains::signature::{self, HiveKeySource, VerifyOptions};
use chains::Chain;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use watchers::HiveRpcKeySource;

fn vectors() -> Value {
    let path = format!("{}/../chains/tests/vectors/hive.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What the node does with a request body; returns (HTTP status, body).
type Handler = Arc<dyn Fn(&Value) -> (u16, String) + Send + Sync>;

/// Serves HTTP/1.1 requests one per connection (reqwest is told not to pool), counting them.
async fn spawn_node(handler: Handler) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let served = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let handler = handler.clone();
            let served = served.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break body.to_string();
                        }
                    }
                };
                served.fetch_add(1, Ordering::SeqCst);
                let (status, body) = handler(&serde_json::from_str(&body).unwrap());
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, count)
}

/// A node that knows the vector accounts, in `condenser_api.get_accounts`' response shape.
fn vector_node() -> Handler {
    let accounts = vectors()["accounts"].clone();
    Arc::new(move |request| {
        assert_eq!(request["method"], "condenser_api.get_accounts");
        let name = request["params"][0][0].as_str().unwrap().to_string();
        let auth = |keys: &Value| json!({ "weight_threshold": 1, "account_auths": [], "key_auths": keys.as_array().unwrap().iter().map(|k| json!([k, 1])).collect::<Vec<_>>() });
        let result: Vec<Value> = accounts
            .get(&name)
            .map(|a| {
                vec![json!({ "name": name, "owner": auth(&a["owner"]), "active": auth(&a["active"]), "posting": auth(&a["posting"]), "memo_key": a["memo"] })]
            })
            .unwrap_or_default();
        (200, json!({ "jsonrpc": "2.0", "id": request["id"], "result": result }).to_string())
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap()
}

#[tokio::test]
async fn verifies_account_signatures_through_the_node_and_caches() {
    let (url, requests) = spawn_node(vector_node()).await;
    let source = HiveRpcKeySource::with_client(url, client());
    let opts = VerifyOptions { hive_keys: Some(&source), ..Default::default() };
    let v = vectors();
    let mut checked = 0;
    for case in v["cases"].as_array().unwrap().iter().filter(|c| c["name"].as_str().unwrap().starts_with("account/")) {
        let s = |k: &str| case[k].as_str().unwrap();
        let result = signature::verify(Chain::Hive, s("address"), s("message").as_bytes(), s("signature"), &opts).await;
        let code = result.as_ref().map_or_else(|e| e.code(), |_| "ok");
        assert_eq!(code, s("expect"), "{}", s("name"));
        checked += 1;
    }
    assert!(checked >= 10);
    // alice.tickets, bob-42 and carol: one request each, the rest from the cache.
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn cache_expires() {
    let (url, requests) = spawn_node(vector_node()).await;
    let source = HiveRpcKeySource::with_client(url, client()).with_ttl(Duration::from_millis(50));
    assert!(source.account_keys("alice.tickets").await.unwrap().is_some());
    assert!(source.account_keys("alice.tickets").await.unwrap().is_some());
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let keys = source.account_keys("alice.tickets").await.unwrap().unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    assert_eq!(keys.posting, vec![vectors()["accounts"]["alice.tickets"]["posting"][0].as_str().unwrap().to_string()]);
}

#[tokio::test]
async fn node_failures_are_key_source_unavailable() {
    let v = vectors();
    let case = v["cases"].as_array().unwrap().iter().find(|c| c["name"] == "account/posting/msg0").unwrap();
    let (message, sig) = (case["message"].as_str().unwrap(), case["signature"].as_str().unwrap());
    let failing: [Handler; 3] = [
        Arc::new(|_| (503, "busy".into())),
        Arc::new(|_| (200, "not json".into())),
        Arc::new(|r| {
            (
                200,
                json!({ "jsonrpc": "2.0", "id": r["id"], "error": { "code": -32000, "message": "boom" } }).to_string(),
            )
        }),
    ];
    for handler in failing {
        let (url, _) = spawn_node(handler).await;
        let source = HiveRpcKeySource::with_client(url, client());
        let opts = VerifyOptions { hive_keys: Some(&source), ..Default::default() };
        let err = signature::verify(Chain::Hive, "alice.tickets", message.as_bytes(), sig, &opts).await.unwrap_err();
        assert_eq!(err.code(), "key_source_unavailable", "{err}");
    }
    // Nothing listening at all.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let source = HiveRpcKeySource::new(url);
    let opts = VerifyOptions { hive_keys: Some(&source), ..Default::default() };
    let err = signature::verify(Chain::Hive, "alice.tickets", message.as_bytes(), sig, &opts).await.unwrap_err();
    assert_eq!(err.code(), "key_source_unavailable");
}

#[tokio::test]
async fn malformed_signatures_cost_no_request() {
    let (url, requests) = spawn_node(vector_node()).await;
    let source = HiveRpcKeySource::with_client(url, client());
    let opts = VerifyOptions { hive_keys: Some(&source), ..Default::default() };
    let err = signature::verify(Chain::Hive, "alice.tickets", b"m", "zz", &opts).await.unwrap_err();
    assert_eq!(err.code(), "bad_encoding");
    assert_eq!(requests.load(Ordering::SeqCst), 0);
}
