//! One JSON-RPC 2.0 call over HTTP, as the Hive, Solana and Monero nodes speak it: transport and HTTP errors,
//! an `error` member, and a missing `result` all become [`WatchError::Rpc`] naming the method.

use serde_json::{json, Value};

use crate::watcher::WatchError;

pub(crate) async fn call(
    http: &reqwest::Client,
    url: &str,
    id: Value,
    method: &str,
    params: Value,
) -> Result<Value, WatchError> {
    let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
    let transport = |e: reqwest::Error| WatchError::Rpc(format!("{method}: {e}"));
    let reply: Value = http
        .post(url)
        .json(&body)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(transport)?
        .json()
        .await
        .map_err(transport)?;
    if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
        return Err(WatchError::Rpc(format!("{method}: {err}")));
    }
    reply.get("result").cloned().ok_or_else(|| WatchError::Rpc(format!("{method}: no result")))
}
