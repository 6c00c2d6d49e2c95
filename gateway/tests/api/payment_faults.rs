//! Fault injection on the money path (issue 18): the real gateway binary watches Bitcoin (the Esplora test
//! server), Ethereum (anvil) and Hive (a hived stand-in) while buyers pay exact, partial, over, late, second,
//! wrong-currency and third-party payments, chains reorganise, and the whole process is killed with SIGKILL at
//! random points and started again. At the end, on SQLite and on PostgreSQL:
//!
//! - every output to a quote still on the chain is exactly one payment row, dealt with: credited to the one
//!   ticket of its quote, or owed back by exactly one refund entry;
//! - an output that left the chain is `orphaned` with no live ledger entry;
//! - the live ledger entries sum to what was received, per currency;
//! - no quote is still open past its expiry (after the sweep).
//!
//! The smoke size fits CI (`FAULT_PAYMENTS`, default 210 outputs; `FAULT_KILLS`, default 10); a larger run is
//! `FAULT_PAYMENTS=2000 FAULT_KILLS=60 cargo nextest run -p gateway --test payment_faults`.

use crate::{anvil, common, esplora, jsonrpc_replay};

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use bitcoin::secp256k1::Secp256k1;
use chains::derive::{BtcAccount, EvmAccount};
use chains::signature::BtcNetwork;
use chains::{Chain, Currency};
use serde_json::{json, Value};
use ticketing::creators::{AccountName, Tier};
use ticketing::purchases::{PaymentSettings, Purchases, QuoteRequest, QuoteRow};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use ticketing::testing::TestDb;
use ticketing::{Backend, Store};

use anvil::Anvil;
use esplora::{payment_n, Esplora};
use jsonrpc_replay::ReplayServer;

