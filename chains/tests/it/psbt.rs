//! The payout batch PSBT from the BIP-84 test account (mnemonic `abandon … about`, master fingerprint 73c5da0a):
//! what it spends, pays and keys, and that it survives BIP-174 serialisation.

use chains::derive::BtcAccount;
use chains::psbt::{parse_origin, payout_psbt, Coin, PsbtError};
use chains::signature::BtcNetwork;

/// BIP-84's test vector account key, m/84'/0'/0'.
const ZPUB: &str =
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
const CREATOR_A: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
const CREATOR_B: &str = "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g";

fn coins() -> Vec<Coin> {
    vec![
        Coin { txid: "11".repeat(32), vout: 0, sats: 100_000, index: 0 },
        Coin { txid: "22".repeat(32), vout: 1, sats: 250_000, index: 1 },
        Coin { txid: "33".repeat(32), vout: 0, sats: 50_000, index: 2 },
    ]
}

#[test]
fn one_transaction_pays_every_payout_with_change_to_the_account() {
    let account = BtcAccount::parse(ZPUB, BtcNetwork::Mainnet).unwrap();
    let origin = parse_origin("[73c5da0a/84'/0'/0']").unwrap();
    let outputs = vec![(CREATOR_A.to_owned(), 200_000), (CREATOR_B.to_owned(), 80_000)];
    let built = payout_psbt(&account, Some(&origin), &coins(), &outputs, 5, 0).unwrap();
    // Largest first: 250,000 + 100,000 cover 280,000 and the fee.
    assert_eq!(built.inputs_sats, 350_000);
    let tx = &built.psbt.unsigned_tx;
    assert_eq!(tx.input.len(), 2);
    assert_eq!(tx.output.len(), 3);
    // 11 + 2 × 68 + 3 × 31 vB at 5 sat/vB.
    assert_eq!((built.vsize, built.fee_sats), (240, 1_200));
    let (change_address, change) = built.change.clone().unwrap();
    assert_eq!(change, 350_000 - 280_000 - 1_200);
    assert_eq!(change_address, account.change_address_checked(0).unwrap().to_string());
    assert_eq!(built.inputs_sats, built.outputs_sats + built.fee_sats + change);
    // Every input says which key signs it and what it spends; the change output is marked as the wallet's.
    let first = &built.psbt.inputs[0];
    assert_eq!(first.witness_utxo.as_ref().unwrap().value.to_sat(), 250_000);
    let (_, (fingerprint, path)) = first.bip32_derivation.iter().next().unwrap();
    assert_eq!((fingerprint.to_string(), path.to_string()), ("73c5da0a".to_owned(), "84'/0'/0'/0/1".to_owned()));
    let (_, (_, change_path)) = built.psbt.outputs[2].bip32_derivation.iter().next().unwrap();
    assert_eq!(change_path.to_string(), "84'/0'/0'/1/0");
    assert_eq!(built.psbt.xpub.len(), 1);
    // BIP-174 round trip, in the base64 text wallets import.
    let text = chains::psbt::to_base64(&built.psbt);
    assert!(text.starts_with("cHNidP8B"), "{text}");
    assert_eq!(chains::psbt::from_base64(&text).unwrap(), built.psbt);
}

#[test]
fn what_cannot_be_paid_is_refused() {
    let account = BtcAccount::parse(ZPUB, BtcNetwork::Mainnet).unwrap();
    let pay = |outputs: Vec<(String, u64)>| payout_psbt(&account, None, &coins(), &outputs, 5, 0);
    assert!(matches!(pay(vec![]), Err(PsbtError::NothingToPay)));
    assert!(matches!(pay(vec![(CREATOR_A.into(), 500_000)]), Err(PsbtError::InsufficientFunds { have: 400_000, .. })));
    assert!(matches!(pay(vec![(CREATOR_A.into(), 100)]), Err(PsbtError::Dust(100, _))));
    assert!(matches!(
        pay(vec![("tb1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq".into(), 10_000)]),
        Err(PsbtError::BadAddress(_))
    ));
    // A change below the dust limit goes to the fee: everything but the fee is paid out.
    let exact =
        payout_psbt(&account, None, &coins()[2..], &[(CREATOR_A.to_owned(), 50_000 - 5 * (11 + 68 + 31))], 5, 0)
            .unwrap();
    assert!(exact.change.is_none());
    assert_eq!(exact.fee_sats, 5 * (11 + 68 + 31));
    let bare = parse_origin("73c5da0a/84h/0h/0h").unwrap();
    assert_eq!(chains::psbt::origin_text(&bare), "[73c5da0a/84'/0'/0']");
    assert!(parse_origin("[73c5da0a/84'/0'/0'").is_err());
    assert!(parse_origin("[zz/84'/0'/0']").is_err());
}
