//! The secp256k1 pieces shared by EVM, Bitcoin and Hive: one verification context and public-key recovery from a
//! 64-byte compact signature.
//!
//! libsecp256k1 (through the `bitcoin` crate, which needs it anyway) is the one secp256k1 implementation in the
//! tree; recovering with it costs tens of microseconds.

use std::sync::OnceLock;

use bitcoin::secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1, VerifyOnly};

use super::SignatureError;

pub(crate) fn context() -> &'static Secp256k1<VerifyOnly> {
    static CONTEXT: OnceLock<Secp256k1<VerifyOnly>> = OnceLock::new();
    CONTEXT.get_or_init(Secp256k1::verification_only)
}

/// The curve order n, big-endian.
const ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc,
    0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];
/// n / 2, big-endian: an `s` above it is "high".
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x5d, 0x57, 0x6e,
    0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

/// Rewrites a high `s` as `n - s` and flips the recovery id: the same signer, in the canonical (low-S) form.
pub(crate) fn normalize_s(rs: &mut [u8; 64], recovery_id: &mut u8) {
    let s: &mut [u8; 32] = (&mut rs[32..]).try_into().expect("32 bytes");
    if *s <= HALF_ORDER || *s >= ORDER {
        return; // low already, or out of range (recovery rejects it)
    }
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = ORDER[i] as i16 - s[i] as i16 - borrow;
        borrow = (d < 0) as i16;
        s[i] = d.rem_euclid(256) as u8;
    }
    *recovery_id ^= 1;
}

/// Recovers the public key that made the compact signature `rs` (r ‖ s) over the 32-byte `digest`.
pub(crate) fn recover(digest: [u8; 32], rs: &[u8; 64], recovery_id: u8) -> Result<PublicKey, SignatureError> {
    let id = RecoveryId::from_i32(i32::from(recovery_id))
        .map_err(|_| SignatureError::BadHeader(format!("recovery id {recovery_id}")))?;
    let signature = RecoverableSignature::from_compact(rs, id).map_err(|_| SignatureError::InvalidSignature)?;
    context().recover_ecdsa(&Message::from_digest(digest), &signature).map_err(|_| SignatureError::InvalidSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_s_flips_high_s_only() {
        let mut rs = [0u8; 64];
        rs[63] = 1;
        let mut id = 0;
        normalize_s(&mut rs, &mut id);
        assert_eq!((rs[63], id), (1, 0));

        let mut rs = [0u8; 64];
        rs[32..].copy_from_slice(&ORDER);
        rs[63] -= 1; // s = n - 1, high
        let mut id = 1;
        normalize_s(&mut rs, &mut id);
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!((&rs[32..], id), (&one[..], 0));
    }
}
