//! Exchange rates: USD per whole unit of each payable currency, as decimals (never floats).
//!
//! A [`RateSource`] answers the current rate; [`CachedRates`] wraps one with a TTL so a burst of quotes costs
//! one upstream call. The default upstream is CoinGecko's simple price API (configurable URL); the static
//! table serves tests and offline use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chains::{Amount, Currency};
use rust_decimal::prelude::*;
use tokio::sync::Mutex;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RateError {
    #[error("no rate for {0}")]
    Missing(Currency),
    #[error("rate source failed: {0}")]
    Upstream(String),
}

/// USD per one whole unit of a currency.
#[async_trait::async_trait]
pub trait RateSource: Send + Sync {
    async fn usd_rate(&self, currency: Currency) -> Result<Decimal, RateError>;
}

/// A fixed table, for tests and offline operation.
#[derive(Debug, Clone, Default)]
pub struct StaticRates(pub HashMap<Currency, Decimal>);

impl StaticRates {
    /// Plausible rates for development; tests set their own.
    pub fn development() -> Self {
        let table = [
            (Currency::Hive, "0.25"),
            (Currency::Hbd, "1.00"),
            (Currency::Btc, "60000"),
            (Currency::Eth, "3000"),
            (Currency::Sol, "150"),
            (Currency::Pol, "0.50"),
            (Currency::Bnb, "600"),
            (Currency::Xmr, "160"),
        ];
        // Stablecoins at par: a USD price is the same number of USDC or USDT on every network.
        let stablecoins = Currency::TOKENS.map(|c| (c, "1.00"));
        let table = table.into_iter().chain(stablecoins);
        StaticRates(table.into_iter().map(|(c, r)| (c, Decimal::from_str(r).expect("valid literal"))).collect())
    }
}

#[async_trait::async_trait]
impl RateSource for StaticRates {
    async fn usd_rate(&self, currency: Currency) -> Result<Decimal, RateError> {
        if currency == Currency::Usd {
            return Ok(Decimal::ONE);
        }
        self.0.get(&currency).copied().ok_or(RateError::Missing(currency))
    }
}

/// Caches another source's answers for `ttl`.
pub struct CachedRates {
    inner: Arc<dyn RateSource>,
    ttl: Duration,
    cache: Mutex<HashMap<Currency, (Decimal, Instant)>>,
}

impl CachedRates {
    pub fn new(inner: Arc<dyn RateSource>, ttl: Duration) -> Self {
        CachedRates { inner, ttl, cache: Mutex::new(HashMap::new()) }
    }
}

#[async_trait::async_trait]
impl RateSource for CachedRates {
    async fn usd_rate(&self, currency: Currency) -> Result<Decimal, RateError> {
        let mut cache = self.cache.lock().await;
        if let Some((rate, at)) = cache.get(&currency) {
            if at.elapsed() < self.ttl {
                return Ok(*rate);
            }
        }
        let rate = self.inner.usd_rate(currency).await?;
        cache.insert(currency, (rate, Instant::now()));
        Ok(rate)
    }
}

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

/// Converts a USD price (in cents) into `currency`, rounding *up* to the currency's base unit so the
/// platform is never paid less than the price.
pub fn convert_usd(price: Amount, currency: Currency, usd_per_unit: Decimal) -> Result<Amount, RateError> {
    debug_assert_eq!(price.currency, Currency::Usd);
    if usd_per_unit <= Decimal::ZERO {
        return Err(RateError::Missing(currency));
    }
    let usd = price.to_decimal().ok_or_else(|| RateError::Upstream("price out of range".into()))?;
    let units = usd
        .checked_div(usd_per_unit)
        .and_then(|whole| whole.checked_mul(Decimal::from(10u64.pow(currency.decimals().min(18)))))
        .ok_or_else(|| RateError::Upstream("conversion overflow".into()))?;
    // Decimal holds 28 significant digits; 18-decimal currencies need the last step in integers.
    let units = units.ceil().to_u128().ok_or_else(|| RateError::Upstream("conversion overflow".into()))?;
    Ok(Amount::new(currency, units))
}

/// The USD value (in cents, rounded down) of an amount, for filtering and display.
pub fn to_usd_cents(amount: Amount, usd_per_unit: Decimal) -> Option<i64> {
    let value = amount.to_decimal()?.checked_mul(usd_per_unit)?.checked_mul(Decimal::from(100))?;
    value.floor().to_i64()
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
    fn usd_converts_with_ceiling() {
        let price = Amount::parse(Currency::Usd, "25").unwrap();
        let btc = convert_usd(price, Currency::Btc, Decimal::from(60000)).unwrap();
        // 25 / 60000 BTC = 41666.67 sat → 41667
        assert_eq!(btc.units, 41_667);
        let eth = convert_usd(price, Currency::Eth, Decimal::from(3000)).unwrap();
        assert_eq!(eth.units, 8_333_333_333_333_334);
        let hive = convert_usd(price, Currency::Hive, Decimal::from_str("0.25").unwrap()).unwrap();
        assert_eq!(hive.units, 100_000);
        assert_eq!(to_usd_cents(hive, Decimal::from_str("0.25").unwrap()), Some(2500));
        // Stablecoins convert in their own decimals: 6 on most networks, 18 for the Binance-Peg tokens.
        let usdc = convert_usd(price, Currency::UsdcPol, Decimal::from_str("0.9998").unwrap()).unwrap();
        assert_eq!(usdc.units, 25_005_002); // 25.0050010002 → rounded up to the micro-USDC
        let usdt = convert_usd(price, Currency::UsdtBnb, Decimal::ONE).unwrap();
        assert_eq!(usdt.units, 25_000_000_000_000_000_000);
    }

    #[tokio::test]
    async fn stablecoins_are_priced_as_their_coin() {
        assert_eq!(CoinGecko::coin_id(Currency::UsdcSol), Some("usd-coin"));
        assert_eq!(CoinGecko::coin_id(Currency::UsdcBnb), Some("usd-coin"));
        assert_eq!(CoinGecko::coin_id(Currency::UsdtPol), Some("tether"));
        let body = r#"{"usd-coin":{"usd":0.999912},"tether":{"usd":1.0002}}"#;
        assert_eq!(parse_simple_price(body, "usd-coin"), Some(Decimal::from_str("0.999912").unwrap()));
        let rates = StaticRates::development();
        for token in Currency::TOKENS {
            assert_eq!(rates.usd_rate(token).await.unwrap(), Decimal::ONE, "{token}");
        }
    }
}
