//! Wallet access proofs end to end, on both databases: challenges issued over HTTP, signed with real keys (EVM,
//! Solana, Bitcoin), verified through `AppState::access` as the join endpoint and the WebSocket do; replays,
//! expiry, foreign events and domains, tampering, the seed's message, rate limits, audit rows and metrics.

use crate::common;

use common::wallets::{BtcWallet, EvmWallet, SolWallet};

use std::net::IpAddr;
use std::path::PathBuf;

use gateway::auth::access::{AccessError, AccessRequest, VerifiedAccess};
use gateway::configuration::Settings;
use gateway::startup::Application;
use gateway::state::AppState;
use reqwest::StatusCode;
use serde_json::Value;
use ticketing::testing::RawSql;
use ticketing::testing::TestDb;
use ticketing::Backend;
use tokio_util::sync::CancellationToken;

const EVENT: i64 = 42;

/// The gateway on a random port, with its state at hand (the verify path has no route of its own).
struct Gateway {
    address: String,
    client: reqwest::Client,
    state: AppState,
    shutdown: CancellationToken,
    data_dir: PathBuf,
    _db: TestDb,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

impl Gateway {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{}", self.address, path)).send().await.expect("request")
    }

    /// A challenge fetched over HTTP.
    async fn challenge(&self, event_id: i64, chain: &str, wallet: &str) -> Value {
        let res = self.get(&format!("/api/events/{event_id}/challenge?chain={chain}&wallet={wallet}")).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    async fn verify(&self, req: AccessRequest<'_>) -> Result<VerifiedAccess, AccessError> {
        self.state.access.verify(req, ticketing::now_ms()).await
    }

    async fn metric(&self, name_and_labels: &str) -> Option<f64> {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find(|l| l.split(' ').next() == Some(name_and_labels))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    async fn denials(&self) -> Vec<(String, Option<i64>, String, Option<String>)> {
        sqlx::query_as(
            "SELECT subject, event_id, detail, remote_addr FROM audit_log WHERE action = 'access.denied' ORDER BY id",
        )
        .fetch_all(self.state.store.raw_pool())
        .await
        .unwrap()
    }
}

async fn spawn(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Gateway {
    let db = TestDb::new(backend).await;
    let data_dir = std::env::temp_dir().join(format!("gateway-access-{:016x}", rand::random::<u64>()));
    let mut settings = common::test_settings(&db.url, data_dir.clone());
    configure(&mut settings);
    let app = Application::build(settings).await.expect("build app");
    let address = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    Gateway { address, client: reqwest::Client::new(), state, shutdown, data_dir, _db: db }
}

/// One test body on SQLite and on PostgreSQL, with optional settings.
macro_rules! access_test {
    ($name:ident, |$gw:ident| $body:expr) => {
        access_test!($name, |_s| {}, |$gw| $body);
    };
    ($name:ident, |$s:ident| $configure:expr, |$gw:ident| $body:expr) => {
        ticketing::both_backends!($name, |backend| async move {
            let $gw = spawn(backend, |$s: &mut Settings| $configure).await;
            $body.await;
        });
    };
}

fn request<'a>(
    event_id: i64,
    chain: &'a str,
    wallet: &'a str,
    message: &'a str,
    signature: &'a str,
) -> AccessRequest<'a> {
    AccessRequest { event_id, chain, wallet, message: Some(message), timestamp: None, signature, remote: None }
}

fn seed_message(event_id: i64, at: i64) -> String {
    format!("Access event {event_id} at {at}")
}

// ---- Challenges ---------------------------------------------------------------------------------------------

access_test!(evm_challenge_round_trip_then_replay, |gw| async move {
    let wallet = EvmWallet::new(7);
    let challenge = gw.challenge(EVENT, "eth", &wallet.address()).await;
    let message = challenge["message"].as_str().unwrap();
    let nonce = challenge["nonce"].as_str().unwrap();
    assert_eq!(challenge["chain"], "eth");
    // The message shows the EIP-55 spelling, as wallets expect; the answer names it too.
    let shown = challenge["wallet"].as_str().unwrap();
    assert_eq!(shown.to_lowercase(), wallet.address());
    assert_ne!(shown, wallet.address());
    let domain = gw.address.trim_start_matches("http://");
    assert!(
        message.starts_with(&format!("{domain} wants you to sign in with your Ethereum account:\n{shown}\n")),
        "{message}"
    );
    assert!(message.contains(&format!("Nonce: {nonce}\n")) && message.contains(&format!("Request ID: {EVENT}")));
    assert!(nonce.len() >= 22 && nonce.bytes().all(|c| c.is_ascii_alphanumeric()));
    // RFC 3339 UTC with a `Z` and milliseconds, as every time in the JSON API.
    let expires_at = challenge["expires_at"].as_str().unwrap();
    assert!(expires_at.ends_with('Z') && expires_at.len() == "2026-01-01T00:00:00.000Z".len(), "{expires_at}");
    let expires_at = chrono::DateTime::parse_from_rfc3339(expires_at).unwrap().timestamp_millis();
    assert!((expires_at - ticketing::now_ms() - 5 * 60_000).abs() < 10_000);

    let signature = wallet.sign(message);
    let ok = gw.verify(request(EVENT, "eth", shown, message, &signature)).await.unwrap();
    assert_eq!(ok, VerifiedAccess { chain: chains::Chain::Eth, wallet: wallet.address() });
    let used: (String, Option<i64>, Option<String>) =
        sqlx::query_as("SELECT kind, event_id, wallet FROM used_challenges WHERE key LIKE $1")
            .bind(format!("%{nonce}"))
            .fetch_one(gw.state.store.raw_pool())
            .await
            .unwrap();
    assert_eq!(used, ("nonce".to_owned(), Some(EVENT), Some(wallet.address())));

    let remote: IpAddr = "203.0.113.9".parse().unwrap();
    let replay = gw
        .verify(AccessRequest { remote: Some(remote), ..request(EVENT, "eth", &wallet.address(), message, &signature) })
        .await
        .unwrap_err();
    assert_eq!(replay.code(), "replayed");
    assert_eq!((replay.http_status(), replay.ws_close_code()), (axum::http::StatusCode::UNAUTHORIZED, 4401));

    let denials = gw.denials().await;
    assert_eq!(denials.len(), 1);
    let (subject, event_id, detail, remote_addr) = &denials[0];
    assert_eq!(
        (subject.as_str(), *event_id, remote_addr.as_deref()),
        (wallet.address().as_str(), Some(EVENT), Some("203.0.113.9"))
    );
    let detail: Value = serde_json::from_str(detail).unwrap();
    assert_eq!(detail["reason"], "replayed");
    assert_eq!(gw.metric("gateway_access_denials_total{reason=\"replayed\"}").await, Some(1.0));
    assert_eq!(gw.metric("gateway_access_verifications_total").await, Some(1.0));
});

access_test!(sol_and_btc_challenge_round_trips, |gw| async move {
    let sol = SolWallet::new(3);
    let challenge = gw.challenge(EVENT, "sol", &sol.address()).await;
    let message = challenge["message"].as_str().unwrap();
    assert!(message.contains("Solana account") && message.contains(&sol.address()));
    let signature = sol.sign(message);
    let ok = gw.verify(request(EVENT, "sol", &sol.address(), message, &signature)).await.unwrap();
    assert_eq!(ok, VerifiedAccess { chain: chains::Chain::Sol, wallet: sol.address() });
    let replay = gw.verify(request(EVENT, "sol", &sol.address(), message, &signature)).await.unwrap_err();
    assert_eq!(replay.code(), "replayed");

    let btc = BtcWallet::new(5);
    let challenge = gw.challenge(EVENT, "btc", &btc.address()).await;
    let message = challenge["message"].as_str().unwrap();
    assert!(message.contains("Bitcoin account") && message.contains(&format!("Event: {EVENT}\n")));
    let signature = btc.sign(message);
    let ok = gw.verify(request(EVENT, "btc", &btc.address(), message, &signature)).await.unwrap();
    assert_eq!(ok, VerifiedAccess { chain: chains::Chain::Btc, wallet: btc.address() });
    assert_eq!(
        gw.verify(request(EVENT, "btc", &btc.address(), message, &signature)).await.unwrap_err().code(),
        "replayed"
    );
    assert_eq!(gw.metric("gateway_access_denials_total{reason=\"replayed\"}").await, Some(2.0));
});

access_test!(concurrent_uses_of_one_challenge_admit_exactly_one, |gw| async move {
    let wallet = EvmWallet::new(8);
    let challenge = gw.challenge(EVENT, "eth", &wallet.address()).await;
    let message = challenge["message"].as_str().unwrap().to_owned();
    let signature = wallet.sign(&message);
    let address = wallet.address();
    let attempts = (0..8).map(|_| {
        let (state, message, signature, address) =
            (gw.state.clone(), message.clone(), signature.clone(), address.clone());
        tokio::spawn(async move {
            state.access.verify(request(EVENT, "eth", &address, &message, &signature), ticketing::now_ms()).await
        })
    });
    let results: Vec<_> = futures_util::future::join_all(attempts).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.code() == "replayed"));
});

