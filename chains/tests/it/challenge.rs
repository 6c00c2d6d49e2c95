//! The access challenge text: round trips for every chain, the standard shapes wallets recognise, rejections, and
//! full issue → sign → verify → check passes for EVM and Solana.

use chains::challenge::{AccessMessage, Challenge, ChallengeError, NONCE_LEN};
use chains::signature::SignInMessage;
use chains::Chain;
use chrono::{DateTime, Duration, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap() + Duration::milliseconds(123)
}

fn wallet(chain: Chain) -> &'static str {
    match chain {
        Chain::Eth | Chain::Pol | Chain::Bnb => "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        Chain::Btc => "bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l",
        Chain::Sol => "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T",
        Chain::Hive => "alice.tickets",
        Chain::Xmr => "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A",
    }
}

fn challenge(chain: Chain) -> Challenge {
    Challenge::new(
        "tickets.example.com",
        "https://tickets.example.com/events/42",
        42,
        chain,
        wallet(chain),
        now(),
        Duration::minutes(5),
    )
}

#[test]
fn round_trips_for_every_chain() {
    for chain in Chain::ALL {
        let c = challenge(chain);
        let text = c.to_message();
        assert_eq!(Challenge::parse(&text).unwrap(), c, "{chain}:\n{text}");
        assert_eq!(c.check_signed(&text, now() + Duration::minutes(1)), Ok(()), "{chain}");
    }
}

#[test]
fn evm_text_is_eip4361() {
    let c = challenge(Chain::Pol);
    let text = c.to_message();
    let expected = format!(
        "tickets.example.com wants you to sign in with your Ethereum account:\n\
         0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\n\n\
         Sign in to access event 42.\n\n\
         URI: https://tickets.example.com/events/42\n\
         Version: 1\n\
         Chain ID: 137\n\
         Nonce: {}\n\
         Issued At: 2026-11-25T10:00:00.123Z\n\
         Expiration Time: 2026-11-25T10:05:00.123Z\n\
         Request ID: 42",
        c.nonce
    );
    assert_eq!(text, expected);
}

#[test]
fn solana_text_is_sign_in_with_solana() {
    let text = challenge(Chain::Sol).to_message();
    assert!(text.starts_with("tickets.example.com wants you to sign in with your Solana account:\n4Nd1mBQ"));
    assert!(text.contains("\nChain ID: mainnet\n"));
}

#[test]
fn other_chains_carry_an_event_line() {
    for (chain, kind) in [(Chain::Btc, "Bitcoin"), (Chain::Hive, "Hive"), (Chain::Xmr, "Monero")] {
        let c = challenge(chain);
        let text = c.to_message();
        let expected = format!(
            "tickets.example.com wants you to sign in with your {kind} account:\n{}\n\n\
             Sign in to access event 42.\n\n\
             URI: https://tickets.example.com/events/42\n\
             Event: 42\n\
             Nonce: {}\n\
             Issued At: 2026-11-25T10:00:00.123Z\n\
             Expiration Time: 2026-11-25T10:05:00.123Z",
            wallet(chain),
            c.nonce
        );
        assert_eq!(text, expected);
    }
}

