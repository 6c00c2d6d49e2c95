//! The few STUN operations the gatekeeper needs beyond what the `stun` crate offers directly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_XOR_PEER_ADDRESS};
use stun::error_code::{ErrorCode, ErrorCodeAttribute};
use stun::integrity::MessageIntegrity;
use stun::message::{Message, MessageType, Setter, CLASS_ERROR_RESPONSE};
use stun::textattrs::TextAttribute;

const MAGIC_COOKIE: u32 = 0x2112_A442;
const HEADER_LEN: usize = 20;

/// True for a STUN request (class bits 00), read from the header alone so that the data path
/// (ChannelData, Send indications) never pays for a full decode.
pub fn is_request(buf: &[u8]) -> bool {
    buf.len() >= HEADER_LEN
        && buf[0] & 0xC0 == 0
        && u16::from_be_bytes([buf[0], buf[1]]) & 0x0110 == 0
        && buf[4..8] == MAGIC_COOKIE.to_be_bytes()
}

pub fn decode(buf: &[u8]) -> Option<Message> {
    let mut m = Message { raw: buf.to_vec(), ..Default::default() };
    m.decode().ok()?;
    Some(m)
}

pub fn text(m: &Message, attr: stun::attributes::AttrType) -> Option<String> {
    TextAttribute::get_from_as(m, attr).ok().map(|t| t.text)
}

/// Every XOR-PEER-ADDRESS in `m` (CreatePermission may carry several). `None` if one is malformed.
pub fn xor_peer_addresses(m: &Message) -> Option<Vec<SocketAddr>> {
    m.attributes
        .0
        .iter()
        .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
        .map(|a| decode_xor_address(&a.value, &m.transaction_id.0))
        .collect()
}

fn decode_xor_address(v: &[u8], transaction_id: &[u8; 12]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match (v[1], v.len()) {
        (0x01, 8) => {
            let raw: [u8; 4] = std::array::from_fn(|i| v[4 + i] ^ cookie[i]);
            IpAddr::V4(Ipv4Addr::from(raw))
        }
        (0x02, 20) => {
            let key: Vec<u8> = cookie.iter().chain(transaction_id).copied().collect();
            let raw: [u8; 16] = std::array::from_fn(|i| v[4 + i] ^ key[i]);
            IpAddr::V6(Ipv6Addr::from(raw))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// What an error response carries besides its code.
pub enum ErrorExtras {
    /// 401: REALM and NONCE so the client knows the challenge it failed.
    Challenge { realm: String, nonce: String },
    /// Errors to an authenticated request are signed with the request's key (RFC 8656 §7.2).
    Signed(MessageIntegrity),
}

pub fn error_response(req: &Message, code: ErrorCode, extras: ErrorExtras) -> Option<Vec<u8>> {
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(Message { transaction_id: req.transaction_id, ..Default::default() }),
        Box::new(MessageType::new(req.typ.method, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute { code, reason: Vec::new() }),
    ];
    match extras {
        ErrorExtras::Challenge { realm, nonce } => {
            setters.push(Box::new(TextAttribute::new(ATTR_REALM, realm)));
            setters.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce)));
        }
        ErrorExtras::Signed(integrity) => setters.push(Box::new(integrity)),
    }
    let mut msg = Message::new();
    msg.build(&setters).ok()?;
    Some(msg.raw)
}

#[cfg(test)]
mod tests {
    use stun::agent::TransactionId;
    use stun::message::{CLASS_REQUEST, METHOD_CREATE_PERMISSION};
    use stun::xoraddr::XorMappedAddress;

    use super::*;

    #[test]
    fn decodes_all_peer_addresses() {
        let peers: [SocketAddr; 2] = ["127.0.0.1:3480".parse().unwrap(), "[fe80::1]:9".parse().unwrap()];
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter>> =
            vec![Box::new(TransactionId::new()), Box::new(MessageType::new(METHOD_CREATE_PERMISSION, CLASS_REQUEST))];
        for p in peers {
            setters.push(Box::new(PeerAttr(p)));
        }
        m.build(&setters).unwrap();
        let decoded = decode(&m.raw).unwrap();
        assert!(is_request(&m.raw));
        assert_eq!(xor_peer_addresses(&decoded).unwrap(), peers.to_vec());
    }

    /// XOR-PEER-ADDRESS has XOR-MAPPED-ADDRESS's encoding under another attribute type.
    struct PeerAttr(SocketAddr);
    impl Setter for PeerAttr {
        fn add_to(&self, m: &mut Message) -> Result<(), stun::Error> {
            XorMappedAddress { ip: self.0.ip(), port: self.0.port() }.add_to_as(m, ATTR_XOR_PEER_ADDRESS)
        }
    }
}
