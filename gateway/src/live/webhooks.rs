//! Creators' webhooks: `joined`, `left`, `ticket_sold` and `payment_reversed` from the live feed, POSTed to the
//! creator's URL.
//!
//! Each delivery is a JSON body signed with HMAC-SHA256 under the creator's webhook secret, sent as
//! `X-Dlux-Signature: sha256=<hex>` over the raw body bytes. A delivery that fails (transport error or a
//! non-2xx status) is retried with exponential back-off (`initial_backoff_ms`, doubling, capped at
//! `max_backoff_ms`) up to `max_attempts` tries, then dropped with a warning. Each creator has its own worker
//! and queue, so one slow endpoint neither delays other creators nor reorders its own deliveries.
//!
//! The creator's URL and secret are looked up per event and cached for five seconds, so a change made with
//! `PUT /api/creators/me/webhook` applies to items from at most five seconds later. Deliveries are at least once
//! (a timeout after the receiver processed a request is retried): receivers de-duplicate on the body's `id`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::live::attendance::FeedItem;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Per attempt.
    pub timeout_ms: u64,
    /// Deliveries queued per creator before new ones are dropped.
    pub queue: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            max_attempts: 6,
            initial_backoff_ms: 1000,
            max_backoff_ms: 60_000,
            timeout_ms: 5000,
            queue: 1000,
        }
    }
}

/// The header value for `body` under `secret`: `sha256=<hex>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The kinds of feed item a webhook is told about.
pub const KINDS: [&str; 4] = ["joined", "left", "ticket_sold", "payment_reversed"];

#[derive(Debug, Serialize)]
struct Delivery<'a> {
    /// Unique per delivery (the same across its retries): receivers de-duplicate on it.
    id: String,
    #[serde(rename = "type")]
    kind: &'a str,
    event_id: i64,
    occurred_at: i64,
    data: &'a FeedItem,
}

struct Job {
    url: String,
    secret: String,
    id: String,
    kind: &'static str,
    body: Vec<u8>,
}

type Target = Option<(String, String, String)>;

pub fn spawn(
    store: ticketing::Store,
    mut feed: broadcast::Receiver<FeedItem>,
    settings: WebhookSettings,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        // event id → (creator, url, secret), looked up at most every few seconds per event.
        let mut targets: HashMap<i64, (Instant, Target)> = HashMap::new();
        let mut workers: HashMap<String, mpsc::Sender<Job>> = HashMap::new();
        loop {
            let item = tokio::select! {
                _ = shutdown.cancelled() => break,
                item = feed.recv() => match item {
                    // Another node's item: that node sends its webhook.
                    Ok(item) if item.relayed => continue,
                    Ok(item) => item,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "webhook dispatcher fell behind the feed; deliveries lost");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            };
            if !KINDS.contains(&item.kind) {
                continue;
            }
            let fresh = targets.get(&item.event_id).is_some_and(|(at, _)| at.elapsed() < Duration::from_secs(5));
            if !fresh {
                // Bound the cache: drop stale entries of events no longer active.
                if targets.len() > 4096 {
                    targets.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(5));
                }
                let target = lookup(&store, item.event_id).await;
                targets.insert(item.event_id, (Instant::now(), target));
            }
            let Some((_, Some((creator, url, secret)))) = targets.get(&item.event_id).cloned() else { continue };
            let id = uuid::Uuid::new_v4().to_string();
            let body = serde_json::to_vec(&Delivery {
                id: id.clone(),
                kind: item.kind,
                event_id: item.event_id,
                occurred_at: item.at,
                data: &item,
            })
            .unwrap_or_default();
            let worker = workers
                .entry(creator.clone())
                .or_insert_with(|| start_worker(client.clone(), &settings, shutdown.clone()));
            if worker.is_closed() {
                *worker = start_worker(client.clone(), &settings, shutdown.clone());
            }
            if worker.try_send(Job { url, secret, id, kind: item.kind, body }).is_err() {
                tracing::warn!(%creator, "webhook queue full; delivery dropped");
            }
        }
    })
}

async fn lookup(store: &ticketing::Store, event_id: i64) -> Target {
    match store.webhook_target(event_id).await {
        Ok(target) => target.map(|t| (t.creator, t.url, t.secret)),
        Err(err) => {
            tracing::warn!(error = %err, event_id, "webhook target lookup failed");
            None
        }
    }
}

fn start_worker(client: reqwest::Client, settings: &WebhookSettings, shutdown: CancellationToken) -> mpsc::Sender<Job> {
    let (tx, mut rx) = mpsc::channel::<Job>(settings.queue.max(1));
    let settings = settings.clone();
    tokio::spawn(async move {
        while let Some(job) = tokio::select! { _ = shutdown.cancelled() => None, job = rx.recv() => job } {
            deliver(&client, &settings, &job, &shutdown).await;
        }
    });
    tx
}

/// The wait before retry `attempt` (1-based: the wait after the first failure is `initial`).
pub fn backoff(settings: &WebhookSettings, attempt: u32) -> Duration {
    let factor = 1u64.checked_shl(attempt.saturating_sub(1)).unwrap_or(u64::MAX);
    Duration::from_millis(settings.initial_backoff_ms.saturating_mul(factor).min(settings.max_backoff_ms))
}

async fn deliver(client: &reqwest::Client, settings: &WebhookSettings, job: &Job, shutdown: &CancellationToken) {
    let signature = signature(job.secret.as_bytes(), &job.body);
    for attempt in 1..=settings.max_attempts.max(1) {
        let result = client
            .post(&job.url)
            .header("content-type", "application/json")
            .header("x-dlux-signature", &signature)
            .header("x-dlux-event", job.kind)
            .header("x-dlux-delivery", &job.id)
            .header("x-dlux-attempt", attempt.to_string())
            .body(job.body.clone())
            .send()
            .await;
        let failure = match result {
            Ok(res) if res.status().is_success() => return,
            Ok(res) => format!("status {}", res.status().as_u16()),
            Err(err) => err.to_string(),
        };
        tracing::info!(url = %job.url, attempt, %failure, "webhook delivery failed");
        if attempt == settings.max_attempts {
            tracing::warn!(url = %job.url, delivery = %job.id, "webhook delivery abandoned after {attempt} attempts");
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff(settings, attempt)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = WebhookSettings { initial_backoff_ms: 100, max_backoff_ms: 1000, ..Default::default() };
        let waits: Vec<u128> = (1..=6).map(|a| backoff(&s, a).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&s, 200).as_millis(), 1000);
    }
}
