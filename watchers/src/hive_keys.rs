//! A Hive account's public keys from a Hive API node (`condenser_api.get_accounts` over JSON-RPC), kept for a
//! short time so a burst of sign-ins for one account costs one request. The trait it implements,
//! [`chains::signature::HiveKeySource`], stays in `chains`, which makes no network calls.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chains::signature::{BoxFuture, HiveAccountKeys, HiveKeySource, SignatureError};
use serde::Deserialize;

/// Keys from a Hive API node's JSON-RPC endpoint, cached for `ttl` (30 s by default: key changes are rare, but a
/// revoked key should stop working soon).
///
/// The HTTP client has no TLS of its own; an `https://` node needs reqwest's TLS feature enabled by the binary.
pub struct HiveRpcKeySource {
    url: String,
    client: reqwest::Client,
    ttl: Duration,
    cache: Mutex<HashMap<String, CacheEntry>>,
}

/// An answer and when it was fetched; `None` (no such account) is cached too.
struct CacheEntry {
    fetched: Instant,
    keys: Option<HiveAccountKeys>,
}

impl HiveRpcKeySource {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
    const TIMEOUT: Duration = Duration::from_secs(5);
    /// Entries beyond this are dropped wholesale rather than evicted one by one: the cache is a burst absorber.
    const MAX_ENTRIES: usize = 10_000;

    pub fn new(url: impl Into<String>) -> Self {
        let client = reqwest::Client::builder().timeout(Self::TIMEOUT).build().unwrap_or_default();
        Self::with_client(url, client)
    }

    pub fn with_client(url: impl Into<String>, client: reqwest::Client) -> Self {
        Self { url: url.into(), client, ttl: Self::DEFAULT_TTL, cache: Mutex::new(HashMap::new()) }
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn cached(&self, account: &str) -> Option<Option<HiveAccountKeys>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(account)?;
        (entry.fetched.elapsed() < self.ttl).then(|| entry.keys.clone())
    }

    fn store(&self, account: &str, keys: Option<HiveAccountKeys>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= Self::MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(account.to_string(), CacheEntry { fetched: Instant::now(), keys });
    }

    async fn fetch(&self, account: &str) -> Result<Option<HiveAccountKeys>, SignatureError> {
        // The message names the node asked (its origin only: a provider's path or query may hold an API key), so
        // an operator sees which `hive_api_url` to fix.
        let node = shown_url(&self.url);
        let unavailable = |e: reqwest::Error| {
            let e = e.without_url();
            let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
            SignatureError::KeySourceUnavailable(format!("the Hive API at {node} did not answer ({e}{cause})"))
        };
        let request = serde_json::json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "condenser_api.get_accounts",
            "params": [[account]],
        });
        let response: RpcResponse = self
            .client
            .post(&self.url)
            .json(&request)
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status()
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        if let Some(error) = response.error {
            return Err(SignatureError::KeySourceUnavailable(format!(
                "the Hive API at {node} answered an error: {error}"
            )));
        }
        let accounts = response.result.unwrap_or_default();
        Ok(accounts
            .into_iter()
            .find(|a| a.name == account)
            .map(|a| HiveAccountKeys { posting: a.posting.keys(), active: a.active.keys() }))
    }
}

/// `scheme://host[:port]` of a URL, without user information, path or query.
fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    match scheme {
        "" => host.to_owned(),
        scheme => format!("{scheme}://{host}"),
    }
}

impl HiveKeySource for HiveRpcKeySource {
    fn account_keys<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<Option<HiveAccountKeys>, SignatureError>> {
        Box::pin(async move {
            if let Some(hit) = self.cached(account) {
                return Ok(hit);
            }
            let keys = self.fetch(account).await?;
            self.store(account, keys.clone());
            Ok(keys)
        })
    }
}

#[derive(Deserialize)]
struct RpcResponse {
    result: Option<Vec<RpcAccount>>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RpcAccount {
    name: String,
    active: Authority,
    posting: Authority,
}

/// An authority's `key_auths`: `[["STM…", weight], …]`. Account auths (delegation to other accounts) are not
/// followed: a signature must come from a key of the account itself.
#[derive(Deserialize)]
struct Authority {
    key_auths: Vec<(String, serde_json::Value)>,
}

impl Authority {
    fn keys(self) -> Vec<String> {
        self.key_auths.into_iter().map(|(key, _)| key).collect()
    }
}
