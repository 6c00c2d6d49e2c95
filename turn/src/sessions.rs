//! Which gateway sessions may use the relay right now.
//!
//! A credential is only as good as its session: the gateway `register`s a session when it admits
//! an attendee and `revoke`s it on ban, kick or logout. Revocation is synchronous for new requests
//! (the next request with that session's credential gets 401) and asynchronous for existing
//! allocations: the running relay is woken and tears them down. Use
//! [`crate::TurnRelay::revoke_session`] to wait for the teardown.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use crate::credentials::SessionId;

/// Cheap to clone; all clones share one set.
#[derive(Clone, Default)]
pub struct SessionRegistry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Open registries accept every session not revoked (a relay run apart from the gateway, which cannot see
    /// the gateway's registrations: coturn's REST-API behaviour, where a valid signature and expiry suffice).
    open: bool,
    revoked_ids: RwLock<HashSet<SessionId>>,
    active: RwLock<HashSet<SessionId>>,
    /// Woken on every revocation; the relay sweeps allocations of inactive sessions.
    revoked: Notify,
}

impl SessionRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry that accepts any session until it is revoked.
    pub fn open() -> Self {
        SessionRegistry { inner: Arc::new(Inner { open: true, ..Inner::default() }) }
    }

    pub fn register(&self, session_id: SessionId) {
        self.inner.active.write().expect("registry lock").insert(session_id);
    }

    /// Refuses the session's credentials from now on and wakes the relay to close its allocations.
    pub fn revoke(&self, session_id: &SessionId) {
        self.inner.active.write().expect("registry lock").remove(session_id);
        if self.inner.open {
            self.inner.revoked_ids.write().expect("registry lock").insert(session_id.clone());
        }
        self.inner.revoked.notify_one();
    }

    pub fn is_active(&self, session_id: &SessionId) -> bool {
        if self.inner.open {
            return !self.inner.revoked_ids.read().expect("registry lock").contains(session_id);
        }
        self.inner.active.read().expect("registry lock").contains(session_id)
    }

    pub fn len(&self) -> usize {
        self.inner.active.read().expect("registry lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves after at least one `revoke` since the last wake-up (bursts coalesce).
    pub(crate) async fn revoked(&self) {
        self.inner.revoked.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_registries_know_only_registered_sessions_and_open_ones_all_but_revoked() {
        let id = SessionId::parse("t42").unwrap();
        let closed = SessionRegistry::new();
        assert!(!closed.is_active(&id));
        closed.register(id.clone());
        assert!(closed.is_active(&id));
        closed.revoke(&id);
        assert!(!closed.is_active(&id));

        let open = SessionRegistry::open();
        assert!(open.is_active(&id));
        open.revoke(&id);
        assert!(!open.is_active(&id));
        assert!(open.is_active(&SessionId::parse("t43").unwrap()));
    }
}
