//! Signature vectors made by each chain's reference implementation (see `tests/vectors/gen/`): every case must come
//! out exactly as expected — "ok", or the named reason code.

use std::collections::HashMap;

use chains::signature::{
    self, BtcNetwork, HiveAccountKeys, MoneroNetwork, SignatureError, StaticHiveKeys, VerifiedSigner, VerifyOptions,
};
use chains::Chain;
use serde::Deserialize;

#[derive(Deserialize)]
struct VectorFile {
    chain: String,
    generator: String,
    #[serde(default)]
    accounts: HashMap<String, HiveAccount>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct HiveAccount {
    active: Vec<String>,
    posting: Vec<String>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    address: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    message_hex: Option<String>,
    signature: String,
    expect: String,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    sign_in: Option<ExpectedSignIn>,
}

#[derive(Deserialize)]
struct ExpectedSignIn {
    domain: String,
    nonce: String,
    issued_at: String,
    expiration_time: String,
    chain_id: String,
}

impl Case {
    fn message(&self) -> Vec<u8> {
        match (&self.message, &self.message_hex) {
            (Some(m), None) => m.as_bytes().to_vec(),
            (None, Some(h)) => hex::decode(h).expect("message_hex"),
            _ => panic!("{}: exactly one of message / message_hex", self.name),
        }
    }
}

fn load(file: &str) -> VectorFile {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn outcome(result: &Result<VerifiedSigner, SignatureError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// Runs every case through `verify`, collects all mismatches, and fails listing them.
fn run(file: &str, min_cases: usize, mut verify: impl FnMut(&Case) -> Result<VerifiedSigner, SignatureError>) {
    let vectors = load(file);
    assert!(vectors.cases.len() >= min_cases, "{file}: only {} cases", vectors.cases.len());
    let mut failures = Vec::new();
    for case in &vectors.cases {
        let result = verify(case);
        if outcome(&result) != case.expect {
            failures.push(format!("{}: expected {}, got {:?}", case.name, case.expect, result));
            continue;
        }
        if let (Ok(signer), Some(expected)) = (&result, &case.sign_in) {
            let parsed = signer.sign_in.as_ref().unwrap_or_else(|| panic!("{}: sign-in not parsed", case.name));
            assert_eq!(parsed.domain, expected.domain, "{}", case.name);
            assert_eq!(parsed.nonce.as_deref(), Some(expected.nonce.as_str()), "{}", case.name);
            assert_eq!(parsed.chain_id.as_deref(), Some(expected.chain_id.as_str()), "{}", case.name);
            let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
            assert_eq!(parsed.issued_at, Some(t(&expected.issued_at)), "{}", case.name);
            assert_eq!(parsed.expiration_time, Some(t(&expected.expiration_time)), "{}", case.name);
        }
    }
    assert!(
        failures.is_empty(),
        "{file} ({}, {}): {} of {} cases failed:\n{}",
        vectors.chain,
        vectors.generator,
        failures.len(),
        vectors.cases.len(),
        failures.join("\n")
    );
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

#[test]
fn evm_vectors() {
    run("evm.json", 30, |c| {
        let message = c.message();
        // The one implementation serves all three chains.
        let results: Vec<_> = [Chain::Eth, Chain::Pol, Chain::Bnb]
            .map(|chain| signature::verify_evm(chain, &c.address, &message, &c.signature))
            .into();
        assert!(results.windows(2).all(|w| outcome(&w[0]) == outcome(&w[1])), "{}: chains disagree", c.name);
        if let Ok(signer) = &results[0] {
            assert!(
                signer.address.starts_with("0x")
                    && signer.address[2..].eq_ignore_ascii_case(c.address.trim_start_matches("0x"))
            );
        }
        results.into_iter().next().unwrap()
    });
}

fn btc_network(case: &Case) -> BtcNetwork {
    match case.network.as_deref() {
        Some("mainnet") | None => BtcNetwork::Mainnet,
        Some("testnet") => BtcNetwork::Testnet,
        Some("regtest") => BtcNetwork::Regtest,
        Some(other) => panic!("{}: network {other}", case.name),
    }
}

#[test]
fn btc_vectors() {
    run("btc.json", 100, |c| signature::verify_btc(btc_network(c), &c.address, &c.message(), &c.signature));
}

#[test]
fn btc_vectors_cover_every_header_range() {
    let headers: std::collections::BTreeSet<u64> = load("btc.json")
        .cases
        .iter()
        .filter(|c| c.expect == "ok" && c.name.starts_with("bip137"))
        .map(|c| {
            use base64::Engine;
            u64::from(base64::engine::general_purpose::STANDARD.decode(&c.signature).unwrap()[0])
        })
        .collect();
    for range in [27..=30, 31..=34, 35..=38, 39..=42] {
        assert!(headers.iter().filter(|&&h| range.contains(&h)).count() >= 2, "headers {range:?}: {headers:?}");
    }
}

#[test]
fn sol_vectors() {
    run("sol.json", 25, |c| signature::verify_sol(&c.address, &c.message(), &c.signature));
}

#[test]
fn hive_vectors() {
    let vectors = load("hive.json");
    let keys = StaticHiveKeys(
        vectors
            .accounts
            .into_iter()
            .map(|(name, a)| (name, HiveAccountKeys { posting: a.posting, active: a.active }))
            .collect(),
    );
    let opts = VerifyOptions { hive_keys: Some(&keys), ..Default::default() };
    run("hive.json", 40, |c| block_on(signature::verify(Chain::Hive, &c.address, &c.message(), &c.signature, &opts)));
}

#[test]
fn hive_pubkey_vectors_verify_without_a_key_source() {
    let mut account_cases = 0;
    run("hive.json", 40, |c| {
        let result = signature::verify_hive(&c.address, &c.message(), &c.signature);
        if !c.name.starts_with("account/") {
            return result;
        }
        // Account names need a key source: without one the sync verifier says so instead of guessing.
        account_cases += 1;
        let code = outcome(&result);
        assert!(matches!(code, "unsupported" | "bad_address"), "{}: {code}", c.name);
        expected(c)
    });
    assert!(account_cases >= 10);
}

/// The case's own expectation as a result (for cases a test only checks in part).
fn expected(c: &Case) -> Result<VerifiedSigner, SignatureError> {
    match c.expect.as_str() {
        "ok" => Ok(VerifiedSigner {
            chain: Chain::Hive,
            address: c.address.clone(),
            public_key: String::new(),
            scheme: signature::Scheme::HiveCompact,
            sign_in: None,
        }),
        "wrong_signer" => Err(SignatureError::WrongSigner),
        "unknown_account" => Err(SignatureError::UnknownAccount(c.address.clone())),
        other => panic!("{}: no stand-in for {other}", c.name),
    }
}

fn xmr_network(case: &Case) -> MoneroNetwork {
    match case.network.as_deref() {
        Some("mainnet") | None => MoneroNetwork::Mainnet,
        Some("stagenet") => MoneroNetwork::Stagenet,
        Some("testnet") => MoneroNetwork::Testnet,
        Some(other) => panic!("{}: network {other}", case.name),
    }
}

#[test]
fn xmr_vectors() {
    run("xmr.json", 60, |c| signature::verify_xmr(xmr_network(c), &c.address, &c.message(), &c.signature));
}

/// A Monero signature is taken exactly as monero-wallet-rpc takes it: a valid one with whitespace around it
/// is refused, as the wallet refuses it.
#[test]
fn xmr_signatures_with_surrounding_whitespace_are_refused() {
    let valid = load("xmr.json").cases.into_iter().find(|c| c.expect == "ok").expect("a valid vector");
    let network = xmr_network(&valid);
    assert!(signature::verify_xmr(network, &valid.address, &valid.message(), &valid.signature).is_ok());
    for padded in [format!(" {}", valid.signature), format!("{}\n", valid.signature), format!("\t{}", valid.signature)]
    {
        assert!(
            signature::verify_xmr(network, &valid.address, &valid.message(), &padded).is_err(),
            "{padded:?} was accepted"
        );
    }
}

/// The async entry point routes every chain to the same verifiers as the sync functions.
#[test]
fn verify_entry_point_agrees_with_per_chain_functions() {
    let files =
        [("evm.json", Chain::Eth), ("btc.json", Chain::Btc), ("sol.json", Chain::Sol), ("xmr.json", Chain::Xmr)];
    for (file, chain) in files {
        for c in load(file).cases {
            let opts = VerifyOptions {
                btc_network: btc_network_or_default(&c),
                xmr_network: xmr_network_or_default(&c),
                hive_keys: None,
            };
            let result = block_on(signature::verify(chain, &c.address, &c.message(), &c.signature, &opts));
            assert_eq!(outcome(&result), c.expect, "{file} {}", c.name);
        }
    }
}

fn btc_network_or_default(c: &Case) -> BtcNetwork {
    if matches!(c.network.as_deref(), Some("mainnet" | "testnet" | "regtest")) {
        btc_network(c)
    } else {
        BtcNetwork::Mainnet
    }
}

fn xmr_network_or_default(c: &Case) -> MoneroNetwork {
    if matches!(c.network.as_deref(), Some("stagenet" | "testnet")) {
        xmr_network(c)
    } else {
        MoneroNetwork::Mainnet
    }
}
