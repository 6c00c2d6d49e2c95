//! ICE over TCP (RFC 6544): the SFU's passive TCP candidate, for networks that block UDP.
//!
//! A browser that cannot reach the UDP port opens a TCP connection to the `tcptype passive`
//! candidate and sends the same STUN, DTLS and SRTP it would send over UDP, each packet
//! framed by a two-byte length (RFC 4571). One task per connection turns the byte stream
//! back into packets for the engine and writes the engine's packets out; the engine treats
//! a connection like a UDP source address, and finds the participant by the ICE username of
//! its first STUN request, as on the UDP path. A connection whose first packet belongs to
//! nobody is closed at once, and one that stays silent is closed after [`IDLE`].

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A connection that sends nothing for this long is closed (ICE consent checks come every few seconds).
const IDLE: Duration = Duration::from_secs(30);
/// Packets waiting to be written to one connection; beyond this they are dropped, as UDP would.
const OUTGOING: usize = 512;

/// What the connections tell the engine.
pub(crate) enum TcpEvent {
    /// A connection was accepted; the engine writes to it through `packets` and closes it by dropping that.
    Opened {
        peer: SocketAddr,
        packets: mpsc::Sender<Vec<u8>>,
    },
    /// One packet, its framing removed.
    Packet {
        peer: SocketAddr,
        bytes: Vec<u8>,
    },
    Closed {
        peer: SocketAddr,
    },
}

/// Accepts connections until the engine stops listening.
pub(crate) async fn accept(listener: TcpListener, events: mpsc::Sender<TcpEvent>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = events.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "sfu: tcp accept failed");
                // Out of file descriptors and the like: don't spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, peer, events.clone()));
    }
}

async fn serve(stream: TcpStream, peer: SocketAddr, events: mpsc::Sender<TcpEvent>) {
    let (packets, mut outgoing) = mpsc::channel::<Vec<u8>>(OUTGOING);
    if events.send(TcpEvent::Opened { peer, packets }).await.is_err() {
        return;
    }
    let (mut read, write) = stream.into_split();
    let reader_events = events.clone();
    let mut reader = tokio::spawn(async move {
        loop {
            match tokio::time::timeout(IDLE, read_frame(&mut read)).await {
                Ok(Ok(bytes)) => {
                    if reader_events.send(TcpEvent::Packet { peer, bytes }).await.is_err() {
                        return;
                    }
                }
                Ok(Err(_)) | Err(_) => return,
            }
        }
    });
    let mut write = BufWriter::new(write);
    loop {
        tokio::select! {
            _ = &mut reader => break,
            packet = outgoing.recv() => {
                // The engine dropped the connection.
                let Some(packet) = packet else { break };
                if write_frame(&mut write, &packet).await.is_err() {
                    break;
                }
                // Flush once the engine has nothing more queued, so a burst goes out in one write.
                if outgoing.is_empty() && write.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    reader.abort();
    let _ = events.send(TcpEvent::Closed { peer }).await;
}

/// One RFC 4571 frame: a big-endian u16 length, then that many bytes.
pub(crate) async fn read_frame(read: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let len = read.read_u16().await?;
    let mut bytes = vec![0u8; usize::from(len)];
    read.read_exact(&mut bytes).await?;
    Ok(bytes)
}

pub(crate) async fn write_frame(write: &mut (impl AsyncWriteExt + Unpin), packet: &[u8]) -> std::io::Result<()> {
    let Ok(len) = u16::try_from(packet.len()) else { return Ok(()) };
    write.write_all(&len.to_be_bytes()).await?;
    write.write_all(packet).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_through_the_length_prefix() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"stun").await.unwrap();
        write_frame(&mut wire, &[7u8; 1200]).await.unwrap();
        assert_eq!(&wire[..2], &[0, 4]);
        let mut read = wire.as_slice();
        assert_eq!(read_frame(&mut read).await.unwrap(), b"stun");
        assert_eq!(read_frame(&mut read).await.unwrap(), vec![7u8; 1200]);
        assert!(read_frame(&mut read).await.is_err(), "the end of the stream");
    }
}
