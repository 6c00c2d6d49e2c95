//! The server under test: our gateway (the release binary on a fresh SQLite file) or networked-aframe's
//! socket.io server under node, started by the harness and pinned to core 0, or — for the smoke tests — a
//! gateway already running in-process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use ticketing::testing::TestDb;
use ticketing::{Backend, Store};

use crate::stats::ProcSample;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Our gateway.
    Ours,
    /// networked-aframe's `server/socketio-server.js`.
    Naf,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Naf => "networked-aframe",
        }
    }
}

/// The hex secret the harness gives the gateway (any 32 bytes).
pub const SECRET: &str = "4c6f61642d74657374732068617665206e6f20736563726574732e2e2e2e2e2e";

/// A running server and what the clients need to reach it.
pub struct Server {
    pub kind: Kind,
    pub addr: std::net::SocketAddr,
    /// The process to measure, when the harness started one.
    pub pid: Option<u32>,
    /// Our gateway's database, for seeding events and tickets.
    pub store: Option<Store>,
    child: Option<Child>,
    _db: Option<TestDb>,
    /// `--nodes N` (ours): every node's address, the first being `addr`; admissions go round-robin over them.
    pub nodes: Vec<std::net::SocketAddr>,
    /// The other nodes' processes (measured with the first) and the `redis-server` between them.
    others: Vec<Child>,
    /// The broker's pid, measured apart.
    pub redis_pid: Option<u32>,
    next_node: std::sync::atomic::AtomicUsize,
}

impl Server {
    /// A gateway the caller runs (in-process in the smoke tests).
    pub fn external(addr: std::net::SocketAddr, store: Store) -> Server {
        Server::new(Kind::Ours, addr, None, Some(store), None, None)
    }

