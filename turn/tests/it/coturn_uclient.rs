//! End to end with a real, independent TURN client: coturn's `turnutils_uclient` allocates on our
//! relay, binds channels to a `turnutils_peer` echo peer on loopback and counts what comes back.

use crate::common;

use std::time::Duration;

use common::coturn::{self, Load, UclientRun};
use common::{admit, expired, spawn_relay};

const TIMEOUT: Duration = Duration::from_secs(60);

fn small_load(tcp: bool) -> Load {
    Load { clients: 2, messages: 20, length: 200, interval_ms: 20, tcp, tls: false }
}

async fn relayed_round_trip(tcp: bool) {
    coturn::require_coturn();
    let (relay, _) = spawn_relay(|_| {}).await;
    let server = if tcp { relay.tcp_addr() } else { relay.udp_addr() }.unwrap();
    let peer_port = coturn::free_port();
    let _peer = coturn::spawn_peer(peer_port).await;
    let (_, creds) = admit(&relay, "uclient-ok");

    let load = small_load(tcp);
    let run = coturn::run_uclient(server, &creds.username, &creds.credential, peer_port, &load, TIMEOUT).await;

    let expected = u64::from(load.clients * load.messages);
    assert!(run.success, "uclient failed:\n{}", run.output);
    assert_eq!(run.sent_msgs(), expected, "sent count\n{}", run.output);
    assert_eq!(run.received_msgs(), expected, "echoed count\n{}", run.output);
    assert_eq!(run.lost_packets(), Some(0), "lost packets\n{}", run.output);
    let stats = relay.stats().snapshot();
    // uclient allocates a reserved even/odd pair per client (RESERVATION-TOKEN), hence `>=`.
    assert!(stats.allocations_total >= u64::from(load.clients), "{stats:?}");
    assert!(
        stats.bytes_to_peers >= expected * u64::from(load.length)
            && stats.bytes_from_peers >= expected * u64::from(load.length),
        "relay counted too few bytes: {stats:?}"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn uclient_relays_over_udp() {
    relayed_round_trip(false).await;
}

#[tokio::test]
async fn uclient_relays_over_tcp() {
    relayed_round_trip(true).await;
}

/// TURN over TLS (`turns:`): a certificate made by `openssl` for the test, the listener configured with its PEM
/// files, and coturn's client speaking TLS to it (`-S`).
#[tokio::test]
async fn uclient_relays_over_tls() {
    coturn::require_coturn();
    let dir = std::env::temp_dir().join(format!("turn-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=turn.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (relay, _) = spawn_relay(|c| {
        c.listen_tls = Some("127.0.0.1:0".parse().unwrap());
        c.tls_cert_file = Some(cert.clone());
        c.tls_key_file = Some(key.clone());
    })
    .await;
    let server = relay.tls_addr().expect("a TLS listener");
    let peer_port = coturn::free_port();
    let _peer = coturn::spawn_peer(peer_port).await;
    let (_, creds) = admit(&relay, "uclient-tls");
    let load = Load { tls: true, ..small_load(false) };
    let run = coturn::run_uclient(server, &creds.username, &creds.credential, peer_port, &load, TIMEOUT).await;
    let expected = u64::from(load.clients * load.messages);
    assert!(run.success, "uclient failed:\n{}", run.output);
    assert_eq!(run.received_msgs(), expected, "echoed count over TLS\n{}", run.output);
    assert!(relay.stats().snapshot().bytes_from_peers >= expected * u64::from(load.length));
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_tls_listener_without_its_certificate_files_is_a_configuration_error() {
    let config = turn_relay::TurnConfig {
        listen_tls: Some("127.0.0.1:0".parse().unwrap()),
        ..turn_relay::TurnConfig::loopback("a-secret-of-sixteen-bytes")
    };
    let err = turn_relay::TurnRelay::start(config, turn_relay::SessionRegistry::new()).await.err().expect("refused");
    assert!(err.to_string().contains("tls_cert_file"), "{err}");
}

/// Runs uclient with the given credential and asserts it got no allocation and relayed nothing.
async fn refused_run(relay: &turn_relay::TurnRelay, username: &str, password: &str) -> UclientRun {
    let peer_port = coturn::free_port();
    let _peer = coturn::spawn_peer(peer_port).await;
    let load = Load { clients: 1, messages: 5, ..small_load(false) };
    let run = coturn::run_uclient(relay.udp_addr().unwrap(), username, password, peer_port, &load, TIMEOUT).await;
    assert!(!run.success, "uclient should have failed:\n{}", run.output);
    assert_eq!(run.received_msgs(), 0, "nothing may be relayed:\n{}", run.output);
    assert_eq!(relay.stats().snapshot().allocations_total, 0, "no allocation may be made");
    run
}

#[tokio::test]
async fn uclient_refused_with_expired_credential() {
    coturn::require_coturn();
    let (relay, _) = spawn_relay(|_| {}).await;
    let creds = expired(&relay, "uclient-expired");
    let run = refused_run(&relay, &creds.username, &creds.credential).await;
    assert!(run.output.contains("Cannot complete Allocation"), "{}", run.output);
    let stats = relay.stats().snapshot();
    assert!(stats.auth_failures_expired > 0, "{stats:?}");
    assert_eq!(stats.auth_failures_forged, 0);
}

#[tokio::test]
async fn uclient_refused_with_forged_credential() {
    coturn::require_coturn();
    let (relay, _) = spawn_relay(|_| {}).await;
    let (_, creds) = admit(&relay, "uclient-forged");
    let forged = turn_relay::credentials::password("not-the-shared-secret", &creds.username);
    let run = refused_run(&relay, &creds.username, &forged).await;
    assert!(run.output.contains("Cannot complete Allocation"), "{}", run.output);
    let stats = relay.stats().snapshot();
    assert!(stats.auth_failures_forged > 0, "{stats:?}");
    assert_eq!(stats.auth_failures_expired, 0);
}

#[tokio::test]
async fn uclient_refused_for_unknown_or_revoked_session() {
    coturn::require_coturn();
    let (relay, _) = spawn_relay(|_| {}).await;
    let (id, creds) = admit(&relay, "uclient-kicked");
    relay.revoke_session(&id).await;
    let run = refused_run(&relay, &creds.username, &creds.credential).await;
    assert!(run.output.contains("Cannot complete Allocation"), "{}", run.output);
    assert!(relay.stats().snapshot().auth_failures_unknown_session > 0);
}

#[tokio::test]
async fn uclient_refused_when_peer_is_denied() {
    coturn::require_coturn();
    // Production policy: no allow list, so the loopback peer is a denied address.
    let (relay, _) = spawn_relay(|c| c.allowed_peers.clear()).await;
    let peer_port = coturn::free_port();
    let _peer = coturn::spawn_peer(peer_port).await;
    let (_, creds) = admit(&relay, "uclient-denied");
    let load = Load { clients: 1, messages: 5, ..small_load(false) };
    let run =
        coturn::run_uclient(relay.udp_addr().unwrap(), &creds.username, &creds.credential, peer_port, &load, TIMEOUT)
            .await;

    assert!(run.output.contains("error 403"), "expected 403 Forbidden:\n{}", run.output);
    assert_eq!(run.received_msgs(), 0, "nothing may be relayed:\n{}", run.output);
    let stats = relay.stats().snapshot();
    assert!(stats.peer_denied > 0, "{stats:?}");
    assert_eq!(stats.bytes_to_peers, 0, "{stats:?}");
}
