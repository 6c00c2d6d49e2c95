//! Creator payouts: where each creator is paid on each chain, what is owed where, and the record of what was sent.
//!
//! A sale writes a `payout` entry to the creator (`recipient` is the creator's account, `crate::purchases`). Where
//! it goes is decided late, on purpose: a creator proves a **payout address per chain** (a signature from that
//! wallet, checked by the gateway), and every payout not yet settled goes to the address its creator has for its
//! chain *when it is paid*. So changing an address (audited, `payout_address.set`) takes effect for every payout
//! not yet settled and for none that was. Settling writes the address the money went to into the entry
//! (`paid_to`), so the ledger keeps where each payout went even after the creator changes their address again.
//!
//! A payout on a chain where its creator has no address is **held** with reason `no_payout_address`: it is listed
//! (so the operator and the creator see it) but left out of the batches to send, and cannot be settled.
//!
//! [`batches`] groups what is due per chain, one line per (currency, address), which the gateway renders as CSV, a
//! Bitcoin PSBT or Hive `transfer` operations. [`Store::commission_by_chain`] reports the platform's 20% the
//! same way, so the platform knows what it owns where.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use chains::{Amount, Chain, Currency};
use serde::Serialize;

use crate::audit::{self, AuditEntry};
use crate::creators::AccountName;
use crate::purchases::{LedgerRow, LEDGER_COLUMNS};
use crate::store::{Store, StoreError};

/// A creator's proven payout address on one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PayoutAddress {
    pub chain: String,
    pub address: String,
    /// When the wallet's signature was checked (unix ms).
    pub proven_at: i64,
}

/// What setting an address changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayoutAddressChange {
    pub chain: Chain,
    pub address: String,
    pub previous: Option<String>,
    /// Payouts on this chain not yet settled: they now go to `address`.
    pub unsettled_payouts: i64,
}

/// Why a payout cannot be sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// The creator has set no payout address for the payout's chain.
    NoPayoutAddress,
}

impl HoldReason {
    pub const fn code(self) -> &'static str {
        match self {
            HoldReason::NoPayoutAddress => "no_payout_address",
        }
    }
}

/// A payout entry with where it goes: the address it was paid to once settled, else its creator's current
/// address for its chain (none: held).
#[derive(Debug, Clone, Serialize)]
pub struct Payout {
    #[serde(flatten)]
    pub entry: LedgerRow,
    pub chain: Chain,
    pub payout_address: Option<String>,
    pub held: Option<HoldReason>,
}

impl Payout {
    /// Due now: owed, its refund window over, not settled or cancelled.
    pub fn is_due(&self, now: i64) -> bool {
        self.entry.status == "due" || (self.entry.status == "pending" && self.entry.due_at.is_some_and(|d| d <= now))
    }

