//! TURN over TCP (RFC 8656 §3.1), presented to the upstream server as a datagram `Conn`.
//!
//! The upstream server only reads datagrams, so each TCP connection is cut into the messages it
//! carries — STUN messages (20-byte header + length) and ChannelData (4-byte header + length,
//! padded to 4 bytes on streams) — and each is handed up as if it were a datagram from the
//! connection's remote address. Replies to that address are written back to its stream. The
//! relayed transport stays UDP, as RFC 8656 has it.
//!
//! TURN over TLS (`turns:`, RFC 8656 §3.1 over TLS 1.2+) is the same framing inside a TLS stream: the
//! listener takes an optional [`TlsAcceptor`] and hands every accepted stream through it first.
//!
//! Limitation: when a client's TCP connection closes, its allocation is not deleted at once (the
//! upstream crate offers no delete-by-5-tuple); it lapses at the end of its lifetime.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use util::Conn;

/// Connections beyond this are closed on accept.
const MAX_CONNECTIONS: usize = 10_000;
/// Frames queued per connection before further replies are dropped (a stalled reader must not
/// stall the server's single read loop).
const WRITE_QUEUE: usize = 512;

type Writers = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

pub struct TcpPacketConn {
    local: SocketAddr,
    inbound: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    writers: Writers,
}

impl TcpPacketConn {
    /// Starts accepting on `listener` until `shutdown` is cancelled.
    pub fn spawn(listener: TcpListener, shutdown: CancellationToken) -> io::Result<Self> {
        Self::spawn_with(listener, None, shutdown)
    }

    /// As [`TcpPacketConn::spawn`], with every connection first accepted as TLS when `tls` is set.
    pub fn spawn_with(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: CancellationToken,
    ) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (inbound_tx, inbound_rx) = mpsc::channel(1024);
        let writers: Writers = Arc::default();
        tokio::spawn(accept_loop(listener, tls, inbound_tx, Arc::clone(&writers), shutdown));
        Ok(TcpPacketConn { local, inbound: tokio::sync::Mutex::new(inbound_rx), writers })
    }
}

/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    inbound: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Writers,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    tracing::warn!(%err, "TURN TCP accept failed");
                    continue;
                }
            },
        };
        if writers.lock().expect("writers lock").len() >= MAX_CONNECTIONS {
            continue; // dropping `stream` closes it
        }
        let _ = stream.set_nodelay(true);
        match tls.clone() {
            None => serve(stream, peer, inbound.clone(), Arc::clone(&writers), shutdown.clone()),
            Some(acceptor) => {
                let (inbound, writers, shutdown) = (inbound.clone(), Arc::clone(&writers), shutdown.clone());
                // The handshake runs on its own task: a slow client must not hold up the accept loop.
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve(stream, peer, inbound, writers, shutdown),
                        Ok(Err(err)) => tracing::debug!(%err, %peer, "TURN TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TURN TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// Reads frames from one connection and writes the replies queued for it.
fn serve<S>(
    stream: S,
    peer: SocketAddr,
    inbound: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Writers,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    {
        let (read_half, mut write_half) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        writers.lock().expect("writers lock").insert(peer, tx);

        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if write_half.write_all(&frame).await.is_err() || write_half.flush().await.is_err() {
                    break;
                }
            }
        });

        let inbound = inbound.clone();
        let writers = Arc::clone(&writers);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(read_half);
            loop {
                let frame = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    frame = read_frame(&mut reader) => frame,
                };
                match frame {
                    Ok(frame) => {
                        if inbound.send((frame, peer)).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => break, // EOF or garbage: drop the connection
                }
            }
            writers.lock().expect("writers lock").remove(&peer);
        });
    }
}

/// Reads one STUN message or ChannelData frame (without its stream padding).
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    reader.read_exact(&mut header).await?;
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let (frame_len, padded_len) = match header[0] >> 6 {
        0b00 => (20 + length, 20 + length),
        0b01 => (4 + length, 4 + length.next_multiple_of(4)),
        _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "not STUN or ChannelData")),
    };
    let mut frame = vec![0u8; padded_len];
    frame[..4].copy_from_slice(&header);
    reader.read_exact(&mut frame[4..]).await?;
    frame.truncate(frame_len);
    Ok(frame)
}

#[async_trait]
impl Conn for TcpPacketConn {
    async fn connect(&self, _addr: SocketAddr) -> util::Result<()> {
        Err(util::Error::Other("connect is not supported on a TCP listener".into()))
    }

    async fn recv(&self, buf: &mut [u8]) -> util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        let (frame, from) =
            self.inbound.lock().await.recv().await.ok_or_else(|| util::Error::Other("TCP listener closed".into()))?;
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok((n, from))
    }

    async fn send(&self, _buf: &[u8]) -> util::Result<usize> {
        Err(util::Error::Other("send needs a target on a TCP listener".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        let writer = self.writers.lock().expect("writers lock").get(&target).cloned();
        let Some(writer) = writer else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "no TCP connection").into());
        };
        let mut frame = buf.to_vec();
        if buf.first().is_some_and(|b| b >> 6 == 0b01) {
            frame.resize(frame.len().next_multiple_of(4), 0); // ChannelData padding on streams
        }
        // A full queue means the client is not reading; drop like a congested UDP path would.
        let _ = writer.try_send(frame);
        Ok(buf.len())
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
