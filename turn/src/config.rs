//! The relay's settings, deserialisable from the gateway's layered config (a `[turn]` table).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::credentials::{self, SessionId, TurnCredentials};
use crate::error::TurnError;
use crate::peer_policy::Cidr;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// UDP listener (RFC 8656 over UDP); `None` disables it.
    pub listen_udp: Option<SocketAddr>,
    /// TCP listener (RFC 8656 over TCP, relaying UDP); `None` disables it.
    pub listen_tcp: Option<SocketAddr>,
    /// TLS listener (`turns:`, RFC 8656 over TLS, relaying UDP), e.g. on 443 for networks that pass only
    /// HTTPS; needs `tls_cert_file` and `tls_key_file`. `None` (the default) disables it.
    pub listen_tls: Option<SocketAddr>,
    /// PEM certificate chain for the TLS listener.
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for the TLS listener.
    pub tls_key_file: Option<std::path::PathBuf>,
    /// Local address relay sockets bind to.
    pub relay_bind_ip: IpAddr,
    /// Address announced in XOR-RELAYED-ADDRESS. Required when `relay_bind_ip` is unspecified.
    pub public_ip: Option<IpAddr>,
    /// Ports relay sockets are bound from (inclusive).
    pub relay_ports: PortRange,
    pub realm: String,
    /// coturn's `static-auth-secret`, shared with whoever issues credentials.
    pub shared_secret: String,
    /// Credential lifetime, seconds.
    pub credential_ttl_secs: u64,
    /// `turn:`/`turns:` URLs handed to clients with each credential.
    pub turn_urls: Vec<String>,
    /// STUN URL handed out too; derived from the first `turn:` URL when unset.
    pub stun_url: Option<String>,
    /// Peer ranges allowed despite the default deny list (coturn's `allowed-peer-ip`).
    pub allowed_peers: Vec<Cidr>,
    /// Concurrent allocations per credential (username); beyond it Allocate gets 486.
    pub max_allocations_per_credential: u32,
    /// Relayed bytes per second per credential, both directions together; `None` = unlimited.
    pub max_bytes_per_sec_per_credential: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

impl Default for TurnConfig {
    fn default() -> Self {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        TurnConfig {
            listen_udp: Some(SocketAddr::new(any, 3478)),
            listen_tcp: Some(SocketAddr::new(any, 3478)),
            listen_tls: None,
            tls_cert_file: None,
            tls_key_file: None,
            relay_bind_ip: any,
            public_ip: None,
            relay_ports: PortRange { min: 49152, max: 65535 },
            realm: "turn.local".into(),
            shared_secret: String::new(),
            credential_ttl_secs: 600,
            turn_urls: Vec::new(),
            stun_url: None,
            allowed_peers: Vec::new(),
            max_allocations_per_credential: 4,
            max_bytes_per_sec_per_credential: Some(2_000_000),
        }
    }
}

impl TurnConfig {
    /// A loopback-only config for tests and benchmarks: listeners on 127.0.0.1 with OS-chosen
    /// ports, relays on 127.0.0.1, and 127.0.0.1 allowed as a peer.
    pub fn loopback(shared_secret: &str) -> Self {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        TurnConfig {
            listen_udp: Some(SocketAddr::new(lo, 0)),
            listen_tcp: Some(SocketAddr::new(lo, 0)),
            relay_bind_ip: lo,
            public_ip: Some(lo),
            realm: "test.local".into(),
            shared_secret: shared_secret.into(),
            allowed_peers: vec!["127.0.0.1".parse().expect("literal CIDR")],
            max_bytes_per_sec_per_credential: None,
            ..TurnConfig::default()
        }
    }

    pub fn credential_ttl(&self) -> Duration {
        Duration::from_secs(self.credential_ttl_secs)
    }

    /// The address clients are told their relay is at.
    pub fn announced_ip(&self) -> Result<IpAddr, TurnError> {
        match self.public_ip {
            Some(ip) if !ip.is_unspecified() => Ok(ip),
            _ if !self.relay_bind_ip.is_unspecified() => Ok(self.relay_bind_ip),
            _ => Err(TurnError::Config("public_ip must be set when relay_bind_ip is unspecified".into())),
        }
    }

    pub fn validate(&self) -> Result<(), TurnError> {
        if self.shared_secret.len() < 16 {
            return Err(TurnError::Config("shared_secret must be at least 16 bytes".into()));
        }
        if self.listen_udp.is_none() && self.listen_tcp.is_none() {
            return Err(TurnError::Config("no listener: set listen_udp and/or listen_tcp".into()));
        }
        let PortRange { min, max } = self.relay_ports;
        if min == 0 || max < min {
            return Err(TurnError::Config(format!("bad relay port range {min}..={max}")));
        }
        if self.max_allocations_per_credential == 0 {
            return Err(TurnError::Config("max_allocations_per_credential must be > 0".into()));
        }
        self.announced_ip().map(|_| ())
    }

    /// The URLs handed out with a credential: the TURN URLs, then one STUN URL.
    pub fn ice_urls(&self) -> Vec<String> {
        let mut urls = self.turn_urls.clone();
        let stun = self.stun_url.clone().or_else(|| {
            let turn = self.turn_urls.iter().find(|u| u.starts_with("turn:"))?;
            let host = turn.trim_start_matches("turn:").split('?').next()?;
            Some(format!("stun:{host}"))
        });
        urls.extend(stun);
        urls
    }

    /// Issues a credential for `session_id` with this config's secret, TTL and URLs.
    pub fn issue(&self, session_id: &SessionId, now: SystemTime) -> TurnCredentials {
        credentials::issue(&self.shared_secret, session_id, self.credential_ttl(), now, self.ice_urls())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_url_is_derived_from_first_turn_url() {
        let cfg = TurnConfig {
            turn_urls: vec![
                "turns:relay.example:5349?transport=tcp".into(),
                "turn:relay.example:3478?transport=udp".into(),
            ],
            ..TurnConfig::default()
        };
        assert_eq!(cfg.ice_urls().last().unwrap(), "stun:relay.example:3478");
    }

    #[test]
    fn production_defaults_need_a_secret_and_public_ip() {
        let mut cfg = TurnConfig::default();
        assert!(cfg.validate().is_err());
        cfg.shared_secret = "0123456789abcdef".into();
        assert!(cfg.validate().is_err(), "0.0.0.0 cannot be announced");
        cfg.public_ip = Some("203.0.113.7".parse().unwrap());
        cfg.validate().unwrap();
        assert!(TurnConfig::loopback("0123456789abcdef").validate().is_ok());
    }

    #[test]
    fn deserialises_from_the_gateway_config_table() {
        let cfg: TurnConfig = serde_json::from_value(serde_json::json!({
            "listen_udp": "0.0.0.0:3478",
            "listen_tcp": null,
            "public_ip": "203.0.113.7",
            "relay_ports": { "min": 50000, "max": 50999 },
            "shared_secret": "0123456789abcdef",
            "allowed_peers": ["10.1.0.0/16"],
            "max_bytes_per_sec_per_credential": null
        }))
        .unwrap();
        assert_eq!(cfg.listen_tcp, None);
        assert_eq!(cfg.allowed_peers[0].to_string(), "10.1.0.0/16");
        assert_eq!(cfg.credential_ttl_secs, 600, "unset fields keep their defaults");
        cfg.validate().unwrap();
        assert!(serde_json::from_value::<TurnConfig>(serde_json::json!({"typo": 1})).is_err());
    }
}
