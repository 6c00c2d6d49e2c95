//! The exact STUN error codes a client gets, checked on the wire with hand-built requests:
//! 401 for every kind of bad credential, 486 past the allocation quota, 403 for a denied peer.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{admit, expired, spawn_relay};
use stun::agent::TransactionId;
use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::error_code::{ErrorCode, ErrorCodeAttribute};
use stun::integrity::MessageIntegrity;
use stun::message::{
    Getter, Message, MessageType, Setter, CLASS_ERROR_RESPONSE, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE,
    METHOD_CREATE_PERMISSION,
};
use stun::textattrs::TextAttribute;
use tokio::net::UdpSocket;
use turn::proto::peeraddr::PeerAddress;
use turn::proto::reqtrans::RequestedTransport;
use turn::proto::PROTO_UDP;

/// A raw STUN client on one UDP socket (one 5-tuple).
struct RawClient {
    socket: UdpSocket,
    server: SocketAddr,
    realm: String,
    nonce: String,
}

impl RawClient {
    /// Connects and learns REALM and NONCE from the unauthenticated Allocate's 401 challenge.
    async fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut c = RawClient { socket, server, realm: String::new(), nonce: String::new() };
        let challenge = c.request(METHOD_ALLOCATE, vec![Box::new(RequestedTransport { protocol: PROTO_UDP })]).await;
        assert_eq!(code(&challenge), Some(401), "unauthenticated Allocate is challenged");
        c.realm = TextAttribute::get_from_as(&challenge, ATTR_REALM).unwrap().text;
        c.nonce = TextAttribute::get_from_as(&challenge, ATTR_NONCE).unwrap().text;
        c
    }

    async fn request(&self, method: stun::message::Method, attrs: Vec<Box<dyn Setter>>) -> Message {
        let mut setters: Vec<Box<dyn Setter>> =
            vec![Box::new(TransactionId::new()), Box::new(MessageType::new(method, CLASS_REQUEST))];
        setters.extend(attrs);
        let mut m = Message::new();
        m.build(&setters).unwrap();
        self.socket.send_to(&m.raw, self.server).await.unwrap();
        let mut buf = vec![0u8; 1500];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), self.socket.recv_from(&mut buf))
            .await
            .expect("a response within 2 s")
            .unwrap();
        let mut res = Message { raw: buf[..n].to_vec(), ..Default::default() };
        res.decode().unwrap();
        assert_eq!(res.transaction_id, m.transaction_id);
        res
    }

    /// A request carrying USERNAME, REALM, NONCE and MESSAGE-INTEGRITY made with `password`.
    async fn signed(
        &self,
        method: stun::message::Method,
        mut attrs: Vec<Box<dyn Setter>>,
        username: &str,
        password: &str,
    ) -> Message {
        attrs.push(Box::new(TextAttribute::new(ATTR_USERNAME, username.into())));
        attrs.push(Box::new(TextAttribute::new(ATTR_REALM, self.realm.clone())));
        attrs.push(Box::new(TextAttribute::new(ATTR_NONCE, self.nonce.clone())));
        attrs.push(Box::new(MessageIntegrity::new_long_term_integrity(
            username.into(),
            self.realm.clone(),
            password.into(),
        )));
        self.request(method, attrs).await
    }

    async fn allocate(&self, username: &str, password: &str) -> Message {
        let attrs: Vec<Box<dyn Setter>> = vec![Box::new(RequestedTransport { protocol: PROTO_UDP })];
        self.signed(METHOD_ALLOCATE, attrs, username, password).await
    }

    async fn permit(&self, peer: SocketAddr, username: &str, password: &str) -> Message {
        let attrs: Vec<Box<dyn Setter>> = vec![Box::new(PeerAddress { ip: peer.ip(), port: peer.port() })];
        self.signed(METHOD_CREATE_PERMISSION, attrs, username, password).await
    }
}

fn code(m: &Message) -> Option<u16> {
    if m.typ.class != CLASS_ERROR_RESPONSE {
        return None;
    }
    let mut e = ErrorCodeAttribute { code: ErrorCode(0), reason: vec![] };
    e.get_from(m).ok()?;
    Some(e.code.0)
}

#[tokio::test]
async fn bad_credentials_get_401_and_are_counted_by_reason() {
    let (relay, _) = spawn_relay(|_| {}).await;
    let server = relay.udp_addr().unwrap();
    let (_, good) = admit(&relay, "good");
    let old = expired(&relay, "old");
    let unknown = turn_relay::issue(
        common::SECRET,
        &turn_relay::SessionId::parse("never-registered").unwrap(),
        Duration::from_secs(600),
        std::time::SystemTime::now(),
        vec![],
    );

    let c = RawClient::new(server).await;
    let forged = c.allocate(&good.username, "bm90IHRoZSBwYXNzd29yZA==").await;
    assert_eq!(code(&forged), Some(401), "forged");
    let res = c.allocate(&old.username, &old.credential).await;
    assert_eq!(code(&res), Some(401), "expired");
    let res = c.allocate(&unknown.username, &unknown.credential).await;
    assert_eq!(code(&res), Some(401), "unknown session");
    let res = c.allocate("alice", "whatever").await;
    assert_eq!(code(&res), Some(401), "malformed");
    // The refusal repeats the realm so the client knows which credentials failed.
    assert_eq!(TextAttribute::get_from_as(&res, ATTR_REALM).unwrap().text, relay.config().realm);

    let ok = c.allocate(&good.username, &good.credential).await;
    assert_eq!(ok.typ.class, CLASS_SUCCESS_RESPONSE, "valid credential: {:?}", code(&ok));

    let s = relay.stats().snapshot();
    assert_eq!(s.auth_failures(), [("expired", 1), ("forged", 1), ("unknown_session", 1), ("malformed", 1)]);
    relay.shutdown().await;
}

#[tokio::test]
async fn quota_gets_486_and_denied_peer_gets_403() {
    let (relay, _) = spawn_relay(|c| c.max_allocations_per_credential = 1).await;
    let server = relay.udp_addr().unwrap();
    let (_, creds) = admit(&relay, "limits");
    let (user, pass) = (creds.username.as_str(), creds.credential.as_str());

    let first = RawClient::new(server).await;
    assert_eq!(first.allocate(user, pass).await.typ.class, CLASS_SUCCESS_RESPONSE);
    let second = RawClient::new(server).await;
    let res = second.allocate(user, pass).await;
    assert_eq!(code(&res), Some(486), "quota reached");
    // Refusals to an authenticated request are signed with its key.
    MessageIntegrity::new_long_term_integrity(user.into(), first.realm.clone(), pass.into())
        .check(&mut res.clone())
        .expect("486 carries a valid MESSAGE-INTEGRITY");

    for denied in ["10.0.0.1:9", "192.168.1.1:9", "169.254.169.254:80", "[::1]:9", "127.0.0.2:9"] {
        let res = first.permit(denied.parse().unwrap(), user, pass).await;
        assert_eq!(code(&res), Some(403), "permission to {denied}");
    }
    let res = first.permit("127.0.0.1:9".parse().unwrap(), user, pass).await;
    assert_eq!(res.typ.class, CLASS_SUCCESS_RESPONSE, "allow-listed peer: {:?}", code(&res));

    let s = relay.stats().snapshot();
    assert_eq!((s.quota_rejections, s.peer_denied), (1, 5));
    relay.shutdown().await;
}
