//! The one rule for Hive account names, shared by wallets (`address`), signatures (`signature::hive`) and
//! creators' sign-in (`ticketing::creators::AccountName`).
//!
//! It is the chain's own (`is_valid_account_name` in hive's `protocol`, unchanged since Steem): an RFC 1035 domain
//! name with longer labels. Three copies used to disagree (`ab--cd` was a quote wallet but refused at sign-in);
//! Hive itself accepts consecutive hyphens inside a label, so we do too, or a real account could pay and never
//! sign in.

/// Hive's shortest and longest account names, in bytes (the chain's `HIVE_MIN/MAX_ACCOUNT_NAME_LENGTH`).
pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 16;

/// Whether `name` is a Hive account name: 3–16 characters; dot-separated labels, each at least 3 characters,
/// starting with a lowercase letter, ending with a lowercase letter or digit, with only lowercase letters, digits
/// and hyphens between.
pub fn is_valid_account_name(name: &str) -> bool {
    (MIN_LEN..=MAX_LEN).contains(&name.len()) && name.split('.').all(is_valid_label)
}

fn is_valid_label(label: &str) -> bool {
    let b = label.as_bytes();
    b.len() >= MIN_LEN
        && b[0].is_ascii_lowercase()
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && b[1..b.len() - 1].iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::is_valid_account_name;

    #[test]
    fn accepts_what_hive_accepts() {
        for ok in [
            "abc",              // shortest
            "a1b2c3d4e5f6g7h8", // longest (16)
            "alice",
            "dlux-io",
            "bob-42",
            "ab--cd", // consecutive hyphens inside a label are Hive's rule, not an error
            "alice.tickets",
            "abc.def.ghi",
        ] {
            assert!(is_valid_account_name(ok), "{ok} should be valid");
        }
    }

    #[test]
    fn refuses_what_hive_refuses() {
        for bad in [
            "",
            "ab",                // too short
            "a1b2c3d4e5f6g7h8i", // 17: too long
            "Alice",             // upper case
            "1bob",              // starts with a digit
            "-bob",              // starts with a hyphen
            "bob-",              // ends with a hyphen
            "alice.",            // empty last label
            ".alice",            // empty first label
            "a..bcd",            // empty label
            "ab.cde",            // a label under 3
            "abc.123",           // a label starting with a digit
            "abc.de-",           // a label ending with a hyphen
            "a b c",             // space
            "ali_ce",            // underscore
            "@alice",            // the @ of a mention
            "alicé",             // non-ASCII
        ] {
            assert!(!is_valid_account_name(bad), "{bad:?} should be invalid");
        }
    }
}
