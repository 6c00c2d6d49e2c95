//! A tiny Hive API node for tests: answers `condenser_api.get_accounts` for a fixed set of accounts whose posting
//! keys are real secp256k1 keys generated here, so tests sign exactly as Hive Keychain does.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::routing::post;
use axum::{Json, Router};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1, SecretKey};
use rand::RngCore;
use serde_json::{json, Value};

/// A Hive key pair.
#[derive(Clone)]
pub struct HiveKey {
    secret: SecretKey,
    /// `STM…`
    pub public: String,
}

impl HiveKey {
    pub fn generate() -> HiveKey {
        let mut bytes = [0u8; 32];
        loop {
            rand::thread_rng().fill_bytes(&mut bytes);
            if let Ok(secret) = SecretKey::from_slice(&bytes) {
                let public = PublicKey::from_secret_key(&Secp256k1::new(), &secret);
                return HiveKey { secret, public: chains::signature::hive_public_key_string("STM", &public) };
            }
        }
    }

    /// A compact signature over sha256(message), hex, header 31 + recovery id (what `signBuffer` returns).
    pub fn sign(&self, message: &str) -> String {
        let digest = sha256::Hash::hash(message.as_bytes()).to_byte_array();
        let signature = Secp256k1::new().sign_ecdsa_recoverable(&Message::from_digest(digest), &self.secret);
        let (recovery_id, rs) = signature.serialize_compact();
        let mut raw = vec![31 + recovery_id.to_i32() as u8];
        raw.extend_from_slice(&rs);
        hex::encode(raw)
    }

    /// The private key, hex: for a browser test's fake Hive Keychain, which signs in the page's driver.
    pub fn secret_hex(&self) -> String {
        hex::encode(self.secret.secret_bytes())
    }
}

/// The node: accounts `alice`, `bob`, `carol`, `dave` with fresh posting keys, and `mallory`'s key on no account.
pub struct HiveNode {
    pub url: String,
    pub keys: HashMap<&'static str, HiveKey>,
    pub mallory: HiveKey,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for HiveNode {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl HiveNode {
    pub async fn start() -> HiveNode {
        let keys: HashMap<&'static str, HiveKey> =
            ["alice", "bob", "carol", "dave"].into_iter().map(|name| (name, HiveKey::generate())).collect();
        let accounts: Arc<HashMap<String, String>> =
            Arc::new(keys.iter().map(|(name, key)| (name.to_string(), key.public.clone())).collect());
        let app = Router::new().route(
            "/",
            post(move |Json(request): Json<Value>| {
                let accounts = accounts.clone();
                async move {
                    assert_eq!(request["method"], "condenser_api.get_accounts");
                    let names = request["params"][0].as_array().cloned().unwrap_or_default();
                    let result: Vec<Value> = names
                        .iter()
                        .filter_map(|n| n.as_str())
                        .filter_map(|n| accounts.get(n).map(|key| (n, key)))
                        .map(|(name, key)| {
                            json!({
                                "name": name,
                                "owner": { "weight_threshold": 1, "account_auths": [], "key_auths": [] },
                                "active": { "weight_threshold": 1, "account_auths": [], "key_auths": [] },
                                "posting": { "weight_threshold": 1, "account_auths": [], "key_auths": [[key, 1]] },
                                "memo_key": key,
                            })
                        })
                        .collect();
                    Json(json!({ "jsonrpc": "2.0", "id": request["id"], "result": result }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        HiveNode { url, keys, mallory: HiveKey::generate(), server }
    }

    pub fn key(&self, account: &str) -> &HiveKey {
        &self.keys[account]
    }
}

/// One test body with a Hive node and the gateway pointed at it, on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! hive_app_test {
    ($name:ident, |$app:ident, $hive:ident| $body:expr) => {
        ticketing::both_backends!($name, |backend| async move {
            let $hive = $crate::creator_support::HiveNode::start().await;
            let url = $hive.url.clone();
            let $app = $crate::common::spawn_app_with(backend, |s| s.hive_api_url = url).await;
            $body.await;
        });
    };
}

// -------------------------------------------------------------------------------------------------------------
// Creators, events and tickets

pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 24 * HOUR;

/// A session token for `account`, signed with the test settings' secret (what a login would return).
pub fn token_for(account: &str) -> String {
    let secret = hex::decode("11".repeat(32)).unwrap();
    let account = ticketing::creators::AccountName::parse(account).unwrap();
    gateway::auth::creator::issue_session(&secret, &account, ticketing::now_ms()).0
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).unwrap().to_rfc3339()
}

/// Sets a creator's tier through the admin API; `until_ms` in the past makes a lapsed subscription.
pub async fn set_tier(app: &crate::common::TestApp, account: &str, tier: &str, until_ms: Option<i64>) {
    let mut body = serde_json::json!({ "tier": tier });
    if let Some(until) = until_ms {
        body["until"] = rfc3339(until).into();
    }
    let res = app
        .admin(reqwest::Method::PUT, &format!("/api/admin/creators/{account}/tier"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// The seed's example body, starting `days` from now.
pub fn event_body(days: i64) -> Value {
    let start = ticketing::now_ms() + days * DAY;
    json!({
        "title": "Premium VR Concert",
        "description": "Exclusive VR music experience",
        "space_type": "post",
        "space_id": "artist/concert-2024",
        "ticket_price": 25.00,
        "ticket_currency": "USD",
        "max_attendees": 500,
        "event_start": rfc3339(start),
        "event_end": rfc3339(start + 3 * HOUR),
        "supported_crypto": ["HIVE", "BTC", "ETH", "SOL"]
    })
}

/// Creates an event as `account` and returns its JSON view.
pub async fn create_event(app: &crate::common::TestApp, account: &str, body: &Value) -> Value {
    let res =
        app.client.post(app.url("/api/events/create")).bearer_auth(token_for(account)).json(body).send().await.unwrap();
    let status = res.status();
    let json: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{json}");
    json
}

/// Writes a paid quote and a ticket for `wallet` straight into the store (the purchase flow is tested elsewhere).
pub async fn insert_ticket(store: &ticketing::Store, event_id: i64, chain: &str, wallet: &str, status: &str) -> i64 {
    let status = ticketing::purchases::TicketStatus::try_from(status).expect("a ticket status");
    ticketing::testing::seed_ticket(store, event_id, chain, wallet, status).await
}

/// Moves an event's schedule (and sales window, from a day before) e.g. into the past, which the API refuses.
pub async fn reschedule(store: &ticketing::Store, event_id: i64, start: i64, end: i64) {
    ticketing::testing::reschedule_event(store, event_id, start, end, start - DAY).await
}