access_test!(challenges_are_bound_to_event_time_domain_and_text, |gw| async move {
    let wallet = EvmWallet::new(9);
    let address = wallet.address();
    let challenge = gw.challenge(EVENT, "eth", &address).await;
    let message = challenge["message"].as_str().unwrap();
    let signature = wallet.sign(message);

    // Another event.
    let err = gw.verify(request(EVENT + 1, "eth", &address, message, &signature)).await.unwrap_err();
    assert_eq!(err.code(), "wrong_event");
    // Another EVM chain than the one the challenge names.
    let err = gw.verify(request(EVENT, "bnb", &address, message, &signature)).await.unwrap_err();
    assert_eq!(err.code(), "wrong_chain");
    // After its expiry.
    let later = ticketing::now_ms() + 5 * 60_000 + 1;
    let err = gw.state.access.verify(request(EVENT, "eth", &address, message, &signature), later).await.unwrap_err();
    assert_eq!((err.code(), err.ws_close_code()), ("expired", 4401));
    // Tampered after signing: the signature no longer matches the text.
    let tampered = message.replace(&format!("Request ID: {EVENT}"), "Request ID: 43");
    let err = gw.verify(request(43, "eth", &address, &tampered, &signature)).await.unwrap_err();
    assert_eq!(err.code(), "wrong_signer");
    // Another wallet's signature over this wallet's challenge.
    let err = gw.verify(request(EVENT, "eth", &address, message, &EvmWallet::new(10).sign(message))).await.unwrap_err();
    assert_eq!(err.code(), "wrong_signer");
    // A challenge the client wrote itself (its own nonce), correctly signed.
    let domain = gw.state.access.domain().to_owned();
    let now = chrono::Utc::now();
    let forged = chains::challenge::Challenge::new(
        domain.clone(),
        format!("http://{domain}"),
        EVENT,
        chains::Chain::Eth,
        challenge["wallet"].as_str().unwrap(),
        now,
        chrono::Duration::minutes(5),
    )
    .to_message();
    let err = gw.verify(request(EVENT, "eth", &address, &forged, &wallet.sign(&forged))).await.unwrap_err();
    assert_eq!(err.code(), "unknown_challenge");
    // A challenge naming another site (phishing relay).
    let elsewhere = chains::challenge::Challenge::new(
        "evil.example",
        "https://evil.example",
        EVENT,
        chains::Chain::Eth,
        challenge["wallet"].as_str().unwrap(),
        now,
        chrono::Duration::minutes(5),
    )
    .to_message();
    let err = gw.verify(request(EVENT, "eth", &address, &elsewhere, &wallet.sign(&elsewhere))).await.unwrap_err();
    assert_eq!(err.code(), "wrong_domain");
    // Still good after all that: refusals consume nothing.
    gw.verify(request(EVENT, "eth", &address, message, &signature)).await.unwrap();

    let reasons: Vec<String> = gw
        .denials()
        .await
        .into_iter()
        .map(|(_, _, detail, _)| serde_json::from_str::<Value>(&detail).unwrap()["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        ["wrong_event", "wrong_chain", "expired", "wrong_signer", "wrong_signer", "unknown_challenge", "wrong_domain"]
    );
    assert_eq!(gw.metric("gateway_access_denials_total{reason=\"wrong_signer\"}").await, Some(2.0));
});

access_test!(challenge_requests_are_checked, |gw| async move {
    let cases = [
        ("/api/events/42/challenge?chain=doge&wallet=x", StatusCode::BAD_REQUEST, "unknown_chain"),
        ("/api/events/42/challenge?chain=eth&wallet=0x1234", StatusCode::BAD_REQUEST, "invalid_wallet"),
        ("/api/events/42/challenge?chain=hive&wallet=Not%20A%20Wallet", StatusCode::BAD_REQUEST, "invalid_wallet"),
        ("/api/events/42/challenge?chain=eth", StatusCode::BAD_REQUEST, "invalid_query"),
        ("/api/events/forty-two/challenge?chain=eth&wallet=x", StatusCode::BAD_REQUEST, "invalid_path"),
    ];
    for (path, status, code) in cases {
        let res = gw.get(path).await;
        assert_eq!(res.status(), status, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}");
    }
    // Hive accounts and Monero addresses get the generic layout.
    let hive = gw.challenge(EVENT, "hive", "alice.tickets").await;
    assert!(hive["message"].as_str().unwrap().contains("Hive account:\nalice.tickets\n"));
    assert_eq!(hive["chain"], "hive");
    // Malformed verification requests are 4400s, not signature failures.
    let err = gw.verify(request(EVENT, "eth", "0x1234", "x", "0x00")).await.unwrap_err();
    assert_eq!((err.code(), err.ws_close_code()), ("invalid_wallet", 4400));
    let wallet = EvmWallet::new(11);
    let err = gw
        .verify(AccessRequest { message: None, ..request(EVENT, "eth", &wallet.address(), "", "0x00") })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "missing_message");
    let err = gw.verify(request(EVENT, "eth", &wallet.address(), "hello", "zz")).await.unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("bad_encoding", axum::http::StatusCode::BAD_REQUEST));
});

