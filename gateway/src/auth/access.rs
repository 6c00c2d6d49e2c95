//! Access: the one place that decides "this wallet proved control for this event, now".
//!
//! A client proves it holds a wallet by signing a text the server can check. Two texts are accepted:
//!
//! - **The challenge** (`GET /api/events/{id}/challenge`): a sign-in message ([`chains::challenge::Challenge`])
//!   naming our domain, the event, the wallet, a nonce and a five-minute validity. Issuing one stores nothing: the
//!   nonce is `random ‖ MAC`, where the MAC (HMAC-SHA256 under the server secret) covers every field of the
//!   message. A nonce the server did not make, or a message whose fields were changed after issue, fails the MAC,
//!   so any gateway node sharing the secret can check any node's challenge.
//! - **The seed's message** `Access event {eventId} at {unixMillis}`, for older clients: accepted while its time
//!   is within ±5 minutes of the server clock.
//!
//! Either is accepted **once**. On success a row goes into `used_challenges` (kind `nonce` keyed by the nonce, or
//! kind `signature` keyed by a hash of chain, wallet and message) with `ON CONFLICT DO NOTHING`: the database's
//! unique key decides which of two concurrent uses wins, on one node or many, and the loser is `replayed`. The
//! seed message is keyed by what was signed rather than by the signature string because one signature has many
//! spellings (Solana's three encodings, EVM's `v` = 27/0, ECDSA's `s`/`n−s`), and each would otherwise be a
//! fresh replay. Rows are deleted once their message could no longer be accepted anyway.
//!
//! Every refusal has a reason code ([`AccessError::code`]) that reaches the client (HTTP body or WebSocket close
//! reason), the `gateway_access_denials_total{reason}` metric and, except for rate limiting, the audit log as
//! `access.denied`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::http::StatusCode;
use chains::challenge::{AccessMessage, Challenge, ChallengeError};
use chains::signature::{eip55_checksum, BtcNetwork, HiveKeySource, MoneroNetwork, SignatureError, VerifyOptions};
use chains::Chain;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use ticketing::audit::AuditEntry;

use crate::configuration::{AccessSettings, Settings};
use crate::metrics::{Metrics, ReasonLabels};
use crate::rate_limit::KeyedLimiter;

type HmacSha256 = Hmac<Sha256>;

/// Random alphanumeric characters in a nonce: 20 · log2(62) ≈ 119 bits.
const NONCE_RANDOM_LEN: usize = 20;
/// Bytes of the MAC kept in a nonce (as hex): 96 bits, beyond any online guessing.
const NONCE_MAC_BYTES: usize = 12;
const NONCE_LEN: usize = NONCE_RANDOM_LEN + 2 * NONCE_MAC_BYTES;
const SEED_PREFIX: &str = "Access event ";
/// Used rows are kept this long past their expiry, so a node whose clock runs behind still sees them.
const SWEEP_MARGIN_MS: i64 = 60_000;
const SWEEP_EVERY_MS: i64 = 60_000;

/// One attempt to prove control of a wallet for an event.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub event_id: i64,
    /// A chain name or currency symbol (`eth`, `matic`, `hbd`…).
    pub chain: &'a str,
    pub wallet: &'a str,
    /// The exact signed text: an issued challenge, or the seed's `Access event {id} at {ms}`.
    pub message: Option<&'a str>,
    /// The seed clients' `timestamp` field, when they send no message: the text is then rebuilt from it.
    pub timestamp: Option<i64>,
    pub signature: &'a str,
    pub remote: Option<IpAddr>,
}

/// A wallet that proved control for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAccess {
    pub chain: Chain,
    /// Canonical, as tickets store it: EVM lower-case hex.
    pub wallet: String,
}

/// A challenge to hand to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedChallenge {
    pub message: String,
    pub nonce: String,
    /// Unix milliseconds.
    pub expires_at: i64,
    pub chain: Chain,
    /// The wallet as the message names it (EIP-55 for EVM chains).
    pub wallet: String,
}

