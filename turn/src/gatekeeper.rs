//! The policy checkpoint in front of the upstream TURN server.
//!
//! The upstream server reads datagrams from a `Conn`; [`Gatekeeper`] is that `Conn`, wrapping the
//! real listener. It lets the data path (ChannelData, Send indications) through untouched after a
//! two-byte header check and decodes only requests, refusing — answering on the upstream server's
//! behalf, which then never sees the request — those that:
//!
//! - carry a bad credential: **401 Unauthorized**, with REALM and the client's NONCE echoed so a
//!   client does not mistake it for a fresh challenge (upstream would answer 400);
//! - would exceed the credential's allocation quota: **486 Allocation Quota Reached**;
//! - ask for a permission or channel to a denied peer: **403 Forbidden**.
//!
//! Requests without credentials pass: the upstream server challenges them (401 with a nonce).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_USERNAME};
use stun::error_code::{CODE_ALLOC_QUOTA_REACHED, CODE_FORBIDDEN, CODE_UNAUTHORIZED};
use stun::integrity::MessageIntegrity;
use stun::message::{Message, METHOD_ALLOCATE, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION};
use util::Conn;

use crate::auth::{AuthFailure, Authenticator};
use crate::ledger::Ledger;
use crate::peer_policy::PeerPolicy;
use crate::relay::PendingAllocate;
use crate::stats::TurnStats;
use crate::stun_util::{self, ErrorExtras};

pub struct Gatekeeper {
    pub inner: Arc<dyn Conn + Send + Sync>,
    pub auth: Authenticator,
    pub ledger: Arc<Ledger>,
    pub policy: Arc<PeerPolicy>,
    pub stats: Arc<TurnStats>,
    pub pending: PendingAllocate,
}

enum Verdict {
    Pass,
    /// Send this error response back instead of handing the request upstream.
    Refuse(Vec<u8>),
}

impl Gatekeeper {
    fn screen(&self, datagram: &[u8]) -> Verdict {
        if !stun_util::is_request(datagram) {
            return Verdict::Pass;
        }
        let Some(request) = stun_util::decode(datagram) else {
            return Verdict::Pass; // upstream answers malformed messages
        };
        let method = request.typ.method;
        if method == METHOD_ALLOCATE {
            self.pending.set(None);
        }
        let username = stun_util::text(&request, ATTR_USERNAME);
        let Some(username) = username.filter(|_| request.contains(ATTR_MESSAGE_INTEGRITY)) else {
            return Verdict::Pass; // unauthenticated: upstream challenges it
        };

        let key = match self.auth.check(&username, SystemTime::now()) {
            Ok(key) => key,
            Err(failure) => return self.refuse_credential(&request, &username, failure),
        };
        let integrity = MessageIntegrity(key);
        if integrity.check(&mut request.clone()).is_err() {
            return self.refuse_credential(&request, &username, AuthFailure::Forged);
        }

        if method == METHOD_ALLOCATE {
            if self.ledger.active(&username) >= self.ledger.max_allocations() {
                self.stats.quota_rejections.fetch_add(1, Relaxed);
                tracing::info!(%username, "TURN allocate refused: quota reached");
                return refuse(&request, CODE_ALLOC_QUOTA_REACHED, integrity);
            }
            self.pending.set(Some(username));
        } else if method == METHOD_CREATE_PERMISSION || method == METHOD_CHANNEL_BIND {
            let peers = stun_util::xor_peer_addresses(&request).unwrap_or_default();
            if let Some(denied) = peers.iter().find(|p| !self.policy.allows(p.ip())) {
                self.stats.peer_denied.fetch_add(1, Relaxed);
                tracing::info!(%username, peer = %denied, "TURN permission refused: denied peer");
                return refuse(&request, CODE_FORBIDDEN, integrity);
            }
        }
        Verdict::Pass
    }

    fn refuse_credential(&self, request: &Message, username: &str, failure: AuthFailure) -> Verdict {
        self.stats.record_auth_failure(failure);
        tracing::info!(username, reason = failure.reason(), "TURN credential refused");
        let extras = ErrorExtras::Challenge {
            realm: self.auth.realm().to_owned(),
            nonce: stun_util::text(request, ATTR_NONCE).unwrap_or_default(),
        };
        stun_util::error_response(request, CODE_UNAUTHORIZED, extras).map_or(Verdict::Pass, Verdict::Refuse)
    }
}

fn refuse(request: &Message, code: stun::error_code::ErrorCode, key: MessageIntegrity) -> Verdict {
    stun_util::error_response(request, code, ErrorExtras::Signed(key)).map_or(Verdict::Pass, Verdict::Refuse)
}

#[async_trait]
impl Conn for Gatekeeper {
    async fn connect(&self, addr: SocketAddr) -> util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            match self.screen(&buf[..n]) {
                Verdict::Pass => return Ok((n, from)),
                Verdict::Refuse(response) => {
                    if let Err(err) = self.inner.send_to(&response, from).await {
                        tracing::debug!(%from, %err, "could not send TURN refusal");
                    }
                }
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> util::Result<usize> {
        self.inner.send(buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        self.inner.send_to(buf, target).await
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// Deliberately does nothing: the upstream server closes an allocation's "turn socket" —
    /// which is this shared listener — whenever that allocation ends. The listener lives until
    /// [`crate::TurnRelay::shutdown`].
    async fn close(&self) -> util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
