//! Several gateway nodes serving one event, on one Redis.
//!
//! A room's peers may be connected to different nodes. Everything a node must know about
//! the others lives in Redis and is rebuilt by the nodes themselves if Redis restarts:
//!
//! - [`nodes`]: each node refreshes a heartbeat; a node whose heartbeat is older than
//!   [`ClusterConfig::node_ttl`] is dead, and exactly one survivor claims its cleanup.
//! - [`seats`]: who holds which seat of which room, on which node — one live session per
//!   seat cluster-wide (a newer claim supersedes the older, wherever it is), and room
//!   capacity claimed atomically (a Lua script), never exceeded.
//! - [`placement`]: where each attendee of a sharded event is placed, decided in the same
//!   scripts as its seat, so a shard never overfills across nodes and its number means the
//!   same group of people on every node.
//! - [`relay`]: a [`signaling::RoomFanout`] over Redis pub/sub, one channel per room, and
//!   a control channel per node (close, kick, mute, gateway-defined messages).
//! - [`limits`]: a GCRA rate limiter whose state is a Redis key, so a client can't
//!   multiply its allowance by the number of nodes.
//!
//! Why Redis rather than NATS, and what is lost when it goes away: ARCHITECTURE.md,
//! "Several nodes".

pub mod codec;
mod keys;
pub mod limits;
pub mod nodes;
pub mod placement;
pub mod relay;
pub mod seats;
#[doc(hidden)]
pub mod testing;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use keys::Keys;
pub use limits::{Decision, SharedLimiter};
pub use nodes::{DeadNode, NodeInfo, Nodes};
pub use placement::{Moved, Placed, Placements, SeatPlacement};
pub use relay::{Control, Inbound, RedisFanout, Relay};
pub use seats::{Claim, ClaimRequest, EvictedSeat, Member, Seats};

/// How a node joins the cluster. Built by the gateway from `[cluster]`.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://host:port/db`.
    pub redis_url: String,
    /// This process's id, unique per start (the gateway appends a random incarnation to the configured
    /// name, so a restarted node is never mistaken for its dead predecessor).
    pub node_id: String,
    /// Where browsers reach this node (`https://node-a.example.org`); handed out by the join endpoint.
    pub public_url: String,
    /// Prefix of every key and channel, so several deployments can share one Redis.
    pub namespace: String,
    /// How often the heartbeat is refreshed and dead nodes are looked for.
    pub heartbeat: Duration,
    /// A node silent for this long is dead.
    pub node_ttl: Duration,
    /// How long a command may wait for Redis before the caller treats the broker as away.
    pub command_timeout: Duration,
}

impl ClusterConfig {
    pub fn new(redis_url: impl Into<String>, node_id: impl Into<String>, public_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            node_id: node_id.into(),
            public_url: public_url.into(),
            namespace: "dlux".into(),
            heartbeat: Duration::from_secs(1),
            node_ttl: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("broker: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("broker answered something unexpected: {0}")]
    Protocol(String),
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// Counters and the broker's state, for /metrics and /readyz.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub broker_up: AtomicBool,
    /// Envelopes and control messages published.
    pub published: AtomicU64,
    /// Envelopes received from other nodes and handed to the local hub.
    pub received: AtomicU64,
    /// Envelopes not published because the broker was away or the publish queue full.
    pub dropped: AtomicU64,
    /// Envelopes missing in a sequence from another node (lost while a subscription was down).
    pub gaps: AtomicU64,
    /// Subscriber reconnections.
    pub reconnects: AtomicU64,
    /// Dead nodes this node cleaned up after.
    pub reaped_nodes: AtomicU64,
    /// Members placed in a shard or on the stage by this node's claims.
    pub placements: AtomicU64,
    /// Members moved (another shard, on or off the stage) by this node's requests.
    pub placement_moves: AtomicU64,
}

impl ClusterStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn is_broker_up(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed)
    }
}

/// The connection to the broker every part shares: a command connection that reconnects by
/// itself, the key names, and the stats.
#[derive(Clone)]
pub struct Broker {
    pub(crate) client: redis::Client,
    pub(crate) commands: redis::aio::ConnectionManager,
    pub(crate) keys: Arc<Keys>,
    pub(crate) config: Arc<ClusterConfig>,
    pub(crate) stats: Arc<ClusterStats>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("node", &self.config.node_id).finish_non_exhaustive()
    }
}

impl Broker {
    /// Connects lazily: a node starts (and serves its local peers) while Redis is away.
    pub fn new(config: ClusterConfig) -> Result<Self> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.command_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let commands = redis::aio::ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
        Ok(Self {
            client,
            commands,
            keys: Arc::new(Keys::new(&config.namespace)),
            config: Arc::new(config),
            stats: Arc::new(ClusterStats::default()),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn stats(&self) -> &Arc<ClusterStats> {
        &self.stats
    }

    pub(crate) fn connection(&self) -> redis::aio::ConnectionManager {
        self.commands.clone()
    }

    /// Records the outcome of a command: the broker is up while commands succeed.
    pub(crate) fn observe<T>(&self, result: Result<T>) -> Result<T> {
        let up = match &result {
            Ok(_) => true,
            Err(ClusterError::Redis(e)) => !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped()),
            Err(ClusterError::Protocol(_)) => true,
        };
        self.stats.broker_up.store(up, Ordering::Relaxed);
        result
    }

    /// A round trip to the broker.
    pub async fn ping(&self) -> Result<()> {
        let mut con = self.connection();
        let result: Result<String> = redis::cmd("PING").query_async(&mut con).await.map_err(Into::into);
        self.observe(result).map(|_| ())
    }
}
