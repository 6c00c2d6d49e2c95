//! A few seconds of each scenario against the real gateway running in-process (and against the baseline when
//! it is installed), asserting what must hold at any load: nothing lost, every broadcast fanned out to every
//! other peer of its room, every connection admitted.

use std::time::Duration;

use gateway::configuration::Settings;
use gateway::startup::Application;
use load_tests::scenarios::{self, Outcome, Params, Scenario};
use load_tests::target::{self, Kind, Server};
use ticketing::testing::TestDb;
use ticketing::Backend;

fn params(peers: usize, rooms: usize, seconds: f64) -> Params {
    Params {
        peers,
        rooms,
        seconds,
        rate_hz: 15.0,
        guaranteed_every: 5,
        concurrency: 8,
        churn_every: 0.0,
        backend: Backend::Sqlite,
        shard_size: 50,
    }
}

/// Our gateway in-process on a fresh SQLite file; the returned handle keeps it (and its database) alive.
async fn gateway() -> (Server, TestDb, tokio_util_like::Stop) {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.database.url = db.url.clone();
    settings.data_dir = std::path::Path::new(db.url.trim_start_matches("sqlite://")).parent().unwrap().to_path_buf();
    settings.secret = Some(target::SECRET.into());
    settings.rates.source = gateway::configuration::RateSourceKind::Static;
    settings.log.filter = "warn".into();
    settings.access.ip_attempts_per_minute = 1_000_000;
    settings.access.ip_challenges_per_minute = 1_000_000;
    let app = Application::build(settings).await.expect("build the gateway");
    let server = Server::external(app.local_addr(), app.state().store.clone());
    let stop = tokio_util_like::Stop(app.shutdown_token());
    tokio::spawn(app.run_until_stopped());
    (server, db, stop)
}

mod tokio_util_like {
    /// Stops the in-process gateway when the test ends.
    pub struct Stop(pub tokio_util::sync::CancellationToken);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }
}

fn assert_full_fanout(o: &Outcome, peers: usize, rooms: usize) {
    assert_eq!(o.connections_ok, o.connections_attempted, "{o:#?}");
    assert!(o.sent > 0, "{o:#?}");
    assert_eq!(o.lost, 0, "nothing may be lost: {o:#?}");
    assert_eq!(o.delivered, o.expected, "{o:#?}");
    // With no slow readers every message reached each of the other peers of its room exactly once.
    if o.slow_delivered.is_none() {
        assert_eq!(o.expected, o.sent * (peers as u64 - 1), "each message is owed to the {} others: {o:#?}", peers - 1);
    }
    let _ = rooms;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_reaches_every_other_peer() {
    let (mut server, _db, _stop) = gateway().await;
    let o = scenarios::run(Scenario::Fanout, Some(&mut server), &params(12, 1, 2.0)).await.unwrap();
    assert_full_fanout(&o, 12, 1);
    assert!(o.latency.unwrap().p99_ms < 1000.0, "{o:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rooms_with_churn_keep_rooms_apart() {
    let (mut server, _db, _stop) = gateway().await;
    let mut p = params(4, 5, 3.0);
    p.churn_every = 1.5;
    let o = scenarios::run(Scenario::Rooms, Some(&mut server), &p).await.unwrap();
    assert!(o.connections_attempted > 20, "churners joined too: {o:#?}");
    assert_full_fanout(&o, 4, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_stay_admitted() {
    let (mut server, _db, _stop) = gateway().await;
    let o = scenarios::run(Scenario::Idle, Some(&mut server), &params(200, 1, 2.0)).await.unwrap();
    assert_eq!((o.connections_attempted, o.connections_ok), (200, 200), "{o:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_storm_admits_every_ticket() {
    let (mut server, _db, _stop) = gateway().await;
    let o = scenarios::run(Scenario::JoinStorm, Some(&mut server), &params(100, 1, 1.0)).await.unwrap();
    assert_eq!((o.connections_attempted, o.connections_ok), (100, 100), "{o:#?}");
    assert!(o.join.unwrap().p50_ms > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_do_not_cost_the_others_anything() {
    let (mut server, _db, _stop) = gateway().await;
    let o = scenarios::run(Scenario::Slow, Some(&mut server), &params(20, 1, 3.0)).await.unwrap();
    assert!(o.slow_closed.is_some());
    assert_full_fanout(&o, 20, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_are_created_without_failures() {
    let mut p = params(4, 0, 1.0);
    p.concurrency = 4;
    let o = scenarios::run(Scenario::Quotes, None, &p).await.unwrap();
    assert!(o.quotes_per_sec.unwrap() > 10.0, "{o:#?}");
    assert_eq!(o.lost, 0, "{o:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_relays_the_same_workload() {
    let script = target::baseline_script(false);
    assert!(
        script.exists(),
        "the networked-aframe baseline is not installed ({} is missing): run ./scripts/test, which installs it \
         with load-tests/baseline/install.sh",
        script.display()
    );
    let start = target::Start { kind: Kind::Naf, core: None, naf_cap: 50, env: Vec::new(), nodes: 1 };
    let mut server = target::start(&start).await.unwrap();
    let o = scenarios::run(Scenario::Fanout, Some(&mut server), &params(10, 1, 2.0)).await.unwrap();
    assert_full_fanout(&o, 10, 1);
    assert!(o.cpu_percent.is_some() && o.peak_rss_mib.unwrap() > 1.0, "{o:#?}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}
