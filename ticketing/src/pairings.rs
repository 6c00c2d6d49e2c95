//! Pairings: "sign on your phone, continue here". A page that needs a wallet signature on a device without a
//! wallet (a VR headset's browser) opens a pairing; a phone opens the pairing's code, signs there, and hands the
//! signature back through the gateway to the waiting page, which then finishes what it was doing (a join, a
//! sign-in) with the ordinary endpoints — they verify the signature as if it had been made on the page itself.
//!
//! Each pairing is used once each way and lives a few minutes:
//!
//! - **pending → signed**: the phone's one submission (`UPDATE … WHERE status = 'pending' AND expires_at > now`);
//!   a second phone, or the same link opened again, finds it used.
//! - **signed → delivered**: the waiting page's one read of the signature, which needs the secret only that page
//!   holds (the code the phone sees does not carry it; the row keeps only its SHA-256).
//!
//! Both steps are single conditional updates, so two nodes racing on one pairing cannot both win. The rows are
//! in the shared database so any gateway node serves either side.

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// Characters of a pairing code: no 0/O, 1/I/L, so it can be read off a headset and typed on a phone.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// 8 characters of 31: about 40 bits, for a code that lives minutes and is good for one submission.
pub const CODE_LEN: usize = 8;

/// What the waiting page needs signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Enter an event: the phone asks the gateway for the event's challenge for its own wallet and signs it.
    Join { event_id: i64 },
    /// Sign an exact text as an exact account or address (a creator's sign-in challenge, a rating).
    Sign { wallet: String, message: String },
}

impl Purpose {
    pub fn name(&self) -> &'static str {
        match self {
            Purpose::Join { .. } => "join",
            Purpose::Sign { .. } => "sign",
        }
    }
}

/// Where a pairing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingStatus {
    Pending,
    Signed,
    Delivered,
}

impl PairingStatus {
    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "pending" => Ok(PairingStatus::Pending),
            "signed" => Ok(PairingStatus::Signed),
            "delivered" => Ok(PairingStatus::Delivered),
            other => Err(StoreError::Corrupt(format!("pairing status {other}"))),
        }
    }
}

/// The signature the phone made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedSignature {
    pub wallet: String,
    pub message: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    pub code: String,
    pub purpose: Purpose,
    pub chain: String,
    pub status: PairingStatus,
    pub signed: Option<PairedSignature>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Pairing {
    pub fn expired_at(&self, now: i64) -> bool {
        self.expires_at <= now
    }
}

/// A new pairing: the code for the phone, the secret for the waiting page (never stored as such).
#[derive(Debug, Clone)]
pub struct OpenedPairing {
    pub code: String,
    pub secret: String,
    pub expires_at: i64,
}

/// Why the phone's signature was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitRefusal {
    NotFound,
    Expired,
    Used,
}

/// Normalises what a person typed (`abcd-efgh`, ` ABCD EFGH `) to a code; `None` if it cannot be one.
pub fn normalise_code(text: &str) -> Option<String> {
    let code: String = text.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_code() -> String {
    let mut rng = rand::thread_rng();
    (0..CODE_LEN).map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char).collect()
}

#[derive(sqlx::FromRow)]
struct PairingRow {
    code: String,
    purpose: String,
    event_id: Option<i64>,
    chain: String,
    wallet: Option<String>,
    message: Option<String>,
    status: String,
    signed_wallet: Option<String>,
    signed_message: Option<String>,
    signature: Option<String>,
    created_at: i64,
    expires_at: i64,
}

