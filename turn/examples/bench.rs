//! Relay benchmark: this crate's relay vs coturn's `turnserver`, same machine, same load.
//!
//! Both relays run on loopback with REST-API auth and 127.0.0.1 allowed as a peer; coturn's
//! `turnutils_uclient` drives the same load against each, echoed by one `turnutils_peer`:
//!
//! - **throughput**: 20 clients × 2000 messages × 1000 bytes at uclient's fastest pacing
//!   (`-z 1`), reported as payload MB/s relayed (client→peer plus peer→client);
//!   and the same with 50 clients × 1200 bytes;
//! - **allocations**: 10 concurrent uclients × 40 clients × 1 message (one uclient paces its own
//!   set-up to ~6 clients/s, so one is not enough), reported as clients set up per second; each
//!   client is an authenticated Allocate pair with a RESERVATION-TOKEN, a ChannelBind and one
//!   round trip.
//!
//! Each load runs `ROUNDS` times per relay and the median is kept. Server CPU time is read from
//! /proc. Traffic stays on 127.0.0.1 and every run is bounded by a timeout.
//!
//! `cargo run --release -p turn-relay --example bench`

#[path = "../tests/common/coturn.rs"]
mod coturn;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use coturn::{Load, Spawned, UclientRun};
use turn_relay::{PortRange, SessionId, SessionRegistry, TurnConfig, TurnRelay};

const SECRET: &str = "benchmark-shared-secret";
const ROUNDS: usize = 3;
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Reported as MB/s relayed and server CPU per MB.
    Throughput,
    /// Reported as clients set up per second and server CPU per client.
    Setup,
}

struct Scenario {
    name: &'static str,
    kind: Kind,
    /// Concurrent `turnutils_uclient` processes, each running `load`.
    processes: u32,
    load: Load,
}

impl Scenario {
    fn clients(&self) -> u32 {
        self.processes * self.load.clients
    }
}

/// One round of a scenario against one relay, summed over its uclient processes.
struct Measured {
    elapsed: Duration,
    sent: u64,
    echoed: u64,
    lost: u64,
    bytes: u64,
    server_cpu: Duration,
    /// CPU of this bench process itself over the round: for turn-relay that is the relay plus the
    /// harness (spawning uclients, reading their output), for coturn the harness alone.
    harness_cpu: Duration,
}

