//! `gateway turn`: the relay as its own process, accepting any credential signed with the shared secret.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use turn::client::{Client, ClientConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_runs_on_its_own_and_checks_signatures() {
    let dir = std::env::temp_dir().join(format!("gateway-turn-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gw.toml");
    let secret = "a-shared-secret-of-enough-length";
    std::fs::write(
        &config,
        format!(
            "[turn.relay]\nlisten_udp = \"127.0.0.1:0\"\nlisten_tcp = \"127.0.0.1:0\"\nrelay_bind_ip = \"127.0.0.1\"\n\
             public_ip = \"127.0.0.1\"\nrealm = \"cli.test\"\nshared_secret = \"{secret}\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--config", config.to_str().unwrap(), "turn"])
        .env("GATEWAY_DATA_DIR", &dir)
        .env("GATEWAY_LOG__FORMAT", "json")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["message"] == "TURN relay listening" {
                    let _ = tx.send(v["udp_addr"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    });
    let udp = rx.recv_timeout(Duration::from_secs(30)).expect("relay logs its address");
    let server = udp.trim_start_matches("Some(").trim_end_matches(')').to_owned();
    assert!(server.parse::<std::net::SocketAddr>().is_ok(), "relay address from the log: {udp:?}");

    let connect = |password: String, username: String| {
        let server = server.clone();
        async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let client = Client::new(ClientConfig {
                stun_serv_addr: server.clone(),
                turn_serv_addr: server,
                username,
                password,
                realm: "cli.test".into(),
                software: String::new(),
                rto_in_ms: 0,
                conn: Arc::new(socket),
                vnet: None,
            })
            .await
            .unwrap();
            client.listen().await.unwrap();
            client
        }
    };
    let session = turn_relay::SessionId::parse("t7").unwrap();
    let good = turn_relay::issue(secret, &session, Duration::from_secs(600), SystemTime::now(), vec![]);
    let allocation = connect(good.credential.clone(), good.username.clone()).await.allocate().await;
    assert!(allocation.is_ok(), "a signed credential allocates: {:?}", allocation.err());
    let forged = turn_relay::issue(
        "another-secret-of-enough-length!",
        &session,
        Duration::from_secs(600),
        SystemTime::now(),
        vec![],
    );
    assert!(
        connect(forged.credential, forged.username).await.allocate().await.is_err(),
        "a credential signed with another secret is refused"
    );
    let expired = turn_relay::issue(
        secret,
        &session,
        Duration::from_secs(1),
        SystemTime::now() - Duration::from_secs(60),
        vec![],
    );
    assert!(
        connect(expired.credential, expired.username).await.allocate().await.is_err(),
        "an expired credential is refused"
    );

    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
