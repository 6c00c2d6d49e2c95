//! The HTTP/1.1 accept loop: a cap on open connections, header and body timeouts, graceful drain.
//!
//! `axum::serve` has neither a connection cap nor a header-read timeout, so 20,000 idle sockets could take
//! every descriptor of the process and a client sending one byte every ten seconds was kept forever. Here
//! each accepted socket takes a permit from a semaphore of `max_connections`; the permit travels inside the
//! socket, so a connection upgraded to a WebSocket keeps counting until the WebSocket closes.
//!
//! Past the cap the gateway still answers what an operator needs to see it: a small budget of overflow
//! connections is served by a router with only `/healthz`, `/readyz` and `/metrics`, every other path getting
//! 503 `over_capacity` with `Retry-After`, no keep-alive and a short header timeout. Past that budget a
//! connection is closed as soon as it is accepted, which a client sees at once instead of hanging.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The limits the accept loop enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub overflow_connections: usize,
    pub header_read_timeout: Duration,
    pub body_timeout: Duration,
}

/// Header timeout on overflow connections: they only serve quick probes.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Open connections, for the metrics exporter.
#[derive(Debug, Clone)]
pub struct ConnectionGauge {
    permits: Arc<Semaphore>,
    max: usize,
}

impl ConnectionGauge {
    pub fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }
}

/// The accept loop's handle: the gauge exists before serving starts so metrics can register it.
pub struct Server {
    limits: Limits,
    permits: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
}

impl Server {
    pub fn new(limits: Limits) -> Server {
        Server {
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            overflow: Arc::new(Semaphore::new(limits.overflow_connections)),
            limits,
        }
    }

    pub fn gauge(&self) -> ConnectionGauge {
        ConnectionGauge { permits: self.permits.clone(), max: self.limits.max_connections.max(1) }
    }

    /// Accepts until `shutdown`, then asks every open HTTP connection to finish its request and waits for them.
    /// Upgraded connections (WebSockets) are not waited for here: the rooms close them.
    pub async fn serve(self, listener: TcpListener, app: Router, overflow_app: Router, shutdown: CancellationToken) {
        let connections = TaskTracker::new();
        loop {
            let (stream, remote) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // EMFILE/ENFILE and the like: the pending socket stays in the backlog; back off briefly
                        // instead of spinning on the same error.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Relay frames are small and latency-bound: without TCP_NODELAY, Nagle's algorithm holds each one
            // until the peer's delayed ACK (~40 ms on Linux).
            let _ = stream.set_nodelay(true);
            let (permit, app, header_timeout, keep_alive) = match self.permits.clone().try_acquire_owned() {
                Ok(permit) => (permit, app.clone(), self.limits.header_read_timeout, true),
                Err(_) => match self.overflow.clone().try_acquire_owned() {
                    Ok(permit) => (permit, overflow_app.clone(), OVERFLOW_HEADER_TIMEOUT, false),
                    Err(_) => {
                        // Dropping the stream closes it: a prompt refusal, and no descriptor held.
                        tracing::debug!(%remote, "connection refused: over capacity");
                        continue;
                    }
                },
            };
            let io = TokioIo::new(Counted { stream, _permit: permit });
            let body_timeout = self.limits.body_timeout;
            let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                let request = request
                    .map(|body| axum::body::Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, body)));
                app.clone().oneshot(request)
            });
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(keep_alive);
                let connection = builder.serve_connection(io, service).with_upgrades();
                tokio::pin!(connection);
                tokio::select! {
                    result = connection.as_mut() => log_connection_end(result),
                    _ = shutdown.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        log_connection_end(connection.await);
                    }
                }
            });
        }
        drop(listener);
        connections.close();
        connections.wait().await;
    }
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        // Timeouts and clients hanging up are everyday events, not faults of ours.
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// A socket that holds its connection permit until it is dropped, through a WebSocket upgrade too.
struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
