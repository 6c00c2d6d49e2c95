//! Shared test fixtures for the EVM and Bitcoin watcher tests: a store with an event on sale, quotes with
//! derived addresses, a watch context.
#![allow(dead_code)]

use std::str::FromStr;
use std::sync::Arc;

use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use bitcoin::secp256k1::Secp256k1;
use bitcoin::Network;
use chains::derive::{BtcAccount, EvmAccount};
use chains::signature::BtcNetwork;
use chains::{Amount, Chain, Currency};
use ticketing::creators::{AccountName, Tier};
use ticketing::purchases::{PaymentSettings, Purchases, QuoteRequest, QuoteRow, TicketRow};
use ticketing::rates::StaticRates;
use ticketing::testing::RawSql;
use ticketing::Store;
use watchers::{ChainMetrics, WatchContext};

/// BIP-84 test vector account ("abandon … about"), as in ticketing's tests.
pub const ZPUB: &str =
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
pub const BTC_BUYER: &str = "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g";
pub const EVM_BUYER: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
const HOUR: i64 = 3_600_000;

/// `m/44'/60'/0'` of the "abandon … about" mnemonic.
pub fn evm_xpub() -> String {
    let seed = hex_decode("5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4");
    let secp = Secp256k1::new();
    let master = Xpriv::new_master(Network::Bitcoin, &seed).unwrap();
    let path = DerivationPath::from_str("m/44'/60'/0'").unwrap();
    Xpub::from_priv(&secp, &master.derive_priv(&secp, &path).unwrap()).to_string()
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

pub fn purchases(store: &Store) -> Purchases {
    purchases_with_tokens(store, &[])
}

/// Purchases that also quote the given tokens (currency, contract).
pub fn purchases_with_tokens(store: &Store, tokens: &[(Currency, &str)]) -> Purchases {
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.btc = Some(BtcAccount::parse(ZPUB, BtcNetwork::Mainnet).unwrap());
    settings.evm = Some(EvmAccount::parse(&evm_xpub()).unwrap());
    for (currency, contract) in tokens {
        settings.tokens.insert(*currency, contract).unwrap();
    }
    Purchases::new(store.clone(), Arc::new(StaticRates::development()), settings, &[7u8; 32])
}

/// An event on sale now (real time: the watchers use the real clock), priced in `currency`.
pub async fn event(store: &Store, seats: i64, currency: Currency, price: &str) -> i64 {
    let now = ticketing::now_ms();
    let creator = AccountName::parse("alice").unwrap();
    store.set_tier(&creator, Tier::Premium, None, "test").await.unwrap();
    let amount = Amount::parse(currency, price).unwrap();
    ticketing::testing::SeedEvent::new(now - HOUR)
        .space_id("hall")
        .price(&amount.units.to_string(), currency.symbol())
        .accepts(currency.symbol())
        .capacity(seats)
        .starts(now + 24 * HOUR)
        .ends(now + 27 * HOUR)
        .insert(store)
        .await
}

pub async fn quote(p: &Purchases, event_id: i64, currency: Currency) -> QuoteRow {
    let wallet = if currency == Currency::Btc { BTC_BUYER } else { EVM_BUYER };
    p.create_quote(QuoteRequest { event_id, currency, wallet_address: wallet.into() }, ticketing::now_ms())
        .await
        .unwrap()
}

pub async fn reload(p: &Purchases, quote: &QuoteRow) -> QuoteRow {
    p.quote(&quote.id).await.unwrap().unwrap()
}

pub async fn ticket(p: &Purchases, quote: &QuoteRow) -> Option<TicketRow> {
    p.ticket_for_quote(&quote.id).await.unwrap()
}

pub fn context(p: &Purchases, chain: Chain) -> WatchContext {
    WatchContext::new(chain, p.clone(), Arc::new(ChainMetrics::default()))
}

/// Payments of a quote: (txid, output index, status), in order.
pub async fn payments(store: &Store, quote: &QuoteRow) -> Vec<(String, i64, String)> {
    sqlx::query_as("SELECT txid, output_index, status FROM payments WHERE quote_id = $1 ORDER BY id")
        .bind(&quote.id)
        .fetch_all(store.raw_pool())
        .await
        .unwrap()
}

/// Refund entries of a quote: (reason, amount units).
pub async fn refunds(store: &Store, quote: &QuoteRow) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT reason, amount_units FROM ledger_entries WHERE quote_id = $1 AND kind = 'refund' ORDER BY id",
    )
    .bind(&quote.id)
    .fetch_all(store.raw_pool())
    .await
    .unwrap()
}
