//! The currencies a ticket can be paid in and the chains they live on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A payment currency. `Usd` is a pricing unit only: nothing is ever paid in it.
///
/// A stablecoin is one currency per network it is accepted on (`UsdcPol` is USDC on Polygon): its contract, its
/// decimals and the wallet that pays it differ by network, and an amount of one is never an amount of another.
/// Its [`chain`](Currency::chain) is the network's, so addresses, wallet binding and signatures follow that
/// network's rules; its contract (or Solana mint) is configuration, not part of the currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// USDC on Ethereum (ERC-20, 6 decimals).
    UsdcEth,
    /// USDC on Polygon PoS (ERC-20, 6 decimals).
    UsdcPol,
    /// USDC on BNB Smart Chain (Binance-Peg BEP-20, 18 decimals).
    UsdcBnb,
    /// USDC on Solana (SPL token, 6 decimals).
    UsdcSol,
    /// USDT on Ethereum (ERC-20, 6 decimals).
    UsdtEth,
    /// USDT on Polygon PoS (ERC-20, 6 decimals).
    UsdtPol,
    /// USDT on BNB Smart Chain (Binance-Peg BEP-20, 18 decimals).
    UsdtBnb,
}

/// A USD stablecoin, whatever network carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stablecoin {
    Usdc,
    Usdt,
}

