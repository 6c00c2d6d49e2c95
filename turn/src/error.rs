use std::net::SocketAddr;

/// Why the relay could not start (or a request to it failed).
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("invalid TURN configuration: {0}")]
    Config(String),
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TURN server error: {0}")]
    Server(#[from] turn::Error),
}
