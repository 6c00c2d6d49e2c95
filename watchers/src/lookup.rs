//! Looking up one transaction an operator says paid a payout or refund: does it exist, and what does it pay to
//! the recorded address? Asked of the same nodes the watchers follow (their `[watchers]` sections), so it is
//! available exactly where a watcher runs for the chain. Read-only: nothing here reports or writes anything.
//!
//! Chains: Bitcoin (Esplora `GET /tx/{txid}`: the outputs to the address), the EVM chains (`eth_getTransactionByHash`
//! for the native coin, the receipt's ERC-20 `Transfer` logs of a configured token, and the receipt's status) and
//! Hive (`condenser_api.get_transaction`: `transfer` operations to the account in the currency) and Solana
//! (`getTransaction`, finalized, read as the Solana watcher reads payments: lamports, or USDC into a token account
//! the address owns). Monero is not looked up: a payment cannot be read from outside without its transaction key.

use std::collections::HashMap;
use std::time::Duration;

use chains::{Amount, Chain, Currency};
use serde_json::{json, Value};

use crate::watcher::WatchError;
use crate::WatchersConfig;

/// What the chain says about a transaction and the address it should pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferCheck {
    /// The transaction exists and pays the address this much in the currency (summed over its outputs/operations).
    Pays(Amount),
    /// The transaction exists but pays the address nothing in the currency.
    PaysElsewhere,
    /// The node does not know the transaction (or, on EVM, it failed).
    NotFound,
}

/// The nodes to ask, per chain, taken from the watchers' configuration.
#[derive(Debug, Clone)]
pub struct TransferLookup {
    http: reqwest::Client,
    esplora: Option<String>,
    evm: HashMap<Chain, (String, Vec<(Currency, String)>)>,
    hive: Option<String>,
    /// The Solana node and the USDC mint the watcher accepts.
    sol: Option<(String, Option<String>)>,
}

const TRANSFER_TOPIC: &str = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