// ---- The seed's message -------------------------------------------------------------------------------------

access_test!(seed_message_within_five_minutes_once, |gw| async move {
    let wallet = EvmWallet::new(12);
    let address = wallet.address();
    let now = ticketing::now_ms();

    let recent = seed_message(EVENT, now - 2 * 60_000);
    let signature = wallet.sign(&recent);
    let ok = gw.verify(request(EVENT, "eth", &address, &recent, &signature)).await.unwrap();
    assert_eq!(ok.wallet, address);
    assert_eq!(gw.verify(request(EVENT, "eth", &address, &recent, &signature)).await.unwrap_err().code(), "replayed");
    let kind: String = sqlx::query_scalar("SELECT kind FROM used_challenges WHERE wallet = $1")
        .bind(&address)
        .fetch_one(gw.state.store.raw_pool())
        .await
        .unwrap();
    assert_eq!(kind, "signature");

    // The seed clients' form: only the timestamp travels; the text is rebuilt from it.
    let at = now - 1000;
    let signature = wallet.sign(&seed_message(EVENT, at));
    let by_timestamp =
        AccessRequest { message: None, timestamp: Some(at), ..request(EVENT, "eth", &address, "", &signature) };
    gw.verify(by_timestamp).await.unwrap();
    assert_eq!(gw.verify(by_timestamp).await.unwrap_err().code(), "replayed");

    let stale = seed_message(EVENT, now - 6 * 60_000);
    let err = gw.verify(request(EVENT, "eth", &address, &stale, &wallet.sign(&stale))).await.unwrap_err();
    assert_eq!(err.code(), "expired");
    let future = seed_message(EVENT, now + 6 * 60_000);
    let err = gw.verify(request(EVENT, "eth", &address, &future, &wallet.sign(&future))).await.unwrap_err();
    assert_eq!(err.code(), "not_yet_valid");
    let other = seed_message(EVENT + 1, now);
    let err = gw.verify(request(EVENT, "eth", &address, &other, &wallet.sign(&other))).await.unwrap_err();
    assert_eq!(err.code(), "wrong_event");
    // A Solana wallet, within the window.
    let sol = SolWallet::new(4);
    let text = seed_message(EVENT, now + 60_000);
    gw.verify(request(EVENT, "sol", &sol.address(), &text, &sol.sign(&text))).await.unwrap();
});

