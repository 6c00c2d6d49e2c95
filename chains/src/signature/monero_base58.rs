//! Monero's base58: not Bitcoin's big-number base58 but a block code — every 8 bytes become exactly 11 characters
//! (a shorter last block maps to fewer, by a fixed table), so lengths are predictable and errors stay local.
//! Reference: `src/common/base58.cpp` in monero-project/monero.

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// Encoded size of a block of `i` bytes.
const ENCODED_BLOCK_SIZES: [usize; 9] = [0, 2, 3, 5, 6, 7, 9, 10, 11];
const FULL_BLOCK: usize = 8;
const FULL_ENCODED_BLOCK: usize = 11;

fn digit(c: u8) -> Option<u128> {
    ALPHABET.iter().position(|&a| a == c).map(|d| d as u128)
}

/// Decodes; `None` for a bad character, an impossible length or a block that overflows its size.
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    let last = s.len() % FULL_ENCODED_BLOCK;
    let last_size = ENCODED_BLOCK_SIZES.iter().position(|&n| n == last)?;
    let mut out = Vec::with_capacity(s.len() / FULL_ENCODED_BLOCK * FULL_BLOCK + last_size);
    for block in s.chunks(FULL_ENCODED_BLOCK) {
        let size = if block.len() == FULL_ENCODED_BLOCK { FULL_BLOCK } else { last_size };
        // 58^11 < 2^65: a u128 cannot overflow here.
        let num = block.iter().try_fold(0u128, |n, &c| Some(n * 58 + digit(c)?))?;
        if num >> (8 * size) != 0 {
            return None;
        }
        out.extend_from_slice(&(num as u64).to_be_bytes()[FULL_BLOCK - size..]);
    }
    Some(out)
}

#[cfg(test)]
pub(crate) fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(FULL_BLOCK) * FULL_ENCODED_BLOCK);
    for block in data.chunks(FULL_BLOCK) {
        let mut num = block.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
        let mut chars = [ALPHABET[0]; FULL_ENCODED_BLOCK];
        let width = ENCODED_BLOCK_SIZES[block.len()];
        for c in chars[..width].iter_mut().rev() {
            *c = ALPHABET[(num % 58) as usize];
            num /= 58;
        }
        out.extend(chars[..width].iter().map(|&c| c as char));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_blocks() {
        // From Monero's tests/unit_tests/base58.cpp.
        assert_eq!(encode(&[0x00]), "11");
        assert_eq!(encode(&[0x06, 0x15, 0x60, 0x13, 0x76, 0x28, 0x79, 0xf7]), "22222222222");
        assert_eq!(encode(&[0xff; 8]), "jpXCZedGfVQ");
        assert_eq!(decode("jpXCZedGfVR"), None); // overflows a u64
        assert_eq!(decode("zz"), None); // overflows one byte
        assert_eq!(decode("1"), None); // impossible length
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(decode(&encode(&data)), Some(data));
        }

        #[test]
        fn decode_never_panics(s in "\\PC{0,120}") {
            let _ = decode(&s);
        }
    }
}
