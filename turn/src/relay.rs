//! Relay sockets: where allocations live, and where quotas and the peer policy are enforced on
//! the data path.
//!
//! The upstream server creates each allocation's socket through a `RelayAddressGenerator`, which is
//! told neither who is allocating nor anything else about the request. Each listener therefore
//! gets its own [`RelayAllocator`] sharing a [`PendingAllocate`] slot with that listener's
//! gatekeeper: the upstream read loop handles one datagram at a time, so the Allocate the
//! gatekeeper just let through is the one this allocator is serving.
//!
//! The socket itself is wrapped in a [`RelayConn`] that counts bytes, spends the credential's byte
//! budget and — as a second line behind the 403 on CreatePermission — drops datagrams to or from
//! denied peers.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::net::UdpSocket;
use turn::relay::RelayAddressGenerator;
use util::Conn;

use crate::config::PortRange;
use crate::ledger::{AllocationLease, Ledger};
use crate::peer_policy::PeerPolicy;
use crate::stats::TurnStats;

/// The username of the Allocate request currently being handled on one listener.
#[derive(Clone, Default)]
pub struct PendingAllocate(Arc<Mutex<Option<String>>>);

impl PendingAllocate {
    pub fn set(&self, username: Option<String>) {
        *self.0.lock().expect("pending lock") = username;
    }

    /// Not `take`: upstream may call the allocator more than once per Allocate (EVEN-PORT probes).
    fn get(&self) -> Option<String> {
        self.0.lock().expect("pending lock").clone()
    }
}

pub struct RelayAllocator {
    pub bind_ip: IpAddr,
    pub announced_ip: IpAddr,
    pub ports: PortRange,
    pub pending: PendingAllocate,
    pub ledger: Arc<Ledger>,
    pub policy: Arc<PeerPolicy>,
    pub stats: Arc<TurnStats>,
}

const BIND_ATTEMPTS: usize = 32;

/// Socket buffer sizes asked of the kernel (it caps them at `net.core.{r,w}mem_max`). The
/// upstream server reads each listener from a single task; when that task is descheduled,
/// bursts queue here instead of being dropped (the kernel default of 208 KiB holds only ~90
/// full-size datagrams).
pub const LISTENER_BUFFER_BYTES: usize = 4 << 20;
pub const RELAY_BUFFER_BYTES: usize = 1 << 20;

/// Best effort: a kernel that refuses keeps its default, which still works, only with more loss
/// under bursts.
pub fn enlarge_buffers(socket: &UdpSocket, bytes: usize) {
    let sock = socket2::SockRef::from(socket);
    if let Err(err) = sock.set_recv_buffer_size(bytes).and_then(|()| sock.set_send_buffer_size(bytes)) {
        tracing::debug!(%err, "could not enlarge UDP socket buffers");
    }
}

#[async_trait]
impl RelayAddressGenerator for RelayAllocator {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        if use_ipv4 != self.bind_ip.is_ipv4() {
            return Err(turn::Error::Other("requested address family not served".into()));
        }
        let username =
            self.pending.get().ok_or_else(|| turn::Error::Other("allocate without authenticated username".into()))?;
        // The gatekeeper already answered 486 when over quota; this catches the race between
        // listeners, at the cost of a 508 instead.
        let lease =
            self.ledger.try_acquire(&username).ok_or_else(|| turn::Error::Other("allocation quota reached".into()))?;

        let socket = self.bind(requested_port).await?;
        enlarge_buffers(&socket, RELAY_BUFFER_BYTES);
        let mut relay_addr = socket.local_addr()?;
        relay_addr.set_ip(self.announced_ip);
        let conn = RelayConn {
            socket,
            lease,
            policy: Arc::clone(&self.policy),
            stats: Arc::clone(&self.stats),
            started: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        };
        Ok((Arc::new(conn), relay_addr))
    }
}

impl RelayAllocator {
    async fn bind(&self, requested_port: u16) -> Result<UdpSocket, turn::Error> {
        if requested_port != 0 {
            return Ok(UdpSocket::bind(SocketAddr::new(self.bind_ip, requested_port)).await?);
        }
        let PortRange { min, max } = self.ports;
        let span = u32::from(max - min) + 1;
        let start: u32 = rand::random::<u32>() % span;
        for i in 0..BIND_ATTEMPTS.min(span as usize) as u32 {
            let port = min + ((start + i * 7919) % span) as u16;
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(self.bind_ip, port)).await {
                return Ok(s);
            }
        }
        Err(turn::Error::ErrMaxRetriesExceeded)
    }
}

/// An allocation's relay socket. Closing it (the upstream server does on delete, expiry and
/// revocation) releases its lease at once; the socket itself goes when the allocation is dropped.
pub struct RelayConn {
    socket: UdpSocket,
    lease: AllocationLease,
    policy: Arc<PeerPolicy>,
    stats: Arc<TurnStats>,
    /// Set when the allocation starts reading. Upstream also opens relay sockets just to learn a
    /// free even port (EVEN-PORT) and drops them unread: those are not allocations in the stats.
    started: AtomicBool,
    finished: AtomicBool,
}

impl RelayConn {
    fn finish(&self) {
        if !self.finished.swap(true, Relaxed) {
            self.lease.release();
            if self.started.load(Relaxed) {
                self.stats.allocations_active.fetch_sub(1, Relaxed);
            }
        }
    }
}

impl Drop for RelayConn {
    fn drop(&mut self) {
        self.finish();
    }
}

#[async_trait]
impl Conn for RelayConn {
    async fn connect(&self, addr: SocketAddr) -> util::Result<()> {
        Ok(self.socket.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        if !self.finished.load(Relaxed) && !self.started.swap(true, Relaxed) {
            self.stats.allocations_active.fetch_add(1, Relaxed);
            self.stats.allocations_total.fetch_add(1, Relaxed);
        }
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            if !self.policy.allows(from.ip()) {
                self.stats.peer_denied.fetch_add(1, Relaxed);
                continue;
            }
            if !self.lease.consume(n) {
                self.stats.bandwidth_drops.fetch_add(1, Relaxed);
                continue;
            }
            self.stats.bytes_from_peers.fetch_add(n as u64, Relaxed);
            return Ok((n, from));
        }
    }

    async fn send(&self, buf: &[u8]) -> util::Result<usize> {
        Ok(self.socket.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        // Dropping rather than failing: the upstream caller would only log an error, and a
        // dropped datagram is what UDP promises anyway.
        if !self.policy.allows(target.ip()) {
            self.stats.peer_denied.fetch_add(1, Relaxed);
            return Ok(buf.len());
        }
        if !self.lease.consume(buf.len()) {
            self.stats.bandwidth_drops.fetch_add(1, Relaxed);
            return Ok(buf.len());
        }
        let n = self.socket.send_to(buf, target).await?;
        self.stats.bytes_to_peers.fetch_add(n as u64, Relaxed);
        Ok(n)
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> util::Result<()> {
        self.finish();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
