//! Whatever arrives from a client, verification answers with a value, never a panic: random strings, random bytes
//! in each chain's usual encoding, and valid vectors with one byte changed.

use base64::Engine as _;
use chains::challenge::{AccessMessage, Challenge};
use chains::signature::{self, SignInMessage, SignatureError, StaticHiveKeys, VerifyOptions};
use chains::Chain;
use proptest::prelude::*;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

fn verify_all_chains(address: &str, message: &[u8], signature: &str) {
    let keys = StaticHiveKeys::default();
    let opts = VerifyOptions { hive_keys: Some(&keys), ..Default::default() };
    for chain in Chain::ALL {
        let result = block_on(signature::verify(chain, address, message, signature, &opts));
        if let Err(e) = result {
            assert!(!e.code().is_empty());
        }
    }
}

fn chain_strategy() -> impl Strategy<Value = Chain> {
    prop::sample::select(Chain::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_never_panic(address in "\\PC{0,120}", message in prop::collection::vec(any::<u8>(), 0..64), signature in "\\PC{0,200}") {
        verify_all_chains(&address, &message, &signature);
    }

    #[test]
    fn random_bytes_in_usual_encodings_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..140), address in "[0-9a-zA-Z]{0,110}") {
        let encodings = [
            hex::encode(&bytes),
            format!("0x{}", hex::encode(&bytes)),
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            bitcoin::base58::encode(&bytes),
            format!("SigV2{}", bitcoin::base58::encode(&bytes)),
            format!("SigV1{}", bitcoin::base58::encode(&bytes)),
        ];
        for signature in &encodings {
            verify_all_chains(&address, b"Access event 1 at 1", signature);
            verify_all_chains(&format!("STM{address}"), b"x", signature);
            verify_all_chains(&format!("bc1q{}", address.to_lowercase()), b"x", signature);
        }
    }

    #[test]
    fn sign_in_and_challenge_parsers_never_panic(text in "\\PC{0,300}", lines in prop::collection::vec("(URI|Nonce|Issued At|Resources|Event|- x|)(: )?\\PC{0,30}", 0..12)) {
        let _ = SignInMessage::parse(&text);
        let _ = Challenge::parse(&text);
        let _ = AccessMessage::parse(&text);
        let structured = format!("a.com wants you to sign in with your Ethereum account:\n0xabc\n\n{}", lines.join("\n"));
        let _ = SignInMessage::parse(&structured);
        let _ = Challenge::parse(&structured);
    }

    /// A valid vector with one byte of r ‖ s (or of the whole string, for Solana and Monero) changed is rejected.
    /// Header and v bytes are left alone: several values of them are equivalent on purpose (v 27 = 0 = 37…).
    #[test]
    fn mutated_valid_vectors_are_rejected(chain in chain_strategy(), index in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let (address, message, signature) = valid_vector(chain);
        let mut raw = decode_for(chain, &signature);
        let i = match chain {
            Chain::Btc | Chain::Hive => 1 + index.index(64),
            Chain::Eth | Chain::Pol | Chain::Bnb => index.index(64),
            Chain::Sol | Chain::Xmr => index.index(raw.len()),
        };
        raw[i] ^= flip;
        let mutated = encode_for(chain, &raw);
        let keys = hive_keys();
        let opts = VerifyOptions { hive_keys: Some(&keys), ..Default::default() };
        let result = block_on(signature::verify(chain, &address, message.as_bytes(), &mutated, &opts));
        prop_assert!(result.is_err(), "{chain}: mutated signature accepted: {mutated}");
    }
}

fn vector_file(chain: Chain) -> serde_json::Value {
    let file = match chain {
        Chain::Eth | Chain::Pol | Chain::Bnb => "evm",
        Chain::Btc => "btc",
        Chain::Sol => "sol",
        Chain::Hive => "hive",
        Chain::Xmr => "xmr",
    };
    let path = format!("{}/tests/vectors/{file}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hive_keys() -> StaticHiveKeys {
    let v = vector_file(Chain::Hive);
    let keys = |a: &serde_json::Value, role: &str| -> Vec<String> {
        a[role].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect()
    };
    StaticHiveKeys(
        v["accounts"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, a)| {
                (name.clone(), signature::HiveAccountKeys { posting: keys(a, "posting"), active: keys(a, "active") })
            })
            .collect(),
    )
}

/// The first valid, mainnet, plain-text case of the chain's vector file.
fn valid_vector(chain: Chain) -> (String, String, String) {
    let v = vector_file(chain);
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["expect"] == "ok" && c["message"].is_string() && c["network"].as_str().unwrap_or("mainnet") == "mainnet"
        })
        .unwrap();
    let s = |k: &str| case[k].as_str().unwrap().to_string();
    (s("address"), s("message"), s("signature"))
}

fn decode_for(chain: Chain, signature: &str) -> Vec<u8> {
    match chain {
        Chain::Btc => base64::engine::general_purpose::STANDARD.decode(signature).unwrap(),
        Chain::Sol => bitcoin::base58::decode(signature).unwrap(),
        Chain::Xmr => signature.as_bytes().to_vec(),
        _ => hex::decode(signature.trim_start_matches("0x")).unwrap(),
    }
}

fn encode_for(chain: Chain, raw: &[u8]) -> String {
    match chain {
        Chain::Btc => base64::engine::general_purpose::STANDARD.encode(raw),
        Chain::Sol => bitcoin::base58::encode(raw),
        Chain::Xmr => String::from_utf8_lossy(raw).into_owned(),
        _ => format!("0x{}", hex::encode(raw)),
    }
}

#[test]
fn reason_codes_are_distinct_snake_case() {
    let errors = [
        SignatureError::BadEncoding("x"),
        SignatureError::BadLength { what: "x", expected: "1", got: 2 },
        SignatureError::BadHeader("x".into()),
        SignatureError::BadAddress { chain: "x", reason: "y".into() },
        SignatureError::BadChecksum("x"),
        SignatureError::WrongSigner,
        SignatureError::InvalidSignature,
        SignatureError::ViewKeySignature,
        SignatureError::UnknownAccount("x".into()),
        SignatureError::KeySourceUnavailable("x".into()),
        SignatureError::BadMessage("x".into()),
        SignatureError::Unsupported("x".into()),
    ];
    let codes: std::collections::HashSet<_> = errors.iter().map(|e| e.code()).collect();
    assert_eq!(codes.len(), errors.len());
    assert!(codes.iter().all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

#[test]
fn unknown_chain_names_are_unsupported() {
    let opts = VerifyOptions::default();
    let err = block_on(signature::verify_named("doge", "D8x", b"m", "sig", &opts)).unwrap_err();
    assert_eq!(err.code(), "unsupported");
    let err = block_on(signature::verify_named("usd", "x", b"m", "sig", &opts)).unwrap_err();
    assert_eq!(err.code(), "unsupported");
    // Known names route to their chain.
    let err = block_on(signature::verify_named("matic", "0x00", b"m", "sig", &opts)).unwrap_err();
    assert_eq!(err.code(), "bad_address");
}

#[test]
fn hive_account_without_key_source_is_unsupported() {
    let (_, message, signature) = valid_vector(Chain::Hive);
    let err = block_on(signature::verify(
        Chain::Hive,
        "alice.tickets",
        message.as_bytes(),
        &signature,
        &VerifyOptions::default(),
    ))
    .unwrap_err();
    assert_eq!(err.code(), "unsupported");
}