impl TransferLookup {
    pub fn new(config: &WatchersConfig) -> Result<Self, WatchError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| WatchError::Config(format!("http client: {e}")))?;
        let evm = config
            .evm
            .iter()
            .map(|c| {
                let tokens =
                    c.tokens.iter().filter_map(|t| Some((t.currency?, t.contract.to_ascii_lowercase()))).collect();
                (c.chain, (c.rpc_url.clone(), tokens))
            })
            .collect();
        Ok(TransferLookup {
            http,
            esplora: config.btc.as_ref().map(|b| b.esplora_url.trim_end_matches('/').to_owned()),
            evm,
            hive: config.hive.as_ref().map(|h| h.rpc_url.clone()),
            sol: config.solana.as_ref().map(|s| (s.rpc_url.clone(), s.usdc_mint.clone())),
        })
    }

    /// Whether transactions on `chain` can be looked up here.
    pub fn watches(&self, chain: Chain) -> bool {
        match chain {
            Chain::Btc => self.esplora.is_some(),
            Chain::Eth | Chain::Pol | Chain::Bnb => self.evm.contains_key(&chain),
            Chain::Hive => self.hive.is_some(),
            Chain::Sol => self.sol.is_some(),
            Chain::Xmr => false,
        }
    }

    /// What transaction `txid` pays `address` in `currency`. `Ok(None)`: the chain is not looked up here.
    pub async fn check(
        &self,
        currency: Currency,
        txid: &str,
        address: &str,
    ) -> Result<Option<TransferCheck>, WatchError> {
        let Some(chain) = currency.chain() else { return Ok(None) };
        if !self.watches(chain) {
            return Ok(None);
        }
        let found = match chain {
            Chain::Btc => self.btc(txid, address).await?,
            Chain::Eth | Chain::Pol | Chain::Bnb => self.evm(chain, currency, txid, address).await?,
            Chain::Hive => self.hive(currency, txid, address).await?,
            Chain::Sol => self.sol(currency, txid, address).await?,
            Chain::Xmr => return Ok(None),
        };
        Ok(Some(match found {
            None => TransferCheck::NotFound,
            Some(0) => TransferCheck::PaysElsewhere,
            Some(units) => TransferCheck::Pays(Amount::new(currency, units)),
        }))
    }

    /// Whether Bitcoin output `txid:vout` is spent (Esplora `GET /tx/{txid}/outspend/{vout}`, mempool included).
    /// `Ok(None)`: no Bitcoin watcher here.
    pub async fn btc_spent(&self, txid: &str, vout: u32) -> Result<Option<bool>, WatchError> {
        let Some(base) = self.esplora.as_deref() else { return Ok(None) };
        let path = format!("/tx/{txid}/outspend/{vout}");
        let answer: Value = self
            .http
            .get(format!("{base}{path}"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| WatchError::Rpc(format!("GET {path}: {e}")))?
            .json()
            .await
            .map_err(|e| WatchError::Rpc(format!("GET {path}: {e}")))?;
        answer
            .get("spent")
            .and_then(Value::as_bool)
            .map(Some)
            .ok_or_else(|| WatchError::Rpc(format!("GET {path}: no `spent`")))
    }

    async fn btc(&self, txid: &str, address: &str) -> Result<Option<u128>, WatchError> {
        let base = self.esplora.as_deref().unwrap_or_default();
        let path = format!("/tx/{txid}");
        let response = self
            .http
            .get(format!("{base}{path}"))
            .send()
            .await
            .map_err(|e| WatchError::Rpc(format!("GET {path}: {e}")))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND || response.status() == reqwest::StatusCode::BAD_REQUEST
        {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(WatchError::Rpc(format!("GET {path}: HTTP {}", response.status())));
        }
        let tx: Value = response.json().await.map_err(|e| WatchError::Rpc(format!("GET {path}: {e}")))?;
        let outputs =
            tx.get("vout").and_then(Value::as_array).ok_or_else(|| WatchError::Rpc(format!("GET {path}: no vout")))?;
        let mut sum: u128 = 0;
        for output in outputs {
            if output.get("scriptpubkey_address").and_then(Value::as_str) == Some(address) {
                let sats = output
                    .get("value")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| WatchError::Rpc(format!("GET {path}: bad value")))?;
                sum = sum.saturating_add(u128::from(sats));
            }
        }
        Ok(Some(sum))
    }

    async fn evm(
        &self,
        chain: Chain,
        currency: Currency,
        txid: &str,
        address: &str,
    ) -> Result<Option<u128>, WatchError> {
        let Some((url, tokens)) = self.evm.get(&chain) else { return Ok(None) };
        let address = address.to_ascii_lowercase();
        let receipt =
            crate::jsonrpc::call(&self.http, url, json!(1), "eth_getTransactionReceipt", json!([txid])).await?;
        if receipt.is_null() {
            return Ok(None);
        }
        // A reverted transaction moved nothing.
        if receipt.get("status").and_then(Value::as_str) != Some("0x1") {
            return Ok(None);
        }
        if currency.is_token() {
            let Some((_, contract)) = tokens.iter().find(|(c, _)| *c == currency) else { return Ok(Some(0)) };
            let padded = format!("0x{:0>64}", address.trim_start_matches("0x"));
            let mut sum: u128 = 0;
            for log in receipt.get("logs").and_then(Value::as_array).into_iter().flatten() {
                let topics: Vec<&str> = log
                    .get("topics")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let from_contract =
                    log.get("address").and_then(Value::as_str).is_some_and(|a| a.eq_ignore_ascii_case(contract));
                if from_contract
                    && topics.len() == 3
                    && topics[0] == TRANSFER_TOPIC
                    && topics[2].eq_ignore_ascii_case(&padded)
                {
                    let value = log.get("data").and_then(Value::as_str).and_then(hex_units).unwrap_or(0);
                    sum = sum.saturating_add(value);
                }
            }
            return Ok(Some(sum));
        }
        let tx = crate::jsonrpc::call(&self.http, url, json!(2), "eth_getTransactionByHash", json!([txid])).await?;
        if tx.is_null() {
            return Ok(None);
        }
        let to = tx.get("to").and_then(Value::as_str).map(str::to_ascii_lowercase);
        if to.as_deref() != Some(address.as_str()) {
            return Ok(Some(0));
        }
        Ok(Some(tx.get("value").and_then(Value::as_str).and_then(hex_units).unwrap_or(0)))
    }

    async fn hive(&self, currency: Currency, txid: &str, account: &str) -> Result<Option<u128>, WatchError> {
        let url = self.hive.as_deref().unwrap_or_default();
        let tx = match crate::jsonrpc::call(&self.http, url, json!(1), "condenser_api.get_transaction", json!([txid]))
            .await
        {
            Ok(tx) => tx,
            // hived answers an unknown id with an error ("Unknown Transaction …"), not null.
            Err(WatchError::Rpc(message)) if message.contains("Unknown Transaction") => return Ok(None),
            Err(err) => return Err(err),
        };
        let mut sum: u128 = 0;
        for op in tx.get("operations").and_then(Value::as_array).into_iter().flatten() {
            let (kind, body) = match op {
                Value::Array(pair) if pair.len() == 2 => (pair[0].as_str(), &pair[1]),
                _ => (op.get("type").and_then(Value::as_str), op.get("value").unwrap_or(&Value::Null)),
            };
            if !matches!(kind, Some("transfer" | "transfer_operation"))
                || body.get("to").and_then(Value::as_str) != Some(account)
            {
                continue;
            }
            if let Some(amount) = body.get("amount").and_then(hive_amount).filter(|a| a.currency == currency) {
                sum = sum.saturating_add(amount.units);
            }
        }
        Ok(Some(sum))
    }
}

