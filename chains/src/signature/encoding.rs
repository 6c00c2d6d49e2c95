//! Decoding of the text encodings wallets wrap signatures in, with errors already mapped to reason codes.

use base64::Engine as _;

use super::SignatureError;

/// Hex with an optional `0x`/`0X` prefix.
pub(crate) fn hex_bytes(s: &str, what: &'static str) -> Result<Vec<u8>, SignatureError> {
    let digits = strip_0x(s);
    hex::decode(digits).map_err(|_| SignatureError::BadEncoding(what))
}

pub(crate) fn strip_0x(s: &str) -> &str {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s)
}

/// Standard base64, padded or not (wallets differ).
pub(crate) fn base64_bytes(s: &str, what: &'static str) -> Result<Vec<u8>, SignatureError> {
    let engine = if s.ends_with('=') { &base64::engine::general_purpose::STANDARD } else { &STANDARD_NO_PAD_LENIENT };
    engine.decode(s.trim()).map_err(|_| SignatureError::BadEncoding(what))
}

const STANDARD_NO_PAD_LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Bitcoin-alphabet base58 without checksum (Solana keys and signatures, Hive keys).
pub(crate) fn base58_bytes(s: &str) -> Option<Vec<u8>> {
    bitcoin::base58::decode(s).ok()
}

/// Fixed-size view of a decoded byte string.
pub(crate) fn fixed<const N: usize>(
    bytes: &[u8],
    what: &'static str,
    expected: &'static str,
) -> Result<[u8; N], SignatureError> {
    bytes.try_into().map_err(|_| SignatureError::BadLength { what, expected, got: bytes.len() })
}
