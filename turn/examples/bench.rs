//! Relay benchmark: this crate's relay vs coturn's `turnserver`, same machine, same load.
//!
//! Both relays run on loopback with REST-API auth and 127.0.0.1 allowed as a peer; coturn's
//! `turnutils_uclient` drives the same load against each, echoed by one `turnutils_peer`:
//!
//! - **throughput**: 20 clients × 2000 messages × 1000 bytes at uclient's fastest pacing
//!   (`-z 1`), reported as payload MB/s relayed (client→peer plus peer→client);
//!   and the same with 50 clients × 1200 bytes;
//! - **allocations**: 200 clients × 1 message, reported as clients set up per second (each is an
//!   authenticated Allocate pair with a RESERVATION-TOKEN, a ChannelBind and one round trip).
//!
//! Each load runs `ROUNDS` times per relay and the median is kept. Server CPU time is read from
//! /proc. Traffic stays on 127.0.0.1 and every run is bounded by a timeout.
//!
//! `cargo run --release -p turn-relay --example bench`

#[path = "../tests/common/coturn.rs"]
mod coturn;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use coturn::{Load, Spawned, UclientRun};
use turn_relay::{PortRange, SessionId, SessionRegistry, TurnConfig, TurnRelay};

const SECRET: &str = "benchmark-shared-secret";
const ROUNDS: usize = 3;
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

struct Scenario {
    name: &'static str,
    load: Load,
}

struct Measured {
    elapsed: Duration,
    run: UclientRun,
    server_cpu: Duration,
}

#[tokio::main]
async fn main() {
    coturn::require_coturn();
    let scenarios = [
        Scenario {
            name: "throughput",
            load: Load { clients: 20, messages: 2000, length: 1000, interval_ms: 1, tcp: false },
        },
        Scenario {
            name: "throughput-50",
            load: Load { clients: 50, messages: 2000, length: 1200, interval_ms: 1, tcp: false },
        },
        Scenario {
            name: "allocations",
            load: Load { clients: 200, messages: 1, length: 100, interval_ms: 1, tcp: false },
        },
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
        "| load | relay | wall s | msgs sent / echoed | lost | MB/s relayed | clients/s | server CPU s | CPU ms/MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for scenario in &scenarios {
        let mut results = Vec::new();
        for (relay, addr, pid) in [
            ("turn-relay", ours_addr, std::process::id()),
            ("coturn", coturn_addr, coturn_pid),
        ] {
            let mut runs = Vec::new();
            for _ in 0..ROUNDS {
                // A fresh credential per run: uclient leaves its allocations to expire.
                let creds = config.issue(&session, SystemTime::now());
                let cpu_before = cpu_time(pid);
                let run = coturn::run_uclient(
                    addr,
                    &creds.username,
                    &creds.credential,
                    peer_port,
                    &scenario.load,
                    RUN_TIMEOUT,
                )
                .await;
                let server_cpu = cpu_time(pid).saturating_sub(cpu_before);
                assert!(run.success, "{relay} {}: uclient failed\n{}", scenario.name, run.output);
                runs.push(Measured { elapsed: run.elapsed, run, server_cpu });
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            runs.sort_by_key(|m| m.elapsed);
            let median = runs.swap_remove(ROUNDS / 2);
            print_row(scenario, relay, &median);
            results.push(median);
        }
        let (a, b) = (&results[0], &results[1]);
        ratios.push((scenario.name, b.elapsed.as_secs_f64() / a.elapsed.as_secs_f64()));
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

fn print_row(scenario: &Scenario, relay: &str, m: &Measured) {
    let secs = m.elapsed.as_secs_f64();
    let bytes = (m.run.figure("tot_send_bytes").unwrap_or(0) + m.run.received_bytes()) as f64;
    let lost = m.run.lost_packets().unwrap_or(0);
    println!(
        "| {} (-m {} -n {} -l {} -z {}) | {relay} | {secs:.2} | {} / {} | {lost} | {:.1} | {:.1} | {:.2} | {:.2} |",
        scenario.name,
        scenario.load.clients,
        scenario.load.messages,
        scenario.load.length,
        scenario.load.interval_ms,
        m.run.sent_msgs(),
        m.run.received_msgs(),
        bytes / secs / 1e6,
        f64::from(scenario.load.clients) / secs,
        m.server_cpu.as_secs_f64(),
        m.server_cpu.as_secs_f64() * 1e3 / (bytes / 1e6),
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
