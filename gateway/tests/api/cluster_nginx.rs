//! `deploy/nginx-cluster.conf` run as shipped (names, paths and ports replaced): Debian's nginx terminating TLS in
//! front of two real gateway processes in cluster mode (one `redis-server`, one PostgreSQL). The join endpoint
//! hands out a node's path (`wss://…/node/<node_id>/event/{id}`); two `wss://` clients on the two nodes' paths see
//! each other's broadcasts through the cross-node relay, and the creators' SSE feed passes through the balanced
//! path with the joins of both nodes.
//!
//! Run through `scripts/test` (it starts PostgreSQL and installs `redis-server` and `nginx`).

use crate::{attendance_support, common};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attendance_support::{creator_token, event, sse, ticket, token};
use cluster::testing::RedisServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use ticketing::testing::TestDb;
use ticketing::Backend;
use tokio_tungstenite::tungstenite::Message;

/// A gateway process in cluster mode; killed when dropped.
struct Node {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Node {
    fn start(name: &str, db_url: &str, redis_url: &str, public: &str) -> Node {
        let dir = std::env::temp_dir().join(format!("gateway-cnginx-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .env("GATEWAY_SERVER__PORT", "0")
            .env("GATEWAY_SERVER__NODE_ID", name)
            .env("GATEWAY_SERVER__PUBLIC_URL", public)
            .env("GATEWAY_SERVER__SHUTDOWN_GRACE_SECS", "1")
            .env("GATEWAY_DATA_DIR", &dir)
            .env("GATEWAY_SECRET", "11".repeat(32))
            .env("GATEWAY_RATES__SOURCE", "static")
            .env("GATEWAY_LOG__FORMAT", "json")
            .env("GATEWAY_LOG__FILTER", "info,sqlx=warn")
            .env("GATEWAY_CLUSTER__REDIS_URL", redis_url)
            .env("GATEWAY_CLUSTER__PUBLIC_URL", format!("{public}/node/{name}"))
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

    fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn self_signed(dir: &Path) -> PathBuf {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl req failed");
    cert
}

/// `deploy/nginx-cluster.conf` with its names, paths and ports replaced; every replaced text must be there.
fn site_config(dir: &Path, https_port: u16, http_port: u16, nodes: [u16; 2]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx-cluster.conf");
    let mut site = std::fs::read_to_string(path).unwrap();
    let replacements = [
        ("127.0.0.1:8081", format!("127.0.0.1:{}", nodes[0])),
        ("127.0.0.1:8082", format!("127.0.0.1:{}", nodes[1])),
        ("listen 443 ssl http2;", format!("listen 127.0.0.1:{https_port} ssl http2;")),
        ("listen [::]:443 ssl http2;", String::new()),
        ("listen 80;", format!("listen 127.0.0.1:{http_port};")),
        ("listen [::]:80;", String::new()),
        ("/etc/letsencrypt/live/presence.example.org/fullchain.pem", dir.join("cert.pem").display().to_string()),
        ("/etc/letsencrypt/live/presence.example.org/privkey.pem", dir.join("key.pem").display().to_string()),
        ("presence.example.org", "localhost".to_owned()),
    ];
    for (from, to) in replacements {
        assert!(site.contains(from), "deploy/nginx-cluster.conf no longer has `{from}`");
        site = site.replace(from, &to);
    }
    site
}

fn start_nginx(dir: &Path, site: &str) -> Nginx {
    std::fs::write(dir.join("site.conf"), site).unwrap();
    // What Debian's /etc/nginx/nginx.conf provides around a site; the access log names the upstream of each request.
    let d = dir.display();
    let main = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\nhttp {{\n\
         log_format upstreams '$request_method $uri $status $upstream_addr';\naccess_log {d}/access.log upstreams;\n\
         client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\ninclude {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let child = Command::new(
        ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).exists()).expect("nginx installed"),
    )
    .arg("-e")
    .arg(dir.join("error.log"))
    .arg("-p")
    .arg(dir)
    .arg("-c")
    .arg(dir.join("nginx.conf"))
    .args(["-g", "daemon off; master_process off;"])
    .stdout(Stdio::null())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("start nginx");
    Nginx(child)
}

fn tls_config(cert_pem: &str) -> Arc<rustls::ClientConfig> {
    let der = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        cert_pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>(),
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(der)).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

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
    let cert_pem = std::fs::read_to_string(self_signed(&dir)).unwrap();
    let (https_port, http_port) = (free_port(), free_port());
    let public = format!("https://localhost:{https_port}");
    let nodes =
        [Node::start("node-1", &db.url, &redis.url(), &public), Node::start("node-2", &db.url, &redis.url(), &public)];
    let _nginx = start_nginx(&dir, &site_config(&dir, https_port, http_port, [nodes[0].port(), nodes[1].port()]));
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