impl Stablecoin {
    pub const fn symbol(self) -> &'static str {
        match self {
            Stablecoin::Usdc => "USDC",
            Stablecoin::Usdt => "USDT",
        }
    }

    /// `usdc` or `usdt`, case-insensitively.
    pub fn parse(text: &str) -> Option<Stablecoin> {
        match text.trim().to_ascii_lowercase().as_str() {
            "usdc" => Some(Stablecoin::Usdc),
            "usdt" => Some(Stablecoin::Usdt),
            _ => None,
        }
    }
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
    /// Every native currency a buyer can pay in (USD and tokens excluded).
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

    /// Every stablecoin token a buyer can pay in, once its contract (or mint) is configured.
    pub const TOKENS: [Currency; 7] = [
        Currency::UsdcEth,
        Currency::UsdcPol,
        Currency::UsdcBnb,
        Currency::UsdcSol,
        Currency::UsdtEth,
        Currency::UsdtPol,
        Currency::UsdtBnb,
    ];

    /// Every currency, USD included.
    pub const ALL: [Currency; 16] = [
        Currency::Hive,
        Currency::Hbd,
        Currency::Btc,
        Currency::Eth,
        Currency::Sol,
        Currency::Pol,
        Currency::Bnb,
        Currency::Xmr,
        Currency::Usd,
        Currency::UsdcEth,
        Currency::UsdcPol,
        Currency::UsdcBnb,
        Currency::UsdcSol,
        Currency::UsdtEth,
        Currency::UsdtPol,
        Currency::UsdtBnb,
    ];

    /// Number of decimals of the currency's base unit: satoshi, wei, lamport, piconero, Hive's milli-units,
    /// cents for USD prices, and each token contract's own `decimals()` (fixed per network: the Binance-Peg
    /// stablecoins on BNB Smart Chain have 18, the others 6).
    pub const fn decimals(self) -> u32 {
        match self {
            Currency::Hive | Currency::Hbd => 3,
            Currency::Btc => 8,
            Currency::Eth | Currency::Pol | Currency::Bnb => 18,
            Currency::Sol => 9,
            Currency::Xmr => 12,
            Currency::Usd => 2,
            Currency::UsdcEth | Currency::UsdcPol | Currency::UsdcSol | Currency::UsdtEth | Currency::UsdtPol => 6,
            Currency::UsdcBnb | Currency::UsdtBnb => 18,
        }
    }

    /// The canonical code: the native symbol, or `TOKEN.NETWORK` for a stablecoin (`USDC.POL`).
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
            Currency::UsdcEth => "USDC.ETH",
            Currency::UsdcPol => "USDC.POL",
            Currency::UsdcBnb => "USDC.BNB",
            Currency::UsdcSol => "USDC.SOL",
            Currency::UsdtEth => "USDT.ETH",
            Currency::UsdtPol => "USDT.POL",
            Currency::UsdtBnb => "USDT.BNB",
        }
    }

    /// The chain a payment in this currency travels on; `None` for USD.
    pub const fn chain(self) -> Option<Chain> {
        match self {
            Currency::Hive | Currency::Hbd => Some(Chain::Hive),
            Currency::Btc => Some(Chain::Btc),
            Currency::Eth | Currency::UsdcEth | Currency::UsdtEth => Some(Chain::Eth),
            Currency::Sol | Currency::UsdcSol => Some(Chain::Sol),
            Currency::Pol | Currency::UsdcPol | Currency::UsdtPol => Some(Chain::Pol),
            Currency::Bnb | Currency::UsdcBnb | Currency::UsdtBnb => Some(Chain::Bnb),
            Currency::Xmr => Some(Chain::Xmr),
            Currency::Usd => None,
        }
    }

    /// The stablecoin this currency is, if it is a token.
    pub const fn stablecoin(self) -> Option<Stablecoin> {
        match self {
            Currency::UsdcEth | Currency::UsdcPol | Currency::UsdcBnb | Currency::UsdcSol => Some(Stablecoin::Usdc),
            Currency::UsdtEth | Currency::UsdtPol | Currency::UsdtBnb => Some(Stablecoin::Usdt),
            _ => None,
        }
    }

    /// A token (ERC-20 or SPL) rather than its chain's native coin.
    pub const fn is_token(self) -> bool {
        self.stablecoin().is_some()
    }

    /// `coin` on `chain`, where it is accepted (USDT is not accepted on Solana, nothing on Bitcoin, Hive or Monero).
    pub const fn token(coin: Stablecoin, chain: Chain) -> Option<Currency> {
        Some(match (coin, chain) {
            (Stablecoin::Usdc, Chain::Eth) => Currency::UsdcEth,
            (Stablecoin::Usdc, Chain::Pol) => Currency::UsdcPol,
            (Stablecoin::Usdc, Chain::Bnb) => Currency::UsdcBnb,
            (Stablecoin::Usdc, Chain::Sol) => Currency::UsdcSol,
            (Stablecoin::Usdt, Chain::Eth) => Currency::UsdtEth,
            (Stablecoin::Usdt, Chain::Pol) => Currency::UsdtPol,
            (Stablecoin::Usdt, Chain::Bnb) => Currency::UsdtBnb,
            _ => return None,
        })
    }

    /// A currency named by a symbol and, separately, a chain (`"USDC"` + `"pol"`, the quote request's second
    /// form). The chain must be the one the symbol already names, if it names one (`"USDC.POL"` + `"pol"`,
    /// `"ETH"` + `"ethereum"`).
    pub fn with_chain(symbol: &str, chain: &str) -> Result<Currency, UnknownCurrency> {
        let unknown = || UnknownCurrency(format!("{symbol} on {chain}"));
        let chain: Chain = chain.parse().map_err(|_| unknown())?;
        if let Some(coin) = Stablecoin::parse(symbol) {
            return Currency::token(coin, chain).ok_or_else(unknown);
        }
        let currency: Currency = symbol.parse()?;
        if currency.chain() == Some(chain) {
            Ok(currency)
        } else {
            Err(unknown())
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

    /// Accepts symbols and the seed's payment-method names, case-insensitively (`matic` is POL's old name), and
    /// tokens as `TOKEN.NETWORK`, `TOKEN-NETWORK` or `TOKEN_NETWORK` with any of the network's names
    /// (`USDC.POL`, `usdc-polygon`, `usdt_eth`). A bare `USDC` names no network and is refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        if let Some((coin, network)) = lower.split_once(['.', '-', '_']) {
            let coin = Stablecoin::parse(coin).ok_or_else(|| UnknownCurrency(s.to_owned()))?;
            let native: Currency = network.parse().map_err(|_| UnknownCurrency(s.to_owned()))?;
            return match native.chain() {
                Some(chain) if !native.is_token() => {
                    Currency::token(coin, chain).ok_or_else(|| UnknownCurrency(s.to_owned()))
                }
                _ => Err(UnknownCurrency(s.to_owned())),
            };
        }
        Ok(match lower.as_str() {
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

/// Serialised as its canonical code (`"ETH"`, `"USDC.POL"`); read with [`FromStr`], so any accepted spelling.
impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.symbol())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
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

    #[test]
    fn tokens_parse_in_every_spelling_and_print_canonically() {
        for text in ["USDC.POL", "usdc.pol", "usdc-pol", "USDC_POL", "usdc.polygon", "Usdc-Matic"] {
            assert_eq!(text.parse::<Currency>(), Ok(Currency::UsdcPol), "{text}");
        }
        assert_eq!("usdt_bnb".parse::<Currency>(), Ok(Currency::UsdtBnb));
        assert_eq!("USDC.SOLANA".parse::<Currency>(), Ok(Currency::UsdcSol));
        assert_eq!("usdt-ethereum".parse::<Currency>(), Ok(Currency::UsdtEth));
        for bad in [
            "USDC",
            "usdt",
            "USDT.SOL",
            "USDC.BTC",
            "USDC.HIVE",
            "USDC.HBD",
            "USDC.XMR",
            "USDC.USD",
            "DAI.ETH",
            "USDC.",
            ".ETH",
            "USDC.USDC.ETH",
            "USDC.POL.ETH",
            "ETH.POL",
        ] {
            assert!(bad.parse::<Currency>().is_err(), "{bad}");
        }
        for c in Currency::ALL {
            assert_eq!(c.symbol().parse::<Currency>(), Ok(c), "{c} round-trips");
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.symbol()));
            assert_eq!(serde_json::from_str::<Currency>(&format!("\"{}\"", c.symbol())).unwrap(), c);
        }
        assert_eq!(serde_json::from_str::<Currency>("\"usdc-eth\"").unwrap(), Currency::UsdcEth);
        assert!(serde_json::from_str::<Currency>("\"USDC\"").is_err());
    }

    #[test]
    fn tokens_live_on_their_network_with_fixed_decimals() {
        let expected = [
            (Currency::UsdcEth, Chain::Eth, 6),
            (Currency::UsdcPol, Chain::Pol, 6),
            (Currency::UsdcBnb, Chain::Bnb, 18),
            (Currency::UsdcSol, Chain::Sol, 6),
            (Currency::UsdtEth, Chain::Eth, 6),
            (Currency::UsdtPol, Chain::Pol, 6),
            (Currency::UsdtBnb, Chain::Bnb, 18),
        ];
        assert_eq!(expected.map(|(c, ..)| c), Currency::TOKENS);
        for (currency, chain, decimals) in expected {
            assert_eq!((currency.chain(), currency.decimals()), (Some(chain), decimals), "{currency}");
            assert!(currency.is_token() && currency.is_payable() && !Currency::PAYABLE.contains(&currency));
            let coin = currency.stablecoin().unwrap();
            assert_eq!(Currency::token(coin, chain), Some(currency));
            assert_eq!(currency.symbol(), format!("{}.{}", coin.symbol(), chain.as_str().to_ascii_uppercase()));
        }
        assert!(Currency::PAYABLE.iter().all(|c| !c.is_token()));
        assert_eq!("usdc.bnb".parse::<Chain>(), Ok(Chain::Bnb), "a token's chain is its network");
    }

    #[test]
    fn a_symbol_with_a_separate_chain() {
        assert_eq!(Currency::with_chain("USDC", "pol"), Ok(Currency::UsdcPol));
        assert_eq!(Currency::with_chain("usdt", "bnb"), Ok(Currency::UsdtBnb));
        assert_eq!(Currency::with_chain("USDC", "solana"), Ok(Currency::UsdcSol));
        assert_eq!(Currency::with_chain("USDC.POL", "polygon"), Ok(Currency::UsdcPol));
        assert_eq!(Currency::with_chain("ETH", "eth"), Ok(Currency::Eth));
        assert_eq!(Currency::with_chain("HBD", "hive"), Ok(Currency::Hbd));
        for (symbol, chain) in
            [("USDT", "sol"), ("USDC", "btc"), ("USDC.POL", "eth"), ("ETH", "pol"), ("USDC", "doge"), ("DAI", "eth")]
        {
            assert!(Currency::with_chain(symbol, chain).is_err(), "{symbol} on {chain}");
        }
    }
}
