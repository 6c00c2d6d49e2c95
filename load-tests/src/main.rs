//! `cargo run --release -p load-tests -- <scenario> --target ours|naf [--peers N] [--seconds S]`
//!
//! Starts the server under test pinned to core 0, runs the generator on core 1, prints the outcome as JSON
//! and appends it to `target/load-tests/results.jsonl`; `report` turns the latest rows into the table in
//! docs/BENCHMARKS.md and the chart docs/relay-benchmark.svg; `all` runs every row and then `report`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use load_tests::scenarios::{self, Outcome, Params, Scenario};
use load_tests::stats;
use load_tests::target::{self, Kind};

#[derive(Parser)]
#[command(about = "Load tests: our gateway against networked-aframe's socket.io server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One room, every peer sending `um` updates at 15 Hz (default 50 peers).
    Fanout(RunArgs),
    /// Many rooms with churn (default 100 rooms × 10 peers).
    Rooms(RunArgs),
    /// Idle authenticated connections and memory per connection (default 50,000).
    Idle(RunArgs),
    /// Ticketed joins as fast as possible (default 1,000).
    JoinStorm(RunArgs),
    /// 10% of a room's peers read slowly (default 50 peers).
    Slow(RunArgs),
    /// One event in shards (`--shard-size`, default 50) plus a host on the stage (default 1,000 peers).
    Shards(RunArgs),
    /// Quote creation per second on SQLite or PostgreSQL (ours only).
    Quotes(RunArgs),
    /// The embedded SFU with simulated WebRTC clients (str0m): speakers, listeners, packets forwarded per core.
    Sfu(SfuArgs),
    /// Every row of the table, then `report`.
    All {
        /// Seconds per relay scenario.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Idle connections to try.
        #[arg(long, default_value_t = 50_000)]
        idle_peers: usize,
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Writes docs/BENCHMARKS.md's relay section and docs/relay-benchmark.svg from the latest results.
    Report {
        #[arg(long)]
        results: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct SfuArgs {
    #[arg(long, default_value_t = 10)]
    speakers: usize,
    #[arg(long, default_value_t = 200)]
    listeners: usize,
    /// Audio slots per listener (the N loudest speakers are forwarded).
    #[arg(long, default_value_t = 3)]
    loudest: usize,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Do not pin the SFU to core 0 and the clients to core 1.
    #[arg(long)]
    no_pin: bool,
    #[arg(long)]
    results: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct RunArgs {
    #[arg(long, value_enum, default_value = "ours")]
    target: Kind,
    /// Peers per room (idle, join-storm: connections in all).
    #[arg(long)]
    peers: Option<usize>,
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Updates per second per peer.
    #[arg(long, default_value_t = 15.0)]
    rate: f64,
    /// Every n-th message is guaranteed (0: none).
    #[arg(long, default_value_t = 30)]
    guaranteed_every: u64,
    /// Joins in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Rooms scenario: seconds between a join-and-leave in each room (0: no churn).
    #[arg(long, default_value_t = 2.0)]
    churn_every: f64,
    /// Quotes scenario: `sqlite` or `postgres` (PostgreSQL at TEST_POSTGRES_URL).
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// Baseline room cap (its stock server has 50; above, the harness runs its copy with the cap raised).
    #[arg(long)]
    naf_cap: Option<usize>,
    /// Ours: the gateway's `[signaling] flush_interval_ms` (default: the gateway's own default).
    #[arg(long)]
    flush_ms: Option<u64>,
    /// Ours: the protocol version the clients announce (2: `batch` frames; 1: one message per frame).
    #[arg(long, default_value_t = 2)]
    protocol: u32,
    /// Shards scenario: attendees per shard (the peer count: one unsharded room with the host).
    #[arg(long, default_value_t = 50)]
    shard_size: usize,
    /// Ours: gateway processes in cluster mode, the room's peers spread round-robin over them (1: one node on
    /// SQLite, no cluster; more: PostgreSQL at TEST_POSTGRES_URL and a fresh `redis-server`, all on core 0).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Do not pin the server to core 0 and the generator to core 1.
    #[arg(long)]
    no_pin: bool,
    #[arg(long)]
    results: Option<PathBuf>,
}

fn results_path(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| target::workspace_root().join("target/load-tests/results.jsonl"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Sfu(a) = &cli.command {
        return run_sfu(a);
    }
    let pin = match &cli.command {
        Command::Report { .. } | Command::Sfu(_) => false,
        Command::All { .. } => true,
        Command::Fanout(a)
        | Command::Rooms(a)
        | Command::Idle(a)
        | Command::JoinStorm(a)
        | Command::Slow(a)
        | Command::Quotes(a)
        | Command::Shards(a) => !a.no_pin,
    };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // The generator takes core 1 and the server core 0; pinning before the runtime starts covers every thread.
    if pin && cores >= 2 {
        stats::pin_to_core(1);
    }
    stats::raise_fd_limit(1_048_576);
    // Other work on a shared machine must not decide the comparison: generator and server (which inherits
    // this) run at nice -10 when allowed, and so does their session's autogroup; both targets get the same.
    let _priority = (!matches!(cli.command, Command::Report { .. })).then(|| stats::raise_priority(-10));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Report { results } => load_tests::report::write(&results_path(results)),
            Command::All { seconds, idle_peers, results } => {
                let path = results_path(results);
                for (scenario, kind, peers, secs) in suite(seconds, idle_peers) {
                    let args = RunArgs {
                        target: kind,
                        peers: Some(peers),
                        rooms: 100,
                        seconds: secs,
                        rate: 15.0,
                        guaranteed_every: 30,
                        concurrency: 32,
                        churn_every: 2.0,
                        backend: if kind == Kind::Naf { "postgres".into() } else { "sqlite".into() },
                        naf_cap: None,
                        flush_ms: None,
                        protocol: 2,
                        shard_size: 50,
                        nodes: 1,
                        no_pin: !pin || cores < 2,
                        results: Some(path.clone()),
                    };
                    // For quotes the target slot picks the engine: ours → SQLite, naf → PostgreSQL.
                    let args = if scenario == Scenario::Quotes { RunArgs { target: Kind::Ours, ..args } } else { args };
                    if let Err(e) = run_one(scenario, args).await {
                        eprintln!("{scenario:?} {kind:?} {peers}: {e:#}");
                    }
                }
                load_tests::report::write(&path)
            }
            Command::Fanout(a) => run_one(Scenario::Fanout, a).await.map(drop),
            Command::Rooms(a) => run_one(Scenario::Rooms, a).await.map(drop),
            Command::Shards(a) => run_one(Scenario::Shards, a).await.map(drop),
            Command::Idle(a) => run_one(Scenario::Idle, a).await.map(drop),
            Command::JoinStorm(a) => run_one(Scenario::JoinStorm, a).await.map(drop),
            Command::Slow(a) => run_one(Scenario::Slow, a).await.map(drop),
            Command::Quotes(a) => run_one(Scenario::Quotes, a).await.map(drop),
            Command::Sfu(_) => Ok(()),
        }
    })
}

/// The SFU row: prints the outcome as JSON and appends it to the results file.
fn run_sfu(a: &SfuArgs) -> anyhow::Result<()> {
    stats::raise_fd_limit(1_048_576);
    let _priority = stats::raise_priority(-10);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let params = load_tests::sfu::SfuParams {
        speakers: a.speakers,
        listeners: a.listeners,
        loudest: a.loudest,
        seconds: a.seconds,
        pin: !a.no_pin && cores >= 2,
    };
    let outcome = load_tests::sfu::run(&params)?;
    let line = serde_json::to_string(&serde_json::json!({ "scenario": "sfu", "outcome": outcome }))?;
    println!("{line}");
    let path = results_path(a.results.clone());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    writeln!(file, "{line}")?;
    Ok(())
}

/// The rows of the published table.
fn suite(seconds: f64, idle_peers: usize) -> Vec<(Scenario, Kind, usize, f64)> {
    use Kind::{Naf, Ours};
    use Scenario::*;
    let mut rows = Vec::new();
    for peers in [50, 100, 200, 500] {
        rows.push((Fanout, Ours, peers, seconds));
        rows.push((Fanout, Naf, peers, seconds));
    }
    rows.extend([
        (Rooms, Ours, 10, seconds),
        (Rooms, Naf, 10, seconds),
        (Slow, Ours, 50, seconds),
        (Slow, Naf, 50, seconds),
        (JoinStorm, Ours, 1000, seconds),
        (JoinStorm, Naf, 1000, seconds),
        (Idle, Ours, idle_peers, 20.0),
        (Idle, Naf, idle_peers, 20.0),
        (Quotes, Ours, 8, 5.0),
        (Quotes, Naf, 8, 5.0),
    ]);
    rows
}

fn default_peers(scenario: Scenario) -> usize {
    match scenario {
        Scenario::Fanout | Scenario::Slow => 50,
        Scenario::Rooms => 10,
        Scenario::Idle => 50_000,
        Scenario::JoinStorm | Scenario::Shards => 1000,
        Scenario::Quotes => 8,
    }
}

async fn run_one(scenario: Scenario, a: RunArgs) -> anyhow::Result<Outcome> {
    let peers = a.peers.unwrap_or_else(|| default_peers(scenario));
    let backend = match a.backend.as_str() {
        "sqlite" => ticketing::Backend::Sqlite,
        "postgres" | "postgresql" => {
            if std::env::var_os("TEST_POSTGRES_URL").is_none() {
                if let Ok(url) = std::fs::read_to_string("/tmp/pgurl") {
                    std::env::set_var("TEST_POSTGRES_URL", url.trim());
                }
            }
            ticketing::Backend::Postgres
        }
        other => anyhow::bail!("unknown backend {other:?} (sqlite or postgres)"),
    };
    let params = Params {
        peers,
        rooms: a.rooms,
        seconds: a.seconds,
        rate_hz: a.rate,
        guaranteed_every: a.guaranteed_every,
        concurrency: if scenario == Scenario::Quotes { peers } else { a.concurrency },
        churn_every: a.churn_every,
        backend,
        shard_size: a.shard_size,
    };
    eprintln!("running {scenario:?} against {} ({peers} peers, {} s)…", a.target.label(), a.seconds);
    let gen_before = stats::ProcSample::read(std::process::id()).ok();
    let t0 = std::time::Instant::now();
    let mut outcome = if scenario == Scenario::Quotes {
        scenarios::run(scenario, None, &params).await?
    } else {
        let start = target::Start {
            kind: a.target,
            core: (!a.no_pin).then_some(0),
            naf_cap: a.naf_cap.unwrap_or(if peers > 50 && scenario != Scenario::JoinStorm {
                peers.max(50)
            } else {
                50
            }),
            env: a
                .flush_ms
                .map(|ms| ("GATEWAY_SIGNALING__FLUSH_INTERVAL_MS".to_owned(), ms.to_string()))
                .into_iter()
                .collect(),
            nodes: a.nodes.max(1),
        };
        // The clients read the version they announce from the environment (`client::protocol`).
        std::env::set_var("LOAD_TESTS_PROTOCOL", a.protocol.to_string());
        let mut server = target::start(&start).await?;
        let redis_before = server.redis_pid.and_then(|pid| stats::ProcSample::read(pid).ok());
        let run_started = std::time::Instant::now();
        let mut outcome = scenarios::run(scenario, Some(&mut server), &params).await?;
        if start.nodes > 1 {
            outcome.notes.push(format!(
                "{} gateway nodes in cluster mode (PostgreSQL, Redis), peers round-robin; server CPU and RSS are their sum",
                start.nodes
            ));
            let redis_after = server.redis_pid.and_then(|pid| stats::ProcSample::read(pid).ok());
            if let (Some(b), Some(a)) = (redis_before, redis_after) {
                let pct = stats::cpu_percent(b, a, run_started.elapsed().as_secs_f64());
                outcome.notes.push(format!("redis-server CPU {pct:.0}% of a core over the whole run"));
            }
        }
        if a.target == Kind::Ours {
            let flush = a.flush_ms.map_or_else(|| "the default".to_owned(), |ms| format!("{ms} ms"));
            outcome.notes.push(format!("flush interval {flush}, clients speak protocol {}", a.protocol));
        }
        if a.target == Kind::Naf && start.naf_cap != 50 {
            outcome.notes.push(format!("baseline room cap raised from 50 to {}", start.naf_cap));
        }
        outcome
    };
    if let (Some(b), Ok(after)) = (gen_before, stats::ProcSample::read(std::process::id())) {
        let pct = stats::cpu_percent(b, after, t0.elapsed().as_secs_f64());
        outcome.notes.push(format!("generator CPU {pct:.0}% of a core over the whole run"));
    }
    let line = serde_json::to_string(&outcome)?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    let path = results_path(a.results);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    writeln!(file, "{line}")?;
    Ok(outcome)
}
