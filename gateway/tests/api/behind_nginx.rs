//! The production recipe, run: Debian's nginx with `deploy/nginx.conf` (as shipped, only its names, paths and
//! ports replaced) terminating TLS with a self-signed certificate in front of the real gateway; a `wss://` room
//! join and the creators' SSE feed pass through it, live.

use crate::nginx_support::*;
use crate::{attendance_support, common};

use std::time::Duration;

use attendance_support::{event, sse, ticket, token};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Sends a join with a malformed signature (refused and audited) and returns the client address the audit row
/// names.
async fn denied_join_address(
    store: &ticketing::Store,
    client: &reqwest::Client,
    base: &str,
    event_id: i64,
    forwarded_for: &str,
) -> String {
    let res = client
        .post(format!("{base}/api/events/{event_id}/join"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({
            "chain": "eth", "wallet_address": "0x52908400098527886e0f7030069857d2e4169ee7",
            "message": "Access event 1 at 0", "signature": "0x00",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "{:?}", res.text().await);
    let rows = store.audit_entries(Some("access.denied"), 1).await.unwrap();
    rows[0].remote_addr.clone().unwrap_or_default()
}

/// The next JSON frame of `kind`, skipping others.
async fn next_of<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, kind: &str) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
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
async fn a_wss_join_and_an_sse_feed_pass_through_nginx() {
    let dir = std::env::temp_dir().join(format!("gateway-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // nginx's workers (another user when run as root) write their temporary files here.
    #[cfg(unix)]
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let (cert, _key) = self_signed(&dir);
    let cert_pem = std::fs::read_to_string(&cert).unwrap();
    let (https_port, http_port) = (free_port(), free_port());
    let public = format!("https://localhost:{https_port}");
    let app = common::spawn_app_with(ticketing::Backend::Sqlite, |s| {
        s.server.public_url = Some(public.clone());
        s.server.trusted_proxies = vec![turn_relay::peer_policy::Cidr::try_from("127.0.0.1".to_owned()).unwrap()];
    })
    .await;
    let upstream_port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let _nginx = start_nginx(
        &dir,
        &site_config(
            "nginx.conf",
            &dir,
            https_port,
            http_port,
            &[("server 127.0.0.1:8080;", format!("server 127.0.0.1:{upstream_port};"))],
        ),
    );

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Wait for nginx to listen (poll, don't sleep a fixed time).
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(res) = client.get(format!("{public}/healthz")).send().await {
            assert_eq!(res.status(), 200);
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "nginx never answered: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
    let page = client.get(format!("{public}/pages/index.html")).send().await.unwrap();
    assert_eq!(page.status(), 200, "the built-in pages through the proxy");
    let redirect = client.get(format!("http://127.0.0.1:{http_port}/pages/")).send().await.unwrap();
    assert_eq!(redirect.status(), 301);
    assert!(redirect.headers()["location"].to_str().unwrap().starts_with("https://"));

    let event_id = event(&app.store, 10, 0).await;
    let ticket_id = ticket(&app.store, event_id, "nginx-w").await;
    let mut feed = sse(&client, format!("{public}/api/events/{event_id}/attendees/stream"), common::ADMIN_TOKEN).await;

    // The room over wss:// through the proxy: upgrade, welcome, a ping answered.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", https_port)).await.unwrap();
    let server_name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(tls_config(&cert_pem)).connect(server_name, tcp).await.unwrap();
    let url = format!("wss://localhost:{https_port}/event/{event_id}?token={}", token(event_id, ticket_id, "nginx-w"));
    let (mut ws, res) = tokio_tungstenite::client_async(url, tls).await.expect("wss upgrade through nginx");
    assert_eq!(res.status(), 101);
    let welcome = next_of(&mut ws, "welcome").await;
    assert!(welcome["client_id"].is_string(), "{welcome}");
    ws.send(Message::Text(json!({ "type": "ping", "client_time": 7 }).to_string().into())).await.unwrap();
    assert_eq!(next_of(&mut ws, "pong").await["client_time"].as_f64(), Some(7.0));

    // The join reaches the creators' SSE feed through the proxy while the stream stays open (no buffering).
    let joined = loop {
        let item = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await.expect("feed item in time").unwrap();
        if item.name == "joined" {
            break item;
        }
    };
    assert_eq!(joined.data["identity"], "nginx-w", "{:?}", joined.data);

    // The gateway sees the client nginx names, not nginx: a refused join is audited with the forwarded address.
    assert_eq!(denied_join_address(&app.store, &client, &public, event_id, "203.0.113.9").await, "203.0.113.9");
    ws.close(None).await.unwrap();
    drop(_nginx);
    let _ = std::fs::remove_dir_all(dir);
}

/// Without `trusted_proxies`, `X-Forwarded-For` is the client's own say and is not believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let app = common::spawn_app(ticketing::Backend::Sqlite).await;
    let event_id = event(&app.store, 10, 0).await;
    assert_eq!(denied_join_address(&app.store, &app.client, &app.address, event_id, "203.0.113.9").await, "127.0.0.1");
}
