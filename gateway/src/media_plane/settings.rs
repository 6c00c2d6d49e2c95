//! `[media]`: how a room carries voice and screen share.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// A room's media mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaMode {
    /// One browser-to-browser connection per pair of attendees (the relayed `offer`/`answer`/`candidate`).
    #[default]
    Mesh,
    /// Every browser opens one connection to the embedded SFU; only hosts publish.
    Sfu,
    /// Mesh while the room holds at most `auto_threshold` people, the SFU once it holds more (for the rest
    /// of the room's life on this node: a room does not flip back while people are in it).
    Auto,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    pub mode: MediaMode,
    /// With `auto`: the largest room still in mesh.
    pub auto_threshold: usize,
    /// The SFU's UDP socket (one port for every connection: ICE-lite, told apart by ICE username).
    pub udp_bind: SocketAddr,
    /// The address browsers are told to reach the SFU at (the host's public IP). Unset: the bound address,
    /// which must then be a specific one.
    pub public_ip: Option<IpAddr>,
    /// Audio streams forwarded to each listener: the N loudest speakers.
    pub loudest: usize,
    /// ICE over TCP (RFC 6544): the SFU also listens on TCP and offers a passive TCP candidate, for browsers
    /// whose network blocks UDP.
    pub tcp: bool,
    /// Where that TCP listener binds. Unset: the UDP socket's address and port.
    pub tcp_bind: Option<SocketAddr>,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            mode: MediaMode::Mesh,
            auto_threshold: 8,
            udp_bind: SocketAddr::from(([127, 0, 0, 1], 3479)),
            public_ip: None,
            loudest: 3,
            tcp: true,
            tcp_bind: None,
        }
    }
}

impl MediaSettings {
    /// Whether any room may use the SFU (then it is started).
    pub fn uses_sfu(&self) -> bool {
        self.mode != MediaMode::Mesh
    }

    /// Whether a room holding `occupants` people (the joiner counted) uses the SFU.
    pub fn sfu_for(&self, occupants: usize) -> bool {
        match self.mode {
            MediaMode::Mesh => false,
            MediaMode::Sfu => true,
            MediaMode::Auto => occupants > self.auto_threshold,
        }
    }

    pub fn sfu_config(&self) -> media::SfuConfig {
        let ice_tcp = match (self.tcp, self.tcp_bind) {
            (false, _) => media::IceTcp::Off,
            (true, None) => media::IceTcp::SamePort,
            (true, Some(addr)) => media::IceTcp::Bind(addr),
        };
        media::SfuConfig { udp_bind: self.udp_bind, announce_ip: self.public_ip, loudest: self.loudest.max(1), ice_tcp }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_by_default_and_auto_switches_above_the_threshold() {
        let mut settings = MediaSettings::default();
        assert!(!settings.uses_sfu() && !settings.sfu_for(1000));
        settings.mode = MediaMode::Auto;
        settings.auto_threshold = 4;
        assert!(!settings.sfu_for(4));
        assert!(settings.sfu_for(5));
        settings.mode = MediaMode::Sfu;
        assert!(settings.sfu_for(1));
    }
}
