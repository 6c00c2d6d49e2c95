//! `GET /api/quotes/{id}/events`: a quote's progress as Server-Sent Events, so a checkout page can show
//! "seen", "confirming 1/2", "paid" (with the ticket), "expired" or "refund due" without polling.
//!
//! Quotes live in the shared database and payments are credited by whichever node runs the watchers, so the
//! stream polls the quote row (every [`POLL`]) rather than listening to an in-process channel: any node can
//! serve any quote. Each event's data is the same JSON `GET /api/quotes/{id}` answers; one is sent at once and
//! then one each time the status, confirmations or amount received change. The stream ends after a terminal
//! status ([`TERMINAL`]); a quote still open past its time is expired here on the spot (as the sweeper would a
//! few seconds later), so a watcher never waits on a quote that can no longer be paid.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use ticketing::now_ms;
use ticketing::purchases::QuoteRow;

use crate::error::{ApiError, ApiResult, Path};
use crate::routes::purchases::quote_response;
use crate::state::AppState;

/// How often the stream re-reads the quote.
pub const POLL: Duration = Duration::from_millis(500);

/// Statuses after which nothing more happens to a quote.
pub const TERMINAL: [&str; 4] = ["paid", "expired", "refund_due", "cancelled"];

/// Statuses the sweeper expires once the quote's time is up.
const OPEN: [&str; 3] = ["awaiting_payment", "seen", "confirming"];

pub fn router() -> super::Table {
    super::Table::new().get("/api/quotes/{id}/events", quote_events)
}

/// What a watcher is told about: a change in any of these sends an event.
#[derive(PartialEq)]
struct Progress {
    status: String,
    confirmations: i64,
    received: String,
}

impl Progress {
    fn of(quote: &QuoteRow) -> Self {
        Progress {
            status: quote.status.to_string(),
            confirmations: quote.confirmations,
            received: quote.received_units.clone(),
        }
    }
}

/// What a seen payment waits for, as the checkout shows it: `confirming n/m` while it counts confirmations,
/// `waiting for finality` once the count is reached but the watcher has not called it final yet, and always on a
/// chain that waits for its node's `finalized` tag (Ethereum), where the count says nothing. Never `n/m` with
/// n > m. `None` unless the payment is seen or confirming.
pub fn progress(quote: &QuoteRow, finalized_tag: bool) -> Option<String> {
    progress_of(quote.status.as_str(), quote.confirmations, quote.confirmations_required, finalized_tag)
}

fn progress_of(status: &str, confirmations: i64, required: i64, finalized_tag: bool) -> Option<String> {
    if status != "seen" && status != "confirming" {
        return None;
    }
    Some(if finalized_tag || confirmations >= required {
        "waiting for finality".to_owned()
    } else {
        format!("confirming {}/{required}", confirmations.max(0))
    })
}

/// Whether `chain`'s watcher waits for the node's `finalized` tag: as configured here, or the watcher's default
/// (Ethereum) when the chain is watched elsewhere.
pub fn follows_finalized_tag(settings: &crate::configuration::Settings, chain: chains::Chain) -> bool {
    let finality = match settings.watchers.evm.iter().find(|w| w.chain == chain) {
        Some(watcher) => watcher.finality(),
        None => watchers::EvmWatcherConfig::new(chain, "").finality(),
    };
    matches!(finality, watchers::Finality::FinalizedTag { .. })
}

/// `GET /api/quotes/{id}/events`: `event: quote` with the quote's JSON, on each change, until a terminal status.
#[utoipa::path(get, path = "/api/quotes/{id}/events", tag = "purchases", params(("id" = String, Path, description = "The quote's id")),
    responses((status = 200, content_type = "text/event-stream", description = "Server-Sent Events: `event: quote` with the quote's JSON on each change, until a terminal status"), (status = "4XX", description = "Refused: the error's code and message")))]
pub async fn quote_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let not_found = || ApiError::not_found("quote_not_found", "no such quote");
    if id.len() > 64 {
        return Err(not_found());
    }
    // An unknown quote is a plain 404, not an empty stream.
    state.purchases.quote(&id).await?.ok_or_else(not_found)?;
    let stream = async_stream::stream! {
        let mut last: Option<Progress> = None;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let quote = match current(&state, &id).await {
                Ok(Some(quote)) => quote,
                Ok(None) => break,
                Err(err) => {
                    // A database hiccup: keep the stream and try again at the next tick.
                    tracing::warn!(quote_id = %id, error = %err, "quote stream could not read the quote");
                    continue;
                }
            };
            let progress = Progress::of(&quote);
            let terminal = TERMINAL.contains(&quote.status.as_str());
            if last.as_ref() != Some(&progress) {
                let view = match quote_response(&state, quote).await {
                    Ok(view) => view,
                    Err(err) => {
                        tracing::warn!(quote_id = %id, error = %err, "quote stream could not render the quote");
                        continue;
                    }
                };
                seq += 1;
                match Event::default().event("quote").id(seq.to_string()).json_data(&view) {
                    Ok(event) => yield Ok(event),
                    Err(err) => tracing::warn!(quote_id = %id, error = %err, "quote stream could not encode the quote"),
                }
                last = Some(progress);
            }
            if terminal {
                break;
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The quote as it stands, expiring it first if it is still open past its time.
async fn current(state: &AppState, id: &str) -> Result<Option<QuoteRow>, ApiError> {
    let Some(quote) = state.purchases.quote(id).await? else { return Ok(None) };
    let now = now_ms();
    if OPEN.contains(&quote.status.as_str()) && quote.expires_at <= now {
        state.purchases.expire_quotes(Some(quote.event_id), now).await?;
        return Ok(state.purchases.quote(id).await?);
    }
    Ok(Some(quote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_what_it_waits_for_and_never_counts_past_the_policy() {
        assert_eq!(progress_of("confirming", 1, 2, false).as_deref(), Some("confirming 1/2"));
        assert_eq!(progress_of("seen", 0, 2, false).as_deref(), Some("confirming 0/2"));
        // Reached the count but not final yet (a watcher with a stricter policy, or a lock): not "62/12".
        assert_eq!(progress_of("confirming", 62, 12, false).as_deref(), Some("waiting for finality"));
        assert_eq!(progress_of("confirming", 12, 12, false).as_deref(), Some("waiting for finality"));
        // Ethereum waits for the `finalized` tag: a count would mislead.
        assert_eq!(progress_of("confirming", 3, 12, true).as_deref(), Some("waiting for finality"));
        assert_eq!(progress_of("paid", 12, 12, false), None);
        assert_eq!(progress_of("awaiting_payment", 0, 2, false), None);
    }

    #[test]
    fn ethereum_follows_the_finalized_tag_unless_configured_otherwise() {
        let mut settings = crate::configuration::Settings::default();
        assert!(follows_finalized_tag(&settings, chains::Chain::Eth));
        assert!(!follows_finalized_tag(&settings, chains::Chain::Pol));
        assert!(!follows_finalized_tag(&settings, chains::Chain::Btc));
        let mut eth = watchers::EvmWatcherConfig::new(chains::Chain::Eth, "http://127.0.0.1:1");
        eth.use_finalized_tag = Some(false);
        settings.watchers.evm.push(eth);
        assert!(!follows_finalized_tag(&settings, chains::Chain::Eth));
    }
}
