//! Wallet signature verification: "this wallet signed this message", for every chain we sell tickets on.
//!
//! The gateway hands us what a wallet produced — an address, the exact message bytes and the signature string as
//! the wallet encoded it — and gets back either the verified signer or a [`SignatureError`] whose
//! [`code`](SignatureError::code) is a short reason fit for a client response and a metric label.
//!
//! Each chain family is one [`SignatureVerifier`] impl in its own file: [`Evm`] (EIP-191 `personal_sign`),
//! [`Bitcoin`] (BIP-137 "Bitcoin Signed Message" and BIP-322 "simple"), [`Solana`] (ed25519), [`Hive`] (compact
//! secp256k1, signer given as a public key or, through a [`HiveKeySource`], as an account name) and [`Monero`]
//! (`SigV1`/`SigV2` spend-key signatures). [`verify`] picks the verifier for a [`Chain`]; the `verify_*` functions
//! are the same verifiers called directly.
//!
//! When the signed message is a sign-in message (EIP-4361, Sign-In with Solana, or our own layout for the other
//! chains, see [`crate::challenge`]) it is parsed, its account must be the signer, and the parsed fields come back in
//! [`VerifiedSigner::sign_in`] so the caller can check domain, nonce and validity period against the challenge it
//! issued. This module checks *who signed*; whether the message is the one the server asked for is the caller's.
//!
//! Invariant: nothing here panics on input, whatever the bytes; every rejection is a typed error.

mod btc;
mod encoding;
mod evm;
mod hive;
mod hive_keys;
mod monero;
mod monero_base58;
mod secp;
pub mod sign_in;
mod sol;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Chain, UnknownCurrency};

pub use btc::{verify_btc, Bitcoin, BtcNetwork};
pub use evm::{eip55_checksum, verify_evm, Evm};
pub use hive::{hive_public_key_string, verify_hive, verify_hive_account, Hive};
pub use hive_keys::{BoxFuture, HiveAccountKeys, HiveKeySource, StaticHiveKeys};
pub use monero::{verify_xmr, Monero, MoneroAddress, MoneroNetwork};
pub use sign_in::{SignInError, SignInMessage};
pub use sol::{verify_sol, Solana};

/// Why a signature was not accepted. [`code`](Self::code) is the stable machine reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not valid hex, base58 or base64 (or the wrong one of them), or a signature/witness that does not parse.
    #[error("malformed {0}")]
    BadEncoding(&'static str),
    /// Decoded fine, but has the wrong number of bytes.
    #[error("{what} has {got} bytes, expected {expected}")]
    BadLength { what: &'static str, expected: &'static str, got: usize },
    /// A recovery byte, header byte or signature version prefix outside the accepted set.
    #[error("unknown signature header {0}")]
    BadHeader(String),
    /// The address (or public key, or account name) is not one of this chain, or not of the expected network.
    #[error("not a valid {chain} address: {reason}")]
    BadAddress { chain: &'static str, reason: String },
    /// The address is well formed but its checksum (base58check, bech32, EIP-55 case, Monero keccak) is wrong.
    #[error("{0} address checksum mismatch")]
    BadChecksum(&'static str),
    /// The signature is valid for *some* key, but not for the one behind the address.
    #[error("the message was signed by another key than the address's")]
    WrongSigner,
    /// The signature does not verify for this message and key.
    #[error("signature does not verify")]
    InvalidSignature,
    /// A Monero signature made with the view key: anyone holding the view key can make one, so it proves nothing.
    #[error("signed with the Monero view key; only a spend-key signature proves control of the wallet")]
    ViewKeySignature,
    /// A Hive account name that the key source does not know.
    #[error("unknown Hive account `{0}`")]
    UnknownAccount(String),
    /// The Hive key source (an API node) failed; the signature was not judged.
    #[error("Hive key source unavailable: {0}")]
    KeySourceUnavailable(String),
    /// A sign-in message that does not parse, or names another account than the signer's.
    #[error("malformed sign-in message: {0}")]
    BadMessage(String),
    /// A chain, address type or signature scheme this module does not verify.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl SignatureError {
    /// The machine reason code: stable, snake_case, safe to send to clients and use as a metric label.
    pub const fn code(&self) -> &'static str {
        match self {
            SignatureError::BadEncoding(_) => "bad_encoding",
            SignatureError::BadLength { .. } => "bad_length",
            SignatureError::BadHeader(_) => "bad_header",
            SignatureError::BadAddress { .. } => "bad_address",
            SignatureError::BadChecksum(_) => "bad_checksum",
            SignatureError::WrongSigner => "wrong_signer",
            SignatureError::InvalidSignature => "invalid_signature",
            SignatureError::ViewKeySignature => "view_key_signature",
            SignatureError::UnknownAccount(_) => "unknown_account",
            SignatureError::KeySourceUnavailable(_) => "key_source_unavailable",
            SignatureError::BadMessage(_) => "bad_message",
            SignatureError::Unsupported(_) => "unsupported",
        }
    }

    pub(crate) fn bad_address(chain: &'static str, reason: impl Into<String>) -> Self {
        SignatureError::BadAddress { chain, reason: reason.into() }
    }
}

impl From<UnknownCurrency> for SignatureError {
    fn from(e: UnknownCurrency) -> Self {
        SignatureError::Unsupported(e.to_string())
    }
}

/// How the signature was made, as far as the caller may care (logs, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// EIP-191 `personal_sign`.
    Eip191,
    /// BIP-137 / "Bitcoin Signed Message" (also Electrum's segwit variant).
    Bip137,
    /// BIP-322 "simple" (a witness stack).
    Bip322Simple,
    /// ed25519 over the raw message (Solana wallets' `signMessage`).
    Ed25519,
    /// Hive's compact secp256k1 over sha256(message) (Hive Keychain `signBuffer`).
    HiveCompact,
    /// Monero legacy `SigV1`.
    MoneroV1,
    /// Monero `SigV2` (domain-separated, bound to both address keys).
    MoneroV2,
}