// ---- Rate limits --------------------------------------------------------------------------------------------

access_test!(
    attempts_are_rate_limited_per_wallet_and_address,
    |s| {
        s.access.wallet_attempts_per_minute = 3;
        s.access.ip_attempts_per_minute = 5;
        s.access.ip_challenges_per_minute = 2;
    },
    |gw| async move {
        let wallet = EvmWallet::new(13);
        let address = wallet.address();
        for _ in 0..3 {
            let err = gw.verify(request(EVENT, "eth", &address, "Access event 42 at 1", "0x00")).await.unwrap_err();
            assert_ne!(err.code(), "rate_limited");
        }
        // Even a valid proof waits once the wallet's budget is spent.
        let text = seed_message(EVENT, ticketing::now_ms());
        let err = gw.verify(request(EVENT, "eth", &address, &text, &wallet.sign(&text))).await.unwrap_err();
        assert_eq!(err.code(), "rate_limited");
        assert_eq!((err.http_status(), err.ws_close_code()), (axum::http::StatusCode::TOO_MANY_REQUESTS, 4429));

        // Per address, across wallets.
        let remote: IpAddr = "198.51.100.7".parse().unwrap();
        let mut codes = Vec::new();
        for seed in 20..26 {
            let other = EvmWallet::new(seed).address();
            let req =
                AccessRequest { remote: Some(remote), ..request(EVENT, "eth", &other, "Access event 42 at 1", "0x00") };
            codes.push(gw.verify(req).await.unwrap_err().code());
        }
        assert_eq!(codes.iter().filter(|c| **c == "rate_limited").count(), 1, "{codes:?}");
        assert_eq!(codes.last(), Some(&"rate_limited"));
        assert_eq!(gw.metric("gateway_access_denials_total{reason=\"rate_limited\"}").await, Some(2.0));
        // Rate-limited attempts are counted, not written down.
        assert_eq!(gw.denials().await.len(), 3 + 5);

        // Challenges over HTTP, per client address.
        for _ in 0..2 {
            gw.challenge(EVENT, "eth", &address).await;
        }
        let res = gw.get(&format!("/api/events/{EVENT}/challenge?chain=eth&wallet={address}")).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited");
    }
);

// ---- Clean-up -----------------------------------------------------------------------------------------------

access_test!(expired_used_rows_are_swept, |gw| async move {
    let pool = gw.state.store.raw_pool();
    sqlx::query("INSERT INTO used_challenges (key, kind, event_id, wallet, expires_at, used_at) VALUES ('access:old', 'nonce', 1, 'w', $1, $1)")
        .bind(ticketing::now_ms() - 3_600_000)
        .execute(pool)
        .await
        .unwrap();
    let wallet = EvmWallet::new(14);
    let text = seed_message(EVENT, ticketing::now_ms());
    gw.verify(request(EVENT, "eth", &wallet.address(), &text, &wallet.sign(&text))).await.unwrap();
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM used_challenges").fetch_all(pool).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("access-seed:"));
});
