//! Gateway nodes for the multi-process cluster tests: the real `gateway` binary in cluster mode on one
//! PostgreSQL and one `redis-server`, with a fast heartbeat so node death is seen in about two seconds.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common;

pub const HEARTBEAT_MS: u64 = 200;
pub const NODE_TTL_MS: u64 = 2000;

/// A gateway process; killed (SIGKILL) when dropped if still running.
pub struct Node {
    child: Child,
    pub base: String,
    dir: PathBuf,
}

impl Node {
    pub fn start(name: &str, db_url: &str, redis_url: &str) -> Node {
        Self::start_with(name, db_url, redis_url, &[])
    }

    /// A node with more settings as environment variables (`GATEWAY_…`), after the defaults below.
    pub fn start_with(name: &str, db_url: &str, redis_url: &str, env: &[(&str, &str)]) -> Node {
        let tag = format!("{:08x}", rand::random::<u32>());
        let dir = std::env::temp_dir().join(format!("gateway-cluster-{}-{name}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .env("GATEWAY_SERVER__PORT", "0")
            .env("GATEWAY_SERVER__NODE_ID", name)
            .env("GATEWAY_SERVER__SHUTDOWN_GRACE_SECS", "2")
            .env("GATEWAY_DATA_DIR", &dir)
            .env("GATEWAY_SECRET", "11".repeat(32))
            .env("GATEWAY_RATES__SOURCE", "static")
            .env("GATEWAY_ROOMS__ATTENDANCE_FLUSH_MS", "100")
            .env("GATEWAY_LOG__FORMAT", "json")
            .env("GATEWAY_LOG__FILTER", "info,sqlx=warn")
            .env("GATEWAY_CLUSTER__REDIS_URL", redis_url)
            .env("GATEWAY_CLUSTER__HEARTBEAT_MS", HEARTBEAT_MS.to_string())
            .env("GATEWAY_CLUSTER__NODE_TTL_MS", NODE_TTL_MS.to_string())
            .env("DATABASE_URL", db_url)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gateway binary");
        let base = common::listening_address(&mut child, Duration::from_secs(60));
        Node { child, base, dir }
    }

    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn readyz(&self) -> Value {
        reqwest::get(format!("{}/readyz", self.base)).await.unwrap().json().await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base)).await.unwrap().text().await.unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