impl Scheme {
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Eip191 => "eip191",
            Scheme::Bip137 => "bip137",
            Scheme::Bip322Simple => "bip322_simple",
            Scheme::Ed25519 => "ed25519",
            Scheme::HiveCompact => "hive_compact",
            Scheme::MoneroV1 => "monero_v1",
            Scheme::MoneroV2 => "monero_v2",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signer whose signature over the message checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSigner {
    pub chain: Chain,
    /// The address in its canonical spelling: EIP-55 for EVM, lowercase bech32, the account name for Hive
    /// accounts, the `STM…` key for Hive keys.
    pub address: String,
    /// The key that signed: hex for secp256k1 (SEC1 compressed), ed25519 and Monero keys, `STM…` for Hive.
    pub public_key: String,
    pub scheme: Scheme,
    /// The parsed sign-in message, when the signed message was one (its account is already checked to be the
    /// signer; domain, nonce and times are for the caller to check, e.g. with [`SignInMessage::check`]).
    pub sign_in: Option<SignInMessage>,
}

/// The per-call settings of [`verify`]: which network's addresses to accept and where Hive account keys come from.
#[derive(Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    pub btc_network: BtcNetwork,
    pub xmr_network: MoneroNetwork,
    /// Needed only to verify a Hive signature against an account name (rather than a public key).
    pub hive_keys: Option<&'a dyn HiveKeySource>,
}

impl fmt::Debug for VerifyOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("btc_network", &self.btc_network)
            .field("xmr_network", &self.xmr_network)
            .field("hive_keys", &self.hive_keys.map(|_| "dyn HiveKeySource"))
            .finish()
    }
}

/// One chain family's signature check. Implementations are cheap values (a chain or a network at most).
pub trait SignatureVerifier {
    fn chain(&self) -> Chain;

    /// Checks that `signature` is over `message` and was made by the key behind `address`.
    fn verify_signature(
        &self,
        address: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<VerifiedSigner, SignatureError>;

    /// Whether two spellings of an address name the same account (EVM hex is case-insensitive, bech32 too).
    fn same_address(&self, a: &str, b: &str) -> bool {
        a == b
    }

    /// [`verify_signature`](Self::verify_signature), then, if the message is a sign-in message, parse it and
    /// require its account line to be the signer.
    fn verify(&self, address: &str, message: &[u8], signature: &str) -> Result<VerifiedSigner, SignatureError> {
        let signer = self.verify_signature(address, message, signature)?;
        attach_sign_in(self, signer, message)
    }
}

/// Parses a sign-in message, if `message` is one, and checks its account against the verified signer.
pub(crate) fn attach_sign_in<V: SignatureVerifier + ?Sized>(
    verifier: &V,
    mut signer: VerifiedSigner,
    message: &[u8],
) -> Result<VerifiedSigner, SignatureError> {
    let Ok(text) = std::str::from_utf8(message) else { return Ok(signer) };
    if !SignInMessage::looks_like(text) {
        return Ok(signer);
    }
    let parsed = SignInMessage::parse(text).map_err(|e| SignatureError::BadMessage(e.to_string()))?;
    if !verifier.same_address(&parsed.address, &signer.address) {
        return Err(SignatureError::WrongSigner);
    }
    signer.sign_in = Some(parsed);
    Ok(signer)
}

/// Verifies a wallet signature for `chain`. This is the gateway's entry point.
///
/// `message` is the exact bytes the wallet signed (for text, its UTF-8 bytes); `signature` is the string the wallet
/// returned, in the encoding usual for the chain (hex for EVM and Hive, base64 for Bitcoin, base58/base64/hex for
/// Solana, `SigV1…`/`SigV2…` for Monero). The only asynchronous case is a Hive account name, whose keys are
/// fetched through `opts.hive_keys`.
pub async fn verify(
    chain: Chain,
    address: &str,
    message: &[u8],
    signature: &str,
    opts: &VerifyOptions<'_>,
) -> Result<VerifiedSigner, SignatureError> {
    match chain {
        Chain::Hive => match opts.hive_keys {
            Some(source) if !hive::is_public_key_like(address) => {
                verify_hive_account(address, message, signature, source).await
            }
            // Public keys; account names without a key source come back `unsupported` (or `bad_address`).
            _ => Hive.verify(address, message, signature),
        },
        Chain::Eth | Chain::Pol | Chain::Bnb => Evm { chain }.verify(address, message, signature),
        Chain::Btc => Bitcoin { network: opts.btc_network }.verify(address, message, signature),
        Chain::Sol => Solana.verify(address, message, signature),
        Chain::Xmr => Monero { network: opts.xmr_network }.verify(address, message, signature),
    }
}

/// [`verify`] for a chain named by a string (`"eth"`, `"matic"`, `"bitcoin"`…); unknown names are `unsupported`.
pub async fn verify_named(
    chain: &str,
    address: &str,
    message: &[u8],
    signature: &str,
    opts: &VerifyOptions<'_>,
) -> Result<VerifiedSigner, SignatureError> {
    let chain: Chain = chain.parse()?;
    verify(chain, address, message, signature, opts).await
}