    pub fn amount(&self) -> Result<Amount, StoreError> {
        let currency = parse_currency(&self.entry.currency)?;
        Amount::from_units_str(currency, &self.entry.amount_units).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// One transfer to make: every due payout in one currency to one address, summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchLine {
    pub currency: Currency,
    pub address: String,
    /// Base units.
    #[serde(serialize_with = "units_text")]
    pub amount: Amount,
    /// The creator(s) paid: one address may be proven by more than one account.
    pub creators: Vec<String>,
    /// The ledger entries this transfer settles (`gateway admin settle <entry> <txid>` for each).
    pub entries: Vec<i64>,
}

/// What is due on one chain: the transfers to make, and the payouts held back.
#[derive(Debug, Clone, Serialize)]
pub struct PayoutBatch {
    pub chain: Chain,
    pub lines: Vec<BatchLine>,
    /// Due but not sendable (see [`HoldReason`]).
    pub held: Vec<i64>,
}

/// Groups the due payouts per chain (chains in [`Chain::ALL`] order), one line per currency and address.
pub fn batches(payouts: &[Payout], now: i64) -> Result<Vec<PayoutBatch>, StoreError> {
    let mut by_chain: BTreeMap<usize, PayoutBatch> = BTreeMap::new();
    let mut lines: BTreeMap<(usize, &'static str, String), BatchLine> = BTreeMap::new();
    for payout in payouts.iter().filter(|p| p.is_due(now)) {
        let order = Chain::ALL.iter().position(|c| *c == payout.chain).unwrap_or(usize::MAX);
        let batch = by_chain.entry(order).or_insert_with(|| PayoutBatch {
            chain: payout.chain,
            lines: Vec::new(),
            held: Vec::new(),
        });
        let Some(address) = payout.payout_address.clone().filter(|_| payout.held.is_none()) else {
            batch.held.push(payout.entry.id);
            continue;
        };
        let amount = payout.amount()?;
        let line = lines.entry((order, amount.currency.symbol(), address.clone())).or_insert_with(|| BatchLine {
            currency: amount.currency,
            address,
            amount: Amount::zero(amount.currency),
            creators: Vec::new(),
            entries: Vec::new(),
        });
        line.amount =
            line.amount.checked_add(amount).ok_or_else(|| StoreError::Corrupt("payout sum overflow".into()))?;
        let creator = payout.entry.recipient.clone().unwrap_or_default();
        if !line.creators.contains(&creator) {
            line.creators.push(creator);
        }
        line.entries.push(payout.entry.id);
    }
    for ((order, _, _), line) in lines {
        if let Some(batch) = by_chain.get_mut(&order) {
            batch.lines.push(line);
        }
    }
    Ok(by_chain.into_values().collect())
}

/// The platform's commission in one currency: `earned` once the refund window is over (it can no longer be
/// cancelled by a refund), `pending` until then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommissionLine {
    pub chain: Chain,
    pub currency: Currency,
    #[serde(serialize_with = "units_text")]
    pub earned: Amount,
    #[serde(serialize_with = "units_text")]
    pub pending: Amount,
    /// Sales the commission came from (not cancelled).
    pub sales: i64,
}

/// Why a ledger entry could not be settled.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("ledger entry {0} does not exist")]
    EntryNotFound(i64),
    #[error("ledger entry {0} is a commission: only payouts and refunds are sent")]
    NotSendable(i64),
    #[error("ledger entry {0} is already settled")]
    AlreadySettled(i64),
    #[error("ledger entry {0} is not due yet")]
    NotDue(i64),
    #[error("payout {entry} is held: its creator has no payout address on {chain}")]
    NoPayoutAddress { entry: i64, chain: Chain },
    #[error("ledger entry {0} now goes to another address than the one checked; look it up again")]
    DestinationChanged(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SettleError {
    fn from(err: sqlx::Error) -> Self {
        SettleError::Store(err.into())
    }
}

impl SettleError {
    pub fn code(&self) -> &'static str {
        match self {
            SettleError::EntryNotFound(_) => "entry_not_found",
            SettleError::NotSendable(_) => "not_sendable",
            SettleError::AlreadySettled(_) => "already_settled",
            SettleError::NotDue(_) => "not_due",
            SettleError::NoPayoutAddress { .. } => "no_payout_address",
            SettleError::DestinationChanged(_) => "destination_changed",
            SettleError::Store(_) => "store_unavailable",
        }
    }
}

/// Where a payout or refund is to be sent: checked against the transaction before it is settled.
#[derive(Debug, Clone)]
pub struct Destination {
    pub entry: LedgerRow,
    pub chain: Chain,
    pub amount: Amount,
    pub address: String,
}

impl Store {
    /// A creator's payout addresses, by chain.
    pub async fn payout_addresses(&self, creator: &AccountName) -> Result<Vec<PayoutAddress>, StoreError> {
        let mut rows: Vec<PayoutAddress> =
            sqlx::query_as("SELECT chain, address, proven_at FROM payout_addresses WHERE creator_account = $1")
                .bind(creator.as_str())
                .fetch_all(self.pool())
                .await?;
        rows.sort_by_key(|r| Chain::ALL.iter().position(|c| c.as_str() == r.chain));
        Ok(rows)
    }

