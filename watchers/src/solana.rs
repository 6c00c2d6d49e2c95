//! Solana: Solana Pay transfers, found by each quote's `reference` key.
//!
//! A SOL quote carries a fresh reference public key (`QuoteRow.reference`) that the buyer's wallet adds to the
//! transfer as a read-only account, as Solana Pay prescribes. So the watcher needs no cursor over the chain: for
//! every open quote it asks the node which *finalized* transactions mention the reference
//! (`getSignaturesForAddress`), fetches each new one in `jsonParsed` form (`getTransaction`) and checks it
//! really paid the quote's recipient. A quote stays watched for the watch window (`payments.watch_window_secs`,
//! 7 days) after it stopped being open (expired or paid), so a payment that finalizes late, or a second one,
//! still reaches ticketing, which decides what it is worth; that list is read from the store on every pass
//! (`Purchases::watched_quotes`), so a restart watches exactly what the run before it did. Only finalized transactions are looked
//! at, so every report is final and nothing can be orphaned afterwards.
//!
//! Failed transactions (`err` set) still mention the reference and still cost the payer a fee, but they moved
//! no money: they are counted and skipped. A transaction that mentions the reference but pays someone else is
//! not a payment to us either (counted as `wrong_recipient`).
//!
//! USDC (SPL token) payments work the same way for USDC.SOL quotes, which carry a reference too: a
//! `transferChecked` (or `transfer`) of the configured mint into a token account the recipient owns (its
//! associated token account, normally) is reported as `USDC.SOL`, output 1 of its transaction (lamports are
//! output 0). Ticketing decides what it is worth to the quote: a USDC payment to a SOL quote, or SOL to a USDC
//! quote, is a `wrong_currency` refund. Without a configured mint, token transfers are not looked for.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chains::{Amount, Chain, Currency};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use ticketing::purchases::{PaymentOutcome, PaymentReport, QuoteRow};

use crate::watcher::{with_retry, PaymentWatcher, PollReport, RetryPolicy, WatchContext, WatchError};

/// `[watchers.solana]` in the gateway's configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SolanaConfig {
    /// A JSON-RPC endpoint (`https://api.mainnet-beta.solana.com` or a provider's URL).
    pub rpc_url: String,
    /// How often open quotes are checked.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How many signatures to ask for per reference and poll (newest first); a quote is paid by one or two.
    #[serde(default = "default_signature_limit")]
    pub signature_limit: usize,
    /// The SPL mint credited as USDC.SOL (mainnet: `EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v`). The
    /// gateway sets it from `payments.tokens` (`USDC.SOL`) when it is not given here.
    #[serde(default)]
    pub usdc_mint: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_poll_interval_ms() -> u64 {
    10_000
}

/// At most this many pages of signatures per quote and tick. A reference mentioned by more transactions than
/// that (500 at the default page size) within one quote's life is a flood: the oldest are not read, and a
/// warning says so.
const MAX_SIGNATURE_PAGES: usize = 20;
fn default_signature_limit() -> usize {
    25
}
fn default_timeout_ms() -> u64 {
    15_000
}

impl SolanaConfig {
    pub fn new(rpc_url: impl Into<String>) -> Self {
        SolanaConfig {
            rpc_url: rpc_url.into(),
            poll_interval_ms: default_poll_interval_ms(),
            signature_limit: default_signature_limit(),
            usdc_mint: None,
            request_timeout_ms: default_timeout_ms(),
        }
    }
}

/// A minimal Solana JSON-RPC client: the two calls the watcher needs.
#[derive(Debug, Clone)]
pub struct SolanaRpc {
    http: reqwest::Client,
    url: String,
}

/// One entry of `getSignaturesForAddress`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureInfo {
    pub signature: String,
    pub slot: u64,
    #[serde(default)]
    pub err: Option<Value>,
    #[serde(default)]
    pub memo: Option<String>,
    #[serde(default)]
    pub block_time: Option<i64>,
    #[serde(default)]
    pub confirmation_status: Option<String>,
}

