//! Exchange rates over HTTP: CoinGecko's simple price API, or anything answering alike (the URL is
//! `[rates] url`). Implements [`ticketing::rates::RateSource`]; ticketing itself makes no network calls.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chains::Currency;
use rust_decimal::Decimal;
use ticketing::rates::{RateError, RateSource};

/// CoinGecko's simple price API (`/simple/price?ids=…&vs_currencies=usd`), or anything answering alike.
/// Numbers are read from the raw JSON text straight into decimals.
pub struct CoinGecko {
    client: reqwest::Client,
    url: String,
}

impl CoinGecko {
    pub fn new(url: impl Into<String>) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client builds");
        CoinGecko { client, url: url.into() }
    }

    pub fn coin_id(currency: Currency) -> Option<&'static str> {
        Some(match currency {
            Currency::Hive => "hive",
            Currency::Hbd => "hive_dollar",
            Currency::Btc => "bitcoin",
            Currency::Eth => "ethereum",
            Currency::Sol => "solana",
            Currency::Pol => "polygon-ecosystem-token",
            Currency::Bnb => "binancecoin",
            Currency::Xmr => "monero",
            // One price per stablecoin, whichever network carries it.
            Currency::UsdcEth | Currency::UsdcPol | Currency::UsdcBnb | Currency::UsdcSol => "usd-coin",
            Currency::UsdtEth | Currency::UsdtPol | Currency::UsdtBnb => "tether",
            Currency::Usd => return None,
        })
    }
}

#[async_trait::async_trait]
impl RateSource for CoinGecko {
    async fn usd_rate(&self, currency: Currency) -> Result<Decimal, RateError> {
        let Some(id) = Self::coin_id(currency) else { return Ok(Decimal::ONE) };
        let body = self
            .client
            .get(&self.url)
            .query(&[("ids", id), ("vs_currencies", "usd")])
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| RateError::Upstream(e.to_string()))?
            .text()
            .await
            .map_err(|e| RateError::Upstream(e.to_string()))?;
        parse_simple_price(&body, id).ok_or(RateError::Missing(currency))
    }
}

fn parse_simple_price(body: &str, id: &str) -> Option<Decimal> {
    type Prices<'a> = HashMap<String, HashMap<String, &'a serde_json::value::RawValue>>;
    let prices: Prices = serde_json::from_str(body).ok()?;
    let raw = prices.get(id)?.get("usd")?.get();
    Decimal::from_str(raw).or_else(|_| Decimal::from_scientific(raw)).ok().filter(|r| *r > Decimal::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_price_is_read_without_floats() {
        let body = r#"{"bitcoin":{"usd":60123.123456789012345},"hive":{"usd":0.2871}}"#;
        assert_eq!(parse_simple_price(body, "bitcoin"), Some(Decimal::from_str("60123.123456789012345").unwrap()));
        assert_eq!(parse_simple_price(body, "hive"), Some(Decimal::from_str("0.2871").unwrap()));
        assert_eq!(parse_simple_price(body, "monero"), None);
        assert_eq!(parse_simple_price("not json", "hive"), None);
        assert_eq!(parse_simple_price(r#"{"hive":{"usd":-1}}"#, "hive"), None);
    }

    #[test]
    fn stablecoins_are_priced_as_their_coin() {
        assert_eq!(CoinGecko::coin_id(Currency::UsdcSol), Some("usd-coin"));
        assert_eq!(CoinGecko::coin_id(Currency::UsdcBnb), Some("usd-coin"));
        assert_eq!(CoinGecko::coin_id(Currency::UsdtPol), Some("tether"));
        let body = r#"{"usd-coin":{"usd":0.999912},"tether":{"usd":1.0002}}"#;
        assert_eq!(parse_simple_price(body, "usd-coin"), Some(Decimal::from_str("0.999912").unwrap()));
    }
}
