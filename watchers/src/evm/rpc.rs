//! A small Ethereum JSON-RPC client: the handful of `eth_*` calls a payment watcher needs, batched, with
//! timeouts and retries.
//!
//! Why not alloy's provider: `alloy-provider` 1.x with only its reqwest transport adds 94 crates to the tree,
//! among them a second reqwest (0.13 beside our 0.12), a second secp256k1 implementation (k256) and the
//! Solidity macro stack. The watcher reads five methods and four fields per object, so it parses exactly
//! those here.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::metrics::ChainMetrics;
use crate::watcher::{with_retry, RetryPolicy, WatchError};

/// `keccak256("Transfer(address,address,uint256)")`, the ERC-20 `Transfer` event's topic.
pub const TRANSFER_TOPIC: &str = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

#[derive(Clone)]
pub struct EvmRpc {
    http: reqwest::Client,
    url: String,
    policy: RetryPolicy,
    metrics: Arc<ChainMetrics>,
}

/// A block header, or a block with its full transactions.
#[derive(Debug, Clone, Deserialize)]
pub struct Block {
    #[serde(deserialize_with = "quantity_i64")]
    pub number: i64,
    pub hash: String,
    #[serde(rename = "parentHash")]
    pub parent_hash: String,
    /// Full transaction objects (kept raw: one malformed transaction must not spoil the block).
    #[serde(default)]
    pub transactions: Vec<Value>,
}

/// The fields of a transaction the watcher reads.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub hash: String,
    pub from: Option<String>,
    pub to: String,
    pub value: u128,
}

impl Transfer {
    /// A native transfer from a full transaction object; `None` for contract creations, zero values and
    /// anything malformed (`Err` with the reason).
    pub fn from_tx(tx: &Value) -> Result<Option<Transfer>, String> {
        let Some(to) = tx.get("to").and_then(Value::as_str) else { return Ok(None) };
        let hash = tx.get("hash").and_then(Value::as_str).ok_or("transaction without hash")?;
        let value = tx.get("value").and_then(Value::as_str).ok_or("transaction without value")?;
        let value = parse_quantity(value).ok_or_else(|| format!("bad value {value} in {hash}"))?;
        if value == 0 {
            return Ok(None);
        }
        Ok(Some(Transfer {
            hash: hash.to_owned(),
            from: tx.get("from").and_then(Value::as_str).map(str::to_ascii_lowercase),
            to: to.to_ascii_lowercase(),
            value,
        }))
    }
}

/// A log entry as `eth_getLogs` returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Log {
    pub address: String,
    pub topics: Vec<String>,
    pub data: String,
    #[serde(rename = "blockNumber", deserialize_with = "quantity_i64")]
    pub block_number: i64,
    #[serde(rename = "blockHash")]
    pub block_hash: String,
    #[serde(rename = "transactionHash")]
    pub transaction_hash: String,
    #[serde(rename = "logIndex", deserialize_with = "quantity_i64")]
    pub log_index: i64,
    #[serde(default)]
    pub removed: bool,
}

/// An ERC-20 `Transfer(from, to, value)`.
#[derive(Debug, Clone)]
pub struct TokenLog {
    pub contract: String,
    pub from: String,
    pub to: String,
    pub units: u128,
}

impl Log {
    pub fn as_transfer(&self) -> Result<TokenLog, String> {
        if self.topics.len() != 3 || !self.topics[0].eq_ignore_ascii_case(TRANSFER_TOPIC) {
            return Err("not an ERC-20 Transfer".into());
        }
        let address = |topic: &str| -> Result<String, String> {
            let hex = topic.strip_prefix("0x").filter(|h| h.len() == 64).ok_or("bad address topic")?;
            Ok(format!("0x{}", hex[24..].to_ascii_lowercase()))
        };
        let data = self.data.strip_prefix("0x").filter(|h| h.len() == 64).ok_or("bad Transfer data")?;
        if data[..32].bytes().any(|b| b != b'0') {
            return Err("token amount beyond 128 bits".into());
        }
        let units = u128::from_str_radix(&data[32..], 16).map_err(|_| "bad Transfer amount")?;
        Ok(TokenLog {
            contract: self.address.to_ascii_lowercase(),
            from: address(&self.topics[1])?,
            to: address(&self.topics[2])?,
            units,
        })
    }
}

impl EvmRpc {
    pub fn new(url: &str, policy: RetryPolicy, metrics: Arc<ChainMetrics>) -> Result<Self, WatchError> {
        let http = reqwest::Client::builder()
            .timeout(policy.timeout)
            .build()
            .map_err(|e| WatchError::Config(format!("http client: {e}")))?;
        Ok(EvmRpc { http, url: url.to_owned(), policy, metrics })
    }

    /// One call, retried.
    pub async fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, WatchError> {
        let mut out = self.batch(method, vec![params]).await?;
        Ok(out.pop().expect("one answer per call"))
    }

