//! Which peer addresses the relay may send to.
//!
//! An open relay is a proxy into whatever network it sits in, so by default every
//! special-purpose range is denied — the ranges of coturn's recommended `denied-peer-ip` list
//! (loopback, RFC 1918, CGNAT, link-local, documentation, benchmarking, 6to4, ULA, NAT64, …)
//! plus multicast, broadcast and unspecified addresses. An explicit allow list (coturn's
//! `allowed-peer-ip`) overrides the deny list; tests use it to permit 127.0.0.1.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An address block, `10.0.0.0/8` or `fe80::/10`; a bare address means a single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, String> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("prefix /{prefix} too long for {addr}"));
        }
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Ok(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix = match prefix {
            Some(p) => p.trim().parse().map_err(|e| format!("{s:?}: {e}"))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Cidr::new(addr, prefix)
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Denied unless allowed. coturn's example `denied-peer-ip` list, as CIDRs, plus multicast.
pub const DEFAULT_DENIED: &[&str] = &[
    "0.0.0.0/8",       // "this network", includes unspecified
    "10.0.0.0/8",      // RFC 1918
    "100.64.0.0/10",   // CGNAT shared space
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local
    "172.16.0.0/12",   // RFC 1918
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // TEST-NET-1
    "192.88.99.0/24",  // 6to4 relay anycast
    "192.168.0.0/16",  // RFC 1918
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // TEST-NET-2
    "203.0.113.0/24",  // TEST-NET-3
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, includes broadcast
    "::/128",          // unspecified
    "::1/128",         // loopback
    "::ffff:0:0/96",   // IPv4-mapped (checked as IPv4 as well)
    "64:ff9b::/96",    // NAT64
    "100::/64",        // discard-only
    "2001::/23",       // IETF protocol assignments, Teredo
    "2001:db8::/32",   // documentation
    "2002::/16",       // 6to4
    "fc00::/7",        // unique local
    "fe80::/10",       // link-local
    "ff00::/8",        // multicast
];

#[derive(Clone, Debug)]
pub struct PeerPolicy {
    denied: Vec<Cidr>,
    allowed: Vec<Cidr>,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl PeerPolicy {
    /// The default deny list with `allowed` as exceptions.
    pub fn new(allowed: Vec<Cidr>) -> Self {
        let denied = DEFAULT_DENIED.iter().map(|s| s.parse().expect("built-in CIDR")).collect();
        PeerPolicy { denied, allowed }
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        // Judge an IPv4-mapped IPv6 address as the IPv4 address it stands for, so
        // `::ffff:127.0.0.1` is exactly as allowed as `127.0.0.1`.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self.allowed.iter().any(|c| c.contains(ip)) {
            return true;
        }
        !self.denied.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn denies_special_ranges_by_default() {
        let p = PeerPolicy::default();
        for denied in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!p.allows(ip(denied)), "{denied} should be denied");
        }
        for allowed in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(p.allows(ip(allowed)), "{allowed} should be allowed");
        }
    }

    #[test]
    fn allow_list_overrides_deny_list() {
        let p = PeerPolicy::new(vec!["127.0.0.1".parse().unwrap()]);
        assert!(p.allows(ip("127.0.0.1")));
        assert!(!p.allows(ip("127.0.0.2")));
    }

    #[test]
    fn parses_and_prints_cidrs() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
    }
}