    /// Sets (or replaces) a creator's payout address on `chain`. The caller has checked the address by the
    /// chain's rules (canonical form) and the wallet's signature. Audited with the previous address and the
    /// number of unsettled payouts that now go to the new one, in the same transaction.
    pub async fn set_payout_address(
        &self,
        creator: &AccountName,
        chain: Chain,
        address: &str,
        remote: Option<&str>,
        now: i64,
    ) -> Result<PayoutAddressChange, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Creators are rows of their own (tiers, profiles); make sure this one exists like `ensure_creator`.
        sqlx::query("INSERT INTO creators (account, created_at, updated_at) VALUES ($1, $2, $2) ON CONFLICT (account) DO NOTHING")
            .bind(creator.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let previous: Option<String> =
            sqlx::query_scalar("SELECT address FROM payout_addresses WHERE creator_account = $1 AND chain = $2")
                .bind(creator.as_str())
                .bind(chain.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO payout_addresses (creator_account, chain, address, proven_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (creator_account, chain) DO UPDATE SET address = excluded.address, proven_at = excluded.proven_at",
        )
        .bind(creator.as_str())
        .bind(chain.as_str())
        .bind(address)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let unsettled: Vec<String> = sqlx::query_scalar(
            "SELECT currency FROM ledger_entries WHERE kind = 'payout' AND recipient = $1 AND status IN ('pending', 'due')",
        )
        .bind(creator.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let unsettled_payouts =
            unsettled.iter().filter(|c| Currency::from_str(c).ok().and_then(Currency::chain) == Some(chain)).count()
                as i64;
        audit::record(
            &mut *tx,
            &AuditEntry::new(creator.as_str(), "payout_address.set").subject(creator.as_str()).remote(remote).detail(
                serde_json::json!({
                    "chain": chain.as_str(),
                    "address": address,
                    "previous": previous,
                    "unsettled_payouts": unsettled_payouts,
                }),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(PayoutAddressChange { chain, address: address.to_owned(), previous, unsettled_payouts })
    }

    /// Payout entries with where each goes; `due_only` keeps the ones to send now (held ones included, marked).
    pub async fn payouts(&self, due_only: bool, now: i64) -> Result<Vec<Payout>, StoreError> {
        let rows = sqlx::query_as::<_, LedgerRow>(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE kind = 'payout' AND \
             ($1 = 0 OR status = 'due' OR (status = 'pending' AND due_at <= $2)) ORDER BY id"
        ))
        .bind(i64::from(due_only))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        self.resolve(rows).await
    }

    /// One creator's payout entries (every state), with where each goes.
    pub async fn creator_payouts(&self, creator: &AccountName) -> Result<Vec<Payout>, StoreError> {
        let rows = sqlx::query_as::<_, LedgerRow>(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE kind = 'payout' AND recipient = $1 ORDER BY id"
        ))
        .bind(creator.as_str())
        .fetch_all(self.pool())
        .await?;
        self.resolve(rows).await
    }

    /// Payout entries of the given rows (others are skipped), with where each goes.
    pub async fn resolve_payouts(&self, rows: Vec<LedgerRow>) -> Result<Vec<Payout>, StoreError> {
        self.resolve(rows.into_iter().filter(|r| r.kind == "payout").collect()).await
    }

    async fn resolve(&self, rows: Vec<LedgerRow>) -> Result<Vec<Payout>, StoreError> {
        let addresses: Vec<(String, String, String)> =
            sqlx::query_as("SELECT creator_account, chain, address FROM payout_addresses")
                .fetch_all(self.pool())
                .await?;
        let addresses: HashMap<(String, String), String> =
            addresses.into_iter().map(|(creator, chain, address)| ((creator, chain), address)).collect();
        rows.into_iter()
            .map(|entry| {
                let chain = parse_currency(&entry.currency)?
                    .chain()
                    .ok_or_else(|| StoreError::Corrupt(format!("payout in {} has no chain", entry.currency)))?;
                let open = matches!(entry.status.as_str(), "pending" | "due");
                let payout_address = if open {
                    let creator = entry.recipient.clone().unwrap_or_default();
                    addresses.get(&(creator, chain.as_str().to_owned())).cloned()
                } else {
                    entry.paid_to.clone()
                };
                let held = (open && payout_address.is_none()).then_some(HoldReason::NoPayoutAddress);
                Ok(Payout { entry, chain, payout_address, held })
            })
            .collect()
    }

    /// Where a due payout or refund is to be sent, for checking a transaction before [`Store::settle_entry`].
    pub async fn settlement_destination(&self, entry_id: i64, now: i64) -> Result<Destination, SettleError> {
        let entry =
            sqlx::query_as::<_, LedgerRow>(&format!("SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE id = $1"))
                .bind(entry_id)
                .fetch_optional(self.pool())
                .await?
                .ok_or(SettleError::EntryNotFound(entry_id))?;
        match entry.status.as_str() {
            "settled" => return Err(SettleError::AlreadySettled(entry_id)),
            "due" => {}
            "pending" if entry.due_at.is_some_and(|d| d <= now) => {}
            _ => return Err(SettleError::NotDue(entry_id)),
        }
        let currency = parse_currency(&entry.currency)?;
        let amount =
            Amount::from_units_str(currency, &entry.amount_units).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let chain =
            currency.chain().ok_or_else(|| StoreError::Corrupt(format!("entry in {} has no chain", entry.currency)))?;
        let address = match entry.kind.as_str() {
            "refund" => entry.recipient.clone().ok_or(SettleError::NotSendable(entry_id))?,
            "payout" => {
                let creator = entry.recipient.clone().unwrap_or_default();
                sqlx::query_scalar("SELECT address FROM payout_addresses WHERE creator_account = $1 AND chain = $2")
                    .bind(&creator)
                    .bind(chain.as_str())
                    .fetch_optional(self.pool())
                    .await?
                    .ok_or(SettleError::NoPayoutAddress { entry: entry_id, chain })?
            }
            _ => return Err(SettleError::NotSendable(entry_id)),
        };
        Ok(Destination { entry, chain, amount, address })
    }

    /// Records the transaction that paid a due payout or refund to `paid_to`, which must still be where the entry
    /// goes (a payout's creator may have changed their address since it was looked up). A second settlement is
    /// refused. Audited as `ledger.settled` with the transaction and the address.
    pub async fn settle_entry(
        &self,
        entry_id: i64,
        txid: &str,
        paid_to: &str,
        actor: &str,
        now: i64,
    ) -> Result<LedgerRow, SettleError> {
        let destination = self.settlement_destination(entry_id, now).await?;
        let mut tx = self.pool().begin().await?;
        // The address is compared in the same statement that settles, so a concurrent change is never missed.
        let changed = sqlx::query(
            "UPDATE ledger_entries SET status = 'settled', settled_txid = $2, settled_at = $3, paid_to = $4 WHERE id = $1 \
             AND kind IN ('payout', 'refund') AND (status = 'due' OR (status = 'pending' AND due_at <= $3)) \
             AND ((kind = 'refund' AND recipient = $4) OR (kind = 'payout' AND EXISTS (SELECT 1 FROM payout_addresses a \
                  WHERE a.creator_account = ledger_entries.recipient AND a.chain = $5 AND a.address = $4)))",
        )
        .bind(entry_id)
        .bind(txid)
        .bind(now)
        .bind(paid_to)
        .bind(destination.chain.as_str())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query_as::<_, LedgerRow>(&format!("SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE id = $1"))
            .bind(entry_id)
            .fetch_one(&mut *tx)
            .await?;
        if changed.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(match row.status.as_str() {
                "settled" => SettleError::AlreadySettled(entry_id),
                "due" | "pending" => SettleError::DestinationChanged(entry_id),
                _ => SettleError::NotDue(entry_id),
            });
        }
        audit::record(
            &mut *tx,
            &AuditEntry::new(actor, "ledger.settled")
                .subject(&entry_id.to_string())
                .detail(serde_json::json!({ "txid": txid, "kind": row.kind, "paid_to": paid_to, "chain": destination.chain.as_str() })),
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// The platform's commission per chain and currency (cancelled sales left out).
    pub async fn commission_by_chain(&self, now: i64) -> Result<Vec<CommissionLine>, StoreError> {
        let rows: Vec<(String, String, String, Option<i64>)> = sqlx::query_as(
            "SELECT currency, amount_units, status, due_at FROM ledger_entries WHERE kind = 'commission' AND status <> 'cancelled'",
        )
        .fetch_all(self.pool())
        .await?;
        let mut lines: BTreeMap<(usize, &'static str), CommissionLine> = BTreeMap::new();
        for (currency, units, status, due_at) in rows {
            let currency = parse_currency(&currency)?;
            let amount = Amount::from_units_str(currency, &units).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let chain = currency
                .chain()
                .ok_or_else(|| StoreError::Corrupt(format!("commission in {currency} has no chain")))?;
            let order = Chain::ALL.iter().position(|c| *c == chain).unwrap_or(usize::MAX);
            let line = lines.entry((order, currency.symbol())).or_insert_with(|| CommissionLine {
                chain,
                currency,
                earned: Amount::zero(currency),
                pending: Amount::zero(currency),
                sales: 0,
            });
            let earned = status != "pending" || due_at.is_some_and(|d| d <= now);
            let slot = if earned { &mut line.earned } else { &mut line.pending };
            *slot = slot.checked_add(amount).ok_or_else(|| StoreError::Corrupt("commission overflow".into()))?;
            line.sales += 1;
        }
        Ok(lines.into_values().collect())
    }
}

/// A Bitcoin output the platform's account received (a final payment to a quote's address `0/index`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReceivedCoin {
    pub txid: String,
    pub output_index: i64,
    pub amount_units: String,
    pub derivation_index: i64,
}

impl Store {
    /// The final Bitcoin payments to the account's quote addresses: the coins a payout batch can spend (the
    /// caller checks which are still unspent).
    pub async fn btc_received_coins(&self) -> Result<Vec<ReceivedCoin>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT p.txid, p.output_index, p.amount_units, q.derivation_index FROM payments p \
             JOIN quotes q ON q.id = p.quote_id \
             WHERE p.chain = 'btc' AND p.status IN ('confirmed', 'credited', 'refund_due') AND q.derivation_index IS NOT NULL \
             ORDER BY p.id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// The change index for the next Bitcoin payout batch: one per batch already sent (distinct txids that
    /// settled BTC payouts), so exporting the same unsent batch again gives the same change address and writes
    /// nothing.
    pub async fn next_btc_change_index(&self) -> Result<u32, StoreError> {
        let sent: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT settled_txid) FROM ledger_entries WHERE kind = 'payout' AND currency = 'BTC' AND status = 'settled'",
        )
        .fetch_one(self.pool())
        .await?;
        u32::try_from(sent).map_err(|_| StoreError::Corrupt("change index overflow".into()))
    }
}

fn parse_currency(text: &str) -> Result<Currency, StoreError> {
    Currency::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn units_text<S: serde::Serializer>(amount: &Amount, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&amount.units.to_string())
}
