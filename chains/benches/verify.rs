//! Verifications per second per chain, single core: `cargo bench -p chains`.
//!
//! A plain timing loop over the checked-in vectors (no criterion: one small table is all we need, and it keeps the
//! dependency tree small). Each row verifies the same valid signature `ITERATIONS` times after a short warm-up.
//! The raw secp256k1 row is the floor under EVM, BIP-137 and Hive: the rest of their cost is hashing and address
//! derivation.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use chains::signature::{self, BtcNetwork, MoneroNetwork};
use chains::Chain;
use serde_json::Value;

const ITERATIONS: u32 = 5_000;
const WARM_UP: u32 = 200;

fn vector(file: &str, name_prefix: &str) -> (String, Vec<u8>, String) {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("vector file")).expect("json");
    let case = v["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["expect"] == "ok" && c["name"].as_str().is_some_and(|n| n.starts_with(name_prefix)))
        .unwrap_or_else(|| panic!("{file}: no valid case named {name_prefix}*"));
    let s = |k: &str| case[k].as_str().expect(k).to_string();
    (s("address"), s("message").into_bytes(), s("signature"))
}

fn measure(label: &str, mut f: impl FnMut() -> bool) -> (String, f64, Duration) {
    for _ in 0..WARM_UP {
        assert!(f(), "{label}: vector does not verify");
    }
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        black_box(f());
    }
    let elapsed = start.elapsed();
    (label.to_string(), f64::from(ITERATIONS) / elapsed.as_secs_f64(), elapsed / ITERATIONS)
}

fn main() {
    let mut rows = Vec::new();

    // Raw public-key recovery, the per-core goal (≥ 10,000/s).
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[0x42; 32]).expect("key");
    let digest = Message::from_digest([7u8; 32]);
    let (id, rs) = secp.sign_ecdsa_recoverable(&digest, &key).serialize_compact();
    let verify_ctx = Secp256k1::verification_only();
    rows.push(measure("secp256k1 recovery (raw)", || {
        let sig = RecoverableSignature::from_compact(&rs, RecoveryId::from_i32(id.to_i32()).expect("id")).expect("sig");
        verify_ctx.recover_ecdsa(black_box(&digest), &sig).is_ok()
    }));

    let (a, m, s) = vector("evm.json", "v27_28/msg0");
    rows.push(measure("EVM personal_sign", || signature::verify_evm(Chain::Eth, &a, black_box(&m), &s).is_ok()));
    let (a, m, s) = vector("evm.json", "siwe/valid");
    rows.push(measure("EVM personal_sign + SIWE parse", || {
        signature::verify_evm(Chain::Eth, &a, black_box(&m), &s).is_ok()
    }));

    for (label, prefix) in [
        ("BTC BIP-137 P2PKH", "bip137/compressed_p2pkh_31_34/mainnet/msg0"),
        ("BTC BIP-137 P2WPKH", "bip137/p2wpkh_39_42/mainnet/msg0"),
        ("BTC BIP-322 P2WPKH", "bip322/p2wpkh/mainnet/msg0"),
        ("BTC BIP-322 P2TR", "bip322/p2tr/mainnet/msg0"),
    ] {
        let (a, m, s) = vector("btc.json", prefix);
        rows.push(measure(label, || signature::verify_btc(BtcNetwork::Mainnet, &a, black_box(&m), &s).is_ok()));
    }

    let (a, m, s) = vector("sol.json", "base58/msg0");
    rows.push(measure("SOL ed25519", || signature::verify_sol(&a, black_box(&m), &s).is_ok()));

    let (a, m, s) = vector("hive.json", "pubkey/header_31_34/msg0");
    rows.push(measure("Hive compact (public key)", || signature::verify_hive(&a, black_box(&m), &s).is_ok()));

    let (a, m, s) = vector("xmr.json", "mainnet/v2/spend/msg0");
    rows.push(measure("XMR SigV2", || signature::verify_xmr(MoneroNetwork::Mainnet, &a, black_box(&m), &s).is_ok()));
    let (a, m, s) = vector("xmr.json", "mainnet/v1/spend/msg0");
    rows.push(measure("XMR SigV1", || signature::verify_xmr(MoneroNetwork::Mainnet, &a, black_box(&m), &s).is_ok()));

    println!("\nSignature verification, single thread, {ITERATIONS} iterations each\n");
    println!("| {:<32} | {:>12} | {:>10} |", "verification", "per second", "µs each");
    println!("|{:-<34}|{:->14}|{:->12}|", "", "", "");
    for (label, per_second, each) in rows {
        println!("| {label:<32} | {per_second:>12.0} | {:>10.1} |", each.as_secs_f64() * 1e6);
    }
}