    fn new(
        kind: Kind,
        addr: std::net::SocketAddr,
        pid: Option<u32>,
        store: Option<Store>,
        child: Option<Child>,
        db: Option<TestDb>,
    ) -> Server {
        Server {
            kind,
            addr,
            pid,
            store,
            child,
            _db: db,
            nodes: vec![addr],
            others: Vec::new(),
            redis_pid: None,
            next_node: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The node the next peer is admitted on (round robin; always `addr` with one node).
    pub fn next_node(&self) -> std::net::SocketAddr {
        let i = self.next_node.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.nodes[i % self.nodes.len()]
    }

    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's CPU and memory: with several nodes, the sum over the gateway processes (not Redis).
    pub fn sample(&self) -> Option<ProcSample> {
        let mut total = self.pid.and_then(|pid| ProcSample::read(pid).ok())?;
        for other in &self.others[..self.others.len().saturating_sub(usize::from(self.redis_pid.is_some()))] {
            if let Ok(s) = ProcSample::read(other.id()) {
                total.cpu_ticks += s.cpu_ticks;
                total.rss_kib += s.rss_kib;
                total.peak_rss_kib += s.peak_rss_kib;
            }
        }
        Some(total)
    }

    pub fn store(&self) -> anyhow::Result<&Store> {
        self.store.as_ref().context("this target has no ticket store")
    }

    /// Whether the process is still running (the baseline may die under load).
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for other in &mut self.others {
            let _ = other.kill();
            let _ = other.wait();
        }
        if let Some(child) = &mut self.child {
            // SAFETY: kill(2) on the pid of the child this struct spawned.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            for _ in 0..100 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("load-tests sits in the workspace").to_path_buf()
}

/// Where `./scripts/test` (or `load-tests/baseline/install.sh`) puts the baseline.
pub fn baseline_dir() -> PathBuf {
    workspace_root().join("load-tests/baseline")
}

/// The stock server (room cap 50) or the copy whose cap is read from `NAF_MAX_OCCUPANTS`.
pub fn baseline_script(raised_cap: bool) -> PathBuf {
    if raised_cap {
        baseline_dir().join("socketio-server-raised-cap.js")
    } else {
        baseline_dir().join("node_modules/networked-aframe/server/socketio-server.js")
    }
}

fn pinned(core: Option<usize>, program: &Path) -> Command {
    match core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Options for starting a target.
#[derive(Debug, Clone)]
pub struct Start {
    pub kind: Kind,
    /// Core to pin the server to (`taskset -c`), if any.
    pub core: Option<usize>,
    /// Baseline only: the room cap (50 is the stock server).
    pub naf_cap: usize,
    /// Extra `GATEWAY_…` settings.
    pub env: Vec<(String, String)>,
    /// Ours: gateway processes in cluster mode (1: a single node on SQLite, as before; more: PostgreSQL at
    /// `TEST_POSTGRES_URL` and a fresh `redis-server`, all pinned to `core`).
    pub nodes: usize,
}

pub async fn start(opts: &Start) -> anyhow::Result<Server> {
    match opts.kind {
        Kind::Ours if opts.nodes > 1 => start_cluster(opts).await,
        Kind::Ours => start_gateway(opts).await,
        Kind::Naf => start_naf(opts),
    }
}

/// The release binary, built first if needed (`cargo build --release -p gateway`), unless
/// `LOAD_TESTS_NO_BUILD=1` says to use the binary as it is, or `LOAD_TESTS_GATEWAY` names another one (an
/// older build, for a before/after comparison).
pub fn gateway_binary() -> anyhow::Result<PathBuf> {
    if let Some(binary) = std::env::var_os("LOAD_TESTS_GATEWAY").map(PathBuf::from) {
        anyhow::ensure!(binary.is_file(), "LOAD_TESTS_GATEWAY={} is not a file", binary.display());
        return Ok(binary);
    }
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
    let binary = target_dir.join("release/gateway");
    if std::env::var_os("LOAD_TESTS_NO_BUILD").is_some() && binary.exists() {
        return Ok(binary);
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "gateway", "--bin", "gateway"])
        .current_dir(workspace_root())
        .status()
        .context("run cargo build for the gateway")?;
    anyhow::ensure!(status.success(), "building the release gateway failed");
    Ok(binary)
}

async fn start_gateway(opts: &Start) -> anyhow::Result<Server> {
    let db = TestDb::new(Backend::Sqlite).await;
    let data_dir = Path::new(db.url.trim_start_matches("sqlite://")).parent().context("db dir")?.to_path_buf();
    let (child, addr) = spawn_gateway(opts, &db.url, &data_dir, &[])?;
    let pid = child.id();
    let store = Store::connect(&db.url, 8).await?;
    Ok(Server::new(Kind::Ours, addr, Some(pid), Some(store), Some(child), Some(db)))
}

/// `opts.nodes` gateways in cluster mode on one PostgreSQL schema and a fresh `redis-server`, every process
/// pinned to `opts.core`.
async fn start_cluster(opts: &Start) -> anyhow::Result<Server> {
    anyhow::ensure!(
        std::env::var_os("TEST_POSTGRES_URL").is_some(),
        "--nodes needs PostgreSQL: set TEST_POSTGRES_URL (`source scripts/lib/services.sh; start_postgres`)"
    );
    let db = TestDb::new(Backend::Postgres).await;
    // Migrations run on the first connection, before the nodes start.
    let store = Store::connect(&db.url, 8).await?;
    let port = free_port()?;
    let redis_binary = which("redis-server").context("redis-server is not installed (apt-get install redis-server)")?;
    let mut redis = pinned(opts.core, &redis_binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start redis-server")?;
    let redis_url = format!("redis://127.0.0.1:{port}/");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            let _ = redis.kill();
            anyhow::bail!("redis-server did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let redis_pid = redis.id();
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for n in 1..=opts.nodes {
        let data_dir = std::env::temp_dir().join(format!("load-tests-node-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&data_dir)?;
        let node_id = format!("node-{n}");
        let env = [("GATEWAY_SERVER__NODE_ID", node_id.as_str()), ("GATEWAY_CLUSTER__REDIS_URL", redis_url.as_str())];
        match spawn_gateway(opts, &db.url, &data_dir, &env) {
            Ok((child, addr)) => {
                children.push(child);
                addrs.push(addr);
            }
            Err(e) => {
                for mut c in children.into_iter().chain([redis]) {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(e);
            }
        }
    }
    let mut children = children.into_iter();
    let first = children.next().context("no node")?;
    let mut server = Server::new(Kind::Ours, addrs[0], Some(first.id()), Some(store), Some(first), Some(db));
    server.nodes = addrs;
    server.others = children.chain([redis]).collect();
    server.redis_pid = Some(redis_pid);
    Ok(server)
}

fn spawn_gateway(
    opts: &Start,
    db_url: &str,
    data_dir: &Path,
    extra: &[(&str, &str)],
) -> anyhow::Result<(Child, std::net::SocketAddr)> {
    let binary = gateway_binary()?;
    let mut cmd = pinned(opts.core, &binary);
    cmd.env("GATEWAY_SERVER__PORT", "0")
        .env("GATEWAY_DATA_DIR", data_dir)
        .env("GATEWAY_SECRET", SECRET)
        .env("GATEWAY_LOG__FORMAT", "json")
        .env("GATEWAY_LOG__FILTER", "warn,gateway::startup=info")
        .env("GATEWAY_RATES__SOURCE", "static")
        // The harness joins from one address thousands of times a minute; the per-address limits are for the
        // internet, not for this.
        .env("GATEWAY_ACCESS__IP_ATTEMPTS_PER_MINUTE", "100000000")
        .env("GATEWAY_ACCESS__IP_CHALLENGES_PER_MINUTE", "100000000")
        // The idle-capacity scenario holds as many sockets as the process may open: the open-file limit, not the
        // production cap on connections, is what it measures.
        .env("GATEWAY_SERVER__MAX_CONNECTIONS", "1000000")
        .env("DATABASE_URL", db_url)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().with_context(|| format!("start {}", binary.display()))?;
    let stdout = child.stdout.take().context("gateway stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["message"] == "listening" || v["fields"]["message"] == "listening" {
                    let address =
                        v["address"].as_str().or(v["fields"]["address"].as_str()).unwrap_or_default().to_owned();
                    let _ = tx.send(address);
                }
            }
        }
    });
    let address = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(address) => address,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the gateway did not log `listening`");
        }
    };
    let addr = address.parse().with_context(|| format!("listening address {address:?}"))?;
    Ok((child, addr))
}

/// A free port below the ephemeral range: node listens on every address, and the clients' own sockets (bound
/// to 127.0.0.x with ephemeral ports) would otherwise collide with it.
fn free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port between 20000 and 32000")
}

/// Starts the baseline on a free port; a port taken between our probe and node's bind is retried.
fn start_naf(opts: &Start) -> anyhow::Result<Server> {
    let mut last = None;
    for _ in 0..5 {
        match start_naf_once(opts) {
            Ok(server) => return Ok(server),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("tried at least once"))
}

fn start_naf_once(opts: &Start) -> anyhow::Result<Server> {
    let script = baseline_script(opts.naf_cap != 50);
    anyhow::ensure!(
        script.exists(),
        "the networked-aframe baseline is not installed ({} is missing): run ./scripts/test or load-tests/baseline/install.sh",
        script.display()
    );
    let port = free_port()?;
    let node = which("node").context("node is not installed")?;
    let mut cmd = pinned(opts.core, &node);
    cmd.arg(&script)
        .env("PORT", port.to_string())
        .env("NAF_MAX_OCCUPANTS", opts.naf_cap.to_string())
        .env("NODE_ENV", "production")
        .current_dir(baseline_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("start node")?;
    let stdout = child.stdout.take().context("node stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // The reference server logs every join and leave; keep draining its output so it never blocks on a pipe.
    std::thread::spawn(move || {
        let mut told = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !told && line.starts_with("listening on") {
                let _ = tx.send(());
                told = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30)).context("node did not print `listening on`")?;
    let pid = child.id();
    let addr = format!("127.0.0.1:{port}").parse()?;
    Ok(Server::new(Kind::Naf, addr, Some(pid), None, Some(child), None))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}
