//! An Esplora-compatible test server: real Bitcoin blocks and transactions, built and serialised with the
//! `bitcoin` crate, served on 127.0.0.1 the way Blockstream's esplora answers (the subset the watcher reads).
//! Tests mine blocks, put transactions in the mempool, replace them (RBF) and reorganise the chain.

#![allow(dead_code)]

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{
    Address, Amount, Block, BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Txid, Witness,
};
use serde_json::{json, Value};

#[derive(Default)]
struct ChainState {
    blocks: Vec<Block>,
    mempool: Vec<Transaction>,
    /// Makes every block unique (forks at the same height differ).
    nonce: u32,
    /// The next this many requests fail with 503 (an unwell node).
    failures: u32,
}

/// The server and a handle to change its chain.
#[derive(Clone)]
pub struct Esplora {
    state: Arc<Mutex<ChainState>>,
    pub url: String,
}

impl Esplora {
    /// Starts with `height + 1` empty blocks.
    pub async fn start(height: usize) -> Esplora {
        let state = Arc::new(Mutex::new(ChainState::default()));
        let server = Esplora { state: state.clone(), url: String::new() };
        for _ in 0..=height {
            server.mine_with(Vec::new());
        }
        let app = Router::new()
            .route("/blocks/tip/height", get(tip_height))
            .route("/blocks/tip/hash", get(tip_hash))
            .route("/block-height/{height}", get(block_at))
            .route("/block/{hash}", get(block_info))
            .route("/block/{hash}/txs", get(block_txs_first))
            .route("/block/{hash}/txs/{start}", get(block_txs))
            .route("/address/{address}/txs", get(address_txs))
            .route("/tx/{txid}/status", get(tx_status))
            .route("/tx/{txid}", get(tx_by_id))
            .route("/tx/{txid}/outspend/{vout}", get(outspend))
            .layer(axum::middleware::from_fn_with_state(state.clone(), injected_failures))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Esplora { url, ..server }
    }

    /// Makes the next `n` requests fail with 503, as an unwell node does.
    pub fn fail_next(&self, n: u32) {
        self.state.lock().unwrap().failures = n;
    }

    pub fn height(&self) -> i64 {
        self.state.lock().unwrap().blocks.len() as i64 - 1
    }

    /// Adds a transaction to the mempool.
    pub fn broadcast(&self, tx: Transaction) -> Txid {
        let txid = tx.compute_txid();
        self.state.lock().unwrap().mempool.push(tx);
        txid
    }

    /// Replaces a mempool transaction by another (RBF): the old one is gone.
    pub fn replace(&self, old: Txid, new: Transaction) -> Txid {
        let mut state = self.state.lock().unwrap();
        state.mempool.retain(|tx| tx.compute_txid() != old);
        let txid = new.compute_txid();
        state.mempool.push(new);
        txid
    }

    /// Mines one block with the whole mempool.
    pub fn mine(&self) -> BlockHash {
        let txs = std::mem::take(&mut self.state.lock().unwrap().mempool);
        self.mine_with(txs)
    }

    pub fn mine_empty(&self, n: usize) {
        for _ in 0..n {
            self.mine_with(Vec::new());
        }
    }

    /// Drops the last `depth` blocks (their transactions vanish, as if conflicted away) and mines `depth + 1`
    /// empty ones in their place: a longer fork.
    pub fn reorg(&self, depth: usize) {
        {
            let mut state = self.state.lock().unwrap();
            let keep = state.blocks.len() - depth;
            state.blocks.truncate(keep);
        }
        self.mine_empty(depth + 1);
    }

