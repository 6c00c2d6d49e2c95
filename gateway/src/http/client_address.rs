//! The client's address behind a reverse proxy. Behind nginx every connection comes from the proxy, so the
//! per-address rate limits would count all clients together and the country lookup would see only the proxy.
//! For connections from a `[server] trusted_proxies` address, the client is read from `X-Forwarded-For`: walking
//! from the right (the entry the nearest proxy added), past every trusted proxy, the first other address is the
//! client. Entries left of it were written by the client and are not believed. The request's `ConnectInfo` is
//! replaced, so every handler (and the room WebSocket) sees the client.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use turn_relay::peer_policy::Cidr;

/// Replaces the peer address with the forwarded client's when the peer is a trusted proxy.
pub async fn from_trusted_proxies(State(trusted): State<Arc<Vec<Cidr>>>, mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        if is_trusted(&trusted, peer.ip()) {
            if let Some(client) = forwarded_client(request.headers(), &trusted) {
                request.extensions_mut().insert(ConnectInfo(SocketAddr::new(client, peer.port())));
            }
        }
    }
    next.run(request).await
}

/// The key per-client limits count under: an IPv4 address as it is, an IPv6 address by its /64 (one home or
/// one machine is handed a whole /64, so counting single IPv6 addresses would give one client 2^64 allowances).
pub fn client_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
    }
}

fn is_trusted(trusted: &[Cidr], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|cidr| cidr.contains(ip))
}

/// The client named by `X-Forwarded-For` (all its headers, in order), or `None` when there is none or an entry
/// on the way is not an address.
fn forwarded_client(headers: &HeaderMap, trusted: &[Cidr]) -> Option<IpAddr> {
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut leftmost_trusted = None;
    for entry in entries.iter().rev() {
        let ip: IpAddr = entry.parse().ok()?;
        let ip = ip.to_canonical();
        if !is_trusted(trusted, ip) {
            return Some(ip);
        }
        leftmost_trusted = Some(ip);
    }
    leftmost_trusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| Cidr::try_from(c.to_string()).unwrap()).collect()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("x-forwarded-for", v.parse().unwrap());
        }
        map
    }

    #[test]
    fn clients_are_counted_by_ipv4_address_and_ipv6_slash_64() {
        let key = |ip: &str| client_key(ip.parse().unwrap());
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9", "a mapped IPv4 address is that address");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64", "one /64, one client");
        assert_eq!(key("2001:db8:1:3::1"), "2001:db8:1:3::/64");
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_entry() {
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        let client = |values: &[&str]| forwarded_client(&headers(values), &trusted);
        assert_eq!(client(&["203.0.113.9"]), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(
            client(&["198.51.100.1, 203.0.113.9, 10.1.2.3"]),
            Some("203.0.113.9".parse().unwrap()),
            "a forged entry left of the client is ignored"
        );
        assert_eq!(client(&["198.51.100.1", "203.0.113.9"]), Some("203.0.113.9".parse().unwrap()), "several headers");
        assert_eq!(client(&["::ffff:203.0.113.9"]), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(client(&["10.0.0.2, 127.0.0.1"]), Some("10.0.0.2".parse().unwrap()), "only proxies: the farthest");
        assert_eq!(client(&["not-an-ip, 127.0.0.1"]), None);
        assert_eq!(client(&[]), None);
    }
}
