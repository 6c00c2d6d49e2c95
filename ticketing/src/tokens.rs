//! Stablecoin payments: which token contract (or Solana mint) each token currency is, and how a wallet is
//! asked to pay one.
//!
//! A token quote is an ordinary quote of its network (the chain's per-quote address, or the Solana account and
//! a Solana Pay reference); only the currency, and so the transfer the watcher looks for, differs. What the
//! currency alone does not say is *which* contract is USDC on Polygon: that is the operator's configuration,
//! kept here, and a token is quotable only when it is configured, so a buyer is never asked to pay a token
//! nobody watches.

use std::collections::BTreeMap;

use chains::Currency;

/// Token currency → contract address (EVM, lower-case) or mint (Solana, base58).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenContracts(BTreeMap<Currency, String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenConfigError {
    #[error("{0} is not a token currency")]
    NotAToken(Currency),
    #[error("{currency}: {reason}")]
    BadContract { currency: Currency, reason: String },
}

impl TokenContracts {
    pub fn new() -> Self {
        TokenContracts::default()
    }

    /// Adds `currency`'s contract (or mint), checked and canonicalised by its network's address rules.
    pub fn insert(&mut self, currency: Currency, contract: &str) -> Result<(), TokenConfigError> {
        let chain = currency.chain().filter(|_| currency.is_token()).ok_or(TokenConfigError::NotAToken(currency))?;
        let canonical = chains::address::canonical_address(chain, contract, chains::signature::BtcNetwork::Mainnet)
            .map_err(|e| TokenConfigError::BadContract { currency, reason: e.to_string() })?;
        self.0.insert(currency, canonical);
        Ok(())
    }

    /// The configured contract (or mint) of a token currency.
    pub fn contract(&self, currency: Currency) -> Option<&str> {
        self.0.get(&currency).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (Currency, &str)> {
        self.0.iter().map(|(c, a)| (*c, a.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a quote in `currency` may be made as far as tokens go: not for a token whose contract is not
    /// configured (quotes refuse it `payment_method_unavailable`). Native currencies pass: their own
    /// configuration is checked when the quote is made.
    pub fn is_quotable(&self, currency: Currency) -> bool {
        !currency.is_token() || self.contract(currency).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USDC_ETH: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
    const USDC_SOL: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

    fn contracts() -> TokenContracts {
        let mut tokens = TokenContracts::new();
        tokens.insert(Currency::UsdcEth, USDC_ETH).unwrap();
        tokens.insert(Currency::UsdtBnb, "0x55d398326f99059ff775485246999027b3197955").unwrap();
        tokens.insert(Currency::UsdcSol, USDC_SOL).unwrap();
        tokens
    }

    #[test]
    fn contracts_are_checked_by_their_networks_rules() {
        let tokens = contracts();
        assert_eq!(
            tokens.contract(Currency::UsdcEth),
            Some("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"),
            "lower-cased"
        );
        assert_eq!(tokens.contract(Currency::UsdcSol), Some(USDC_SOL));
        assert_eq!(tokens.contract(Currency::UsdcPol), None);
        let mut t = TokenContracts::new();
        assert_eq!(t.insert(Currency::Eth, USDC_ETH), Err(TokenConfigError::NotAToken(Currency::Eth)));
        assert!(matches!(t.insert(Currency::UsdcSol, USDC_ETH), Err(TokenConfigError::BadContract { .. })));
        assert!(matches!(t.insert(Currency::UsdcEth, USDC_SOL), Err(TokenConfigError::BadContract { .. })));
        // A wrong EIP-55 checksum is a typo, not an address.
        assert!(t.insert(Currency::UsdcEth, "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB4a").is_err());
    }

    #[test]
    fn only_configured_tokens_are_quotable() {
        let tokens = contracts();
        assert!(tokens.is_quotable(Currency::UsdcEth));
        assert!(tokens.is_quotable(Currency::Eth), "natives are checked elsewhere");
        assert!(!tokens.is_quotable(Currency::UsdcPol));
    }
}
