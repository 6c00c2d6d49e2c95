//! The smallest amounts worth moving on each chain.
//!
//! A quote below its chain's minimum would ask for an output the network treats as dust (Bitcoin relays no
//! output under 546 sat) or that costs the buyer more in fees than it pays; it is refused
//! (`amount_below_minimum`). A refund below its chain's minimum would cost more to send than it returns (or
//! could not be sent at all): it is recorded with status `below_minimum`, never `due`, so it is not in the
//! operators' list of refunds to pay.

use chains::{Amount, Currency};

/// The least amount a quote may ask for, in base units: above the chain's dust limit where it has one.
pub fn minimum_quote(currency: Currency) -> u128 {
    match currency {
        // Twice P2PKH's dust limit (546 sat), whatever script the buyer's wallet pays from.
        Currency::Btc => 1_100,
        _ => 1,
    }
}

/// The least refund worth sending, in base units: about the network's cost of a transfer (or its dust limit).
pub fn minimum_refund(currency: Currency) -> u128 {
    match currency {
        Currency::Btc => 1_100,                             // above dust, about a transfer's fee
        Currency::Eth => 100_000_000_000_000,               // 0.0001 ETH: a transfer's gas
        Currency::Pol => 10_000_000_000_000_000,            // 0.01 POL
        Currency::Bnb => 100_000_000_000_000,               // 0.0001 BNB
        Currency::Sol => 890_880,                           // rent-exempt minimum of a new account
        Currency::Xmr => 100_000_000,                       // 0.0001 XMR
        Currency::Hive | Currency::Hbd => 1,                // transfers are free
        Currency::UsdcEth | Currency::UsdtEth => 1_000_000, // 1 USD: a token transfer's gas on Ethereum
        Currency::UsdcPol | Currency::UsdtPol | Currency::UsdcSol => 10_000, // 0.01 USD
        Currency::UsdcBnb | Currency::UsdtBnb => 10_000_000_000_000_000, // 0.01 USD (18 decimals)
        Currency::Usd => 0,
    }
}

/// The status a refund of `amount` is recorded with: `due`, or `below_minimum` when too small to send.
pub fn refund_status(amount: Amount) -> &'static str {
    if amount.units < minimum_refund(amount.currency) {
        "below_minimum"
    } else {
        "due"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimums_sit_above_dust_and_small_refunds_are_not_owed() {
        assert!(minimum_quote(Currency::Btc) > 546);
        assert_eq!(refund_status(Amount::new(Currency::Btc, 1)), "below_minimum");
        assert_eq!(refund_status(Amount::new(Currency::Btc, 1_100)), "due");
        assert_eq!(refund_status(Amount::new(Currency::Hive, 1)), "due");
        for currency in Currency::PAYABLE.into_iter().chain(Currency::TOKENS) {
            assert!(minimum_quote(currency) >= 1 && minimum_refund(currency) >= 1, "{currency}");
        }
    }
}