const ZPUB: &str =
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
const BTC_BUYER: &str = "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g";
const EVM_BUYER: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
const HIVE_ACCOUNT: &str = "dlux-tickets";
const BTC_PRICE: u128 = 100_000;
const ETH_PRICE: u128 = 10_000_000_000_000_000;
const HIVE_PRICE: u128 = 10_000;
const HOUR: i64 = 3_600_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `m/44'/60'/0'` of the "abandon … about" mnemonic (as the watchers' fixtures).
fn evm_xpub() -> String {
    let seed: Vec<u8> = (0..64)
        .map(|i| u8::from_str_radix(&"5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4"[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let secp = Secp256k1::new();
    let master = Xpriv::new_master(bitcoin::Network::Bitcoin, &seed).unwrap();
    let path = DerivationPath::from_str("m/44'/60'/0'").unwrap();
    Xpub::from_priv(&secp, &master.derive_priv(&secp, &path).unwrap()).to_string()
}

/// A tiny deterministic generator (the run is reproducible from its seed, printed on failure).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

/// A hived stand-in serving a history the test appends to; every block is irreversible at once.
struct Hived {
    history: Arc<Mutex<Vec<Value>>>,
    block: Arc<AtomicI64>,
    server: ReplayServer,
}

impl Hived {
    async fn start() -> Hived {
        let history: Arc<Mutex<Vec<Value>>> = Arc::default();
        let block = Arc::new(AtomicI64::new(90_000_000));
        let (h, b) = (history.clone(), block.clone());
        let server = ReplayServer::start(move |method, params| match method {
            "database_api.get_dynamic_global_properties" => {
                let n = b.load(Ordering::SeqCst);
                Ok(json!({ "head_block_number": n, "last_irreversible_block_num": n }))
            }
            "account_history_api.get_account_history" => {
                let start = params["start"].as_i64().unwrap_or(-1);
                let limit = params["limit"].as_i64().unwrap_or(1000).max(1);
                let all = h.lock().unwrap();
                let matching: Vec<&Value> =
                    all.iter().filter(|e| start < 0 || e[0].as_i64().unwrap() <= start).collect();
                let page: Vec<Value> = matching.iter().rev().take(limit as usize).rev().map(|v| (*v).clone()).collect();
                Ok(json!({ "history": page }))
            }
            _ => Err(json!({"code": -32601, "message": "Method not found"})),
        })
        .await;
        Hived { history, block, server }
    }

    /// Appends a transfer to the platform account in a new block; returns its (txid, output index 0).
    fn transfer(&self, from: &str, units: u128, currency: Currency, memo: &str) -> String {
        let mut all = self.history.lock().unwrap();
        let sequence = all.len() as i64;
        let block = self.block.fetch_add(1, Ordering::SeqCst) + 1;
        let nai = if currency == Currency::Hbd { "@@000000013" } else { "@@000000021" };
        let txid = format!("{:040x}", 0xfa_0000_0000u64 + sequence as u64);
        all.push(json!([sequence, {
            "trx_id": txid, "block": block, "trx_in_block": 0, "op_in_trx": 0, "virtual_op": false,
            "timestamp": "2026-01-01T00:00:00",
            "op": {"type": "transfer_operation", "value": {"from": from, "to": HIVE_ACCOUNT,
                "amount": {"amount": units.to_string(), "precision": 3, "nai": nai}, "memo": memo}}
        }]));
        txid
    }
}

/// One output the test sent to a quote (or with its memo).
#[derive(Debug, Clone)]
struct Sent {
    chain: Chain,
    txid: String,
    output_index: i64,
    units: u128,
    kind: &'static str,
}

/// The gateway binary, killed and restarted at will.
struct Gateway {
    dir: std::path::PathBuf,
    db_url: String,
    config: std::path::PathBuf,
    child: Option<Child>,
    /// The running process's `http://` address.
    address: String,
    kills: usize,
}

impl Gateway {
    fn start(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("--config")
            .arg(&self.config)
            .env("GATEWAY_SERVER__PORT", "0")
            .env("GATEWAY_DATA_DIR", &self.dir)
            .env("GATEWAY_LOG__FORMAT", "json")
            .env("GATEWAY_LOG__FILTER", "warn,gateway=info")
            .env("DATABASE_URL", &self.db_url)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gateway binary");
        self.address = common::listening_address(&mut child, Duration::from_secs(30));
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
            assert!(status.success());
            let exit = child.wait().unwrap();
            assert!(!exit.success(), "killed, not exited: {exit:?}");
            self.kills += 1;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn event(store: &Store, currency: Currency, price: u128) -> i64 {
    let now = ticketing::now_ms();
    store.set_tier(&AccountName::parse("alice").unwrap(), Tier::Premium, None, "test").await.unwrap();
    ticketing::testing::SeedEvent::new(now - HOUR)
        .title("Faults")
        .space_id("hall")
        .price(&price.to_string(), currency.symbol())
        .accepts(currency.symbol())
        .capacity(100_000)
        .starts(now + 24 * HOUR)
        .ends(now + 27 * HOUR)
        .insert(store)
        .await
}

fn write_config(dir: &std::path::Path, esplora: &str, anvil: &str, hived: &str) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    let text = format!(
        r#"secret = "{secret}"

[rates]
source = "static"

[payments]
hive_account = "{HIVE_ACCOUNT}"
btc_xpub = "{ZPUB}"
evm_xpub = "{evm}"

[payments.confirmations]
btc = 2
eth = 2
hive = 1

[watchers.supervisor]
restart_backoff_ms = 100
max_restart_backoff_ms = 500

[[watchers.evm]]
chain = "eth"
rpc_url = "{anvil}"
chain_id = 31337
use_finalized_tag = false
poll_interval_ms = 100

[watchers.btc]
esplora_url = "{esplora}"
poll_interval_ms = 100

[watchers.hive]
rpc_url = "{hived}"
account = "{HIVE_ACCOUNT}"
poll_interval_ms = 100
"#,
        secret = "11".repeat(32),
        evm = evm_xpub(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn purchases(store: &Store) -> Purchases {
    let mut settings = PaymentSettings::new(HIVE_ACCOUNT);
    settings.btc = Some(BtcAccount::parse(ZPUB, BtcNetwork::Mainnet).unwrap());
    settings.evm = Some(EvmAccount::parse(&evm_xpub()).unwrap());
    settings.chain_ids.insert(Chain::Eth, 31337);
    settings.confirmations.insert(Chain::Btc, 2);
    settings.confirmations.insert(Chain::Eth, 2);
    settings.confirmations.insert(Chain::Hive, 1);
    Purchases::new(store.clone(), Arc::new(StaticRates::development()), settings, &[0x11u8; 32])
}

async fn run(backend: Backend) {
    let outputs_wanted = env_or("FAULT_PAYMENTS", 210);
    let kills_wanted = env_or("FAULT_KILLS", 10);
    let seed =
        std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| ticketing::now_ms() as u64);
    eprintln!("payment_faults: backend {backend:?}, seed {seed}");
    let mut rng = Lcg(seed);
    let started = Instant::now();

    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let p = purchases(&store);
    let events: HashMap<Currency, i64> = HashMap::from([
        (Currency::Btc, event(&store, Currency::Btc, BTC_PRICE).await),
        (Currency::Eth, event(&store, Currency::Eth, ETH_PRICE).await),
        (Currency::Hive, event(&store, Currency::Hive, HIVE_PRICE).await),
    ]);
    let esplora = Esplora::start(100).await;
    let anvil = Anvil::start().await;
    let hived = Hived::start().await;
    anvil.mine(10).await; // room for 3-deep reorganisations from the start
    let dir = std::env::temp_dir().join(format!("gateway-faults-{}-{}", std::process::id(), rng.next(1 << 30)));
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(&dir, &esplora.url, &anvil.url, &hived.server.url);
    let mut gw =
        Gateway { dir: dir.clone(), db_url: db.url.clone(), config, child: None, address: String::new(), kills: 0 };
    gw.start();
    // The block watchers' first cursors are at the heads: wait for them before paying (Hive reads its account's
    // whole history from sequence 0).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cursors: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM watcher_cursors WHERE chain IN ('btc', 'eth')")
            .fetch_one(store.raw_pool())
            .await
            .unwrap();
        if cursors >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the watchers never saved their cursors");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut sent: Vec<Sent> = Vec::new();
    let mut quotes: Vec<QuoteRow> = Vec::new();
    let mut btc_seed = 1000u32;
    let mut next_kill = Instant::now() + Duration::from_millis(300 + rng.next(900));
    let mut down_until: Option<Instant> = None;
    let mut round = 0u64;
    while sent.len() < outputs_wanted || gw.kills < kills_wanted {
        round += 1;
        // Kill the whole process at a random point, and start it again a moment later.
        if let Some(until) = down_until {
            if Instant::now() >= until {
                gw.start();
                down_until = None;
                next_kill = Instant::now() + Duration::from_millis(300 + rng.next(1200));
            }
        } else if Instant::now() >= next_kill && gw.kills < kills_wanted.max(1) * 4 {
            gw.kill();
            down_until = Some(Instant::now() + Duration::from_millis(rng.next(400)));
        }

        let chain = [Chain::Btc, Chain::Eth, Chain::Hive][rng.next(3) as usize];
        let kind =
            ["exact", "partial", "over", "late", "second", "wrong_currency", "third_party"][rng.next(7) as usize];
        let currency = match chain {
            Chain::Btc => Currency::Btc,
            Chain::Eth => Currency::Eth,
            _ => Currency::Hive,
        };
        let (wallet, price) = match chain {
            Chain::Btc => (BTC_BUYER.to_string(), BTC_PRICE),
            Chain::Eth => (EVM_BUYER.to_string(), ETH_PRICE),
            _ => (format!("buyer-{round}"), HIVE_PRICE),
        };
        let created = if kind == "late" { ticketing::now_ms() - HOUR } else { ticketing::now_ms() };
        let q = p
            .create_quote(
                QuoteRequest { event_id: events[&currency], currency, wallet_address: wallet.clone() },
                created,
            )
            .await
            .unwrap();
        if kind == "late" {
            p.expire_quotes(Some(events[&currency]), ticketing::now_ms()).await.unwrap();
        }
        let amounts: Vec<u128> = match kind {
            "partial" => vec![price / 2, price - price / 2],
            "over" => vec![price + price / 10],
            "second" => vec![price, price],
            _ => vec![price],
        };
        for units in amounts {
            match chain {
                Chain::Btc => {
                    btc_seed += 1;
                    let txid = esplora.broadcast(payment_n(btc_seed, &[(&q.payment_address, units as u64)]));
                    sent.push(Sent { chain, txid: txid.to_string(), output_index: 0, units, kind });
                }
                Chain::Eth => {
                    // A third party pays the quote's own address: it is the buyer's payment whoever sent it.
                    let from = if kind == "third_party" { 1 } else { 0 };
                    let txid = anvil.pay(from, &q.payment_address, units).await;
                    sent.push(Sent { chain, txid, output_index: 0, units, kind });
                }
                _ => {
                    let memo = q.memo.clone().unwrap();
                    let (from, paid) = match kind {
                        "third_party" => ("mallory".to_string(), Currency::Hive),
                        "wrong_currency" => (wallet.clone(), Currency::Hbd),
                        _ => (wallet.clone(), Currency::Hive),
                    };
                    let txid = hived.transfer(&from, units, paid, &memo);
                    sent.push(Sent { chain, txid, output_index: 0, units, kind });
                }
            }
        }
        quotes.push(q);

        // Blocks, and now and then a reorganisation (3 deep: past BTC's and ETH's 2 confirmations).
        if rng.next(2) == 0 {
            esplora.mine();
        }
        if rng.next(2) == 0 {
            anvil.mine(1).await;
        }
        if rng.next(40) == 0 {
            esplora.reorg(3);
        }
        if rng.next(40) == 0 {
            anvil.reorg(3).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if gw.child.is_none() {
        gw.start();
    }
    let kills = gw.kills;

    // Settle: enough blocks for finality everywhere, then wait until every output on the chain is dealt with.
    esplora.mine_empty(3);
    anvil.mine(3).await;
    let canonical_btc = |txid: &str| {
        let url = format!("{}/tx/{txid}/status", esplora.url);
        // A transaction the server no longer knows (its block was reorganised away) answers 404.
        async move { reqwest::get(url).await.unwrap().json::<Value>().await.is_ok_and(|v| v["confirmed"] == true) }
    };
    let mut on_chain: Vec<Sent> = Vec::new();
    let mut gone: Vec<Sent> = Vec::new();
    for s in &sent {
        let canonical = match s.chain {
            Chain::Btc => canonical_btc(&s.txid).await,
            Chain::Eth => !anvil.call("eth_getTransactionReceipt", json!([s.txid])).await.is_null(),
            _ => true,
        };
        if canonical {
            on_chain.push(s.clone())
        } else {
            gone.push(s.clone())
        }
    }
    // The Bitcoin node turns unwell for a while (after the test read it): the watcher's retries give up, the
    // supervisor restarts the watcher task (a fresh watcher, resumed from the store), and everything must still
    // be dealt with.
    esplora.fail_next(40);
    let restarts_of_btc = |address: String| async move {
        let metrics = reqwest::get(format!("{address}/metrics")).await.unwrap().text().await.unwrap();
        metrics
            .lines()
            .find(|l| l.starts_with("gateway_watcher_restarts_total{chain=\"btc\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let restarts = loop {
        let n = restarts_of_btc(gw.address.clone()).await;
        if n >= 1.0 {
            break n;
        }
        assert!(Instant::now() < deadline, "the BTC watcher task was never restarted after the node's errors");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    esplora.mine_empty(1);
    // Transactions anvil put back in its pool after a reorganisation are mined by the blocks above; anything
    // still unmined is not on the chain.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dealt: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT chain, txid, output_index FROM payments WHERE status IN ('confirmed', 'credited', 'refund_due')",
        )
        .fetch_all(store.raw_pool())
        .await
        .unwrap();
        let dealt: std::collections::HashSet<(String, String, i64)> = dealt.into_iter().collect();
        let key = |s: &Sent| (s.chain.as_str().to_owned(), s.txid.clone(), s.output_index);
        let waiting = on_chain.iter().filter(|s| !dealt.contains(&key(s))).count()
            // A reorganisation just before the end is noticed by the next tick: wait for its reversal too.
            + gone.iter().filter(|s| dealt.contains(&key(s))).count();
        if waiting == 0 {
            break;
        }
        if Instant::now() >= deadline {
            let stuck: Vec<&Sent> = on_chain.iter().filter(|s| !dealt.contains(&key(s))).take(5).collect();
            let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as("SELECT txid, status, block_height FROM payments WHERE status NOT IN ('credited', 'refund_due') LIMIT 10")
                .fetch_all(store.raw_pool()).await.unwrap();
            let cursors: Vec<(String, i64)> =
                sqlx::query_as("SELECT chain, height FROM watcher_cursors").fetch_all(store.raw_pool()).await.unwrap();
            panic!("{waiting} of {} outputs not dealt with (seed {seed}): {stuck:?} rows {rows:?} cursors {cursors:?} esplora {}", on_chain.len(), esplora.height());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gw.kill();
    // Time passes: every quote reaches its expiry; what a partial payment left is owed back.
    let later = ticketing::now_ms() + HOUR;
    p.expire_quotes(None, later).await.unwrap();

    // Invariant 1: each output on the chain is one payment row, dealt with exactly once.
    let mut received: BTreeMap<String, u128> = BTreeMap::new();
    for s in &on_chain {
        let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT id, status, currency, quote_id FROM payments WHERE chain = $1 AND txid = $2 AND output_index = $3",
        )
        .bind(s.chain.as_str())
        .bind(&s.txid)
        .bind(s.output_index)
        .fetch_all(store.raw_pool())
        .await
        .unwrap();
        assert_eq!(rows.len(), 1, "{s:?} (seed {seed})");
        let (id, status, currency, quote_id) = rows[0].clone();
        *received.entry(currency).or_default() += s.units;
        // A credited payment may carry its excess as an `overpaid` refund; anything else refunded is its own entry.
        let refunds: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM ledger_entries WHERE payment_id = $1 AND kind = 'refund' AND status <> 'cancelled' \
             AND ($2 = 0 OR reason <> 'overpaid' OR ticket_id IS NULL)",
        )
        .bind(id)
        .bind(i64::from(status == "credited"))
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
        match status.as_str() {
            "credited" => {
                let valid: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE quote_id = $1 AND status = 'valid'")
                        .bind(quote_id.as_deref().unwrap_or("-"))
                        .fetch_one(store.raw_pool())
                        .await
                        .unwrap();
                assert_eq!((valid, refunds), (1, 0), "credited {s:?} (seed {seed})");
            }
            "refund_due" => assert_eq!(refunds, 1, "refunded {s:?} (seed {seed})"),
            other => panic!("{s:?} left {other} (seed {seed})"),
        }
        if s.chain == Chain::Hive && (s.kind == "wrong_currency" || s.kind == "third_party") {
            assert_eq!((status.as_str(), quote_id), ("refund_due", None), "a stray payment stands alone: {s:?}");
        }
    }
    // Invariant 2: outputs that left the chain have no live entry.
    for s in &gone {
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM ledger_entries l JOIN payments p ON p.id = l.payment_id \
             WHERE p.chain = $1 AND p.txid = $2 AND l.status <> 'cancelled'",
        )
        .bind(s.chain.as_str())
        .bind(&s.txid)
        .fetch_one(store.raw_pool())
        .await
        .unwrap();
        if live != 0 {
            type Row = (String, Option<i64>, Option<String>, i64, i64);
            let row: Option<Row> = sqlx::query_as(
                "SELECT status, block_height, block_hash, first_seen_at, updated_at FROM payments WHERE chain = $1 AND txid = $2",
            )
            .bind(s.chain.as_str())
            .bind(&s.txid)
            .fetch_optional(store.raw_pool())
            .await
            .unwrap();
            let at = match (s.chain, row.as_ref().and_then(|r| r.1)) {
                (Chain::Eth, Some(h)) => {
                    anvil.call("eth_getBlockByNumber", json!([format!("0x{h:x}"), false])).await["hash"].clone()
                }
                _ => Value::Null,
            };
            let tx = if s.chain == Chain::Eth {
                anvil.call("eth_getTransactionByHash", json!([s.txid])).await
            } else {
                Value::Null
            };
            let audit: Vec<(String, String)> =
                sqlx::query_as("SELECT action, detail FROM audit_log WHERE subject = $1")
                    .bind(&s.txid)
                    .fetch_all(store.raw_pool())
                    .await
                    .unwrap();
            panic!("{s:?} left the chain but has {live} live entries (seed {seed}): row {row:?}, canonical {at}, tx {tx}, audit {audit:?}");
        }
    }
    // Invariant 3: per currency, the live ledger entries add up to what was received.
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT currency, amount_units FROM ledger_entries WHERE status <> 'cancelled'")
            .fetch_all(store.raw_pool())
            .await
            .unwrap();
    let mut booked: BTreeMap<String, u128> = BTreeMap::new();
    for (currency, units) in rows {
        *booked.entry(currency).or_default() += units.parse::<u128>().unwrap();
    }
    assert_eq!(booked, received, "ledger against receipts (seed {seed})");
    // Invariant 4: nothing is left open past its expiry.
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM quotes WHERE status IN ('awaiting_payment', 'seen', 'confirming') AND expires_at <= $1",
    )
    .bind(later)
    .fetch_one(store.raw_pool())
    .await
    .unwrap();
    assert_eq!(open, 0, "quotes stuck open (seed {seed})");
    let count = |sql: &'static str| {
        let pool = store.raw_pool().clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    let reversed = count("SELECT COUNT(*) FROM audit_log WHERE action = 'payment.reversed'").await;
    let tickets = count("SELECT COUNT(*) FROM tickets WHERE status = 'valid'").await;
    let refunds = count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'refund' AND status <> 'cancelled'").await;
    let strays = count("SELECT COUNT(*) FROM audit_log WHERE action = 'payment.stray'").await;
    assert!(tickets > 0 && refunds > 0, "the run sold and refunded something");
    eprintln!(
        "payment_faults {backend:?}: {} outputs ({} on the chain, {} reorganised away), {} quotes, {tickets} tickets, \
         {refunds} refunds ({strays} stray), {reversed} reversals, {kills} SIGKILLs, {restarts} BTC watcher restarts, {:.1} s",
        sent.len(),
        on_chain.len(),
        gone.len(),
        quotes.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= kills_wanted && sent.len() >= outputs_wanted);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_survive_kills_and_reorgs_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_survive_kills_and_reorgs_postgres() {
    run(Backend::Postgres).await;
}
