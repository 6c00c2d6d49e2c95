//! The currencies a ticket can be paid in and the chains they live on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A payment currency. `Usd` is a pricing unit only: nothing is ever paid in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    Hive,
    Hbd,
    Btc,
    Eth,
    Sol,
    Pol,
    Bnb,
    Xmr,
    Usd,
}

/// A chain family, as far as wallets and signatures are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chain {
    Hive,
    Btc,
    Eth,
    Pol,
    Bnb,
    Sol,
    Xmr,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency or chain `{0}`")]
pub struct UnknownCurrency(pub String);

impl Currency {
    /// Every currency a buyer can pay in (USD excluded).
    pub const PAYABLE: [Currency; 8] = [
        Currency::Hive,
        Currency::Hbd,
        Currency::Btc,
        Currency::Eth,
        Currency::Sol,
        Currency::Pol,
        Currency::Bnb,
        Currency::Xmr,
    ];

    /// Number of decimals of the currency's base unit: satoshi, wei, lamport, piconero, Hive's milli-units,
    /// and cents for USD prices.
    pub const fn decimals(self) -> u32 {
        match self {
            Currency::Hive | Currency::Hbd => 3,
            Currency::Btc => 8,
            Currency::Eth | Currency::Pol | Currency::Bnb => 18,
            Currency::Sol => 9,
            Currency::Xmr => 12,
            Currency::Usd => 2,
        }
    }

    pub const fn symbol(self) -> &'static str {
        match self {
            Currency::Hive => "HIVE",
            Currency::Hbd => "HBD",
            Currency::Btc => "BTC",
            Currency::Eth => "ETH",
            Currency::Sol => "SOL",
            Currency::Pol => "POL",
            Currency::Bnb => "BNB",
            Currency::Xmr => "XMR",
            Currency::Usd => "USD",
        }
    }

    /// The chain a payment in this currency travels on; `None` for USD.
    pub const fn chain(self) -> Option<Chain> {
        match self {
            Currency::Hive | Currency::Hbd => Some(Chain::Hive),
            Currency::Btc => Some(Chain::Btc),
            Currency::Eth => Some(Chain::Eth),
            Currency::Sol => Some(Chain::Sol),
            Currency::Pol => Some(Chain::Pol),
            Currency::Bnb => Some(Chain::Bnb),
            Currency::Xmr => Some(Chain::Xmr),
            Currency::Usd => None,
        }
    }

    pub const fn is_payable(self) -> bool {
        !matches!(self, Currency::Usd)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl FromStr for Currency {
    type Err = UnknownCurrency;

    /// Accepts symbols and the seed's payment-method names, case-insensitively (`matic` is POL's old name).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "hive" => Currency::Hive,
            "hbd" => Currency::Hbd,
            "btc" | "bitcoin" => Currency::Btc,
            "eth" | "ethereum" => Currency::Eth,
            "sol" | "solana" => Currency::Sol,
            "pol" | "matic" | "polygon" => Currency::Pol,
            "bnb" => Currency::Bnb,
            "xmr" | "monero" => Currency::Xmr,
            "usd" => Currency::Usd,
            _ => return Err(UnknownCurrency(s.to_owned())),
        })
    }
}

impl Chain {
    pub const ALL: [Chain; 7] = [Chain::Hive, Chain::Btc, Chain::Eth, Chain::Pol, Chain::Bnb, Chain::Sol, Chain::Xmr];

    pub const fn as_str(self) -> &'static str {
        match self {
            Chain::Hive => "hive",
            Chain::Btc => "btc",
            Chain::Eth => "eth",
            Chain::Pol => "pol",
            Chain::Bnb => "bnb",
            Chain::Sol => "sol",
            Chain::Xmr => "xmr",
        }
    }

    /// EVM chains share one address and signature format.
    pub const fn is_evm(self) -> bool {
        matches!(self, Chain::Eth | Chain::Pol | Chain::Bnb)
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Chain {
    type Err = UnknownCurrency;

    /// Accepts chain names and currency symbols (`hbd` is the Hive chain, `matic`/`polygon` are POL).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let currency: Currency = s.parse()?;
        currency.chain().ok_or_else(|| UnknownCurrency(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seed_payment_methods() {
        assert_eq!("matic".parse::<Currency>().unwrap(), Currency::Pol);
        assert_eq!("HBD".parse::<Currency>().unwrap(), Currency::Hbd);
        assert_eq!("hbd".parse::<Chain>().unwrap(), Chain::Hive);
        assert_eq!("ethereum".parse::<Chain>().unwrap(), Chain::Eth);
        assert!("usd".parse::<Chain>().is_err());
        assert!("doge".parse::<Currency>().is_err());
    }
}
