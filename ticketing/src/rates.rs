//! Exchange rates: USD per whole unit of each payable currency, as decimals (never floats).
//!
//! A [`RateSource`] answers the current rate; [`CachedRates`] wraps one with a TTL so a burst of quotes costs
//! one upstream call. The default upstream, CoinGecko's simple price API, is the gateway's (`price_feed`: this
//! crate makes no network calls); the static table serves tests and offline use.

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
    /// The price converts to more base units of the currency than an amount can hold (a rate near zero).
    #[error("the price cannot be represented as an amount of {0} at the current rate")]
    Unrepresentable(Currency),
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
///
/// Each currency has its own slot, so a slow upstream answer for one currency never holds up another, and
/// concurrent misses for one currency make a single upstream call (the others wait for its answer). While a
/// refresh is in flight, a value at most `2 × ttl` old is served instead of waiting.
pub struct CachedRates {
    inner: Arc<dyn RateSource>,
    ttl: Duration,
    slots: std::sync::Mutex<HashMap<Currency, Arc<Slot>>>,
}

/// One currency's cached rate, and the lock a refresh holds (only while it asks the upstream).
#[derive(Default)]
struct Slot {
    value: std::sync::Mutex<Option<(Decimal, Instant)>>,
    refresh: Mutex<()>,
}

impl Slot {
    fn younger_than(&self, age: Duration) -> Option<Decimal> {
        let value = self.value.lock().unwrap_or_else(|e| e.into_inner());
        value.filter(|(_, at)| at.elapsed() < age).map(|(rate, _)| rate)
    }
}

impl CachedRates {
    pub fn new(inner: Arc<dyn RateSource>, ttl: Duration) -> Self {
        CachedRates { inner, ttl, slots: std::sync::Mutex::new(HashMap::new()) }
    }

    fn slot(&self, currency: Currency) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(currency).or_default().clone()
    }
}

#[async_trait::async_trait]
impl RateSource for CachedRates {
    async fn usd_rate(&self, currency: Currency) -> Result<Decimal, RateError> {
        let slot = self.slot(currency);
        if let Some(rate) = slot.younger_than(self.ttl) {
            return Ok(rate);
        }
        let _refreshing = match slot.refresh.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // A refresh is in flight: a recent enough value beats waiting for the upstream.
                if let Some(rate) = slot.younger_than(self.ttl * 2) {
                    return Ok(rate);
                }
                let guard = slot.refresh.lock().await;
                if let Some(rate) = slot.younger_than(self.ttl) {
                    return Ok(rate);
                }
                guard
            }
        };
        let rate = self.inner.usd_rate(currency).await?;
        *slot.value.lock().unwrap_or_else(|e| e.into_inner()) = Some((rate, Instant::now()));
        Ok(rate)
    }
}

