//! Test support: the real gateway on a random port against a fresh SQLite file or PostgreSQL schema.
#![allow(dead_code)]

pub mod wallets;

use std::path::PathBuf;

use gateway::configuration::{LogFormat, Settings};
use gateway::startup::Application;
use ticketing::testing::TestDb;
use ticketing::Backend;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: ticketing::Store,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub data_dir: PathBuf,
    /// The running app's shared state (hub, TURN relay, purchases, …).
    pub state: gateway::state::AppState,
    _db: TestDb,
}

impl TestApp {
    pub fn db_url(&self) -> String {
        self._db.url.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// The JSON body of a GET as the holder of bearer `token`.
    pub async fn get_json_as(&self, path: &str, token: &str) -> serde_json::Value {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request").json().await.expect("JSON")
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(ADMIN_TOKEN)
    }

    /// A $25 event by Pro creator `alice`, on sale since a second ago and starting in an hour, with `seats` seats,
    /// payable in `accepts` (comma-separated codes).
    #[allow(dead_code)]
    pub async fn usd_event_on_sale(&self, title: &str, seats: i64, accepts: &str) -> i64 {
        use ticketing::creators::{AccountName, Tier};
        self.store.set_tier(&AccountName::parse("alice").unwrap(), Tier::Pro, None, "test").await.unwrap();
        let now = ticketing::now_ms();
        ticketing::testing::SeedEvent::new(now - 1000)
            .title(title)
            .accepts(accepts)
            .capacity(seats)
            .starts(now + 3_600_000)
            .ends(now + 7_200_000)
            .insert(&self.store)
            .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

pub fn test_settings(database_url: &str, data_dir: PathBuf) -> Settings {
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.server.shutdown_grace_secs = 5;
    settings.database.url = database_url.to_owned();
    settings.database.max_connections = 8;
    settings.log.format = LogFormat::Pretty;
    settings.log.filter = "warn".into();
    settings.data_dir = data_dir;
    settings.secret = Some("11".repeat(32));
    settings.admin_token = Some(ADMIN_TOKEN.to_owned());
    settings.rates.source = gateway::configuration::RateSourceKind::Static;
    // Tests report payments themselves (through `Purchases`), as a watcher in another process would.
    settings.payments.watched_elsewhere = ["hive", "btc", "eth", "pol", "bnb", "sol", "xmr"].map(String::from).to_vec();
    settings.rooms.auth_timeout_secs = 1;
    settings.rooms.attendance_flush_ms = 200;
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::new(backend).await;
    let data_dir = std::env::temp_dir().join(format!("gateway-app-{}", uuid_like()));
    let mut settings = test_settings(&db.url, data_dir.clone());
    configure(&mut settings);
    let app = Application::build(settings).await.expect("build app");
    let address = format!("http://{}", app.local_addr());
    let store = app.state().store.clone();
    let shutdown = app.shutdown_token();
    let state = app.state().clone();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp { address, client: reqwest::Client::new(), store, shutdown, server, data_dir, state, _db: db }
}

fn uuid_like() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

/// One test body, run against the gateway on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! app_test {
    ($name:ident, |$app:ident| $body:expr) => {
        ticketing::both_backends!($name, |backend| async move {
            let $app = $crate::common::spawn_app(backend).await;
            $body.await;
        });
    };
}

/// The `http://` address a gateway child process logs (JSON logs on its piped stdout) once it listens; the rest
/// of its stdout is drained on a thread so the child never blocks on a full pipe.
pub fn listening_address(child: &mut std::process::Child, within: std::time::Duration) -> String {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["message"] == "listening" {
                    let _ = tx.send(v["address"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    });
    let address = rx.recv_timeout(within).expect("the gateway logs its address");
    format!("http://{address}")
}

/// Polls `check` every 20 ms until it holds; fails the test naming `what` after `within`. For waits on a
/// condition the server reaches on its own (a flush, a close), instead of sleeping for a guess.
pub async fn eventually<F, Fut>(what: &str, within: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
