//! Coarse geography for analytics: the country an attendee connected from, looked up offline.
//!
//! Off by default (`[geo] enabled = false`). When enabled, `[geo] database` names a local CSV of IP ranges,
//! one `first_ip,last_ip,CC` per line (IPv4 or IPv6; the layout of the freely licensed "IP to country lite"
//! CSV files, e.g. db-ip.com's `dbip-country-lite`). The gateway never asks a network service, and ships no
//! database: an operator who enables the switch must provide the file. Only the two-letter country is kept,
//! on the attendance row; the address itself is never stored.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoSettings {
    pub enabled: bool,
    /// Path of the CSV range file (required when enabled).
    pub database: Option<PathBuf>,
}

/// A pluggable lookup: the country (ISO 3166-1 alpha-2) an address belongs to, if known.
pub trait CountryLookup: Send + Sync + 'static {
    fn country(&self, ip: IpAddr) -> Option<String>;
}

/// Sorted, non-overlapping ranges read from a CSV file.
pub struct CsvCountryLookup {
    ranges: Vec<(u128, u128, [u8; 2])>,
}

fn key(ip: IpAddr) -> u128 {
    match ip {
        // IPv4 and IPv4-mapped IPv6 share one key space.
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(u128::from(v6), |v4| u128::from(v4.to_ipv6_mapped())),
    }
}

impl CsvCountryLookup {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read geo database {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("geo database {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut ranges = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(|f| f.trim().trim_matches('"')).collect();
            let [first, last, country, ..] = fields[..] else {
                anyhow::bail!("line {}: expected first_ip,last_ip,country", n + 1)
            };
            let first: IpAddr = first.parse().with_context(|| format!("line {}: bad address", n + 1))?;
            let last: IpAddr = last.parse().with_context(|| format!("line {}: bad address", n + 1))?;
            let cc = country.as_bytes();
            anyhow::ensure!(
                cc.len() == 2 && cc.iter().all(u8::is_ascii_alphabetic),
                "line {}: country must be two letters",
                n + 1
            );
            let (a, b) = (key(first), key(last));
            anyhow::ensure!(a <= b, "line {}: range ends before it starts", n + 1);
            ranges.push((a, b, [cc[0].to_ascii_uppercase(), cc[1].to_ascii_uppercase()]));
        }
        ranges.sort_unstable();
        Ok(CsvCountryLookup { ranges })
    }
}

impl CountryLookup for CsvCountryLookup {
    fn country(&self, ip: IpAddr) -> Option<String> {
        let k = key(ip);
        let i = self.ranges.partition_point(|r| r.0 <= k).checked_sub(1)?;
        let (_, last, cc) = self.ranges[i];
        (k <= last).then(|| String::from_utf8_lossy(&cc).into_owned())
    }
}

/// The lookup plus the countries of connections not yet seated, handed to the attendance recorder by client id.
pub struct Geo {
    lookup: Box<dyn CountryLookup>,
    pending: Mutex<HashMap<String, String>>,
}

impl Geo {
    pub fn new(lookup: impl CountryLookup) -> Self {
        Geo { lookup: Box::new(lookup), pending: Mutex::new(HashMap::new()) }
    }

    /// `None` when the switch is off; an error when it is on without a readable file.
    pub fn from_settings(settings: &GeoSettings) -> anyhow::Result<Option<Arc<Geo>>> {
        if !settings.enabled {
            return Ok(None);
        }
        let path = settings.database.as_deref().context("geo.enabled needs geo.database (a local CSV of IP ranges)")?;
        Ok(Some(Arc::new(Geo::new(CsvCountryLookup::load(path)?))))
    }

    /// Notes the country of a connection about to be seated.
    pub fn tag(&self, client_id: &str, ip: IpAddr) {
        if let Some(country) = self.lookup.country(ip) {
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(client_id.to_owned(), country);
        }
    }

    /// The country noted for a client, once.
    pub fn take(&self, client_id: &str) -> Option<String> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ranges_of_both_families() {
        let db = CsvCountryLookup::parse(
            "1.0.0.0,1.0.0.255,AU\n\"127.0.0.0\",\"127.255.255.255\",\"zz\"\n2001:db8::,2001:db8::ffff,DE\n",
        )
        .unwrap();
        assert_eq!(db.country("1.0.0.7".parse().unwrap()).as_deref(), Some("AU"));
        assert_eq!(db.country("127.0.0.1".parse().unwrap()).as_deref(), Some("ZZ"));
        assert_eq!(db.country("::ffff:127.0.0.1".parse().unwrap()).as_deref(), Some("ZZ"));
        assert_eq!(db.country("2001:db8::10".parse().unwrap()).as_deref(), Some("DE"));
        assert_eq!(db.country("1.0.1.0".parse().unwrap()), None);
        assert_eq!(db.country("0.0.0.1".parse().unwrap()), None);
        assert!(CsvCountryLookup::parse("1.0.0.9,1.0.0.1,AU").is_err());
        assert!(CsvCountryLookup::parse("1.0.0.0,1.0.0.1,AUS").is_err());
    }
}