    /// The same method with many parameter lists, in one HTTP request; answers in the order asked.
    pub async fn batch<T: DeserializeOwned>(&self, method: &str, params: Vec<Value>) -> Result<Vec<T>, WatchError> {
        if params.is_empty() {
            return Ok(Vec::new());
        }
        let body: Vec<Value> = params
            .iter()
            .enumerate()
            .map(|(id, p)| json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": p }))
            .collect();
        let n = body.len();
        with_retry(&self.metrics, &self.policy, method, || async {
            let response = self
                .http
                .post(&self.url)
                .json(&body)
                .send()
                .await
                .map_err(|e| WatchError::Rpc(format!("{method}: {e}")))?;
            if !response.status().is_success() {
                return Err(WatchError::Rpc(format!("{method}: HTTP {}", response.status())));
            }
            let answers: Vec<Value> =
                response.json().await.map_err(|e| WatchError::Rpc(format!("{method}: bad response: {e}")))?;
            let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
            for answer in answers {
                let id = answer.get("id").and_then(Value::as_u64).map(|i| i as usize).filter(|i| *i < n);
                let Some(id) = id else { return Err(WatchError::Rpc(format!("{method}: answer with an unknown id"))) };
                if let Some(error) = answer.get("error") {
                    return Err(WatchError::Rpc(format!("{method}: {error}")));
                }
                let result = answer.get("result").cloned().unwrap_or(Value::Null);
                slots[id] = Some(
                    serde_json::from_value(result)
                        .map_err(|e| WatchError::Rpc(format!("{method}: unexpected result: {e}")))?,
                );
            }
            slots.into_iter().map(|s| s.ok_or_else(|| WatchError::Rpc(format!("{method}: missing answer")))).collect()
        })
        .await
    }

    pub async fn chain_id(&self) -> Result<u64, WatchError> {
        let id: String = self.call("eth_chainId", json!([])).await?;
        parse_quantity(&id).map(|v| v as u64).ok_or_else(|| WatchError::Rpc(format!("bad chain id {id}")))
    }

    pub async fn block_number(&self) -> Result<i64, WatchError> {
        let n: String = self.call("eth_blockNumber", json!([])).await?;
        parse_quantity(&n)
            .and_then(|v| i64::try_from(v).ok())
            .ok_or_else(|| WatchError::Rpc(format!("bad block number {n}")))
    }

    /// The node's `finalized` block height; `None` when the node has no such tag (or no finalized block yet).
    pub async fn finalized_height(&self) -> Option<i64> {
        let block: Result<Option<Block>, _> = self.call("eth_getBlockByNumber", json!(["finalized", false])).await;
        block.ok().flatten().map(|b| b.number)
    }

    /// Headers (`full = false`) or blocks with transactions, by height; `None` above the head.
    pub async fn blocks(&self, heights: &[i64], full: bool) -> Result<Vec<Option<Block>>, WatchError> {
        let params = heights.iter().map(|h| json!([format!("0x{h:x}"), full])).collect();
        self.batch("eth_getBlockByNumber", params).await
    }

    /// `Transfer` logs of the given token contracts in a height range.
    pub async fn transfer_logs(&self, contracts: &[String], from: i64, to: i64) -> Result<Vec<Log>, WatchError> {
        let filter = json!({
            "fromBlock": format!("0x{from:x}"),
            "toBlock": format!("0x{to:x}"),
            "address": contracts,
            "topics": [TRANSFER_TOPIC],
        });
        self.call("eth_getLogs", json!([filter])).await
    }
}

/// `0x…` hex quantity.
pub fn parse_quantity(text: &str) -> Option<u128> {
    let hex = text.strip_prefix("0x")?;
    if hex.is_empty() {
        return None;
    }
    u128::from_str_radix(hex, 16).ok()
}

fn quantity_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = String::deserialize(d)?;
    parse_quantity(&text)
        .and_then(|v| i64::try_from(v).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("bad quantity {text}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transfers_and_logs() {
        assert_eq!(parse_quantity("0x0"), Some(0));
        assert_eq!(parse_quantity("0xde0b6b3a7640000"), Some(1_000_000_000_000_000_000));
        assert_eq!(parse_quantity("12"), None);
        let tx = json!({ "hash": "0xaa", "from": "0xAB", "to": "0xCD", "value": "0x10" });
        let t = Transfer::from_tx(&tx).unwrap().unwrap();
        assert_eq!((t.to.as_str(), t.value, t.from.as_deref()), ("0xcd", 16, Some("0xab")));
        assert!(Transfer::from_tx(&json!({ "hash": "0xaa", "to": null, "value": "0x10" })).unwrap().is_none());
        assert!(Transfer::from_tx(&json!({ "hash": "0xaa", "to": "0x1", "value": "zz" })).is_err());
        let log: Log = serde_json::from_value(json!({
            "address": "0xToKeN", "topics": [TRANSFER_TOPIC,
                "0x000000000000000000000000f39fd6e51aad88f6f4ce6ab8827279cfffb92266",
                "0x0000000000000000000000009858effd232b4033e47d90003d41ec34ecaeda94"],
            "data": "0x00000000000000000000000000000000000000000000000000000000000f4240",
            "blockNumber": "0x5", "blockHash": "0xbb", "transactionHash": "0xcc", "logIndex": "0x1"
        }))
        .unwrap();
        let t = log.as_transfer().unwrap();
        assert_eq!(
            (t.to.as_str(), t.units, t.contract.as_str()),
            ("0x9858effd232b4033e47d90003d41ec34ecaeda94", 1_000_000, "0xtoken")
        );
    }
}
