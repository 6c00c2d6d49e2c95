//! The hook through which the gateway hands out TURN credentials.
//!
//! Signalling knows no TURN secret. When a peer joins (`welcome`) or asks for fresh
//! credentials (`turn_refresh`), we ask the gateway's [`TurnIssuer`] and pass the answer on
//! verbatim, in the shape `RTCPeerConnection`'s `iceServers` expects.

use crate::admission::PeerInfo;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TurnGrant {
    pub ice_servers: Vec<IceServer>,
    /// When the credentials stop working, ms since the Unix epoch. The adapter asks for
    /// new ones (`turn_refresh`) a minute before.
    pub expires_at: i64,
}

/// Issues TURN credentials for an admitted peer. Called on the connection's task, so it
/// should be quick (an HMAC, not a network call).
pub trait TurnIssuer: Send + Sync + 'static {
    /// `None` when this peer gets no relay (e.g. TURN is not configured).
    fn issue(&self, peer: &PeerInfo) -> Option<TurnGrant>;
}

impl<F> TurnIssuer for F
where
    F: Fn(&PeerInfo) -> Option<TurnGrant> + Send + Sync + 'static,
{
    fn issue(&self, peer: &PeerInfo) -> Option<TurnGrant> {
        self(peer)
    }
}