/// Why access was refused. [`code`](Self::code) is the machine reason for clients and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The request cannot be judged: unknown chain, invalid wallet, undecodable signature, unparsable message.
    #[error("{detail}")]
    Malformed { code: &'static str, detail: String },
    /// Judged and refused: bad or foreign signature, wrong event/domain/wallet, expired, replayed.
    #[error("{detail}")]
    Denied { reason: &'static str, detail: String },
    #[error("too many access attempts; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The store or the Hive key source failed; nothing was judged.
    #[error("{detail}")]
    Unavailable { code: &'static str, detail: String },
}

impl AccessError {
    fn malformed(code: &'static str, detail: impl Into<String>) -> Self {
        AccessError::Malformed { code, detail: detail.into() }
    }

    fn denied(reason: &'static str, detail: impl Into<String>) -> Self {
        AccessError::Denied { reason, detail: detail.into() }
    }

    fn store(err: ticketing::StoreError) -> Self {
        tracing::error!(error = %err, "access store error");
        AccessError::Unavailable { code: "store_unavailable", detail: "the database did not answer".into() }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AccessError::Malformed { code, .. } | AccessError::Unavailable { code, .. } => code,
            AccessError::Denied { reason, .. } => reason,
            AccessError::RateLimited { .. } => "rate_limited",
        }
    }

    pub fn http_status(&self) -> StatusCode {
        match self {
            AccessError::Malformed { .. } => StatusCode::BAD_REQUEST,
            AccessError::Denied { .. } => StatusCode::UNAUTHORIZED,
            AccessError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AccessError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The WebSocket close code: 4400 malformed, 4401 refused, 4429 rate limited, 1011 (server error) otherwise.
    pub fn ws_close_code(&self) -> u16 {
        match self {
            AccessError::Malformed { .. } => 4400,
            AccessError::Denied { .. } => 4401,
            AccessError::RateLimited { .. } => 4429,
            AccessError::Unavailable { .. } => 1011,
        }
    }
}

impl From<SignatureError> for AccessError {
    fn from(err: SignatureError) -> Self {
        let detail = err.to_string();
        match err {
            SignatureError::WrongSigner
            | SignatureError::InvalidSignature
            | SignatureError::ViewKeySignature
            | SignatureError::UnknownAccount(_) => AccessError::Denied { reason: err.code(), detail },
            SignatureError::KeySourceUnavailable(_) => AccessError::Unavailable { code: err.code(), detail },
            _ => AccessError::Malformed { code: err.code(), detail },
        }
    }
}

impl From<ChallengeError> for AccessError {
    fn from(err: ChallengeError) -> Self {
        let detail = err.to_string();
        match err {
            ChallengeError::Malformed(_) => AccessError::Malformed { code: err.code(), detail },
            _ => AccessError::Denied { reason: err.code(), detail },
        }
    }
}

/// Issues access challenges and verifies signed ones; shared by every handler through `AppState`.
pub struct AccessGuard {
    store: ticketing::Store,
    hive_keys: Arc<dyn HiveKeySource>,
    metrics: Arc<Metrics>,
    secret: Vec<u8>,
    /// The authority of the public URL (`presence.dlux.io`, or `host:port`): what wallets compare with the origin.
    domain: String,
    uri: String,
    challenge_ttl_ms: i64,
    seed_window_ms: i64,
    btc_network: BtcNetwork,
    xmr_network: MoneroNetwork,
    by_wallet: RateLimiter,
    by_ip: RateLimiter,
    challenges_by_ip: RateLimiter,
    /// Audit rows for refused proofs, per event and per claimed wallet: refusals from many addresses still
    /// write a bounded number of rows (the metric counts every one).
    denial_audits: RateLimiter,
    /// With several nodes, the same budgets counted once for all of them (`with_shared_limits`).
    shared: Option<SharedAttempts>,
    last_sweep: AtomicI64,
}

/// The per-address and per-wallet attempt budgets counted in the cluster's broker (`cluster::SharedLimiter`), so
/// a client spreading its attempts over N nodes gets one budget, not N. Checked after this node's own buckets;
/// when the broker does not answer, the local buckets alone apply.
struct SharedAttempts {
    by_wallet: Option<cluster::SharedLimiter>,
    by_ip: Option<cluster::SharedLimiter>,
}

impl SharedAttempts {
    async fn take(limiter: &Option<cluster::SharedLimiter>, key: &str) -> Result<(), AccessError> {
        let Some(limiter) = limiter else { return Ok(()) };
        match limiter.check(key).await {
            Ok(cluster::Decision::Deny { retry_after }) => {
                Err(AccessError::RateLimited { retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64 })
            }
            Ok(cluster::Decision::Allow) | Err(_) => Ok(()),
        }
    }
}

/// Refusals audited per event, and per claimed wallet, per minute; the rest are only counted.
const DENIAL_AUDITS_PER_MINUTE: u32 = 30;

impl AccessGuard {
    pub fn new(
        store: ticketing::Store,
        hive_keys: Arc<dyn HiveKeySource>,
        metrics: Arc<Metrics>,
        secret: &[u8],
        public_url: &str,
        settings: &Settings,
    ) -> anyhow::Result<AccessGuard> {
        let config: &AccessSettings = &settings.access;
        let authority = public_url.split_once("://").map_or(public_url, |(_, rest)| rest);
        let domain = authority.split('/').next().unwrap_or_default().to_owned();
        anyhow::ensure!(!domain.is_empty(), "the public URL `{public_url}` has no host");
        let millis = |secs: u64, what: &str| i64::try_from(secs.saturating_mul(1000)).with_context(|| what.to_owned());
        Ok(AccessGuard {
            store,
            hive_keys,
            metrics,
            secret: secret.to_vec(),
            domain,
            uri: public_url.to_owned(),
            challenge_ttl_ms: millis(config.challenge_ttl_secs, "access.challenge_ttl_secs")?,
            seed_window_ms: millis(config.seed_message_window_secs, "access.seed_message_window_secs")?,
            btc_network: settings.payments.btc_network,
            xmr_network: config.xmr_network,
            by_wallet: RateLimiter::new(config.wallet_attempts_per_minute),
            by_ip: RateLimiter::new(config.ip_attempts_per_minute),
            challenges_by_ip: RateLimiter::new(config.ip_challenges_per_minute),
            denial_audits: RateLimiter::new(DENIAL_AUDITS_PER_MINUTE),
            shared: None,
            last_sweep: AtomicI64::new(0),
        })
    }

    /// Counts the wallet and address attempt budgets in the cluster's broker as well (`[cluster]`).
    pub fn with_shared_limits(mut self, broker: &cluster::Broker, config: &AccessSettings) -> Self {
        let limiter = |name: &str, per_minute: u32| {
            (per_minute > 0)
                .then(|| cluster::SharedLimiter::new(broker.clone(), name, f64::from(per_minute) / 60.0, per_minute))
        };
        self.shared = Some(SharedAttempts {
            by_wallet: limiter("access-wallet", config.wallet_attempts_per_minute),
            by_ip: limiter("access-ip", config.ip_attempts_per_minute),
        });
        self
    }

    /// The domain challenges name.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// A fresh challenge for `wallet` on `chain` to access `event_id`, valid from `now` (unix ms). Stores nothing.
    pub async fn challenge(
        &self,
        event_id: i64,
        chain: &str,
        wallet: &str,
        now: i64,
    ) -> Result<IssuedChallenge, AccessError> {
        self.bound_challenge(event_id, "", chain, wallet, now).await
    }

    /// A challenge bound to `binding` (e.g. the creator a payout-address challenge is for): its nonce's MAC covers
    /// it, so the signed challenge verifies only with the same binding ([`AccessGuard::verify_bound`]).
    pub async fn bound_challenge(
        &self,
        event_id: i64,
        binding: &str,
        chain: &str,
        wallet: &str,
        now: i64,
    ) -> Result<IssuedChallenge, AccessError> {
        let chain = parse_chain(chain)?;
        let (_, shown) = self.wallet(chain, wallet)?;
        let now =
            DateTime::from_timestamp_millis(now).ok_or_else(|| AccessError::malformed("bad_time", "bad clock"))?;
        let ttl = chrono::Duration::milliseconds(self.challenge_ttl_ms);
        let mut challenge = Challenge::new(&self.domain, &self.uri, event_id, chain, shown, now, ttl);
        let random = Alphanumeric.sample_string(&mut rand::thread_rng(), NONCE_RANDOM_LEN);
        challenge.nonce = format!("{random}{}", hex::encode(self.nonce_mac(&challenge, &random, binding)));
        Ok(IssuedChallenge {
            message: challenge.to_message(),
            expires_at: challenge.expires_at.timestamp_millis(),
            nonce: challenge.nonce,
            chain,
            wallet: challenge.wallet,
        })
    }

    /// Rate-limits challenge issuance per client address (cheap, but not free to sign and send).
    pub fn admit_challenge(&self, remote: Option<IpAddr>) -> Result<(), AccessError> {
        match remote {
            Some(ip) => self.challenges_by_ip.take(&ip.to_string()),
            None => Ok(()),
        }
    }

    /// Checks a signed challenge (or seed message) and consumes it. Every refusal is counted and audited.
    pub async fn verify(&self, req: AccessRequest<'_>, now: i64) -> Result<VerifiedAccess, AccessError> {
        self.verify_bound(req, "", now).await
    }

    /// [`AccessGuard::verify`] for a challenge issued by [`AccessGuard::bound_challenge`] with `binding`.
    pub async fn verify_bound(
        &self,
        req: AccessRequest<'_>,
        binding: &str,
        now: i64,
    ) -> Result<VerifiedAccess, AccessError> {
        let result = self.check(&req, binding, now).await;
        match &result {
            Ok(_) => {
                self.metrics.access_verifications.inc();
            }
            Err(err) => self.record_denial(&req, err).await,
        }
        result
    }

    async fn check(&self, req: &AccessRequest<'_>, binding: &str, now: i64) -> Result<VerifiedAccess, AccessError> {
        if let Some(ip) = req.remote {
            self.by_ip.take(&ip.to_string())?;
            if let Some(shared) = &self.shared {
                SharedAttempts::take(&shared.by_ip, &ip.to_string()).await?;
            }
        }
        let chain = parse_chain(req.chain)?;
        let (wallet, _) = self.wallet(chain, req.wallet)?;
        // Keyed by the wallet alone, so relabelling the chain (one EVM key is `eth`, `pol` and `bnb`) buys no
        // extra attempts.
        self.by_wallet.take(&wallet)?;
        if let Some(shared) = &self.shared {
            SharedAttempts::take(&shared.by_wallet, &wallet).await?;
        }
        let message = match (req.message, req.timestamp) {
            (Some(message), _) => Cow::Borrowed(message),
            (None, Some(at)) => Cow::Owned(seed_message(req.event_id, at)),
            (None, None) => return Err(AccessError::malformed("missing_message", "send the signed message")),
        };
        let opts = VerifyOptions {
            btc_network: self.btc_network,
            xmr_network: self.xmr_network,
            hive_keys: Some(&*self.hive_keys),
        };
        // Who signed comes first: a tampered text is then a signature failure, whatever field was touched.
        chains::signature::verify(chain, req.wallet, message.as_bytes(), req.signature, &opts).await?;
        // A bound challenge has no seed-message form: the seed text cannot carry the binding.
        let used = if message.starts_with(SEED_PREFIX) && binding.is_empty() {
            self.check_seed(req.event_id, &wallet, &message, now)?
        } else {
            self.check_challenge(req.event_id, chain, &message, binding, now)?
        };
        self.consume(&used, req.event_id, &wallet, now).await?;
        Ok(VerifiedAccess { chain, wallet })
    }

    fn check_seed(&self, event_id: i64, wallet: &str, message: &str, now: i64) -> Result<Used, AccessError> {
        let seed = AccessMessage::parse(message)?;
        if seed.event_id != event_id {
            return Err(AccessError::denied("wrong_event", format!("the message is for event {}", seed.event_id)));
        }
        let at = seed.at.timestamp_millis();
        if now - at > self.seed_window_ms {
            return Err(AccessError::denied("expired", "the message's time is too far in the past; sign a new one"));
        }
        if at - now > self.seed_window_ms {
            return Err(AccessError::denied("not_yet_valid", "the message's time is in the future; check the clock"));
        }
        // One use per (event, wallet, message), whatever chain label came with it: the same EIP-191 signature
        // verifies as `eth`, `pol` and `bnb` alike. The event is inside the message.
        let digest = Sha256::digest(format!("{wallet}\n{message}"));
        Ok(Used {
            key: format!("access-seed:{}", hex::encode(digest)),
            kind: "signature",
            expires_at: at + self.seed_window_ms,
        })
    }

    fn check_challenge(
        &self,
        event_id: i64,
        chain: Chain,
        message: &str,
        binding: &str,
        now: i64,
    ) -> Result<Used, AccessError> {
        let signed = Challenge::parse(message)?;
        if signed.domain != self.domain || signed.uri != self.uri {
            return Err(AccessError::denied("wrong_domain", format!("the challenge is for {}", signed.domain)));
        }
        if signed.event_id != event_id {
            return Err(AccessError::denied("wrong_event", format!("the challenge is for event {}", signed.event_id)));
        }
        if signed.chain != chain {
            return Err(AccessError::denied("wrong_chain", format!("the challenge is for {}", signed.chain)));
        }
        let genuine = signed.nonce.len() == NONCE_LEN
            && signed.nonce.is_char_boundary(NONCE_RANDOM_LEN)
            && hex::decode(&signed.nonce[NONCE_RANDOM_LEN..]).is_ok_and(|tag| {
                self.nonce_mac_state(&signed, &signed.nonce[..NONCE_RANDOM_LEN], binding)
                    .verify_truncated_left(&tag)
                    .is_ok()
            });
        if !genuine {
            return Err(AccessError::denied("unknown_challenge", "the message is not a challenge issued here"));
        }
        let now = DateTime::from_timestamp_millis(now).unwrap_or(DateTime::<Utc>::MIN_UTC);
        signed.check_time(now)?;
        Ok(Used {
            key: format!("access:{}", signed.nonce),
            kind: "nonce",
            expires_at: signed.expires_at.timestamp_millis(),
        })
    }

    /// Inserts the used nonce or message; the primary key makes the second of two uses fail, on any node.
    async fn consume(&self, used: &Used, event_id: i64, wallet: &str, now: i64) -> Result<(), AccessError> {
        self.sweep(now).await;
        let fresh = self
            .store
            .spend_once(&used.key, used.kind, Some(event_id), Some(wallet), used.expires_at, now)
            .await
            .map_err(AccessError::store)?;
        if !fresh {
            return Err(AccessError::denied("replayed", "this signed message has already been used; sign a new one"));
        }
        Ok(())
    }

    /// Deletes used rows whose message can no longer be accepted, at most once a minute per node.
    async fn sweep(&self, now: i64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now - last < SWEEP_EVERY_MS
            || self.last_sweep.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let swept = self.store.purge_spent_proofs(now - SWEEP_MARGIN_MS).await;
        match swept {
            Ok(rows) if rows > 0 => tracing::debug!(rows, "used challenges swept"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "used challenge sweep failed"),
        }
    }

    async fn record_denial(&self, req: &AccessRequest<'_>, err: &AccessError) {
        let reason = err.code();
        self.metrics.access_denials.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
        tracing::info!(reason, event_id = req.event_id, chain = req.chain, remote = ?req.remote, "access denied");
        // A rate-limited flood is what the limiter is for; writing each attempt down would let it reach the
        // database after all. A store failure cannot be written down either.
        if matches!(err, AccessError::RateLimited { .. } | AccessError::Unavailable { .. }) {
            return;
        }
        let wallet: String = req.wallet.chars().take(128).collect();
        let budget = self
            .denial_audits
            .take(&format!("event:{}", req.event_id))
            .and_then(|()| self.denial_audits.take(&format!("wallet:{wallet}")));
        if budget.is_err() {
            return;
        }
        let remote = req.remote.map(|ip| ip.to_string());
        let entry = AuditEntry::new(&wallet, "access.denied")
            .event(req.event_id)
            .subject(&wallet)
            .remote(remote.as_deref())
            .detail(serde_json::json!({ "reason": reason, "chain": req.chain.chars().take(16).collect::<String>() }));
        if let Err(err) = self.store.audit(&entry).await {
            tracing::warn!(error = %err, "cannot audit an access denial");
        }
    }

    /// The wallet as tickets store it, and as a challenge shows it (EIP-55 for EVM, as wallets expect).
    fn wallet(&self, chain: Chain, wallet: &str) -> Result<(String, String), AccessError> {
        let canonical = chains::address::canonical_address(chain, wallet, self.btc_network)
            .map_err(|e| AccessError::malformed("invalid_wallet", e.to_string()))?;
        let shown = match chain {
            Chain::Eth | Chain::Pol | Chain::Bnb => {
                let bytes: [u8; 20] = hex::decode(&canonical[2..])
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .expect("canonical EVM addresses are 20 hex bytes");
                eip55_checksum(&bytes)
            }
            _ => canonical.clone(),
        };
        Ok((canonical, shown))
    }

    fn nonce_mac(&self, challenge: &Challenge, random: &str, binding: &str) -> Vec<u8> {
        let tag = self.nonce_mac_state(challenge, random, binding).finalize().into_bytes();
        tag[..NONCE_MAC_BYTES].to_vec()
    }

    /// HMAC over every field of the challenge but the MAC itself, and the binding if any, domain-separated from
    /// the secret's other uses.
    fn nonce_mac_state(&self, c: &Challenge, random: &str, binding: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(
            format!(
                "access-challenge/v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
                c.domain,
                c.uri,
                c.event_id,
                c.chain,
                c.wallet,
                random,
                c.issued_at.timestamp_millis(),
                c.expires_at.timestamp_millis()
            )
            .as_bytes(),
        );
        if !binding.is_empty() {
            mac.update(format!("\nbound-to\n{binding}").as_bytes());
        }
        mac
    }
}

/// `gateway verify-signature`: checks one signature offline (a Hive account name asks the Hive API for its keys)
/// and prints `valid`, or `invalid: <reason>` with the reason code. Exit 0 valid, 1 invalid, 2 unusable input.
pub async fn verify_signature_command(
    args: &crate::cli::VerifySignatureArgs,
    hive_api: &str,
) -> std::process::ExitCode {
    let message = match (&args.message, &args.message_file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) => {
                eprintln!("error: cannot read {}: {err}", path.display());
                return std::process::ExitCode::from(2);
            }
        },
        (None, None) => unreachable!("clap requires --message or --message-file"),
    };
    let hive_keys = watchers::HiveRpcKeySource::new(hive_api);
    let opts =
        VerifyOptions { btc_network: args.btc_network, xmr_network: args.xmr_network, hive_keys: Some(&hive_keys) };
    match chains::signature::verify(args.chain, &args.address, &message, &args.signature, &opts).await {
        Ok(signer) => {
            println!("valid");
            eprintln!("signer {} ({}, {})", signer.address, signer.scheme, signer.public_key);
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            println!("invalid: {}", err.code());
            eprintln!("{err}");
            std::process::ExitCode::from(1)
        }
    }
}

/// What goes into `used_challenges` when an access message is accepted.
struct Used {
    key: String,
    kind: &'static str,
    expires_at: i64,
}

/// The seed's message, rebuilt from its parts when a client sends only the timestamp.
fn seed_message(event_id: i64, at: i64) -> String {
    format!("{SEED_PREFIX}{event_id} at {at}")
}

fn parse_chain(chain: &str) -> Result<Chain, AccessError> {
    chain.parse().map_err(|_| AccessError::malformed("unknown_chain", format!("`{chain}` is not a supported chain")))
}

/// Attempts per key (a wallet or an address): `per_minute` in a burst, refilled continuously
/// ([`crate::rate_limit::KeyedLimiter`]); a refusal says when to try again.
struct RateLimiter(KeyedLimiter);

impl RateLimiter {
    fn new(per_minute: u32) -> Self {
        RateLimiter(KeyedLimiter::per_minute(per_minute))
    }

    fn take(&self, key: &str) -> Result<(), AccessError> {
        self.0
            .check(key)
            .map_err(|wait| AccessError::RateLimited { retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refuses() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            limiter.take("w").unwrap();
        }
        let err = limiter.take("w").unwrap_err();
        assert_eq!(err.code(), "rate_limited");
        assert_eq!(err.http_status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.ws_close_code(), 4429);
        limiter.take("other").unwrap();
        RateLimiter::new(0).take("w").unwrap();
    }

    #[test]
    fn signature_errors_map_to_malformed_or_denied() {
        let denied = AccessError::from(SignatureError::WrongSigner);
        assert_eq!((denied.code(), denied.ws_close_code()), ("wrong_signer", 4401));
        let malformed = AccessError::from(SignatureError::BadEncoding("signature"));
        assert_eq!((malformed.code(), malformed.ws_close_code()), ("bad_encoding", 4400));
        assert_eq!(AccessError::from(ChallengeError::Expired).code(), "expired");
    }
}
