//! Ratings: one to five stars from someone who held a valid ticket to an event that has ended, one per ticket.
//!
//! The caller proves the wallet signed the rating (this crate knows no signature scheme); the store decides
//! whether that wallet may rate: it must hold a `valid` ticket to the event, the event must be over, and the
//! ticket must not have rated yet (the `ratings` primary key is the ticket id, so a race cannot rate twice).

use chains::Chain;
use serde::Serialize;

use crate::audit::{self, AuditEntry};
use crate::creators::AccountName;
use crate::events::{event_for_update, EventStatus, RatingSummary};
use crate::store::{Store, StoreError};

pub const COMMENT_MAX: usize = 2_000;

/// The exact text a wallet signs to rate an event.
pub fn rating_message(event_id: i64, stars: u8) -> String {
    format!("Rate event {event_id}: {stars} stars")
}

/// Stars, 1 to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Stars(u8);

impl Stars {
    pub fn parse(n: i64) -> Result<Stars, RatingError> {
        match u8::try_from(n) {
            Ok(n @ 1..=5) => Ok(Stars(n)),
            _ => Err(RatingError::InvalidStars),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// A rating whose wallet signature the caller has verified.
#[derive(Debug, Clone)]
pub struct NewRating {
    pub event_id: i64,
    pub chain: Chain,
    /// The verified signer's address.
    pub wallet_address: String,
    pub stars: Stars,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Rating {
    pub ticket_id: i64,
    pub event_id: i64,
    pub creator_account: String,
    pub wallet_address: String,
    pub stars: i64,
    pub comment: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RatingError {
    #[error("stars must be a whole number from 1 to 5")]
    InvalidStars,
    #[error("the comment is longer than {COMMENT_MAX} characters")]
    CommentTooLong,
    #[error("no such event")]
    EventNotFound,
    #[error("the event has not ended yet")]
    EventNotEnded,
    #[error("a cancelled event cannot be rated")]
    EventCancelled,
    #[error("this wallet holds no valid ticket to the event")]
    NotATicketHolder,
    #[error("every ticket this wallet holds to the event has already rated it")]
    AlreadyRated,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RatingError {
    fn from(e: sqlx::Error) -> Self {
        RatingError::Store(StoreError::Database(e))
    }
}

impl RatingError {
    pub fn code(&self) -> &'static str {
        match self {
            RatingError::InvalidStars => "invalid_stars",
            RatingError::CommentTooLong => "comment_too_long",
            RatingError::EventNotFound => "event_not_found",
            RatingError::EventNotEnded => "event_not_ended",
            RatingError::EventCancelled => "event_cancelled",
            RatingError::NotATicketHolder => "not_a_ticket_holder",
            RatingError::AlreadyRated => "already_rated",
            RatingError::Store(_) => "store_unavailable",
        }
    }
}

/// Whether two spellings name the same wallet: EVM hex and bech32 are case-insensitive, everything else exact.
pub fn same_wallet(chain: Chain, a: &str, b: &str) -> bool {
    let bech32 = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.starts_with("bc1") || s.starts_with("tb1") || s.starts_with("bcrt1")
    };
    if chain.is_evm() || (chain == Chain::Btc && bech32(a) && bech32(b)) {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

impl Store {
    /// Records a rating for the first unrated valid ticket the wallet holds to the event.
    pub async fn add_rating(&self, rating: &NewRating, now: i64) -> Result<Rating, RatingError> {
        let comment = rating.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
        if comment.is_some_and(|c| c.chars().count() > COMMENT_MAX) {
            return Err(RatingError::CommentTooLong);
        }
        let mut tx = self.pool().begin().await?;
        let event = event_for_update(&mut tx, rating.event_id).await?.ok_or(RatingError::EventNotFound)?;
        match event.status_at(now) {
            EventStatus::Ended => {}
            EventStatus::Cancelled => return Err(RatingError::EventCancelled),
            _ => return Err(RatingError::EventNotEnded),
        }
        let tickets: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT t.id, t.wallet_address, r.ticket_id FROM tickets t LEFT JOIN ratings r ON r.ticket_id = t.id \
             WHERE t.event_id = $1 AND t.chain = $2 AND t.status = 'valid' ORDER BY t.id",
        )
        .bind(rating.event_id)
        .bind(rating.chain.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let held: Vec<_> = tickets
            .into_iter()
            .filter(|(_, wallet, _)| same_wallet(rating.chain, wallet, &rating.wallet_address))
            .collect();
        if held.is_empty() {
            return Err(RatingError::NotATicketHolder);
        }
        let Some((ticket_id, wallet, _)) = held.into_iter().find(|(_, _, rated)| rated.is_none()) else {
            return Err(RatingError::AlreadyRated);
        };
        let inserted = sqlx::query(
            "INSERT INTO ratings (ticket_id, creator_account, event_id, wallet_address, stars, comment, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (ticket_id) DO NOTHING",
        )
        .bind(ticket_id)
        .bind(&event.creator_account)
        .bind(event.id)
        .bind(&wallet)
        .bind(rating.stars.get() as i64)
        .bind(comment)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(RatingError::AlreadyRated);
        }
        let ticket = ticket_id.to_string();
        audit::record(
            &mut *tx,
            &AuditEntry::new(&wallet, "rating.add")
                .event(event.id)
                .subject(&ticket)
                .detail(serde_json::json!({ "stars": rating.stars, "creator": event.creator_account })),
        )
        .await?;
        tx.commit().await?;
        Ok(Rating {
            ticket_id,
            event_id: event.id,
            creator_account: event.creator_account,
            wallet_address: wallet,
            stars: rating.stars.get() as i64,
            comment: comment.map(str::to_owned),
            created_at: now,
        })
    }

    /// The mean and count of a creator's ratings.
    pub async fn creator_rating(&self, creator: &AccountName) -> Result<RatingSummary, StoreError> {
        let (count, sum): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), CAST(SUM(stars) AS BIGINT) FROM ratings WHERE creator_account = $1")
                .bind(creator.as_str())
                .fetch_one(self.pool())
                .await?;
        Ok(RatingSummary::from_sum(Some(count), sum))
    }

    /// The newest ratings of one event.
    pub async fn event_ratings(&self, event_id: i64, limit: i64) -> Result<Vec<Rating>, StoreError> {
        let rows = sqlx::query_as::<_, Rating>(
            "SELECT ticket_id, event_id, creator_account, wallet_address, stars, comment, created_at FROM ratings \
             WHERE event_id = $1 ORDER BY created_at DESC, ticket_id DESC LIMIT $2",
        )
        .bind(event_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_wallets() {
        assert!(Stars::parse(0).is_err());
        assert!(Stars::parse(6).is_err());
        assert_eq!(Stars::parse(5).unwrap().get(), 5);
        assert!(same_wallet(Chain::Eth, "0xAbC", "0xabc"));
        assert!(!same_wallet(Chain::Sol, "AbC", "abc"));
        assert!(same_wallet(Chain::Btc, "BC1QXY", "bc1qxy"));
        assert!(!same_wallet(Chain::Btc, "1AbC", "1abc"));
        assert_eq!(rating_message(7, 4), "Rate event 7: 4 stars");
    }
}
