//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod coturn;

use std::time::{Duration, SystemTime};

use turn_relay::{SessionId, SessionRegistry, TurnConfig, TurnCredentials, TurnRelay};

pub const SECRET: &str = "integration-test-shared-secret";

/// A relay on loopback (OS-chosen ports, 127.0.0.1 allowed as peer) after `tweak`.
pub async fn spawn_relay(tweak: impl FnOnce(&mut TurnConfig)) -> (TurnRelay, SessionRegistry) {
    let mut config = TurnConfig::loopback(SECRET);
    tweak(&mut config);
    let sessions = SessionRegistry::new();
    let relay = TurnRelay::start(config, sessions.clone()).await.expect("start relay");
    (relay, sessions)
}

/// Registers `session` and issues it a credential.
pub fn admit(relay: &TurnRelay, session: &str) -> (SessionId, TurnCredentials) {
    let id = SessionId::parse(session).unwrap();
    relay.sessions().register(id.clone());
    let creds = relay.issue(&id);
    (id, creds)
}

/// A credential for a registered session that expired an hour ago.
pub fn expired(relay: &TurnRelay, session: &str) -> TurnCredentials {
    let id = SessionId::parse(session).unwrap();
    relay.sessions().register(id.clone());
    relay.config().issue(&id, SystemTime::now() - Duration::from_secs(3600))
}

/// Polls `cond` for up to 5 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..250 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}
