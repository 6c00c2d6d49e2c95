//! The UDP datagrams of one turn, sent together.
//!
//! A forwarded packet goes to every listener of the room, each to its own address, so the
//! kernel's segmentation offload (one destination per call) does not apply; what a turn's
//! datagrams can share is the system call. On Linux they leave in `sendmmsg(2)` calls of up
//! to [`BATCH`]; elsewhere one `send_to` each. Either way with UDP semantics: when the
//! socket's buffer is full the rest of the turn's datagrams are dropped rather than waited
//! for, and a datagram the kernel refuses (an ICMP error reported late, an unroutable
//! address) is skipped without holding up the others.

use std::net::SocketAddr;
use tokio::net::UdpSocket;

/// Datagrams per `sendmmsg` call.
const BATCH: usize = 64;

#[derive(Default)]
pub(crate) struct Outbox {
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
}

impl Outbox {
    pub(crate) fn push(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        self.datagrams.push((destination, contents));
    }

    /// Sends what was pushed since the last flush. Returns how many datagrams the kernel took.
    pub(crate) fn flush(&mut self, socket: &UdpSocket) -> usize {
        if self.datagrams.is_empty() {
            return 0;
        }
        let sent = send_all(socket, &self.datagrams);
        self.datagrams.clear();
        sent
    }
}

#[cfg(target_os = "linux")]
fn send_all(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) -> usize {
    use socket2::SockAddr;
    use std::os::fd::AsRawFd;

    let fd = socket.as_raw_fd();
    let mut sent = 0;
    for chunk in datagrams.chunks(BATCH) {
        let addresses: Vec<SockAddr> = chunk.iter().map(|(to, _)| SockAddr::from(*to)).collect();
        let mut iovecs: Vec<libc::iovec> = chunk
            .iter()
            .map(|(_, bytes)| libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() })
            .collect();
        // SAFETY: an all-zero `mmsghdr` is valid (null pointers, zero lengths); every pointer set below points
        // into `addresses` and `iovecs`, which outlive the calls and are not moved meanwhile.
        let mut headers: Vec<libc::mmsghdr> = (0..chunk.len()).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (i, header) in headers.iter_mut().enumerate() {
            header.msg_hdr.msg_name = addresses[i].as_ptr() as *mut libc::c_void;
            header.msg_hdr.msg_namelen = addresses[i].len();
            header.msg_hdr.msg_iov = &mut iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
        }
        let mut next = 0;
        while next < headers.len() {
            let remaining = &mut headers[next..];
            // SAFETY: `remaining` is a valid array of initialised headers whose pointers are valid (see above);
            // the kernel writes only their `msg_len` fields.
            let n = unsafe {
                libc::sendmmsg(fd, remaining.as_mut_ptr(), remaining.len() as libc::c_uint, libc::MSG_DONTWAIT)
            };
            if n > 0 {
                sent += n as usize;
                next += n as usize;
                continue;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                // The socket's buffer is full: the rest of this turn is dropped, as a full queue drops UDP.
                Some(libc::EAGAIN) => return sent,
                // This datagram was refused (a late ICMP error, an address the kernel cannot route): skip it.
                _ => next += 1,
            }
        }
    }
    sent
}

#[cfg(not(target_os = "linux"))]
fn send_all(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) -> usize {
    datagrams.iter().filter(|(to, bytes)| socket.try_send_to(bytes, *to).is_ok()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_datagram_of_a_turn_reaches_its_own_destination_in_order() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut receivers = Vec::new();
        for _ in 0..3 {
            receivers.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        let mut outbox = Outbox::default();
        // More than one call's worth, spread over three destinations.
        for i in 0..(BATCH + 10) {
            let to = receivers[i % 3].local_addr().unwrap();
            outbox.push(to, vec![i as u8; 20 + i % 7]);
        }
        assert_eq!(outbox.flush(&sender), BATCH + 10);
        assert_eq!(outbox.flush(&sender), 0, "flushed datagrams are not sent twice");
        for (r, receiver) in receivers.iter().enumerate() {
            let mut buf = [0u8; 64];
            for i in (r..BATCH + 10).step_by(3) {
                let (len, from) = receiver.recv_from(&mut buf).await.unwrap();
                assert_eq!(from, sender.local_addr().unwrap());
                assert_eq!(&buf[..len], &vec![i as u8; 20 + i % 7][..]);
            }
        }
    }

    #[tokio::test]
    async fn a_refused_datagram_does_not_hold_up_the_others() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut outbox = Outbox::default();
        outbox.push(receiver.local_addr().unwrap(), b"first".to_vec());
        // An IPv6 destination on an IPv4 socket: the kernel refuses this one.
        outbox.push("[::1]:9".parse().unwrap(), b"refused".to_vec());
        outbox.push(receiver.local_addr().unwrap(), b"last".to_vec());
        assert_eq!(outbox.flush(&sender), 2);
        let mut buf = [0u8; 16];
        let (len, _) = receiver.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"first");
        let (len, _) = receiver.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"last");
    }
}
