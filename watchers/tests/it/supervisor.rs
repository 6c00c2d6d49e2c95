//! `spawn_all` and the supervisor: configuration from TOML, watchers running as tasks, restarts with
//! back-off after errors and panics, status for `/readyz`, shutdown.

use crate::{esplora, fixtures};

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chains::{Chain, Currency};
use ticketing::store_test;
use tokio_util::sync::CancellationToken;
use watchers::{
    spawn_all, PaymentWatcher, PollReport, Supervisor, SupervisorConfig, WatchContext, WatchError, WatcherFactory,
    WatchersConfig,
};

use esplora::{payment, Esplora};
use fixtures::*;

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn toml_configuration_with_defaults() {
    let config: WatchersConfig = toml::from_str(
        r#"
        [[evm]]
        chain = "eth"
        rpc_url = "https://eth.example/rpc"
        chain_id = 1
        tokens = [{ symbol = "USDC", contract = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", decimals = 6 }]

        [[evm]]
        chain = "pol"
        rpc_url = "https://polygon.example/rpc"

        [[evm]]
        chain = "bnb"
        rpc_url = "https://bsc.example/rpc"
        confirmations = 20

        [btc]
        esplora_url = "https://blockstream.info/api"

        [supervisor]
        restart_backoff_ms = 500
        "#,
    )
    .unwrap();
    let finality: Vec<_> = config.evm.iter().map(|e| e.finality()).collect();
    assert_eq!(
        finality,
        vec![
            watchers::Finality::FinalizedTag { fallback: 12 },
            watchers::Finality::Confirmations(128),
            watchers::Finality::Confirmations(20),
        ]
    );
    let btc = config.btc.as_ref().unwrap();
    assert_eq!((btc.finality(), btc.watch_mempool), (watchers::Finality::Confirmations(2), true));
    assert_eq!(config.supervisor.restart_backoff_ms, 500);
    assert_eq!(config.supervisor.max_restart_backoff_ms, 60_000);
    assert_eq!(config.clone().only(Chain::Pol).evm.len(), 1);
    assert!(config.only(Chain::Pol).btc.is_none());
    assert!(toml::from_str::<WatchersConfig>("[btc]\nesplora = \"x\"").is_err(), "unknown keys are errors");
}

store_test!(spawned_watchers_credit_payments_and_report_status, |store: Store| async move {
    let esplora = Esplora::start(100).await;
    let p = purchases(&store);
    let event_id = event(&store, 10, Currency::Btc, "0.001").await;
    let config: WatchersConfig = toml::from_str(&format!(
        r#"
        [[evm]]
        chain = "eth"
        rpc_url = "http://127.0.0.1:9"
        rpc_attempts = 1
        rpc_timeout_ms = 500

        [btc]
        esplora_url = "{}"
        poll_interval_ms = 20

        [supervisor]
        restart_backoff_ms = 20
        max_restart_backoff_ms = 100
        "#,
        esplora.url
    ))
    .unwrap();
    let shutdown = CancellationToken::new();
    let supervisor = spawn_all(config, p.clone(), shutdown.clone());
    let btc = |s: &Supervisor| s.status().into_iter().find(|w| w.chain == Chain::Btc).unwrap();
    eventually("the Bitcoin watcher to start", || btc(&supervisor).healthy && btc(&supervisor).cursor_height == 100)
        .await;

    let q = quote(&p, event_id, Currency::Btc).await;
    esplora.broadcast(payment(9, &[(&q.payment_address, 100_000)]));
    esplora.mine();
    esplora.mine_empty(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ticket(&p, &q).await.is_none() {
        assert!(Instant::now() < deadline, "no ticket from the supervised watcher");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually("the cursor to reach the tip", || btc(&supervisor).cursor_height == 102).await;
    let status = btc(&supervisor);
    assert_eq!((status.healthy, status.head_height, status.lag, status.restarts), (true, 102, 0, 0));
    let metrics = supervisor.metrics().into_iter().find(|(c, _)| *c == Chain::Btc).unwrap().1;
    assert_eq!((metrics.payments_seen.get(), metrics.payments_confirmed.get()), (1, 1));

    // The EVM watcher's node does not answer: it keeps being restarted and is reported unhealthy.
    eventually("the EVM watcher to be restarted", || {
        supervisor.status().iter().any(|w| w.chain == Chain::Eth && w.restarts >= 2)
    })
    .await;
    let eth = supervisor.status().into_iter().find(|w| w.chain == Chain::Eth).unwrap();
    assert!(!eth.healthy);
    assert!(eth.last_error.as_deref().unwrap_or_default().contains("rpc"), "{eth:?}");
    assert!(!supervisor.is_ready());
    assert!(metrics.rpc_errors.get() == 0);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), supervisor.join()).await.expect("watchers stop on shutdown");
});

/// Panics on its first run's first tick, then works.
struct Flaky {
    runs: Arc<AtomicU32>,
}

#[async_trait::async_trait]
impl PaymentWatcher for Flaky {
    fn chain(&self) -> Chain {
        Chain::Btc
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(10)
    }

    async fn resume(&mut self, _ctx: &WatchContext) -> Result<(), WatchError> {
        Ok(())
    }

    async fn poll_once(&mut self, _ctx: &WatchContext) -> Result<PollReport, WatchError> {
        if self.runs.load(Ordering::SeqCst) == 1 {
            panic!("bad block");
        }
        Ok(PollReport { head_height: 7, cursor_height: 7, ..PollReport::default() })
    }
}

store_test!(a_panicking_watcher_is_restarted, |store: Store| async move {
    let p = purchases(&store);
    let shutdown = CancellationToken::new();
    let supervisor = Supervisor::new(
        p,
        shutdown.clone(),
        SupervisorConfig { restart_backoff_ms: 10, max_restart_backoff_ms: 50, stale_after_ms: 60_000 },
    );
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let factory: WatcherFactory = Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Flaky { runs: counter.clone() }) as Box<dyn PaymentWatcher>)
    });
    supervisor.spawn(Chain::Btc, factory);
    eventually("a healthy second run", || supervisor.status()[0].healthy).await;
    let status = &supervisor.status()[0];
    assert_eq!((status.restarts, status.head_height, status.last_error.as_deref()), (1, 7, None));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    supervisor.shutdown().await;
});