#[tokio::main]
async fn main() {
    coturn::require_coturn();
    let load = |clients, messages, length| Load { clients, messages, length, interval_ms: 1, tcp: false, tls: false };
    let scenarios = [
        Scenario { name: "throughput", kind: Kind::Throughput, processes: 1, load: load(20, 2000, 1000) },
        Scenario { name: "throughput", kind: Kind::Throughput, processes: 1, load: load(50, 2000, 1200) },
        Scenario { name: "allocations", kind: Kind::Setup, processes: 10, load: load(40, 1, 100) },
    ];

    let peer_port = coturn::free_port();
    let _peer = coturn::spawn_peer(peer_port).await;

    let mut config = TurnConfig::loopback(SECRET);
    config.listen_tcp = None;
    config.relay_ports = PortRange { min: 45000, max: 49999 };
    config.max_allocations_per_credential = 100_000;
    let sessions = SessionRegistry::new();
    let ours = TurnRelay::start(config.clone(), sessions.clone()).await.expect("start our relay");
    let session = SessionId::parse("bench").unwrap();
    sessions.register(session.clone());
    let ours_addr = ours.udp_addr().unwrap();

    let coturn_port = coturn::free_port();
    let coturn_server = spawn_coturn(coturn_port).await;
    let coturn_addr: SocketAddr = ([127, 0, 0, 1], coturn_port).into();
    let coturn_pid = coturn_server.0.id().expect("turnserver pid");

    println!(
        "| load | relay | wall s | msgs sent / echoed | lost | rate | server CPU s | CPU cost | bench process CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for scenario in &scenarios {
        let mut results = Vec::new();
        for (relay, addr, pid) in [("turn-relay", ours_addr, std::process::id()), ("coturn", coturn_addr, coturn_pid)] {
            let mut runs = Vec::new();
            for _ in 0..ROUNDS {
                // A fresh credential per round: uclient leaves its allocations to expire.
                let creds = config.issue(&session, SystemTime::now());
                runs.push(measure(scenario, relay, addr, pid, &creds, peer_port).await);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            runs.sort_by_key(|m| m.elapsed);
            let median = runs.swap_remove(ROUNDS / 2);
            print_row(scenario, relay, &median);
            results.push(median);
        }
        let (a, b) = (&results[0], &results[1]);
        ratios.push((label(scenario), b.elapsed.as_secs_f64() / a.elapsed.as_secs_f64()));
    }
    println!();
    for (name, ratio) in ratios {
        println!("{name}: turn-relay / coturn rate ratio = {ratio:.2}");
    }
    let s = ours.stats().snapshot();
    println!(
        "turn-relay stats: allocations_total={} bytes_relayed={} drops={}",
        s.allocations_total,
        s.bytes_relayed(),
        s.bandwidth_drops
    );
    ours.shutdown().await;
}

async fn measure(
    scenario: &Scenario,
    relay: &str,
    addr: SocketAddr,
    pid: u32,
    creds: &turn_relay::TurnCredentials,
    peer_port: u16,
) -> Measured {
    let cpu_before = cpu_time(pid);
    let harness_before = cpu_time(std::process::id());
    let started = Instant::now();
    let mut processes = tokio::task::JoinSet::new();
    for _ in 0..scenario.processes {
        let (user, pass, load) = (creds.username.clone(), creds.credential.clone(), scenario.load.clone());
        processes.spawn(async move { coturn::run_uclient(addr, &user, &pass, peer_port, &load, RUN_TIMEOUT).await });
    }
    let runs: Vec<UclientRun> = processes.join_all().await;
    let elapsed = started.elapsed();
    let server_cpu = cpu_time(pid).saturating_sub(cpu_before);
    let harness_cpu = cpu_time(std::process::id()).saturating_sub(harness_before);
    for run in &runs {
        assert!(run.success, "{relay} {}: uclient failed\n{}", label(scenario), run.output);
    }
    Measured {
        elapsed,
        sent: runs.iter().map(UclientRun::sent_msgs).sum(),
        echoed: runs.iter().map(UclientRun::received_msgs).sum(),
        lost: runs.iter().map(|r| r.lost_packets().unwrap_or(0)).sum(),
        bytes: runs.iter().map(|r| r.figure("tot_send_bytes").unwrap_or(0) + r.received_bytes()).sum(),
        server_cpu,
        harness_cpu,
    }
}

fn label(s: &Scenario) -> String {
    let l = &s.load;
    let procs = if s.processes > 1 { format!("{} × ", s.processes) } else { String::new() };
    format!("{} ({procs}-m {} -n {} -l {} -z {})", s.name, l.clients, l.messages, l.length, l.interval_ms)
}

fn print_row(scenario: &Scenario, relay: &str, m: &Measured) {
    let secs = m.elapsed.as_secs_f64();
    let cpu = m.server_cpu.as_secs_f64();
    let (rate, cost) = match scenario.kind {
        Kind::Throughput => {
            let mb = m.bytes as f64 / 1e6;
            (format!("{:.1} MB/s", mb / secs), format!("{:.1} ms/MB", cpu * 1e3 / mb))
        }
        Kind::Setup => {
            let clients = f64::from(scenario.clients());
            (format!("{:.1} clients/s", clients / secs), format!("{:.2} ms/client", cpu * 1e3 / clients))
        }
    };
    println!(
        "| {} | {relay} | {secs:.2} | {} / {} | {} | {rate} | {cpu:.2} | {cost} | {:.2} |",
        label(scenario),
        m.sent,
        m.echoed,
        m.lost,
        m.harness_cpu.as_secs_f64(),
    );
}

/// coturn configured like our relay: REST-API secret, loopback only, 127.0.0.1 allowed as peer.
async fn spawn_coturn(port: u16) -> Spawned {
    let log = std::env::temp_dir().join(format!("bench-coturn-{port}.log"));
    let child = tokio::process::Command::new(coturn::TURNSERVER)
        .args(["--use-auth-secret", &format!("--static-auth-secret={SECRET}")])
        .args(["--realm=test.local", "--allowed-peer-ip=127.0.0.1", "--allow-loopback-peers"])
        .args(["--no-cli", "--no-tls", "--no-dtls", "-n", "--no-stdout-log", "--simple-log"])
        .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
        .args(["--listening-port", &port.to_string(), "--min-port", "40000", "--max-port", "44999"])
        .args(["--log-file", &log.to_string_lossy()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn turnserver");
    coturn::wait_udp_bound(port).await;
    Spawned(child)
}

/// User + system CPU time of process `pid` (all its threads), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let ticks = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}