    fn mine_with(&self, txs: Vec<Transaction>) -> BlockHash {
        let mut state = self.state.lock().unwrap();
        state.nonce += 1;
        let height = state.blocks.len() as u32;
        let prev = state.blocks.last().map(|b| b.block_hash()).unwrap_or_else(BlockHash::all_zeros);
        let coinbase = Transaction {
            version: TxVersion::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes([&height.to_le_bytes()[..], &state.nonce.to_le_bytes()[..]].concat()),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut { value: Amount::from_sat(312_500_000), script_pubkey: ScriptBuf::new() }],
        };
        let mut txdata = vec![coinbase];
        txdata.extend(txs);
        let mut block = Block {
            header: Header {
                version: Version::TWO,
                prev_blockhash: prev,
                merkle_root: TxMerkleNode::all_zeros(),
                time: 1_700_000_000 + height,
                bits: CompactTarget::from_consensus(0x207f_ffff),
                nonce: state.nonce,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().unwrap();
        let hash = block.block_hash();
        state.blocks.push(block);
        hash
    }
}

/// A transaction spending a made-up outpoint (`funding`, so a replacement can spend the same one) to
/// `outputs` (address, sats). Signals RBF.
pub fn payment(funding: u8, outputs: &[(&str, u64)]) -> Transaction {
    Transaction {
        version: TxVersion::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: Txid::from_byte_array([funding; 32]), vout: 0 },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::from_slice(&[vec![funding; 72], vec![2; 33]]),
        }],
        output: outputs
            .iter()
            .map(|(address, sats)| TxOut {
                value: Amount::from_sat(*sats),
                script_pubkey: Address::from_str(address)
                    .unwrap()
                    .require_network(Network::Bitcoin)
                    .unwrap()
                    .script_pubkey(),
            })
            .collect(),
    }
}

/// As [`payment`], for tests that need more than 256 distinct transactions: `n` picks the spent output.
pub fn payment_n(n: u32, outputs: &[(&str, u64)]) -> Transaction {
    let mut tx = payment((n % 251) as u8, outputs);
    tx.input[0].previous_output.vout = n;
    tx
}

type Shared = State<Arc<Mutex<ChainState>>>;

async fn injected_failures(
    State(state): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    {
        let mut state = state.lock().unwrap();
        if state.failures > 0 {
            state.failures -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "injected failure").into_response();
        }
    }
    next.run(request).await
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