impl SolanaRpc {
    pub fn new(url: impl Into<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder().timeout(timeout).build().expect("reqwest client with rustls");
        SolanaRpc { http, url: url.into() }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, WatchError> {
        crate::jsonrpc::call(&self.http, &self.url, json!(1), method, params).await
    }

    /// Finalized signatures of transactions that mention `address`, newest first: up to `limit`, older than
    /// `before` when given (the node's paging).
    pub async fn signatures_for_address(
        &self,
        address: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<SignatureInfo>, WatchError> {
        let mut options = json!({ "commitment": "finalized", "limit": limit });
        if let Some(before) = before {
            options["before"] = json!(before);
        }
        let result = self.call("getSignaturesForAddress", json!([address, options])).await?;
        serde_json::from_value(result).map_err(|e| WatchError::Rpc(format!("getSignaturesForAddress: {e}")))
    }

    /// A finalized transaction in `jsonParsed` form; `None` when the node does not know it (yet).
    pub async fn transaction(&self, signature: &str) -> Result<Option<Value>, WatchError> {
        let result = self
            .call(
                "getTransaction",
                json!([signature, { "encoding": "jsonParsed", "commitment": "finalized", "maxSupportedTransactionVersion": 0 }]),
            )
            .await?;
        Ok(if result.is_null() { None } else { Some(result) })
    }
}

/// What one transaction did for one quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    /// `meta.err` is set: the transaction failed and moved nothing.
    Failed,
    /// The transaction does not mention the quote's reference key.
    NoReference,
    /// Nothing reached the recipient.
    WrongRecipient,
    /// Lamports received by the recipient.
    Lamports { lamports: u128, payer: Option<String>, slot: u64 },
    /// SPL tokens of `mint` received into a token account the recipient owns.
    Token { mint: String, amount: u128, payer: Option<String>, slot: u64 },
}

/// Reads a `getTransaction` (`jsonParsed`) result: did it pay `recipient` for the quote with `reference`?
///
/// Lamports are the sum of the parsed system `transfer`s (top-level and inner) to the recipient; when none is
/// parsed (a program moved them), the recipient's balance change (`postBalances - preBalances`) is used. An
/// SPL transfer counts when it is a parsed `transferChecked` (or `transfer`) into a token account whose owner
/// is the recipient (per `postTokenBalances`) for the accepted mint.
pub fn read_transaction(
    tx: &Value,
    recipient: &str,
    reference: &str,
    token_mint: Option<&str>,
) -> Result<Transfer, String> {
    let meta = tx.get("meta").filter(|m| !m.is_null()).ok_or("no meta")?;
    if meta.get("err").is_some_and(|e| !e.is_null()) {
        return Ok(Transfer::Failed);
    }
    let slot = tx.get("slot").and_then(Value::as_u64).unwrap_or(0);
    let message = tx.pointer("/transaction/message").ok_or("no transaction.message")?;
    // jsonParsed gives objects `{pubkey, signer, writable, source}`; other encodings plain strings.
    let keys: Vec<(String, bool)> = message
        .get("accountKeys")
        .and_then(Value::as_array)
        .ok_or("no accountKeys")?
        .iter()
        .map(|k| match k {
            Value::String(s) => Some((s.clone(), false)),
            Value::Object(o) => {
                Some((o.get("pubkey")?.as_str()?.to_owned(), o.get("signer").and_then(Value::as_bool).unwrap_or(false)))
            }
            _ => None,
        })
        .collect::<Option<_>>()
        .ok_or("malformed accountKeys")?;
    if !keys.iter().any(|(k, _)| k == reference) {
        return Ok(Transfer::NoReference);
    }
    let payer = keys.iter().find(|(_, signer)| *signer).or(keys.first()).map(|(k, _)| k.clone());

    let mut instructions: Vec<&Value> =
        message.get("instructions").and_then(Value::as_array).into_iter().flatten().collect();
    for inner in meta.get("innerInstructions").and_then(Value::as_array).into_iter().flatten() {
        instructions.extend(inner.get("instructions").and_then(Value::as_array).into_iter().flatten());
    }

    if let Some(mint) = token_mint {
        // Token accounts the recipient owns for this mint, from the balances the node reports.
        let owned: HashSet<&str> = meta
            .get("postTokenBalances")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|b| {
                b.get("owner").and_then(Value::as_str) == Some(recipient)
                    && b.get("mint").and_then(Value::as_str) == Some(mint)
            })
            .filter_map(|b| b.get("accountIndex").and_then(Value::as_u64))
            .filter_map(|i| keys.get(i as usize).map(|(k, _)| k.as_str()))
            .collect();
        let mut amount: u128 = 0;
        for ix in &instructions {
            if ix.get("program").and_then(Value::as_str) != Some("spl-token") {
                continue;
            }
            let kind = ix.pointer("/parsed/type").and_then(Value::as_str);
            let info = ix.pointer("/parsed/info");
            let Some(info) = info.filter(|_| matches!(kind, Some("transferChecked" | "transfer"))) else { continue };
            let to = info.get("destination").and_then(Value::as_str).unwrap_or("");
            let mint_ok = info.get("mint").and_then(Value::as_str).is_none_or(|m| m == mint);
            if !owned.contains(to) || !mint_ok {
                continue;
            }
            let units = info
                .pointer("/tokenAmount/amount")
                .or_else(|| info.get("amount"))
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u128>().ok())
                .ok_or("malformed token amount")?;
            amount = amount.checked_add(units).ok_or("token amount overflow")?;
        }
        if amount > 0 {
            return Ok(Transfer::Token { mint: mint.to_owned(), amount, payer, slot });
        }
    }

    let mut lamports: u128 = 0;
    let mut parsed_any = false;
    for ix in &instructions {
        if ix.get("program").and_then(Value::as_str) != Some("system")
            || !matches!(ix.pointer("/parsed/type").and_then(Value::as_str), Some("transfer" | "transferWithSeed"))
        {
            continue;
        }
        let info = ix.pointer("/parsed/info").ok_or("transfer without info")?;
        if info.get("destination").and_then(Value::as_str) != Some(recipient) {
            continue;
        }
        let units = info.get("lamports").and_then(Value::as_u64).ok_or("malformed lamports")?;
        lamports = lamports.checked_add(u128::from(units)).ok_or("lamports overflow")?;
        parsed_any = true;
    }
    if !parsed_any {
        if let Some(i) = keys.iter().position(|(k, _)| k == recipient) {
            let balance = |field: &str| meta.get(field).and_then(|b| b.get(i)).and_then(Value::as_u64);
            if let (Some(pre), Some(post)) = (balance("preBalances"), balance("postBalances")) {
                lamports = u128::from(post.saturating_sub(pre));
            }
        }
    }
    Ok(if lamports == 0 { Transfer::WrongRecipient } else { Transfer::Lamports { lamports, payer, slot } })
}

