//! Money as integer base units of one currency.
//!
//! `Amount` is the only money type in the project: it is parsed from and printed as a decimal string with the
//! currency's scale, stored as that base-unit integer, and split into commission and payout without rounding
//! loss. Floats never appear.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Currency;

/// An amount in integer base units (satoshi, wei, lamport, piconero, milli-HIVE, cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Amount {
    pub currency: Currency,
    pub units: u128,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("`{0}` is not a decimal number")]
    NotANumber(String),
    #[error("amount must not be negative")]
    Negative,
    #[error("{currency} has at most {decimals} decimals")]
    TooManyDecimals { currency: Currency, decimals: u32 },
    #[error("amount is too large")]
    Overflow,
}

/// The platform's share of a sale, in percent. The rest is the creator's payout.
pub const COMMISSION_PERCENT: u128 = 20;

/// How a paid amount is divided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub commission: Amount,
    pub payout: Amount,
}

impl Amount {
    pub const fn new(currency: Currency, units: u128) -> Self {
        Amount { currency, units }
    }

    pub const fn zero(currency: Currency) -> Self {
        Amount { currency, units: 0 }
    }

    /// Parses a human decimal (`"25.5"`, `"0.00012"`) in the currency's scale. More decimals than the
    /// currency has is an error, never a silent rounding.
    pub fn parse(currency: Currency, text: &str) -> Result<Self, AmountError> {
        let text = text.trim();
        // Plain decimals only: no exponent, no sign but a leading minus (reported as negative), no separators.
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
        let plain =
            !int.is_empty() && !frac.is_empty() && (int.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit());
        if !plain {
            return Err(AmountError::NotANumber(text.to_owned()));
        }
        let value: Decimal = text.parse().map_err(|_| AmountError::NotANumber(text.to_owned()))?;
        Self::from_decimal(currency, value)
    }

    pub fn from_decimal(currency: Currency, value: Decimal) -> Result<Self, AmountError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(AmountError::Negative);
        }
        let value = value.normalize();
        let decimals = currency.decimals();
        if value.scale() > decimals {
            return Err(AmountError::TooManyDecimals { currency, decimals });
        }
        let mantissa = u128::try_from(value.mantissa()).map_err(|_| AmountError::Negative)?;
        let factor = 10u128.checked_pow(decimals - value.scale()).ok_or(AmountError::Overflow)?;
        let units = mantissa.checked_mul(factor).ok_or(AmountError::Overflow)?;
        Ok(Amount { currency, units })
    }

    /// Parses a base-unit integer string as stored in the database.
    pub fn from_units_str(currency: Currency, units: &str) -> Result<Self, AmountError> {
        let units = units.parse::<u128>().map_err(|_| AmountError::NotANumber(units.to_owned()))?;
        Ok(Amount { currency, units })
    }

    /// The decimal value in whole currency units. Exact: base units always fit a `Decimal`'s 96-bit mantissa
    /// for any amount below 7.9e28 base units.
    pub fn to_decimal(self) -> Option<Decimal> {
        let mantissa = i128::try_from(self.units).ok()?;
        Decimal::try_from_i128_with_scale(mantissa, self.currency.decimals()).ok()
    }

    /// The platform commission (20%, rounded down) and the creator payout (the rest). The rounding remainder
    /// goes to the creator, so the platform never takes more than 20% and the parts always add up exactly.
    pub fn split(self) -> Split {
        let commission = self.units / (100 / COMMISSION_PERCENT);
        Split {
            commission: Amount::new(self.currency, commission),
            payout: Amount::new(self.currency, self.units - commission),
        }
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        debug_assert_eq!(self.currency, other.currency);
        self.units.checked_sub(other.units).map(|units| Amount::new(self.currency, units))
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        debug_assert_eq!(self.currency, other.currency);
        self.units.checked_add(other.units).map(|units| Amount::new(self.currency, units))
    }
}

impl fmt::Display for Amount {
    /// Prints the plain decimal without trailing zeros (`0.05`, `25`), without the symbol.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decimals = self.currency.decimals() as usize;
        let digits = self.units.to_string();
        let (int, frac) =
            if digits.len() > decimals { digits.split_at(digits.len() - decimals) } else { ("0", digits.as_str()) };
        let frac = format!("{frac:0>decimals$}");
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            write!(f, "{int}")
        } else {
            write!(f, "{int}.{frac}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_in_currency_scale() {
        assert_eq!(Amount::parse(Currency::Btc, "0.001").unwrap().units, 100_000);
        assert_eq!(Amount::parse(Currency::Hive, "25").unwrap().units, 25_000);
        assert_eq!(Amount::parse(Currency::Eth, "1.5").unwrap().units, 1_500_000_000_000_000_000);
        assert_eq!(
            Amount::parse(Currency::Hive, "1.0001"),
            Err(AmountError::TooManyDecimals { currency: Currency::Hive, decimals: 3 })
        );
        assert_eq!(Amount::parse(Currency::Btc, "-1"), Err(AmountError::Negative));
        for bad in ["1e3", "", ".5", "5.", "+1", "1,000", "0x10", "NaN", "1 000"] {
            assert!(matches!(Amount::parse(Currency::Btc, bad), Err(AmountError::NotANumber(_))), "{bad}");
        }
        assert_eq!(Amount::parse(Currency::Hive, "1.2300").unwrap().units, 1_230);
        assert_eq!(Amount::parse(Currency::UsdcPol, "25.5").unwrap().units, 25_500_000);
        assert_eq!(Amount::parse(Currency::UsdtBnb, "1").unwrap().units, 1_000_000_000_000_000_000);
        assert_eq!(
            Amount::parse(Currency::UsdcSol, "0.0000001"),
            Err(AmountError::TooManyDecimals { currency: Currency::UsdcSol, decimals: 6 })
        );
    }

    #[test]
    fn displays_without_trailing_zeros() {
        assert_eq!(Amount::new(Currency::Btc, 100_000).to_string(), "0.001");
        assert_eq!(Amount::new(Currency::Hive, 25_000).to_string(), "25");
        assert_eq!(Amount::new(Currency::Xmr, 1).to_string(), "0.000000000001");
        assert_eq!(Amount::new(Currency::Usd, 2_550).to_string(), "25.5");
        assert_eq!(Amount::new(Currency::UsdcEth, 25_000_001).to_string(), "25.000001");
    }

    #[test]
    fn split_gives_remainder_to_creator() {
        let s = Amount::new(Currency::Hive, 1_001).split();
        assert_eq!(s.commission.units, 200);
        assert_eq!(s.payout.units, 801);
    }

    proptest! {
        #[test]
        fn split_is_exact_for_every_currency(units in any::<u128>(), idx in 0..Currency::ALL.len()) {
            let currency = Currency::ALL[idx];
            let amount = Amount::new(currency, units);
            let split = amount.split();
            prop_assert_eq!(split.commission.units + split.payout.units, units);
            prop_assert!(split.commission.units * 5 <= units);
            prop_assert!(units - split.commission.units * 5 < 5);
        }

        #[test]
        fn display_parse_round_trip(units in 0u128..=u64::MAX as u128 * 1000, idx in 0..Currency::ALL.len()) {
            let currency = Currency::ALL[idx];
            let amount = Amount::new(currency, units);
            prop_assert_eq!(Amount::parse(currency, &amount.to_string()).unwrap(), amount);
        }
    }
}
