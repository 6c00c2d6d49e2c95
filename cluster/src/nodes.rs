//! Which nodes are alive, and cleaning up after one that died.
//!
//! Each node refreshes its deadline in one sorted set (`{ns}:nodes`, score = Redis time +
//! TTL) and its public URL and load in a hash. Deadlines are computed from Redis's clock
//! (`TIME` inside the scripts), so nodes with skewed clocks agree on who is dead.
//!
//! When a deadline passes, any survivor may notice; removing the node from the set is the
//! claim, so exactly one survivor does the cleanup (evicting the dead node's seats and
//! telling the rooms, see [`crate::seats::Seats::evict_node`]).

use crate::{Broker, ClusterError, Result};
use redis::Script;
use std::sync::OnceLock;

/// A live node, as the join endpoint sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub public_url: String,
    /// Peers connected to it.
    pub load: u64,
}

/// A node whose heartbeat stopped, claimed by this node for cleanup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadNode {
    pub id: String,
    /// When it was last known alive (ms since the epoch, Redis clock): its deadline minus the TTL.
    pub last_seen_ms: i64,
}

fn heartbeat_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        Script::new(
            r#"
            -- KEYS: nodes zset, node info hash. ARGV: node id, ttl ms, public url, load
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            local ttl = tonumber(ARGV[2])
            redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
            redis.call('HSET', KEYS[2], 'url', ARGV[3], 'load', ARGV[4])
            redis.call('PEXPIRE', KEYS[2], ttl * 2)
            return now
            "#,
        )
    })
}

fn live_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        Script::new(
            r#"
            -- KEYS: nodes zset. ARGV: node info key prefix
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            local ids = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
            local out = {}
            for _, id in ipairs(ids) do
                local info = redis.call('HMGET', ARGV[1] .. id, 'url', 'load')
                table.insert(out, id)
                table.insert(out, info[1] or '')
                table.insert(out, info[2] or '0')
            end
            return out
            "#,
        )
    })
}

fn reap_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        Script::new(
            r#"
            -- KEYS: nodes zset. ARGV: ttl ms, max nodes to claim
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
            local out = {}
            for i = 1, #dead, 2 do
                if redis.call('ZREM', KEYS[1], dead[i]) == 1 then
                    table.insert(out, dead[i])
                    table.insert(out, tostring(tonumber(dead[i + 1]) - tonumber(ARGV[1])))
                end
            end
            return out
            "#,
        )
    })
}

/// This node's view of the others.
#[derive(Debug, Clone)]
pub struct Nodes {
    broker: Broker,
}

impl Nodes {
    pub fn new(broker: Broker) -> Self {
        Self { broker }
    }

    /// Refreshes this node's deadline and load. Returns Redis's time (ms).
    pub async fn heartbeat(&self, load: u64) -> Result<i64> {
        let config = &self.broker.config;
        let keys = &self.broker.keys;
        let mut con = self.broker.connection();
        let result = heartbeat_script()
            .key(keys.nodes())
            .key(keys.node_info(&config.node_id))
            .arg(&config.node_id)
            .arg(config.node_ttl.as_millis() as u64)
            .arg(&config.public_url)
            .arg(load)
            .invoke_async::<i64>(&mut con)
            .await
            .map_err(ClusterError::from);
        self.broker.observe(result)
    }

    /// Every node whose deadline has not passed, this one included once it has beaten.
    pub async fn live(&self) -> Result<Vec<NodeInfo>> {
        let keys = &self.broker.keys;
        let mut con = self.broker.connection();
        let result =
            live_script().key(keys.nodes()).arg(keys.node_prefix()).invoke_async::<Vec<String>>(&mut con).await;
        let flat = self.broker.observe(result.map_err(ClusterError::from))?;
        flat.chunks(3)
            .map(|c| match c {
                [id, url, load] => Ok(NodeInfo {
                    id: id.clone(),
                    public_url: url.clone(),
                    load: load.parse().map_err(|_| ClusterError::Protocol(format!("node load {load:?}")))?,
                }),
                _ => Err(ClusterError::Protocol("node list".into())),
            })
            .collect()
    }

    /// Claims up to `max` dead nodes for cleanup. Each dead node is returned to exactly one caller
    /// cluster-wide; the caller must then evict its seats ([`crate::Seats::evict_node`]).
    pub async fn claim_dead(&self, max: usize) -> Result<Vec<DeadNode>> {
        let keys = &self.broker.keys;
        let mut con = self.broker.connection();
        let result = reap_script()
            .key(keys.nodes())
            .arg(self.broker.config.node_ttl.as_millis() as u64)
            .arg(max.max(1))
            .invoke_async::<Vec<String>>(&mut con)
            .await;
        let flat = self.broker.observe(result.map_err(ClusterError::from))?;
        flat.chunks(2)
            .map(|c| match c {
                [id, seen] => Ok(DeadNode {
                    id: id.clone(),
                    last_seen_ms: seen.parse().map_err(|_| ClusterError::Protocol(format!("deadline {seen:?}")))?,
                }),
                _ => Err(ClusterError::Protocol("dead node list".into())),
            })
            .collect()
    }

    /// Leaves the cluster on a clean shutdown: the node is dead at once for the others, which
    /// then clean up whatever seats it still held.
    pub async fn leave(&self) -> Result<()> {
        let keys = &self.broker.keys;
        let mut con = self.broker.connection();
        let result = redis::pipe()
            .cmd("ZADD")
            .arg(keys.nodes())
            .arg(0)
            .arg(&self.broker.config.node_id)
            .ignore()
            .cmd("DEL")
            .arg(keys.node_info(&self.broker.config.node_id))
            .ignore()
            .query_async::<()>(&mut con)
            .await;
        self.broker.observe(result.map_err(ClusterError::from))
    }

    /// The least loaded live node: where the join endpoint sends a new attendee.
    pub fn least_loaded(nodes: &[NodeInfo]) -> Option<&NodeInfo> {
        nodes.iter().min_by(|a, b| a.load.cmp(&b.load).then_with(|| a.id.cmp(&b.id)))
    }
}