/// Converts a USD price (in cents) into `currency`, rounding *up* to the currency's base unit so the
/// platform is never paid less than the price: the result is the least `units` with `units × rate ≥ price`.
///
/// The division is exact. A rate is `mantissa / 10^scale`, so the amount is
/// `⌈cents · 10^(decimals + scale − 2) / mantissa⌉`, worked out by long division over the decimal digits of the
/// numerator (its remainder stays below the 96-bit mantissa, so every step fits in a `u128`). `Decimal`
/// division would round the quotient to 28 significant digits first, and the ceiling of a rounded-down
/// quotient can be one base unit under the price.
pub fn convert_usd(price: Amount, currency: Currency, usd_per_unit: Decimal) -> Result<Amount, RateError> {
    debug_assert_eq!(price.currency, Currency::Usd);
    if usd_per_unit <= Decimal::ZERO {
        return Err(RateError::Missing(currency));
    }
    let rate = usd_per_unit.normalize();
    let unrepresentable = || RateError::Unrepresentable(currency);
    let mantissa = u128::try_from(rate.mantissa()).map_err(|_| unrepresentable())?;
    let shift = i64::from(currency.decimals()) + i64::from(rate.scale()) - i64::from(price.currency.decimals());
    let zeros = u32::try_from(shift.max(0)).map_err(|_| unrepresentable())?;
    let divisor = 10u128
        .checked_pow(u32::try_from(-shift.min(0)).map_err(|_| unrepresentable())?)
        .and_then(|scale| scale.checked_mul(mantissa))
        .ok_or_else(unrepresentable)?;
    let digits = price.units.to_string().into_bytes().into_iter().map(|d| u128::from(d - b'0'));
    let (mut quotient, mut remainder) = (0u128, 0u128);
    for digit in digits.chain(std::iter::repeat_n(0, zeros as usize)) {
        let partial = remainder * 10 + digit; // remainder < divisor < 2^103, so this fits
        quotient =
            quotient.checked_mul(10).and_then(|q| q.checked_add(partial / divisor)).ok_or_else(unrepresentable)?;
        remainder = partial % divisor;
    }
    if remainder != 0 {
        quotient = quotient.checked_add(1).ok_or_else(unrepresentable)?;
    }
    let amount = Amount::new(currency, quotient);
    // Amounts are shown and compared as decimals downstream: one that a `Decimal` cannot hold is refused here.
    amount.to_decimal().ok_or_else(unrepresentable)?;
    Ok(amount)
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

    /// A natural number as base-2^32 limbs, least significant first: just enough to check a conversion exactly.
    fn big(n: u128) -> Vec<u64> {
        (0..4).map(|i| ((n >> (32 * i)) & 0xffff_ffff) as u64).collect()
    }

    fn big_mul(a: &[u64], b: &[u64]) -> Vec<u64> {
        let mut out = vec![0u64; a.len() + b.len()];
        for (i, x) in a.iter().enumerate() {
            let mut carry = 0u64;
            for (j, y) in b.iter().enumerate() {
                let t = out[i + j] + x * y + carry;
                out[i + j] = t & 0xffff_ffff;
                carry = t >> 32;
            }
            out[i + b.len()] += carry;
        }
        out
    }

    fn big_cmp(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
        let len = a.len().max(b.len());
        let limb = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
        (0..len).rev().map(|i| limb(a, i).cmp(&limb(b, i))).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
    }

    /// `units × rate` against the price, both sides scaled to integers: `units · mantissa · 10^2` against
    /// `cents · 10^(decimals + scale)`.
    fn value_vs_price(units: u128, currency: Currency, rate: Decimal, cents: u128) -> std::cmp::Ordering {
        let lhs = big_mul(&big_mul(&big(units), &big(rate.mantissa() as u128)), &big(100));
        let mut rhs = big(cents);
        for _ in 0..(currency.decimals() + rate.scale()) {
            rhs = big_mul(&rhs, &big(10));
        }
        big_cmp(&lhs, &rhs)
    }

    #[test]
    fn a_rate_with_many_digits_still_covers_the_price() {
        // 25 USD at 2499.999999999999999999999999 USD/ETH is 10^16 wei and 4·10^-12 wei more: Decimal division
        // rounds 25/2499.99…9 to 0.01 (28 digits), whose ceiling in wei is one under the price.
        let rate = Decimal::from_str("2499.999999999999999999999999").unwrap();
        let eth = convert_usd(Amount::new(Currency::Usd, 2500), Currency::Eth, rate).unwrap();
        assert_ne!(value_vs_price(eth.units, Currency::Eth, rate, 2500), std::cmp::Ordering::Less);
        assert_eq!(value_vs_price(eth.units - 1, Currency::Eth, rate, 2500), std::cmp::Ordering::Less);
    }

    #[test]
    fn an_amount_too_large_to_hold_is_its_own_error() {
        let tiny = Decimal::from_str("0.0000000000000000000000000001").unwrap();
        let err = convert_usd(Amount::new(Currency::Usd, 2500), Currency::Eth, tiny).unwrap_err();
        assert!(matches!(err, RateError::Unrepresentable(Currency::Eth)), "{err:?}");
    }

    proptest::proptest! {
        /// The amount is the least number of base units worth at least the price, whatever the rate's digits.
        #[test]
        fn amounts_are_exact_ceilings(
            cents in 1u128..100_000_000,
            mantissa in 1u128..(1u128 << 96),
            scale in 0u32..=28,
            currency in proptest::sample::select(vec![Currency::Hive, Currency::Btc, Currency::Eth, Currency::Sol, Currency::Xmr, Currency::UsdcPol, Currency::UsdtBnb]),
        ) {
            let rate = Decimal::from_i128_with_scale(mantissa as i128, scale);
            let Ok(amount) = convert_usd(Amount::new(Currency::Usd, cents), currency, rate) else {
                // Refused only when the amount really exceeds what a Decimal holds.
                let limit = (1u128 << 96) - 1;
                proptest::prop_assert_eq!(value_vs_price(limit, currency, rate, cents), std::cmp::Ordering::Less);
                return Ok(());
            };
            proptest::prop_assert_ne!(value_vs_price(amount.units, currency, rate, cents), std::cmp::Ordering::Less);
            proptest::prop_assert_eq!(value_vs_price(amount.units - 1, currency, rate, cents), std::cmp::Ordering::Less);
        }

        /// Rates a hair under a round number (`2499.99…9`) put the exact amount just above an integer, where
        /// rounding the quotient first would lose the last unit.
        #[test]
        fn amounts_just_above_a_whole_unit_round_up(cents in 1u128..100_000_000, whole in 1u128..50_000, nines in 18u32..=24) {
            let rate = Decimal::from_i128_with_scale((whole * 10u128.pow(nines) - 1) as i128, nines);
            let amount = convert_usd(Amount::new(Currency::Usd, cents), Currency::Eth, rate).unwrap();
            proptest::prop_assert_ne!(value_vs_price(amount.units, Currency::Eth, rate, cents), std::cmp::Ordering::Less);
            proptest::prop_assert_eq!(value_vs_price(amount.units - 1, Currency::Eth, rate, cents), std::cmp::Ordering::Less);
        }
    }

    /// A source whose BTC answer waits for the test's go-ahead, counting calls per currency.
    struct Gated {
        go: tokio::sync::Notify,
        calls: std::sync::Mutex<HashMap<Currency, usize>>,
    }

    #[async_trait::async_trait]
    impl RateSource for Gated {
        async fn usd_rate(&self, currency: Currency) -> Result<Decimal, RateError> {
            *self.calls.lock().unwrap().entry(currency).or_default() += 1;
            if currency == Currency::Btc {
                self.go.notified().await;
            }
            Ok(Decimal::from(7))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_upstream_for_one_currency_stalls_neither_others_nor_more_than_one_call() {
        let gated = Arc::new(Gated { go: tokio::sync::Notify::new(), calls: Default::default() });
        let cached = Arc::new(CachedRates::new(gated.clone(), Duration::from_secs(60)));
        let mut btc = Vec::new();
        for _ in 0..10 {
            let cached = cached.clone();
            btc.push(tokio::spawn(async move { cached.usd_rate(Currency::Btc).await }));
        }
        // BTC's upstream is stuck; HIVE answers at once.
        let hive = tokio::time::timeout(Duration::from_secs(5), cached.usd_rate(Currency::Hive)).await;
        assert_eq!(hive.expect("HIVE is not held up by BTC").unwrap(), Decimal::from(7));
        // Every BTC request waits for the one upstream call in flight.
        while gated.calls.lock().unwrap().get(&Currency::Btc).copied().unwrap_or(0) == 0 {
            tokio::task::yield_now().await;
        }
        gated.go.notify_one();
        for request in btc {
            assert_eq!(request.await.unwrap().unwrap(), Decimal::from(7));
        }
        assert_eq!(gated.calls.lock().unwrap()[&Currency::Btc], 1, "one upstream call for ten concurrent misses");
        assert_eq!(cached.usd_rate(Currency::Btc).await.unwrap(), Decimal::from(7));
        assert_eq!(gated.calls.lock().unwrap()[&Currency::Btc], 1, "then the cache answers");
    }

    #[tokio::test]
    async fn stablecoins_are_priced_as_their_coin() {
        let rates = StaticRates::development();
        for token in Currency::TOKENS {
            assert_eq!(rates.usd_rate(token).await.unwrap(), Decimal::ONE, "{token}");
        }
    }
}
