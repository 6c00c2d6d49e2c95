//! A real local EVM node for the tests: Foundry's `anvil`, started on a free loopback port with automatic
//! mining off (tests mine blocks explicitly).
//!
//! The binary comes from `ANVIL_BIN`, else from the npm package installed under `watchers/tests/tools`
//! (`npm install --prefix watchers/tests/tools @foundry-rs/anvil-linux-amd64`, which `./scripts/test` runs).
//! Without it the test fails: a payment watcher that was never run against a node is not tested.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use watchers::evm::rpc::EvmRpc;
use watchers::{ChainMetrics, RetryPolicy};

pub const INSTALL: &str = "npm install --prefix watchers/tests/tools @foundry-rs/anvil-linux-amd64";

pub fn anvil_path() -> PathBuf {
    if let Some(path) = std::env::var_os("ANVIL_BIN") {
        return PathBuf::from(path);
    }
    // Installed under the watchers crate; this file is also compiled into the gateway's tests.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tools = [manifest.join("tests/tools/node_modules"), manifest.join("../watchers/tests/tools/node_modules")];
    for candidate in
        tools.iter().flat_map(|t| [t.join(".bin/anvil"), t.join("@foundry-rs/anvil-linux-amd64/bin/anvil")])
    {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!("anvil not found: run ./scripts/test (it installs it with `{INSTALL}`), or set ANVIL_BIN");
}

/// A running anvil, killed on drop.
pub struct Anvil {
    child: Child,
    pub url: String,
    pub rpc: EvmRpc,
    pub accounts: Vec<String>,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Anvil {
    pub async fn start() -> Anvil {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> Anvil {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(anvil_path())
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--no-mining", "--silent"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start anvil ({e}): run ./scripts/test or `{INSTALL}`"));
        let url = format!("http://127.0.0.1:{port}");
        let policy = RetryPolicy { attempts: 1, timeout: Duration::from_secs(30), ..RetryPolicy::default() };
        let rpc = EvmRpc::new(&url, policy, Arc::new(ChainMetrics::default())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut anvil = Anvil { child, url, rpc, accounts: Vec::new() };
        loop {
            match anvil.rpc.call::<Vec<String>>("eth_accounts", json!([])).await {
                Ok(accounts) => {
                    anvil.accounts = accounts.into_iter().map(|a| a.to_ascii_lowercase()).collect();
                    return anvil;
                }
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => panic!("anvil did not come up: {e}"),
            }
        }
    }

    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.rpc.call(method, params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Sends `wei` from dev account `from` to `to`; returns the transaction hash (mined at the next `mine`).
    pub async fn pay(&self, from: usize, to: &str, wei: u128) -> String {
        let tx = json!({ "from": self.accounts[from], "to": to, "value": format!("0x{wei:x}"), "gas": "0x5208" });
        self.call("eth_sendTransaction", json!([tx])).await.as_str().unwrap().to_ascii_lowercase()
    }

    pub async fn mine(&self, blocks: u64) {
        self.call("anvil_mine", json!([format!("0x{blocks:x}")])).await;
    }

    pub async fn head(&self) -> i64 {
        self.rpc.block_number().await.unwrap()
    }

    /// Replaces the last `depth` blocks with empty ones.
    pub async fn reorg(&self, depth: u64) {
        self.call("anvil_reorg", json!([depth, []])).await;
    }

    /// Deploys the test ERC-20 (6 decimals, the whole supply to account 0); returns its address.
    pub async fn deploy_token(&self) -> String {
        let code = include_str!("test_token.hex").trim();
        let tx = json!({ "from": self.accounts[0], "data": format!("0x{code}"), "gas": "0x300000" });
        let hash = self.call("eth_sendTransaction", json!([tx])).await;
        self.mine(1).await;
        let receipt = self.call("eth_getTransactionReceipt", json!([hash])).await;
        assert_eq!(receipt["status"], "0x1", "token deployment failed: {receipt}");
        receipt["contractAddress"].as_str().unwrap().to_ascii_lowercase()
    }

    /// `token.transfer(to, units)` from account 0.
    pub async fn pay_token(&self, token: &str, to: &str, units: u128) -> String {
        let data = format!("0xa9059cbb{:0>64}{:064x}", to.trim_start_matches("0x"), units);
        let tx = json!({ "from": self.accounts[0], "to": token, "data": data, "gas": "0x30000" });
        self.call("eth_sendTransaction", json!([tx])).await.as_str().unwrap().to_ascii_lowercase()
    }
}