#[test]
fn nonces_are_fresh_and_long() {
    let a = challenge(Chain::Eth);
    let b = challenge(Chain::Eth);
    assert_ne!(a.nonce, b.nonce);
    assert_eq!(a.nonce.len(), NONCE_LEN);
    assert!(a.nonce.bytes().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn rejects_tampered_or_stale_signed_text() {
    let c = challenge(Chain::Eth);
    let text = c.to_message();
    let at = now() + Duration::minutes(1);
    let tamper = |from: &str, to: &str| c.check_signed(&text.replacen(from, to, 1), at).unwrap_err();
    assert_eq!(tamper("tickets.example.com wants", "evil.example.com wants"), ChallengeError::Mismatch("domain"));
    assert_eq!(tamper("events/42", "events/43"), ChallengeError::Mismatch("uri"));
    assert_eq!(tamper("Request ID: 42", "Request ID: 43"), ChallengeError::Mismatch("event"));
    assert_eq!(tamper("Chain ID: 1\n", "Chain ID: 56\n"), ChallengeError::Mismatch("chain"));
    assert_eq!(tamper(&c.nonce, &"A".repeat(NONCE_LEN)), ChallengeError::Mismatch("nonce"));
    assert_eq!(tamper("10:05:00.123Z", "11:05:00.123Z"), ChallengeError::Mismatch("expires_at"));
    assert_eq!(c.check_signed(&text, now() + Duration::minutes(5)), Err(ChallengeError::Expired));
    assert_eq!(c.check_signed(&text, now() - Duration::minutes(10)), Err(ChallengeError::NotYetValid));
    // The wallet is compared case-insensitively (EVM hex).
    assert_eq!(c.check_signed(&text.replace(wallet(Chain::Eth), &wallet(Chain::Eth).to_lowercase()), at), Ok(()));
}

#[test]
fn parse_rejects_malformed_text() {
    let c = challenge(Chain::Btc);
    let text = c.to_message();
    let cases = [
        ("no header", "hello".to_string()),
        ("no nonce", text.replace(&format!("Nonce: {}\n", c.nonce), "")),
        ("short nonce", text.replace(&c.nonce, "abc123")),
        ("nonce not alphanumeric", text.replace(&c.nonce, &format!("{}!", &c.nonce[1..]))),
        ("no event", text.replace("Event: 42\n", "")),
        ("event not a number", text.replace("Event: 42", "Event: forty-two")),
        ("bad time", text.replace("2026-11-25T10:00:00.123Z", "yesterday")),
        ("unknown field", text.replace("Event: 42", "Event: 42\nColour: red")),
        ("duplicate field", text.replace("Event: 42", "Event: 42\nEvent: 43")),
        ("unknown account kind", text.replace("Bitcoin account", "Dogecoin account")),
        ("EVM without chain id", challenge(Chain::Eth).to_message().replace("Chain ID: 1\n", "")),
        ("EVM with unknown chain id", challenge(Chain::Eth).to_message().replace("Chain ID: 1\n", "Chain ID: 5\n")),
        ("no expiry", text.replace(&format!("\nExpiration Time: {}", "2026-11-25T10:05:00.123Z"), "")),
    ];
    for (what, text) in cases {
        let err = Challenge::parse(&text).expect_err(what);
        assert_eq!(err.code(), "bad_message", "{what}: {err}");
    }
}

#[test]
fn parses_the_seed_access_message() {
    let m = AccessMessage::parse("Access event 42 at 1764067200000").unwrap();
    assert_eq!(m.event_id, 42);
    assert_eq!(m.at, Utc.with_ymd_and_hms(2025, 11, 25, 10, 40, 0).unwrap());
    assert_eq!(m.to_message(), "Access event 42 at 1764067200000");
    for bad in [
        "",
        "Access event 42",
        "Access event x at 1",
        "Access event 42 at -1",
        "access event 42 at 1",
        "Access event 42 at 1 ",
        "Access event 99999999999999999999 at 1",
        "Access event 1 at 99999999999999999999",
    ] {
        assert!(AccessMessage::parse(bad).is_err(), "{bad:?}");
    }
}

/// The challenge text is what the verifier sees as a sign-in message: fields come back parsed.
#[test]
fn challenge_text_is_a_sign_in_message() {
    let c = challenge(Chain::Eth);
    let parsed = SignInMessage::parse(&c.to_message()).unwrap();
    assert_eq!(parsed.domain, c.domain);
    assert_eq!(parsed.nonce.as_deref(), Some(c.nonce.as_str()));
    assert_eq!(parsed.check(&c.domain, &c.nonce, now()), Ok(()));
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

/// An EVM key of the tests' own and a `personal_sign` by it: (EIP-55 address, signature hex).
fn sign_evm(text: &str) -> (String, String) {
    use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
    use tiny_keccak::{Hasher, Keccak};
    let keccak = |parts: &[&[u8]]| {
        let mut h = Keccak::v256();
        parts.iter().for_each(|p| h.update(p));
        let mut out = [0u8; 32];
        h.finalize(&mut out);
        out
    };
    let secp = Secp256k1::new();
    let secret = SecretKey::from_slice(&[7u8; 32]).unwrap();
    let public = secret.public_key(&secp).serialize_uncompressed();
    let address: [u8; 20] = keccak(&[&public[1..]])[12..].try_into().unwrap();
    let digest = keccak(&[b"\x19Ethereum Signed Message:\n", text.len().to_string().as_bytes(), text.as_bytes()]);
    let (id, rs) = secp.sign_ecdsa_recoverable(&Message::from_digest(digest), &secret).serialize_compact();
    (chains::signature::eip55_checksum(&address), format!("0x{}{:02x}", hex::encode(rs), 27 + id.to_i32()))
}

#[test]
fn issue_sign_verify_check_evm() {
    let (address, _) = sign_evm("");
    let issued = Challenge::new(
        "tickets.example.com",
        "https://tickets.example.com/events/7",
        7,
        Chain::Bnb,
        &address,
        now(),
        Duration::minutes(5),
    );
    let text = issued.to_message();
    let (_, signature) = sign_evm(&text);

    let opts = chains::signature::VerifyOptions::default();
    let signer =
        block_on(chains::signature::verify(Chain::Bnb, &address.to_lowercase(), text.as_bytes(), &signature, &opts))
            .unwrap();
    assert_eq!(signer.address, address);
    let sign_in = signer.sign_in.expect("sign-in parsed");
    assert_eq!(sign_in.check(&issued.domain, &issued.nonce, now()), Ok(()));
    assert_eq!(issued.check_signed(&text, now()), Ok(()));
}

/// A signed text that starts like a sign-in message but does not parse is rejected, even with a good signature.
#[test]
fn malformed_sign_in_text_is_rejected_even_when_signed() {
    let (address, _) = sign_evm("");
    let text =
        format!("evil.example wants you to sign in with your Ethereum account:\n{address}\n\nNonce: 1\nPayload: x");
    let (_, signature) = sign_evm(&text);
    let err = chains::signature::verify_evm(Chain::Eth, &address, text.as_bytes(), &signature).unwrap_err();
    assert_eq!(err.code(), "bad_message");
    // The same bytes without the header are a plain message, and verify.
    let plain = text.replacen("evil.example wants", "evil.example asks", 1);
    let (_, signature) = sign_evm(&plain);
    let signer = chains::signature::verify_evm(Chain::Eth, &address, plain.as_bytes(), &signature).unwrap();
    assert!(signer.sign_in.is_none());
}

#[test]
fn issue_sign_verify_check_solana() {
    use ed25519_dalek::{Signer, SigningKey};
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let address = bitcoin::base58::encode(key.verifying_key().as_bytes());
    let issued = Challenge::new(
        "tickets.example.com",
        "https://tickets.example.com/events/7",
        7,
        Chain::Sol,
        &address,
        now(),
        Duration::minutes(5),
    );
    let text = issued.to_message();
    let signature = bitcoin::base58::encode(&key.sign(text.as_bytes()).to_bytes());
    let signer = chains::signature::verify_sol(&address, text.as_bytes(), &signature).unwrap();
    assert_eq!(signer.sign_in.unwrap().nonce.as_deref(), Some(issued.nonce.as_str()));
    assert_eq!(issued.check_signed(&text, now()), Ok(()));
    // Signed text for another wallet: the signature is fine, the account line is not the signer.
    let other = Challenge { wallet: "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T".into(), ..issued };
    let text = other.to_message();
    let signature = bitcoin::base58::encode(&key.sign(text.as_bytes()).to_bytes());
    let err = chains::signature::verify_sol(&address, text.as_bytes(), &signature).unwrap_err();
    assert_eq!(err.code(), "wrong_signer");
}
