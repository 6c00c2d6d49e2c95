//! A throw-away Monero regtest network for watcher tests: one offline `monerod --regtest` and one
//! `monero-wallet-rpc` per wallet, on free loopback ports, in a temporary directory. Everything is killed and
//! removed when the [`Regtest`] is dropped.
//!
//! Facts this relies on (Debian's `monero` 0.18): regtest wallets use mainnet-style addresses and need no
//! `--regtest` flag; coinbase outputs unlock after 60 blocks, and a ring of 16 needs enough unlocked decoys, so
//! at least 75 blocks are mined before the first transfer; received outputs unlock after 10 blocks; a wallet
//! scans new blocks by itself only every 20 s or so, so tests call `refresh`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// Blocks mined to the buyer before anything is sent.
pub const FUNDING_BLOCKS: u64 = 80;

pub struct Regtest {
    pub daemon_url: String,
    /// The platform's wallet (the one the watcher reads).
    pub merchant: Wallet,
    /// The buyer's wallet, funded with mined coins.
    pub buyer: Wallet,
    http: reqwest::Client,
    daemon: Child,
    dir: PathBuf,
}

pub struct Wallet {
    /// monero-wallet-rpc's root URL (calls go to `/json_rpc`).
    pub url: String,
    pub address: String,
    http: reqwest::Client,
    child: Child,
}

/// Fails the test, with what to do, when the Monero binaries are not installed.
fn require(binary: &str) {
    let found = std::process::Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "`{binary}` is not installed: run the tests with ./scripts/test, which installs Debian's `monero` package \
         (monerod and monero-wallet-rpc)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    Stdio::from(std::fs::File::create(dir.join(name)).expect("log file"))
}

async fn rpc(http: &reqwest::Client, url: &str, method: &str, params: Value) -> Result<Value, String> {
    let body = json!({ "jsonrpc": "2.0", "id": "0", "method": method, "params": params });
    let reply: Value = http
        .post(format!("{url}/json_rpc"))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    match reply.get("error") {
        Some(err) => Err(format!("{method}: {err}")),
        None => Ok(reply["result"].clone()),
    }
}

