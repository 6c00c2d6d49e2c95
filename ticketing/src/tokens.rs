//! Stablecoin payments: which token contract (or Solana mint) each token currency is, and how a wallet is
//! asked to pay one.
//!
//! A token quote is an ordinary quote of its network (the chain's per-quote address, or the Solana account and
//! a Solana Pay reference); only the currency, and so the transfer the watcher looks for, differs. What the
//! currency alone does not say is *which* contract is USDC on Polygon: that is the operator's configuration,
//! kept here, and a token is quotable only when it is configured, so a buyer is never asked to pay a token
//! nobody watches.

use std::collections::BTreeMap;

use chains::{Chain, Currency};

use crate::purchases::{PaymentSettings, PurchaseError, QuoteRow};

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

    /// Refuses a quote in a token whose contract is not configured (`payment_method_unavailable`). Native
    /// currencies pass: their own configuration is checked when the quote is made.
    pub fn check_quotable(&self, currency: Currency) -> Result<(), PurchaseError> {
        if currency.is_token() && self.contract(currency).is_none() {
            return Err(PurchaseError::PaymentMethodUnavailable(currency));
        }
        Ok(())
    }
}

/// The payment URI of a token quote: EIP-681 `transfer` on the token contract, or Solana Pay with `spl-token`
/// (`purchases::payment_uri` gives every quote's, this one's included). `None` for a token not configured.
pub fn token_payment_uri(quote: &QuoteRow, settings: &PaymentSettings) -> Option<String> {
    let currency = quote.currency().ok()?;
    let contract = settings.tokens.contract(currency)?;
    let amount = quote.amount().ok()?;
    Some(match currency.chain()? {
        chain @ (Chain::Eth | Chain::Pol | Chain::Bnb) => {
            let chain_id = settings.chain_ids.get(&chain).copied().unwrap_or(1);
            format!("ethereum:{contract}@{chain_id}/transfer?address={}&uint256={}", quote.payment_address, amount.units)
        }
        Chain::Sol => format!(
            "solana:{}?amount={}&spl-token={contract}&reference={}&label=Ticket&memo={}",
            quote.payment_address,
            amount,
            quote.reference.as_deref().unwrap_or_default(),
            query_escape(&quote.id)
        ),
        Chain::Btc | Chain::Hive | Chain::Xmr => return None,
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::purchases;

    const USDC_ETH: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
    const USDC_SOL: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

    fn quote(currency: Currency, units: &str, address: &str, reference: Option<&str>) -> QuoteRow {
        QuoteRow {
            id: "q_0123abcd".into(),
            event_id: 1,
            currency: currency.symbol().into(),
            chain: currency.chain().unwrap().as_str().into(),
            wallet_address: "buyer".into(),
            amount_units: units.into(),
            usd_rate: Some("1.00".into()),
            payment_address: address.into(),
            memo: None,
            reference: reference.map(Into::into),
            derivation_index: Some(0),
            status: "awaiting_payment".into(),
            holds_seat: 1,
            received_units: "0".into(),
            confirmations: 0,
            confirmations_required: 12,
            created_at: 0,
            expires_at: 1,
        }
    }

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
        assert_eq!(tokens.contract(Currency::UsdcEth), Some("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"), "lower-cased");
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
        assert!(tokens.check_quotable(Currency::UsdcEth).is_ok());
        assert!(tokens.check_quotable(Currency::Eth).is_ok(), "natives are checked elsewhere");
        let err = tokens.check_quotable(Currency::UsdcPol).unwrap_err();
        assert_eq!(err.code(), "payment_method_unavailable");
        assert_eq!(err.to_string(), "USDC.POL payments are not configured on this gateway");
    }

    #[test]
    fn erc20_quotes_get_an_eip681_transfer_call() {
        let mut settings = PaymentSettings::new("dlux-tickets");
        settings.tokens = contracts();
        let to = "0x9858effd232b4033e47d90003d41ec34ecaeda94";
        let q = quote(Currency::UsdcEth, "25000000", to, None);
        assert_eq!(
            purchases::payment_uri(&q, &settings).unwrap(),
            format!("ethereum:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48@1/transfer?address={to}&uint256=25000000")
        );
        let q = quote(Currency::UsdtBnb, "25000000000000000000", to, None);
        assert_eq!(
            purchases::payment_uri(&q, &settings).unwrap(),
            format!("ethereum:0x55d398326f99059ff775485246999027b3197955@56/transfer?address={to}&uint256=25000000000000000000")
        );
        // Without its contract there is nothing to ask a wallet for.
        assert_eq!(purchases::payment_uri(&quote(Currency::UsdcPol, "1", to, None), &settings), None);
        // Native quotes keep their URI.
        let eth = quote(Currency::Eth, "5", to, None);
        assert_eq!(purchases::payment_uri(&eth, &settings).unwrap(), format!("ethereum:{to}@1?value=5"));
    }

    #[test]
    fn spl_quotes_get_a_solana_pay_transfer_request() {
        let mut settings = PaymentSettings::new("dlux-tickets");
        settings.tokens = contracts();
        let recipient = "4vrde3cq8yD6cB9qJV7jRXocpa1KDNd9MJPMX3R891xV";
        let reference = "7Np41oeYqPefeNQEHSv1UDhYrehxin3NStELsSKCT4K2";
        let q = quote(Currency::UsdcSol, "12500000", recipient, Some(reference));
        assert_eq!(
            purchases::payment_uri(&q, &settings).unwrap(),
            format!("solana:{recipient}?amount=12.5&spl-token={USDC_SOL}&reference={reference}&label=Ticket&memo=q_0123abcd")
        );
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("q_a-b.c~d"), "q_a-b.c~d");
        assert_eq!(query_escape("a b&c=d?"), "a%20b%26c%3Dd%3F");
    }
}
