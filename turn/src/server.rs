//! Starting, running and stopping the relay: [`TurnRelay`] is the handle the gateway holds.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use turn::server::config::{ConnConfig, ServerConfig};
use turn::server::Server;
use util::Conn;

use crate::auth::Authenticator;
use crate::config::TurnConfig;
use crate::credentials::{SessionId, TurnCredentials};
use crate::error::TurnError;
use crate::gatekeeper::Gatekeeper;
use crate::ledger::Ledger;
use crate::peer_policy::PeerPolicy;
use crate::relay::{enlarge_buffers, PendingAllocate, RelayAllocator, LISTENER_BUFFER_BYTES};
use crate::sessions::SessionRegistry;
use crate::stats::TurnStats;
use crate::tcp::TcpPacketConn;

/// A running relay. Dropping it stops the TCP listener and revocation sweeps; call
/// [`TurnRelay::shutdown`] to also close every allocation and wait for it.
pub struct TurnRelay {
    server: Arc<Server>,
    config: TurnConfig,
    sessions: SessionRegistry,
    revoker: Arc<Revoker>,
    stats: Arc<TurnStats>,
    udp_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    sweeper: JoinHandle<()>,
}

/// What every listener shares.
struct Shared {
    auth: Authenticator,
    ledger: Arc<Ledger>,
    policy: Arc<PeerPolicy>,
    stats: Arc<TurnStats>,
}

impl TurnRelay {
    /// Binds the configured listeners and starts serving. Credentials are accepted for sessions
    /// registered in `sessions` (the gateway keeps a clone to register and revoke).
    pub async fn start(config: TurnConfig, sessions: SessionRegistry) -> Result<Self, TurnError> {
        config.validate()?;
        let stats = Arc::new(TurnStats::default());
        let shared = Shared {
            auth: Authenticator::new(config.shared_secret.clone(), config.realm.clone(), sessions.clone()),
            ledger: Arc::new(Ledger::new(
                config.max_allocations_per_credential,
                config.max_bytes_per_sec_per_credential,
            )),
            policy: Arc::new(PeerPolicy::new(config.allowed_peers.clone())),
            stats: Arc::clone(&stats),
        };
        let shutdown = CancellationToken::new();

        let mut conn_configs = Vec::new();
        let mut udp_addr = None;
        let mut tcp_addr = None;
        let mut tls_addr = None;
        if let Some(addr) = config.listen_udp {
            let socket = UdpSocket::bind(addr).await.map_err(|source| TurnError::Bind {
                what: "TURN UDP listener",
                addr,
                source,
            })?;
            enlarge_buffers(&socket, LISTENER_BUFFER_BYTES);
            udp_addr = Some(socket.local_addr().expect("bound socket has an address"));
            conn_configs.push(listener(&config, &shared, Arc::new(socket))?);
        }
        if let Some(addr) = config.listen_tcp {
            let tcp = TcpListener::bind(addr).await.map_err(|source| TurnError::Bind {
                what: "TURN TCP listener",
                addr,
                source,
            })?;
            let conn = TcpPacketConn::spawn(tcp, shutdown.clone()).map_err(|source| TurnError::Bind {
                what: "TURN TCP listener",
                addr,
                source,
            })?;
            tcp_addr = Some(conn.local_addr().expect("bound listener has an address"));
            conn_configs.push(listener(&config, &shared, Arc::new(conn))?);
        }
        if let Some(addr) = config.listen_tls {
            let acceptor = crate::tls::acceptor(&config)?;
            let tcp = TcpListener::bind(addr).await.map_err(|source| TurnError::Bind {
                what: "TURN TLS listener",
                addr,
                source,
            })?;
            let conn = TcpPacketConn::spawn_with(tcp, Some(acceptor), shutdown.clone())
                .map_err(|source| TurnError::Bind { what: "TURN TLS listener", addr, source })?;
            tls_addr = Some(conn.local_addr().expect("bound listener has an address"));
            conn_configs.push(listener(&config, &shared, Arc::new(conn))?);
        }

        let server = Arc::new(
            Server::new(ServerConfig {
                conn_configs,
                realm: config.realm.clone(),
                auth_handler: Arc::new(shared.auth.clone()),
                channel_bind_timeout: std::time::Duration::ZERO, // upstream default, 10 min
                alloc_close_notify: None,
            })
            .await?,
        );

        let revoker = Arc::new(Revoker {
            server: Arc::clone(&server),
            ledger: shared.ledger,
            sessions: sessions.clone(),
            stats: Arc::clone(&stats),
            running: tokio::sync::Mutex::new(()),
        });
        let sweeper = tokio::spawn(Arc::clone(&revoker).run(shutdown.clone()));
        tracing::info!(?udp_addr, ?tcp_addr, ?tls_addr, realm = %config.realm, "TURN relay listening");

        Ok(TurnRelay { server, config, sessions, revoker, stats, udp_addr, tcp_addr, tls_addr, shutdown, sweeper })
    }