/// Calls `method` until it answers, for up to `timeout`.
async fn wait_ready(http: &reqwest::Client, url: &str, method: &str, timeout: Duration, log: &Path) {
    let start = Instant::now();
    loop {
        if rpc(http, url, method, json!({})).await.is_ok() {
            return;
        }
        if start.elapsed() > timeout {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String =
                tail.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            panic!("{url} did not answer `{method}` within {timeout:?}; log {}:\n{tail}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Regtest {
    /// Starts the daemon and both wallets, and funds the buyer with [`FUNDING_BLOCKS`] mined blocks.
    pub async fn start() -> Regtest {
        require("monerod");
        require("monero-wallet-rpc");
        let dir = std::env::temp_dir().join(format!("xmr-regtest-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(dir.join("wallets")).unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();

        let rpc_port = free_port();
        let daemon = Command::new("monerod")
            .args(["--regtest", "--offline", "--fixed-difficulty", "1", "--non-interactive", "--no-zmq", "--no-igd"])
            .args(["--disable-dns-checkpoints", "--p2p-bind-ip", "127.0.0.1", "--rpc-bind-ip", "127.0.0.1"])
            .args(["--p2p-bind-port", &free_port().to_string(), "--rpc-bind-port", &rpc_port.to_string()])
            .arg("--data-dir")
            .arg(dir.join("daemon"))
            .arg("--log-file")
            .arg(dir.join("monerod.log"))
            .stdin(Stdio::null())
            .stdout(log_file(&dir, "monerod.out"))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start monerod");
        let daemon_url = format!("http://127.0.0.1:{rpc_port}");
        // Everything starts at once; the merchant's wallet is created while the buyer's coins are mined.
        let merchant = WalletProcess::spawn(&dir, &daemon_url, "merchant");
        let buyer = WalletProcess::spawn(&dir, &daemon_url, "buyer");
        let daemon_log = dir.join("monerod.out");
        // The buyer's wallet is created only once the daemon answers: created without a daemon, monero-wallet-rpc
        // estimates its restore height from the date (a mainnet height in the millions) and then skips every
        // regtest block, so the mined coins never show ("not enough money").
        wait_ready(&http, &daemon_url, "get_info", Duration::from_secs(60), &daemon_log).await;
        let buyer = buyer.open(&dir, &http).await;
        let mine_and_refresh = async {
            rpc(
                &http,
                &daemon_url,
                "generateblocks",
                json!({ "amount_of_blocks": FUNDING_BLOCKS, "wallet_address": buyer.address }),
            )
            .await
            .expect("generateblocks");
            buyer.refresh().await;
        };
        let (merchant, ()) = tokio::join!(merchant.open(&dir, &http), mine_and_refresh);
        Regtest { daemon_url, merchant, buyer, http, daemon, dir }
    }

    /// Mines `blocks` blocks whose rewards go to `address`.
    pub async fn mine(&self, blocks: u64, address: &str) {
        rpc(
            &self.http,
            &self.daemon_url,
            "generateblocks",
            json!({ "amount_of_blocks": blocks, "wallet_address": address }),
        )
        .await
        .expect("generateblocks");
    }

    /// Drops a transaction from the daemon's pool, as if it had been double spent or evicted.
    pub async fn flush_txpool(&self, txid: &str) {
        rpc(&self.http, &self.daemon_url, "flush_txpool", json!({ "txids": [txid] })).await.expect("flush_txpool");
    }

    pub async fn height(&self) -> u64 {
        let info = rpc(&self.http, &self.daemon_url, "get_info", json!({})).await.expect("get_info");
        info["height"].as_u64().unwrap()
    }
}

impl Drop for Regtest {
    fn drop(&mut self) {
        let _ = self.merchant.child.start_kill();
        let _ = self.buyer.child.start_kill();
        let _ = self.daemon.start_kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("regtest logs kept in {}", self.dir.display());
        }
    }
}

/// A monero-wallet-rpc process that may not answer yet.
struct WalletProcess {
    name: String,
    url: String,
    child: Child,
}

impl WalletProcess {
    fn spawn(dir: &Path, daemon_url: &str, name: &str) -> WalletProcess {
        let port = free_port();
        let child = Command::new("monero-wallet-rpc")
            .args([
                "--daemon-address",
                daemon_url.trim_start_matches("http://"),
                "--disable-rpc-login",
                "--non-interactive",
            ])
            .args(["--rpc-bind-ip", "127.0.0.1", "--rpc-bind-port", &port.to_string(), "--trusted-daemon"])
            .arg("--wallet-dir")
            .arg(dir.join("wallets"))
            .arg("--log-file")
            .arg(dir.join(format!("{name}-wallet-rpc.log")))
            .stdin(Stdio::null())
            .stdout(log_file(dir, &format!("{name}-wallet-rpc.out")))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start monero-wallet-rpc");
        WalletProcess { name: name.to_owned(), url: format!("http://127.0.0.1:{port}"), child }
    }

    /// Waits for the server and creates its wallet.
    async fn open(self, dir: &Path, http: &reqwest::Client) -> Wallet {
        let WalletProcess { name, url, child } = self;
        wait_ready(http, &url, "get_version", Duration::from_secs(60), &dir.join(format!("{name}-wallet-rpc.out")))
            .await;
        rpc(http, &url, "create_wallet", json!({ "filename": name, "language": "English" }))
            .await
            .expect("create_wallet");
        let address = rpc(http, &url, "get_address", json!({ "account_index": 0 })).await.expect("get_address")
            ["address"]
            .as_str()
            .unwrap()
            .to_owned();
        Wallet { url, address, http: http.clone(), child }
    }
}

impl Wallet {
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        rpc(&self.http, &self.url, method, params).await
    }

    pub async fn refresh(&self) {
        self.call("refresh", json!({})).await.expect("refresh");
    }

    /// Sends `(address, piconero)` pairs in one transaction; returns its id.
    pub async fn transfer(&self, destinations: &[(&str, u64)]) -> String {
        self.transfer_locked(destinations, 0).await
    }

    /// As [`Wallet::transfer`], with the transaction's own `unlock_time` (a block height, or unix seconds).
    pub async fn transfer_locked(&self, destinations: &[(&str, u64)], unlock_time: u64) -> String {
        let destinations: Vec<Value> =
            destinations.iter().map(|(a, amount)| json!({ "address": a, "amount": amount })).collect();
        let params =
            json!({ "destinations": destinations, "account_index": 0, "priority": 0, "unlock_time": unlock_time });
        let r = self.call("transfer", params).await.expect("transfer");
        r["tx_hash"].as_str().unwrap().to_owned()
    }
}
