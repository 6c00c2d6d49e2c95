//! Driving coturn's command-line tools (Debian package `coturn`): `turnutils_peer` as the UDP
//! peer, `turnutils_uclient` as the TURN client, `turnserver` as the reference relay.
//! Shared by the integration tests and `examples/bench.rs` (included there by path).
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

pub const UCLIENT: &str = "turnutils_uclient";
pub const PEER: &str = "turnutils_peer";
pub const TURNSERVER: &str = "turnserver";

/// Fails (never skips) when coturn's tools are missing: CI installs them.
pub fn require_coturn() {
    for tool in [UCLIENT, PEER, TURNSERVER] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` not found: these tests drive coturn's tools. Install them with \
             `apt-get update && apt-get install -y coturn` (the project's test script does)."
        );
    }
}

/// A port that was free on 127.0.0.1 a moment ago (for tools that cannot bind port 0).
pub fn free_port() -> u16 {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind probe socket");
    let port = udp.local_addr().unwrap().port();
    // Also free for TCP, since turnserver listens on both.
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => port,
        Err(_) => free_port(),
    }
}

/// A child process killed when dropped.
pub struct Spawned(pub Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// `turnutils_peer` echoing UDP on 127.0.0.1:`port`.
pub async fn spawn_peer(port: u16) -> Spawned {
    let child = Command::new(PEER)
        .args(["-L", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn turnutils_peer");
    wait_udp_bound(port).await;
    Spawned(child)
}

/// Waits until something holds UDP `port` on loopback (binding it fails).
pub async fn wait_udp_bound(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "nothing bound UDP port {port} within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one `turnutils_uclient` run reported.
#[derive(Debug)]
pub struct UclientRun {
    pub success: bool,
    pub elapsed: Duration,
    pub output: String,
}

impl UclientRun {
    /// The figure after the last occurrence of `key` (e.g. `tot_recv_msgs=`).
    pub fn figure(&self, key: &str) -> Option<u64> {
        let at = self.output.rfind(key)? + key.len();
        let digits: String =
            self.output[at..].trim_start_matches([' ', '~']).chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    }

    pub fn sent_msgs(&self) -> u64 {
        self.figure("tot_send_msgs=").unwrap_or(0)
    }

    pub fn received_msgs(&self) -> u64 {
        self.figure("tot_recv_msgs=").unwrap_or(0)
    }

    pub fn received_bytes(&self) -> u64 {
        self.figure("tot_recv_bytes").unwrap_or(0)
    }

    pub fn lost_packets(&self) -> Option<u64> {
        self.figure("Total lost packets ")
    }
}

/// Load shape for `turnutils_uclient`.
#[derive(Clone, Debug)]
pub struct Load {
    pub clients: u32,
    pub messages: u32,
    pub length: u32,
    /// Per-session send interval, ms (`-z`; uclient's default is 20).
    pub interval_ms: u32,
    pub tcp: bool,
    /// TURN over TLS (`-S`, implies TCP).
    pub tls: bool,
}

impl Load {
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "-m".into(),
            self.clients.to_string(),
            "-n".into(),
            self.messages.to_string(),
            "-l".into(),
            self.length.to_string(),
            "-z".into(),
            self.interval_ms.to_string(),
            "-c".into(), // no RTCP companion allocations
        ];
        if self.tcp || self.tls {
            a.push("-t".into());
        }
        if self.tls {
            a.push("-S".into());
        }
        a
    }
}

/// Runs `turnutils_uclient` against the relay at `server` with the REST credential
/// (`username`, `password`), relaying to the peer on 127.0.0.1:`peer_port`.
pub async fn run_uclient(
    server: SocketAddr,
    username: &str,
    password: &str,
    peer_port: u16,
    load: &Load,
    timeout: Duration,
) -> UclientRun {
    let mut cmd = Command::new(UCLIENT);
    cmd.args(load.args())
        .args(["-p", &server.port().to_string()])
        .args(["-u", username, "-w", password])
        .args(["-e", "127.0.0.1", "-r", &peer_port.to_string()])
        .arg(server.ip().to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(timeout, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("turnutils_uclient did not finish within {timeout:?}"))
        .expect("run turnutils_uclient");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    UclientRun { success: output.status.success(), elapsed: started.elapsed(), output: text }
}
