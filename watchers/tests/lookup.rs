//! Looking up the transaction an operator settles a payout with: against the Esplora test server (real Bitcoin
//! transactions) and a real local EVM node (anvil: native ETH and an ERC-20).

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/esplora.rs"]
mod esplora;

use bitcoin::hashes::Hash as _;
use chains::{Amount, Chain, Currency};
use watchers::lookup::{TransferCheck, TransferLookup};
use watchers::{BtcWatcherConfig, EvmWatcherConfig, TokenConfig, WatchersConfig};

use anvil::Anvil;
use esplora::{payment, Esplora};

const CREATOR: &str = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu";
const OTHER: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";

#[tokio::test]
async fn a_bitcoin_transaction_is_checked_against_the_address_it_should_pay() {
    let esplora = Esplora::start(10).await;
    let lookup = TransferLookup::new(&WatchersConfig { btc: Some(BtcWatcherConfig::new(&esplora.url)), ..Default::default() }).unwrap();
    assert!(lookup.watches(Chain::Btc) && !lookup.watches(Chain::Eth));
    // Two outputs to the creator (summed) and change elsewhere; found in the mempool and once mined.
    let txid = esplora.broadcast(payment(1, &[(CREATOR, 60_000), (OTHER, 5_000), (CREATOR, 40_000)])).to_string();
    let check = lookup.check(Currency::Btc, &txid, CREATOR).await.unwrap();
    assert_eq!(check, Some(TransferCheck::Pays(Amount::new(Currency::Btc, 100_000))));
    esplora.mine();
    assert_eq!(lookup.check(Currency::Btc, &txid, CREATOR).await.unwrap(), Some(TransferCheck::Pays(Amount::new(Currency::Btc, 100_000))));
    let elsewhere = esplora.broadcast(payment(2, &[(OTHER, 100_000)])).to_string();
    assert_eq!(lookup.check(Currency::Btc, &elsewhere, CREATOR).await.unwrap(), Some(TransferCheck::PaysElsewhere));
    let unknown = "ab".repeat(32);
    assert_eq!(lookup.check(Currency::Btc, &unknown, CREATOR).await.unwrap(), Some(TransferCheck::NotFound));
    // Whether an output is spent: the funding outpoint of `payment(1, …)` is; the new outputs are not.
    let funding = bitcoin::Txid::from_byte_array([1; 32]).to_string();
    assert_eq!(lookup.btc_spent(&funding, 0).await.unwrap(), Some(true));
    assert_eq!(lookup.btc_spent(&txid, 0).await.unwrap(), Some(false));
    // A chain without a watcher here is not looked up.
    assert_eq!(lookup.check(Currency::Eth, &unknown, CREATOR).await.unwrap(), None);
}

#[tokio::test]
async fn an_evm_transaction_is_checked_for_the_coin_and_a_configured_token() {
    let anvil = Anvil::start().await;
    let token = anvil.deploy_token().await;
    let mut config = EvmWatcherConfig::new(Chain::Eth, &anvil.url);
    config.tokens = vec![TokenConfig { symbol: "USDC".into(), contract: token.clone(), decimals: 6, currency: Some(Currency::UsdcEth) }];
    let lookup = TransferLookup::new(&WatchersConfig { evm: vec![config], ..Default::default() }).unwrap();
    let creator = "0x00000000000000000000000000000000c0ffee01";
    let native = anvil.pay(1, creator, 3_000_000_000_000_000).await;
    let usdc = anvil.pay_token(&token, creator, 25_000_000).await;
    let elsewhere = anvil.pay(1, "0x00000000000000000000000000000000000bad01", 1_000).await;
    anvil.mine(1).await;
    // The address is compared case-insensitively (EIP-55 or lower case).
    let shouted = creator.to_ascii_uppercase().replacen("0X", "0x", 1);
    assert_eq!(lookup.check(Currency::Eth, &native, &shouted).await.unwrap(), Some(TransferCheck::Pays(Amount::new(Currency::Eth, 3_000_000_000_000_000))));
    assert_eq!(lookup.check(Currency::UsdcEth, &usdc, creator).await.unwrap(), Some(TransferCheck::Pays(Amount::new(Currency::UsdcEth, 25_000_000))));
    // The token transfer pays no ETH to the creator, the ETH payment no USDC; another recipient nothing.
    assert_eq!(lookup.check(Currency::Eth, &usdc, creator).await.unwrap(), Some(TransferCheck::PaysElsewhere));
    assert_eq!(lookup.check(Currency::UsdcEth, &native, creator).await.unwrap(), Some(TransferCheck::PaysElsewhere));
    assert_eq!(lookup.check(Currency::Eth, &elsewhere, creator).await.unwrap(), Some(TransferCheck::PaysElsewhere));
    let unknown = format!("0x{}", "cd".repeat(32));
    assert_eq!(lookup.check(Currency::Eth, &unknown, creator).await.unwrap(), Some(TransferCheck::NotFound));
}