fn tx_json(tx: &Transaction, status: Value) -> Value {
    json!({
        "txid": tx.compute_txid().to_string(),
        "version": tx.version.0,
        "locktime": tx.lock_time.to_consensus_u32(),
        "vin": tx.input.iter().map(|i| json!({
            "txid": i.previous_output.txid.to_string(),
            "vout": i.previous_output.vout,
            "prevout": null,
            "is_coinbase": i.previous_output.is_null(),
            "sequence": i.sequence.0,
        })).collect::<Vec<_>>(),
        "vout": tx.output.iter().map(|o| {
            let mut out = json!({ "scriptpubkey": hex(o.script_pubkey.as_bytes()), "value": o.value.to_sat() });
            if let Ok(address) = Address::from_script(&o.script_pubkey, Network::Bitcoin) {
                out["scriptpubkey_address"] = json!(address.to_string());
            }
            out
        }).collect::<Vec<_>>(),
        "status": status,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn confirmed(height: usize, block: &Block) -> Value {
    json!({ "confirmed": true, "block_height": height, "block_hash": block.block_hash().to_string() })
}

fn find_block<'a>(state: &'a ChainState, hash: &str) -> Option<(usize, &'a Block)> {
    state.blocks.iter().enumerate().find(|(_, b)| b.block_hash().to_string() == hash)
}

async fn tip_height(State(state): Shared) -> String {
    (state.lock().unwrap().blocks.len() - 1).to_string()
}

async fn tip_hash(State(state): Shared) -> String {
    state.lock().unwrap().blocks.last().unwrap().block_hash().to_string()
}

async fn block_at(State(state): Shared, Path(height): Path<usize>) -> Response {
    match state.lock().unwrap().blocks.get(height) {
        Some(block) => block.block_hash().to_string().into_response(),
        None => not_found(),
    }
}

async fn block_info(State(state): Shared, Path(hash): Path<String>) -> Response {
    let state = state.lock().unwrap();
    let Some((height, block)) = find_block(&state, &hash) else { return not_found() };
    Json(json!({
        "id": hash,
        "height": height,
        "previousblockhash": if height == 0 { Value::Null } else { json!(block.header.prev_blockhash.to_string()) },
        "tx_count": block.txdata.len(),
        "timestamp": block.header.time,
    }))
    .into_response()
}

async fn block_txs_first(state: Shared, Path(hash): Path<String>) -> Response {
    block_txs(state, Path((hash, 0))).await
}

async fn block_txs(State(state): Shared, Path((hash, start)): Path<(String, usize)>) -> Response {
    let state = state.lock().unwrap();
    let Some((height, block)) = find_block(&state, &hash) else { return not_found() };
    if start % 25 != 0 || (start >= block.txdata.len() && start > 0) {
        return (StatusCode::BAD_REQUEST, "start index out of range").into_response();
    }
    let txs: Vec<Value> =
        block.txdata.iter().skip(start).take(25).map(|tx| tx_json(tx, confirmed(height, block))).collect();
    Json(txs).into_response()
}

fn pays(tx: &Transaction, address: &str) -> bool {
    tx.output
        .iter()
        .any(|o| Address::from_script(&o.script_pubkey, Network::Bitcoin).is_ok_and(|a| a.to_string() == address))
}

/// Mempool transactions first, then confirmed ones, newest first (as esplora lists them).
async fn address_txs(State(state): Shared, Path(address): Path<String>) -> Response {
    let state = state.lock().unwrap();
    let mut txs: Vec<Value> = state
        .mempool
        .iter()
        .filter(|tx| pays(tx, &address))
        .map(|tx| tx_json(tx, json!({ "confirmed": false })))
        .collect();
    for (height, block) in state.blocks.iter().enumerate().rev() {
        for tx in block.txdata.iter().filter(|tx| pays(tx, &address)) {
            txs.push(tx_json(tx, confirmed(height, block)));
        }
    }
    Json(txs).into_response()
}

async fn tx_status(State(state): Shared, Path(txid): Path<String>) -> Response {
    let state = state.lock().unwrap();
    for (height, block) in state.blocks.iter().enumerate() {
        if block.txdata.iter().any(|tx| tx.compute_txid().to_string() == txid) {
            return Json(confirmed(height, block)).into_response();
        }
    }
    if state.mempool.iter().any(|tx| tx.compute_txid().to_string() == txid) {
        return Json(json!({ "confirmed": false })).into_response();
    }
    not_found()
}

/// `GET /tx/{txid}`: the transaction with its status, from a block or the mempool.
async fn tx_by_id(State(state): Shared, Path(txid): Path<String>) -> Response {
    let state = state.lock().unwrap();
    for (height, block) in state.blocks.iter().enumerate() {
        if let Some(tx) = block.txdata.iter().find(|tx| tx.compute_txid().to_string() == txid) {
            return Json(tx_json(tx, confirmed(height, block))).into_response();
        }
    }
    match state.mempool.iter().find(|tx| tx.compute_txid().to_string() == txid) {
        Some(tx) => Json(tx_json(tx, json!({ "confirmed": false }))).into_response(),
        None => not_found(),
    }
}

/// `GET /tx/{txid}/outspend/{vout}`: whether a block or the mempool spends the output.
async fn outspend(State(state): Shared, Path((txid, vout)): Path<(String, u32)>) -> Json<Value> {
    let state = state.lock().unwrap();
    let spends = |tx: &Transaction| {
        tx.input.iter().any(|i| i.previous_output.txid.to_string() == txid && i.previous_output.vout == vout)
    };
    let spent = state.blocks.iter().flat_map(|b| b.txdata.iter()).chain(state.mempool.iter()).any(spends);
    Json(json!({ "spent": spent }))
}
