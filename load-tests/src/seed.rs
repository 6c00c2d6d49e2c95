//! Events and tickets for a run, made through the ticketing store the gateway reads: an event row like the
//! gateway's own tests insert, then per attendee a real quote and a confirmed payment reported as a watcher
//! reports it, which issues the ticket.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use bitcoin::bip32::{DerivationPath, Xpriv, Xpub};
use bitcoin::secp256k1::{All, Secp256k1};
use chains::derive::EvmAccount;
use chains::Currency;
use futures_util::{stream, StreamExt, TryStreamExt};
use ticketing::creators::{AccountName, Tier};
use ticketing::purchases::{PaymentOutcome, PaymentReport, PaymentSettings, Purchases, QuoteRequest};
use ticketing::rates::StaticRates;
use ticketing::Store;

use crate::wallet::EvmWallet;

/// The platform's receiving account for quotes (a fixed test xpub; nothing is ever paid to it).
pub fn purchases(store: &Store) -> Purchases {
    let secp = Secp256k1::new();
    let master = Xpriv::new_master(bitcoin::Network::Bitcoin, &[42u8; 32]).expect("fixed seed");
    let account = master.derive_priv(&secp, &DerivationPath::from_str("m/44'/60'/0'").expect("path")).expect("derive");
    let mut settings = PaymentSettings::new("dlux-tickets");
    settings.evm = Some(EvmAccount::parse(&Xpub::from_priv(&secp, &account).to_string()).expect("xpub"));
    Purchases::new(store.clone(), Arc::new(StaticRates::development()), settings, &[0x11; 32])
}

/// A published event that is live now, for `capacity` attendees, paid in ETH.
pub async fn live_event(store: &Store, capacity: i64) -> anyhow::Result<i64> {
    store.set_tier(&AccountName::parse("loadtest").expect("valid name"), Tier::Pro, None, "load-tests").await?;
    let now = ticketing::now_ms();
    let id = ticketing::testing::SeedEvent::new(now - 120_000)
        .creator("loadtest")
        .title("Load test")
        .price("500", "USD")
        .capacity(capacity)
        .starts(now - 60_000)
        .ends(now + 6 * 3_600_000)
        .sales(now - 120_000, Some(now + 6 * 3_600_000))
        // One shard as large as the event: the scenarios measure one room; `shards` sets its own size.
        .shard_size(capacity.max(1))
        .try_insert(store)
        .await
        .context("insert event")?;
    Ok(id)
}

/// Buys one ticket: a quote, then its payment confirmed.
pub async fn buy(purchases: &Purchases, event_id: i64, wallet: &str) -> anyhow::Result<()> {
    let now = ticketing::now_ms();
    let quote = purchases
        .create_quote(QuoteRequest { event_id, currency: Currency::Eth, wallet_address: wallet.into() }, now)
        .await
        .context("create quote")?;
    let report = PaymentReport {
        chain: quote.chain().context("quote chain")?,
        txid: format!("0x{}", quote.id),
        output_index: 0,
        quote_id: Some(quote.id.clone()),
        memo: None,
        amount: quote.amount().context("quote amount")?,
        to_address: quote.payment_address.clone(),
        from_address: Some(wallet.into()),
        block_height: Some(10),
        block_hash: Some("0xab".into()),
        confirmations: 64,
        is_final: true,
    };
    match purchases.report_payment(report, now).await.context("report payment")? {
        PaymentOutcome::TicketIssued { .. } => Ok(()),
        other => anyhow::bail!("payment did not issue a ticket: {other:?}"),
    }
}

/// An attendee: a wallet holding a ticket for `event_id`.
pub struct Attendee {
    pub event_id: i64,
    pub wallet: EvmWallet,
}

/// `per_event` ticket holders for each event, bought eight at a time.
pub async fn attendees(
    store: &Store,
    secp: &Secp256k1<All>,
    events: &[i64],
    per_event: usize,
    salt: u64,
) -> anyhow::Result<Vec<Attendee>> {
    let purchases = purchases(store);
    let mut out = Vec::with_capacity(events.len() * per_event);
    for (e, &event_id) in events.iter().enumerate() {
        for i in 0..per_event {
            out.push(Attendee { event_id, wallet: EvmWallet::derive(secp, salt, (e * per_event + i) as u64) });
        }
    }
    stream::iter(out.iter().map(|a| buy(&purchases, a.event_id, &a.wallet.address)))
        .buffer_unordered(8)
        .try_collect::<()>()
        .await?;
    Ok(out)
}
