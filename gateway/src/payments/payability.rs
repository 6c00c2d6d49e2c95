//! Which currencies this node can really be paid in.
//!
//! A quote is worth issuing only if a payment to it will be credited: the chain's receiving setting must be
//! present (`payments.btc_xpub`, …; `ticketing` checks it) and a watcher must follow the chain, in this process
//! (`[watchers]`) or in another one sharing the database. `payments.watched_elsewhere` names the chains whose
//! watcher runs elsewhere: a `gateway watch` process, or the one node that watches when several serve. Every other
//! chain is [unwatched](unwatched_chains): `ticketing` refuses its currencies with `currency_not_payable`, listings
//! leave it out of `payable`, start-up says so, and `/readyz` names a quotable chain whose watcher here is unhealthy.

use std::collections::{BTreeMap, BTreeSet};

use chains::{Chain, Currency};
use ticketing::purchases::{PurchaseError, Purchases};
use watchers::{WatcherStatus, WatchersConfig};

/// Every chain a quote can be on.
pub const CHAINS: [Chain; 7] = [Chain::Hive, Chain::Btc, Chain::Eth, Chain::Pol, Chain::Bnb, Chain::Sol, Chain::Xmr];

/// The `[watchers]` section that follows `chain`.
pub fn watcher_setting(chain: Chain) -> &'static str {
    match chain {
        Chain::Hive => "[watchers.hive]",
        Chain::Btc => "[watchers.btc]",
        Chain::Eth => "[[watchers.evm]] chain = \"eth\"",
        Chain::Pol => "[[watchers.evm]] chain = \"pol\"",
        Chain::Bnb => "[[watchers.evm]] chain = \"bnb\"",
        Chain::Sol => "[watchers.solana]",
        Chain::Xmr => "[watchers.monero]",
    }
}

/// The `[payments]` setting(s) that receive `currency`'s payments.
pub fn receiving_setting(currency: Currency) -> String {
    let chain = match currency.chain() {
        Some(chain) => chain,
        None => return "a crypto currency".into(),
    };
    let account = match chain {
        Chain::Hive => "payments.hive_account",
        Chain::Btc => "payments.btc_xpub",
        Chain::Eth | Chain::Pol | Chain::Bnb => "payments.evm_xpub",
        Chain::Sol => "payments.sol_account",
        Chain::Xmr => "payments.xmr_wallet_rpc",
    };
    if currency.is_token() {
        format!("{account} and payments.tokens.\"{}\"", currency.symbol())
    } else {
        account.to_owned()
    }
}

/// The chains a watcher in this process follows.
pub fn watched_here(config: &WatchersConfig) -> BTreeSet<Chain> {
    let mut chains: BTreeSet<Chain> = config.evm.iter().map(|e| e.chain).collect();
    let singles = [
        (config.btc.is_some(), Chain::Btc),
        (config.solana.is_some(), Chain::Sol),
        (config.hive.is_some(), Chain::Hive),
        (config.monero.is_some(), Chain::Xmr),
    ];
    chains.extend(singles.into_iter().filter(|(on, _)| *on).map(|(_, chain)| chain));
    chains
}

/// Chains no watcher follows, here or elsewhere, each with the section that would watch it.
pub fn unwatched_chains(config: &WatchersConfig, elsewhere: &BTreeSet<Chain>) -> BTreeMap<Chain, String> {
    let here = watched_here(config);
    CHAINS
        .into_iter()
        .filter(|chain| !here.contains(chain) && !elsewhere.contains(chain))
        .map(|chain| (chain, watcher_setting(chain).to_owned()))
        .collect()
}

/// The currencies this node would offer (the native coins and the listed tokens) that it cannot be paid in, each
/// with why: logged one a line at start-up.
pub fn unpayable_currencies(purchases: &Purchases) -> Vec<(Currency, String)> {
    let listed = Currency::PAYABLE.into_iter().chain(purchases.settings().tokens.iter().map(|(c, _)| c));
    listed.filter_map(|c| why_not_payable(purchases, c).map(|why| (c, why))).collect()
}

/// Why `currency` cannot be quoted on this node, naming the missing setting; `None` when it can.
pub fn why_not_payable(purchases: &Purchases, currency: Currency) -> Option<String> {
    match purchases.check_payable(currency) {
        Ok(()) => None,
        Err(PurchaseError::PaymentMethodUnavailable(_)) => {
            Some(format!("{} is not configured", receiving_setting(currency)))
        }
        Err(PurchaseError::CurrencyNotPayable(_, setting)) => Some(format!("no watcher: {setting} is not configured")),
        Err(other) => Some(other.to_string()),
    }
}

/// The chains quotable here whose watcher in this process is unhealthy (for `/readyz`). A chain watched
/// elsewhere is that process's to report.
pub fn unhealthy_quotable_chains(purchases: &Purchases, watchers: &[WatcherStatus]) -> Vec<Chain> {
    let quotable = |chain: Chain| {
        Currency::PAYABLE
            .iter()
            .chain(Currency::TOKENS.iter())
            .any(|c| c.chain() == Some(chain) && purchases.is_payable(*c))
    };
    let mut chains: Vec<Chain> = watchers.iter().filter(|w| !w.healthy && quotable(w.chain)).map(|w| w.chain).collect();
    chains.dedup();
    chains
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_is_watched_here_or_declared_watched_elsewhere() {
        let config: WatchersConfig = serde_json::from_value(serde_json::json!({
            "evm": [{ "chain": "eth", "rpc_url": "http://127.0.0.1:1" }],
        }))
        .unwrap();
        let unwatched = unwatched_chains(&config, &BTreeSet::from([Chain::Btc]));
        assert_eq!(
            unwatched.keys().copied().collect::<Vec<_>>(),
            vec![Chain::Hive, Chain::Pol, Chain::Bnb, Chain::Sol, Chain::Xmr]
        );
        assert_eq!(unwatched[&Chain::Xmr], "[watchers.monero]");
        assert_eq!(receiving_setting(Currency::UsdcPol), "payments.evm_xpub and payments.tokens.\"USDC.POL\"");
    }
}
