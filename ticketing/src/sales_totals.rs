//! Running totals of sales and refunds per currency, for the operator's graphs.
//!
//! Read from the tables every process writes (tickets, ledger entries), so the figures are the same on every
//! node and survive restarts. Sums are exact: integer base units added as `u128` here, never in SQL (SQLite's
//! integers stop at 2^63, a few ETH in wei).

use std::collections::BTreeMap;

use crate::{Store, StoreError};

/// A count and a sum in base units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub units: u128,
}

impl Tally {
    fn add(&mut self, units: &str) {
        self.count += 1;
        self.units = self.units.saturating_add(units.parse::<u128>().unwrap_or(0));
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalesTotals {
    /// Tickets issued and what they were paid, by currency code.
    pub tickets: BTreeMap<String, Tally>,
    /// Refund entries recorded (due, pending or settled; not cancelled), by currency code.
    pub refunds: BTreeMap<String, Tally>,
}

impl Store {
    pub async fn sales_totals(&self) -> Result<SalesTotals, StoreError> {
        let mut totals = SalesTotals::default();
        let tickets = sqlx::query_as::<_, (String, String)>("SELECT currency, amount_paid_units FROM tickets")
            .fetch_all(self.pool())
            .await?;
        for (currency, units) in &tickets {
            totals.tickets.entry(currency.clone()).or_default().add(units);
        }
        let refunds = sqlx::query_as::<_, (String, String)>(
            "SELECT currency, amount_units FROM ledger_entries WHERE kind = 'refund' AND status NOT IN ('cancelled', 'below_minimum')",
        )
        .fetch_all(self.pool())
        .await?;
        for (currency, units) in &refunds {
            totals.refunds.entry(currency.clone()).or_default().add(units);
        }
        Ok(totals)
    }
}