impl TransferLookup {
    async fn sol(&self, currency: Currency, signature: &str, address: &str) -> Result<Option<u128>, WatchError> {
        let Some((url, usdc_mint)) = &self.sol else { return Ok(None) };
        let params = json!([signature, { "encoding": "jsonParsed", "commitment": "finalized", "maxSupportedTransactionVersion": 0 }]);
        let tx = crate::jsonrpc::call(&self.http, url, json!(1), "getTransaction", params).await?;
        if tx.is_null() {
            return Ok(None);
        }
        let mint = if currency == Currency::UsdcSol { usdc_mint.as_deref() } else { None };
        if currency == Currency::UsdcSol && mint.is_none() {
            return Ok(Some(0));
        }
        // No Solana Pay reference here: the transaction's first account (its fee payer) stands in for it, and
        // what reached `address` is read as the watcher reads a payment (a token transfer names only the
        // address's token account, whose owner the balances give).
        let first = tx.pointer("/transaction/message/accountKeys/0");
        let first = first
            .and_then(|k| k.as_str().or_else(|| k.get("pubkey").and_then(Value::as_str)))
            .unwrap_or_default()
            .to_owned();
        let read = crate::solana::read_transaction(&tx, address, &first, mint)
            .map_err(|e| WatchError::Rpc(format!("getTransaction: {e}")))?;
        Ok(match read {
            crate::solana::Transfer::Failed => None,
            crate::solana::Transfer::Lamports { lamports, .. } if currency == Currency::Sol => Some(lamports),
            crate::solana::Transfer::Token { amount, .. } if currency == Currency::UsdcSol => Some(amount),
            _ => Some(0),
        })
    }
}

/// A Hive amount as condenser_api writes it (`"80.000 HIVE"`) or as the appbase APIs do
/// (`{"amount": "80000", "precision": 3, "nai": "@@000000021"}`).
fn hive_amount(value: &Value) -> Option<Amount> {
    if let Some(text) = value.as_str() {
        let (number, symbol) = text.split_once(' ')?;
        let currency = match symbol {
            "HIVE" | "STEEM" => Currency::Hive,
            "HBD" | "SBD" => Currency::Hbd,
            _ => return None,
        };
        return Amount::parse(currency, number).ok();
    }
    let currency = match value.get("nai")?.as_str()? {
        "@@000000021" => Currency::Hive,
        "@@000000013" => Currency::Hbd,
        _ => return None,
    };
    if value.get("precision")?.as_u64()? != u64::from(currency.decimals()) {
        return None;
    }
    Amount::from_units_str(currency, value.get("amount")?.as_str()?).ok()
}

fn hex_units(text: &str) -> Option<u128> {
    let digits = text.trim_start_matches("0x").trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    u128::from_str_radix(digits, 16).ok()
}