/// What one pass did: every report with ticketing's outcome, and the transactions skipped, by reason.
#[derive(Debug, Default, Clone)]
pub struct SolanaPass {
    pub reported: Vec<(PaymentReport, Option<PaymentOutcome>)>,
    pub skipped: BTreeMap<&'static str, u64>,
}

impl SolanaPass {
    fn skip(&mut self, ctx: &WatchContext, reason: &'static str, quote: &QuoteRow, signature: &str) {
        tracing::info!(chain = "sol", quote = %quote.id, signature, reason, "transaction skipped");
        ctx.metrics().skipped.inc();
        *self.skipped.entry(reason).or_default() += 1;
    }
}

/// Follows open SOL quotes' references and reports their payments.
pub struct SolanaWatcher {
    rpc: SolanaRpc,
    config: SolanaConfig,
    retry: RetryPolicy,
    /// Signatures already settled, per open quote, so a pass fetches only new transactions. Reports are
    /// idempotent anyway: this only saves RPC calls, and a restart simply reads them again.
    done: HashMap<String, HashSet<String>>,
}

impl SolanaWatcher {
    pub fn new(config: SolanaConfig) -> Self {
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let rpc = SolanaRpc::new(&config.rpc_url, timeout);
        SolanaWatcher { rpc, config, retry: RetryPolicy { timeout, ..RetryPolicy::default() }, done: HashMap::new() }
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// One pass over every open SOL quote, and over quotes that stopped being open within the watch window
    /// (a payment signed just before expiry may finalize after it; a second payment is owed back), with
    /// the details tests and logs want.
    pub async fn scan(&mut self, ctx: &WatchContext) -> Result<SolanaPass, WatchError> {
        let quotes = ctx.watched_quotes().await?;
        let watched: HashSet<&str> = quotes.iter().map(|q| q.id.as_str()).collect();
        self.done.retain(|id, _| watched.contains(id.as_str()));
        self.scan_quotes(ctx, &quotes).await
    }

    /// One pass over the given quotes (a rescan's: `crate::rescan`).
    pub async fn scan_quotes(&mut self, ctx: &WatchContext, quotes: &[QuoteRow]) -> Result<SolanaPass, WatchError> {
        let mut pass = SolanaPass::default();
        for quote in quotes {
            self.check_quote(ctx, quote, &mut pass).await?;
        }
        Ok(pass)
    }

    async fn check_quote(
        &mut self,
        ctx: &WatchContext,
        quote: &QuoteRow,
        pass: &mut SolanaPass,
    ) -> Result<(), WatchError> {
        let Some(reference) = quote.reference.as_deref() else { return Ok(()) };
        let rpc = &self.rpc;
        let limit = self.config.signature_limit.max(1);
        // Anyone can mention a reference (dust, failed transactions), so page back until a signature settled in
        // an earlier pass (everything older was settled too) or the end of the list, never just the newest page.
        let mut signatures: Vec<SignatureInfo> = Vec::new();
        for page_number in 1..=MAX_SIGNATURE_PAGES {
            let before = signatures.last().map(|s| s.signature.clone());
            let page = with_retry(ctx.metrics(), &self.retry, "getSignaturesForAddress", || {
                rpc.signatures_for_address(reference, limit, before.as_deref())
            })
            .await?;
            let full = page.len() >= limit;
            let done = self.done.get(&quote.id);
            let reached_settled = page.iter().any(|s| done.is_some_and(|d| d.contains(&s.signature)));
            signatures.extend(page);
            if !full || reached_settled {
                break;
            }
            if page_number == MAX_SIGNATURE_PAGES {
                tracing::warn!(quote = %quote.id, reference, read = signatures.len(), "reference flooded: oldest signatures not read");
            }
        }
        // Oldest first, so two payments for one quote are credited in chain order.
        for info in signatures.iter().rev() {
            let signature = info.signature.as_str();
            if self.done.get(&quote.id).is_some_and(|s| s.contains(signature)) {
                continue;
            }
            if info.confirmation_status.as_deref().is_some_and(|s| s != "finalized") {
                continue; // asked for finalized only: a node that answers otherwise is not believed yet
            }
            let skipped = if info.err.as_ref().is_some_and(|e| !e.is_null()) {
                Some("failed")
            } else {
                let Some(tx) =
                    with_retry(ctx.metrics(), &self.retry, "getTransaction", || rpc.transaction(signature)).await?
                else {
                    continue; // listed but not served yet: next pass
                };
                match read_transaction(&tx, &quote.payment_address, reference, self.config.usdc_mint.as_deref()) {
                    Err(why) => {
                        tracing::warn!(signature, why, "unreadable Solana transaction");
                        Some("unreadable")
                    }
                    Ok(Transfer::Failed) => Some("failed"),
                    Ok(Transfer::NoReference) => Some("no_reference"),
                    Ok(Transfer::WrongRecipient) => Some("wrong_recipient"),
                    Ok(Transfer::Token { amount, payer, slot, .. }) => {
                        let report =
                            final_report(ctx, quote, signature, 1, Amount::new(Currency::UsdcSol, amount), payer, slot);
                        self.report(ctx, quote, signature, report, pass).await?;
                        None
                    }
                    Ok(Transfer::Lamports { lamports, payer, slot }) => {
                        let report =
                            final_report(ctx, quote, signature, 0, Amount::new(Currency::Sol, lamports), payer, slot);
                        self.report(ctx, quote, signature, report, pass).await?;
                        None
                    }
                }
            };
            if let Some(reason) = skipped {
                pass.skip(ctx, reason, quote, signature);
            }
            self.done.entry(quote.id.clone()).or_default().insert(signature.to_owned());
        }
        Ok(())
    }

    async fn report(
        &self,
        ctx: &WatchContext,
        quote: &QuoteRow,
        signature: &str,
        report: PaymentReport,
        pass: &mut SolanaPass,
    ) -> Result<(), WatchError> {
        ctx.metrics().payments_seen.inc();
        let outcome = ctx.report(report.clone()).await?;
        tracing::info!(chain = "sol", quote = %quote.id, signature, currency = %report.amount.currency, ?outcome, "payment reported");
        pass.reported.push((report, outcome));
        Ok(())
    }
}

/// A finalized transfer to `quote`'s recipient as ticketing's report: lamports are output 0 of the transaction,
/// USDC output 1, so the two currencies never share a payment key.
fn final_report(
    ctx: &WatchContext,
    quote: &QuoteRow,
    signature: &str,
    output_index: i64,
    amount: Amount,
    payer: Option<String>,
    slot: u64,
) -> PaymentReport {
    PaymentReport {
        chain: Chain::Sol,
        txid: signature.to_owned(),
        output_index,
        quote_id: Some(quote.id.clone()),
        memo: None,
        amount,
        to_address: quote.payment_address.clone(),
        from_address: payer,
        block_height: i64::try_from(slot).ok(),
        block_hash: None,
        confirmations: ctx.purchases().settings().confirmations_required(Chain::Sol).max(1),
        is_final: true,
    }
}

#[async_trait::async_trait]
impl PaymentWatcher for SolanaWatcher {
    fn chain(&self) -> Chain {
        Chain::Sol
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_interval_ms)
    }

    /// Nothing durable to reload: the open quotes are the work list, and only finalized transactions are read.
    async fn resume(&mut self, _ctx: &WatchContext) -> Result<(), WatchError> {
        self.done.clear();
        Ok(())
    }

    async fn poll_once(&mut self, ctx: &WatchContext) -> Result<PollReport, WatchError> {
        let pass = self.scan(ctx).await?;
        let head = pass.reported.iter().filter_map(|(r, _)| r.block_height).max().unwrap_or(0);
        Ok(PollReport {
            head_height: head,
            cursor_height: head,
            reported_final: pass.reported.len() as u64,
            skipped: pass.skipped.values().sum(),
            ..PollReport::default()
        })
    }
}
