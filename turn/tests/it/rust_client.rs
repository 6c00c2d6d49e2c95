//! End to end with the webrtc-rs `turn` client: allocate, relay to a UDP peer on loopback and back,
//! and the per-credential limits and session revocation as a client experiences them.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{admit, eventually, spawn_relay};
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};
use turn_relay::{TurnCredentials, TurnRelay};
use util::Conn;

async fn connect(relay: &TurnRelay, creds: &TurnCredentials) -> Client {
    let server = relay.udp_addr().unwrap().to_string();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(ClientConfig {
        stun_serv_addr: server.clone(),
        turn_serv_addr: server,
        username: creds.username.clone(),
        password: creds.credential.clone(),
        realm: relay.config().realm.clone(),
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

/// A UDP peer on loopback that echoes every datagram back to its sender.
async fn echo_peer() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

async fn recv_within(conn: &impl Conn, ms: u64) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 2048];
    match tokio::time::timeout(Duration::from_millis(ms), conn.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => Some((buf[..n].to_vec(), from)),
        _ => None,
    }
}

#[tokio::test]
async fn allocates_and_relays_to_a_loopback_peer_and_back() {
    let (relay, _) = spawn_relay(|_| {}).await;
    let (_, creds) = admit(&relay, "rust-client");
    let peer = echo_peer().await;

    let client = connect(&relay, &creds).await;
    let relayed = client.allocate().await.expect("allocate");
    assert_eq!(relayed.local_addr().unwrap().ip(), relay.config().announced_ip().unwrap());

    // The first send_to also creates the permission for `peer`.
    relayed.send_to(b"hello through the relay", peer).await.unwrap();
    let (data, from) = recv_within(&relayed, 2000).await.expect("echo from peer");
    assert_eq!(data, b"hello through the relay");
    assert_eq!(from, peer);

    let stats = relay.stats().snapshot();
    assert_eq!(stats.allocations_active, 1);
    assert_eq!(stats.bytes_to_peers, 23);
    assert_eq!(stats.bytes_from_peers, 23);
    client.close().await.unwrap();
    relay.shutdown().await;
}

#[tokio::test]
async fn revoking_a_session_closes_its_allocations_and_refuses_new_ones() {
    let (relay, _) = spawn_relay(|_| {}).await;
    let (kicked, creds) = admit(&relay, "to-be-kicked");
    let (_, bystander_creds) = admit(&relay, "bystander");
    let peer = echo_peer().await;

    let client = connect(&relay, &creds).await;
    let relayed = client.allocate().await.unwrap();
    let bystander = connect(&relay, &bystander_creds).await;
    let bystander_relayed = bystander.allocate().await.unwrap();
    relayed.send_to(b"before", peer).await.unwrap();
    assert!(recv_within(&relayed, 2000).await.is_some());
    assert_eq!(relay.stats().snapshot().allocations_active, 2);

    relay.revoke_session(&kicked).await;

    let stats = relay.stats().snapshot();
    assert_eq!(stats.allocations_active, 1, "only the bystander's allocation is left: {stats:?}");
    assert_eq!(stats.revoked_allocations, 1);
    relayed.send_to(b"after", peer).await.ok();
    assert!(recv_within(&relayed, 500).await.is_none(), "a revoked allocation must not relay");

    let again = connect(&relay, &creds).await;
    assert!(again.allocate().await.is_err(), "a revoked session's credential must be refused");
    assert!(relay.stats().snapshot().auth_failures_unknown_session > 0);

    bystander_relayed.send_to(b"still here", peer).await.unwrap();
    assert!(recv_within(&bystander_relayed, 2000).await.is_some(), "others are unaffected");
    relay.shutdown().await;
}

#[tokio::test]
async fn registry_revoke_alone_also_tears_down_in_the_background() {
    let (relay, sessions) = spawn_relay(|_| {}).await;
    let (id, creds) = admit(&relay, "kicked-via-registry");
    let client = connect(&relay, &creds).await;
    let _relayed = client.allocate().await.unwrap();
    assert_eq!(relay.stats().snapshot().allocations_active, 1);

    sessions.revoke(&id);
    let stats = relay.stats();
    eventually("allocation closed", || stats.snapshot().allocations_active == 0).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn allocation_quota_is_per_credential() {
    let (relay, _) = spawn_relay(|c| c.max_allocations_per_credential = 1).await;
    let (_, creds) = admit(&relay, "quota");
    let (_, other) = admit(&relay, "quota-other");

    let first = connect(&relay, &creds).await;
    let _a = first.allocate().await.expect("first allocation");
    let second = connect(&relay, &creds).await;
    assert!(second.allocate().await.is_err(), "second allocation on one credential");
    assert_eq!(relay.stats().snapshot().quota_rejections, 1);

    let third = connect(&relay, &other).await;
    let _b = third.allocate().await.expect("another credential has its own quota");
    relay.shutdown().await;
}

#[tokio::test]
async fn byte_rate_limit_drops_excess_datagrams() {
    let (relay, _) = spawn_relay(|c| c.max_bytes_per_sec_per_credential = Some(2_000)).await;
    let (_, creds) = admit(&relay, "rate-limited");
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();

    let client = connect(&relay, &creds).await;
    let relayed = client.allocate().await.unwrap();
    let payload = [7u8; 500];
    for _ in 0..40 {
        relayed.send_to(&payload, peer_addr).await.unwrap();
    }

    let mut received = 0;
    let mut buf = [0u8; 1500];
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(300), peer.recv_from(&mut buf)).await {
        received += 1;
    }
    // A one-second bucket of 2000 bytes passes 4 datagrams of 500 (a few more if time passes).
    assert!((1..=8).contains(&received), "received {received} of 40");
    let stats = relay.stats().snapshot();
    assert!(stats.bandwidth_drops >= 30, "{stats:?}");
    relay.shutdown().await;
}
