//! `deploy/nginx-cluster.conf` run as shipped (names, paths and ports replaced): Debian's nginx terminating TLS in
//! front of two real gateway processes in cluster mode (one `redis-server`, one PostgreSQL). The join endpoint
//! hands out a node's path (`wss://…/node/<node_id>/event/{id}`); two `wss://` clients on the two nodes' paths see
//! each other's broadcasts through the cross-node relay, and the creators' SSE feed passes through the balanced
//! path with the joins of both nodes.
//!
//! Run through `scripts/test` (it starts PostgreSQL and installs `redis-server` and `nginx`).

use crate::cluster_support::*;
use crate::nginx_support::*;
use crate::{attendance_support, common};

use std::time::{Duration, Instant};

use attendance_support::{creator_token, event, sse, ticket, token};
use cluster::testing::RedisServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use ticketing::testing::TestDb;
use ticketing::Backend;
use tokio_tungstenite::tungstenite::Message;

type Wss = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn wss(cert_pem: &str, https_port: u16, url: &str) -> Wss {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", https_port)).await.unwrap();
    let server_name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(tls_config(cert_pem)).connect(server_name, tcp).await.unwrap();
    let (ws, res) = tokio_tungstenite::client_async(url, tls).await.expect("wss upgrade through nginx");
    assert_eq!(res.status(), 101);
    ws
}

/// The next JSON frame of `kind`, skipping others.
async fn next_of(ws: &mut Wss, kind: &str) -> Value {
    loop {
        let msg =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("frame in time").unwrap().unwrap();
        if let Message::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] == kind {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_behind_nginx_one_room_and_the_feed() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = ticketing::Store::connect(&db.url, 4).await.unwrap();
    let redis = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("gateway-cnginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let cert_pem = std::fs::read_to_string(self_signed(&dir).0).unwrap();
    let (https_port, http_port) = (free_port(), free_port());
    let public = format!("https://localhost:{https_port}");
    let nodes = ["node-1", "node-2"].map(|name| {
        let own = format!("{public}/node/{name}");
        let env = [
            ("GATEWAY_SERVER__PUBLIC_URL", public.as_str()),
            ("GATEWAY_CLUSTER__PUBLIC_URL", own.as_str()),
            ("GATEWAY_SERVER__SHUTDOWN_GRACE_SECS", "1"),
            ("GATEWAY_ROOMS__ATTENDANCE_FLUSH_MS", "1000"),
        ];
        Node::start_with(name, &db.url, &redis.url(), &env)
    });
    let _nginx = start_nginx(
        &dir,
        &site_config(
            "nginx-cluster.conf",
            &dir,
            https_port,
            http_port,
            &[
                ("127.0.0.1:8081", format!("127.0.0.1:{}", nodes[0].port())),
                ("127.0.0.1:8082", format!("127.0.0.1:{}", nodes[1].port())),
            ],
        ),
    );
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();

    // nginx listens and both nodes are ready behind it, each on its own path (poll, no fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(20);
    for path in ["/readyz", "/node/node-1/readyz", "/node/node-2/readyz"] {
        loop {
            let ready = match client.get(format!("{public}{path}")).send().await {
                Ok(res) => res.json::<Value>().await.is_ok_and(|v| v["status"] == "ready"),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never ready through nginx: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Each node knows the other from its heartbeats (room items are relayed to the nodes it knows).
    for node in &nodes {
        common::eventually("the nodes know each other", Duration::from_secs(10), || async {
            node.readyz().await["nodes"] == 2
        })
        .await;
    }
    let event_id = event(&store, 10, 0).await;
    let (ta, tb) = (ticket(&store, event_id, "wallet-a").await, ticket(&store, event_id, "wallet-b").await);
    // The creators' feed on the balanced path (whichever node nginx picks carries the room items of both).
    let bearer = creator_token("alice");
    let mut feed = sse(&client, format!("{public}/api/events/{event_id}/attendees/stream"), &bearer).await;

    // The join endpoint, through nginx, names a node's path on the one public origin.
    let granted: Value = client
        .post(format!("{public}/api/events/{event_id}/host"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = granted["websocket_url"].as_str().unwrap_or_default().to_owned();
    let chosen = ["node-1", "node-2"]
        .into_iter()
        .find(|n| url == format!("wss://localhost:{https_port}/node/{n}/event/{event_id}"))
        .unwrap_or_else(|| panic!("the join names no node path: {granted}"));
    let other = if chosen == "node-1" { "node-2" } else { "node-1" };

    // Ticket holder A where the join sent the host, B on the other node; both over wss:// through nginx.
    let at = |node: &str, t: String| format!("wss://localhost:{https_port}/node/{node}/event/{event_id}?token={t}");
    let mut a = wss(&cert_pem, https_port, &at(chosen, token(event_id, ta, "wallet-a"))).await;
    let a_id = next_of(&mut a, "welcome").await["client_id"].as_str().unwrap().to_owned();
    let mut b = wss(&cert_pem, https_port, &at(other, token(event_id, tb, "wallet-b"))).await;
    let welcome = next_of(&mut b, "welcome").await;
    let b_id = welcome["client_id"].as_str().unwrap().to_owned();
    assert!(welcome["occupants"][&a_id].is_object(), "B's node lists A from the other node: {welcome}");
    assert_eq!(next_of(&mut a, "peer_joined").await["client_id"], b_id.as_str());

    // A relayed broadcast each way.
    let broadcast =
        |n: i64| Message::Text(json!({ "type": "broadcast", "data_type": "u", "data": { "n": n } }).to_string().into());
    a.send(broadcast(1)).await.unwrap();
    let got = next_of(&mut b, "broadcast").await;
    assert_eq!((got["from"].as_str(), got["data"]["n"].as_i64()), (Some(a_id.as_str()), Some(1)));
    b.send(broadcast(2)).await.unwrap();
    let got = next_of(&mut a, "broadcast").await;
    assert_eq!((got["from"].as_str(), got["data"]["n"].as_i64()), (Some(b_id.as_str()), Some(2)));

    // The feed, through nginx and unbuffered, shows both joins, one from each node.
    let mut joined = Vec::new();
    while joined.len() < 2 {
        let item = tokio::time::timeout(Duration::from_secs(5), feed.recv())
            .await
            .expect("feed item in time")
            .expect("feed open");
        if item.name == "joined" {
            joined.push(item.data["client_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    joined.sort();
    let mut expected = vec![a_id.clone(), b_id.clone()];
    expected.sort();
    assert_eq!(joined, expected);

    // nginx sent each upgrade to the node its path names (logged when the connection ends).
    a.close(None).await.unwrap();
    b.close(None).await.unwrap();
    let port_of = |n: &str| if n == "node-1" { nodes[0].port() } else { nodes[1].port() };
    let lines: Vec<String> = [chosen, other]
        .iter()
        .map(|n| format!("GET /node/{n}/event/{event_id} 101 127.0.0.1:{}", port_of(n)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
        if lines.iter().all(|l| log.contains(l)) {
            break;
        }
        assert!(Instant::now() < deadline, "not all of {lines:?} in the access log:\n{log}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop(_nginx);
    let _ = std::fs::remove_dir_all(dir);
}