    /// The bound UDP listener address (useful when configured with port 0).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The TLS listener's address (`turns:`), when one is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    pub fn stats(&self) -> Arc<TurnStats> {
        Arc::clone(&self.stats)
    }

    pub fn sessions(&self) -> &SessionRegistry {
        &self.sessions
    }

    pub fn config(&self) -> &TurnConfig {
        &self.config
    }

    /// Issues a credential for `session_id` (which must also be registered to be accepted).
    pub fn issue(&self, session_id: &SessionId) -> TurnCredentials {
        self.config.issue(session_id, SystemTime::now())
    }

    /// Revokes the session and returns once all its allocations are closed.
    pub async fn revoke_session(&self, session_id: &SessionId) {
        self.sessions.revoke(session_id);
        self.revoker.close_revoked().await;
    }

    /// Closes every allocation and stops the listeners.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        if let Err(err) = self.server.close().await {
            tracing::warn!(%err, "TURN server did not close cleanly");
        }
    }
}

impl Drop for TurnRelay {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.sweeper.abort();
    }
}

fn listener(
    config: &TurnConfig,
    shared: &Shared,
    socket: Arc<dyn Conn + Send + Sync>,
) -> Result<ConnConfig, TurnError> {
    let pending = PendingAllocate::default();
    let gatekeeper = Gatekeeper {
        inner: socket,
        auth: shared.auth.clone(),
        ledger: Arc::clone(&shared.ledger),
        policy: Arc::clone(&shared.policy),
        stats: Arc::clone(&shared.stats),
        pending: pending.clone(),
    };
    let allocator = RelayAllocator {
        bind_ip: config.relay_bind_ip,
        announced_ip: config.announced_ip()?,
        ports: config.relay_ports,
        pending,
        ledger: Arc::clone(&shared.ledger),
        policy: Arc::clone(&shared.policy),
        stats: Arc::clone(&shared.stats),
    };
    Ok(ConnConfig { conn: Arc::new(gatekeeper), relay_addr_generator: Box::new(allocator) })
}

/// Closes the allocations of revoked sessions: woken by the registry, or called directly by
/// [`TurnRelay::revoke_session`].
struct Revoker {
    server: Arc<Server>,
    ledger: Arc<Ledger>,
    sessions: SessionRegistry,
    stats: Arc<TurnStats>,
    /// One sweep at a time. Upstream takes allocations out of its table before closing them, so
    /// a second concurrent sweep would find nothing left to wait for and return too early.
    running: tokio::sync::Mutex<()>,
}

impl Revoker {
    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.sessions.revoked() => self.close_revoked().await,
            }
        }
    }

    /// Closes the allocations of every username whose session is no longer registered.
    async fn close_revoked(&self) {
        let _one_at_a_time = self.running.lock().await;
        let dead = self.ledger.usernames_of_dead_sessions(|u| self.sessions.is_active(&u.session_id));
        for username in dead {
            let held = self.ledger.active(&username);
            match self.server.delete_allocations_by_username(username.clone()).await {
                Ok(()) => {
                    self.stats.revoked_allocations.fetch_add(u64::from(held), Relaxed);
                    tracing::info!(%username, allocations = held, "TURN allocations of revoked session closed");
                }
                Err(err) => {
                    tracing::warn!(%username, %err, "could not close revoked TURN allocations")
                }
            }
        }
    }
}
