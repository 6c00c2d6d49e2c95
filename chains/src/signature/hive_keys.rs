//! Where a Hive account's public keys come from: a [`HiveKeySource`]. The real one asks a Hive API node over HTTP
//! and lives in `watchers::hive_keys` (this crate makes no network calls); tests and offline setups use
//! [`StaticHiveKeys`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use super::SignatureError;

/// A boxed `Send` future, so that [`HiveKeySource`] can be used as `&dyn HiveKeySource`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The keys that may sign for an account (`STM…` strings, as the chain reports them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HiveAccountKeys {
    pub posting: Vec<String>,
    pub active: Vec<String>,
}

/// Looks up an account's posting and active keys. `Ok(None)` means the account does not exist.
pub trait HiveKeySource: Send + Sync {
    fn account_keys<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<Option<HiveAccountKeys>, SignatureError>>;
}

/// A fixed map of accounts, for tests and deployments without an API node.
#[derive(Debug, Clone, Default)]
pub struct StaticHiveKeys(pub HashMap<String, HiveAccountKeys>);

impl HiveKeySource for StaticHiveKeys {
    fn account_keys<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<Option<HiveAccountKeys>, SignatureError>> {
        let keys = self.0.get(account).cloned();
        Box::pin(async move { Ok(keys) })
    }
}