impl PairingRow {
    fn into_pairing(self) -> Result<Pairing, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("pairing {} has no {} details", self.code, self.purpose));
        let purpose = match self.purpose.as_str() {
            "join" => Purpose::Join { event_id: self.event_id.ok_or_else(corrupt)? },
            "sign" => Purpose::Sign {
                wallet: self.wallet.clone().ok_or_else(corrupt)?,
                message: self.message.clone().ok_or_else(corrupt)?,
            },
            other => return Err(StoreError::Corrupt(format!("pairing purpose {other}"))),
        };
        let signed = match (self.signed_wallet, self.signed_message, self.signature) {
            (Some(wallet), Some(message), Some(signature)) => Some(PairedSignature { wallet, message, signature }),
            _ => None,
        };
        Ok(Pairing {
            code: self.code,
            purpose,
            chain: self.chain,
            status: PairingStatus::parse(&self.status)?,
            signed,
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}

const COLUMNS: &str =
    "code, purpose, event_id, chain, wallet, message, status, signed_wallet, signed_message, signature, \
                       created_at, expires_at";

impl Store {
    /// Opens a pairing valid for `ttl_ms`, pruning expired ones first.
    pub async fn open_pairing(
        &self,
        purpose: &Purpose,
        chain: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<OpenedPairing, StoreError> {
        sqlx::query("DELETE FROM pairings WHERE expires_at <= $1").bind(now).execute(self.pool()).await?;
        let secret: String = {
            use rand::distributions::{Alphanumeric, DistString};
            Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
        };
        let (event_id, wallet, message) = match purpose {
            Purpose::Join { event_id } => (Some(*event_id), None, None),
            Purpose::Sign { wallet, message } => (None, Some(wallet.as_str()), Some(message.as_str())),
        };
        let expires_at = now + ttl_ms;
        // A clash of two random codes is astronomically rare while few pairings are open; retry rather than fail.
        for _ in 0..4 {
            let code = new_code();
            let inserted = sqlx::query(
                "INSERT INTO pairings (code, secret_hash, purpose, event_id, chain, wallet, message, status, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9) ON CONFLICT (code) DO NOTHING",
            )
            .bind(&code)
            .bind(secret_hash(&secret))
            .bind(purpose.name())
            .bind(event_id)
            .bind(chain)
            .bind(wallet)
            .bind(message)
            .bind(now)
            .bind(expires_at)
            .execute(self.pool())
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(OpenedPairing { code, secret, expires_at });
            }
        }
        Err(StoreError::Corrupt("no free pairing code after four tries".into()))
    }

    /// The pairing with `code`, whatever its state.
    pub async fn pairing(&self, code: &str) -> Result<Option<Pairing>, StoreError> {
        let row: Option<PairingRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM pairings WHERE code = $1"))
            .bind(code)
            .fetch_optional(self.pool())
            .await?;
        row.map(PairingRow::into_pairing).transpose()
    }

    /// The pairing with `code` if `secret` is the one it was opened with.
    pub async fn pairing_for_waiter(&self, code: &str, secret: &str) -> Result<Option<Pairing>, StoreError> {
        let row: Option<PairingRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM pairings WHERE code = $1 AND secret_hash = $2"))
                .bind(code)
                .bind(secret_hash(secret))
                .fetch_optional(self.pool())
                .await?;
        row.map(PairingRow::into_pairing).transpose()
    }

    /// The phone's one submission: records the signature if the pairing is still pending and unexpired.
    pub async fn sign_pairing(
        &self,
        code: &str,
        signed: &PairedSignature,
        now: i64,
    ) -> Result<Result<(), SubmitRefusal>, StoreError> {
        let updated = sqlx::query(
            "UPDATE pairings SET status = 'signed', signed_wallet = $1, signed_message = $2, signature = $3 \
             WHERE code = $4 AND status = 'pending' AND expires_at > $5",
        )
        .bind(&signed.wallet)
        .bind(&signed.message)
        .bind(&signed.signature)
        .bind(code)
        .bind(now)
        .execute(self.pool())
        .await?;
        if updated.rows_affected() == 1 {
            return Ok(Ok(()));
        }
        Ok(Err(match self.pairing(code).await? {
            None => SubmitRefusal::NotFound,
            Some(p) if p.status != PairingStatus::Pending => SubmitRefusal::Used,
            Some(_) => SubmitRefusal::Expired,
        }))
    }

    /// The waiting page's one read of the signature: `true` if this call moved the pairing from signed to
    /// delivered (and so may hand the signature out).
    pub async fn deliver_pairing(&self, code: &str) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE pairings SET status = 'delivered' WHERE code = $1 AND status = 'signed'")
            .bind(code)
            .execute(self.pool())
            .await?;
        Ok(updated.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_back_however_they_are_typed() {
        let code = new_code();
        assert_eq!(normalise_code(&code).as_deref(), Some(code.as_str()));
        let typed = format!(" {}-{} ", code[..4].to_lowercase(), &code[4..]);
        assert_eq!(normalise_code(&typed).as_deref(), Some(code.as_str()));
        assert_eq!(normalise_code("ABCD-EFG0"), None, "0 is not in the alphabet");
        assert_eq!(normalise_code("ABCDEFG"), None);
        assert_eq!(normalise_code("ABCDEFGHJ"), None);
    }
}
