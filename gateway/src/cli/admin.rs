//! `gateway admin …`: operators' commands against the store (tiers, payouts and refunds, settlement, the
//! addresses report, a chain rescan). Output is JSON (or CSV/PSBT for payouts) on stdout; errors on stderr.

use std::process::ExitCode;

use anyhow::Context;
use ticketing::creators::{AccountName, Tier};

use super::AdminCommand;
use crate::configuration::Settings;
use crate::telemetry;

pub async fn admin(settings: Settings, command: AdminCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::SetTier { account, tier, until } => {
            let account = AccountName::parse(&account)?;
            let tier: Tier = tier.parse()?;
            let until = until.as_deref().map(parse_date).transpose()?;
            if let Some(until) = until {
                anyhow::ensure!(until > ticketing::now_ms(), "--until {} is in the past", rfc3339(until));
            }
            let store = ticketing::Store::connect(&settings.database.url, 1).await?;
            let creator = store.set_tier(&account, tier, until, "admin-cli").await?;
            store.close().await;
            // Times as people read them, not unix milliseconds.
            let mut shown = serde_json::to_value(&creator)?;
            for field in ["tier_until", "created_at", "updated_at"] {
                if let Some(ms) = shown.get(field).and_then(serde_json::Value::as_i64) {
                    shown[field] = rfc3339(ms).into();
                }
            }
            println!("{shown}");
        }
        AdminCommand::Rescan { chain, from } => {
            telemetry::init(&settings.log);
            let config = crate::startup::watchers_config(&settings)?;
            let purchases = crate::startup::purchases_for_cli(&settings).await?;
            let report = watchers::rescan::rescan(&config, chain, from, purchases).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        command => {
            let purchases = crate::startup::purchases_for_cli(&settings).await?;
            let purchases = &purchases;
            let now = ticketing::now_ms();
            let result = match command {
                AdminCommand::Payouts { all, format, chain, fee_rate } => {
                    let btc = purchases.settings().btc.as_ref();
                    let request = crate::payments::payout_export::ExportRequest { format, chain, fee_rate, all };
                    match crate::payments::payout_export::render(purchases.store(), &settings, btc, request, now).await
                    {
                        Ok(rendered) => Ok(Ok(rendered.body)),
                        Err(err) => {
                            eprintln!("error: {err} ({})", err.code());
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                }
                AdminCommand::Commission => {
                    purchases.store().commission_by_chain(now).await.map(|lines| serde_json::to_string_pretty(&lines))
                }
                AdminCommand::Addresses { chain } => {
                    match crate::payments::payout_export::addresses(
                        purchases.store(),
                        &settings,
                        purchases.settings(),
                        chain,
                    )
                    .await
                    {
                        Ok(report) => Ok(serde_json::to_string_pretty(&report)),
                        Err(err) => {
                            eprintln!("error: {err}");
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                }
                AdminCommand::Refunds { all } => {
                    purchases.ledger("refund", !all, now).await.map(|rows| serde_json::to_string_pretty(&rows))
                }
                AdminCommand::Settle { entry, txid } => match crate::payments::settlement::settle(
                    purchases.store(),
                    crate::payments::settlement::lookup_for(&settings)?.as_ref(),
                    entry,
                    &txid,
                    "admin-cli",
                    now,
                )
                .await
                {
                    Ok(done) => Ok(Ok(format!(
                        "settled entry {} ({} {}) with {} to {} (checked: {})",
                        done.entry.id,
                        done.entry.kind,
                        done.entry.currency,
                        done.entry.settled_txid.as_deref().unwrap_or_default(),
                        done.entry.paid_to.as_deref().unwrap_or_default(),
                        done.checked
                    ))),
                    Err(err) => {
                        eprintln!("error: {err}");
                        return Ok(ExitCode::FAILURE);
                    }
                },
                AdminCommand::SetTier { .. } | AdminCommand::Rescan { .. } => unreachable!("handled above"),
            };
            // CSV ends its own lines; JSON and messages get one.
            let text = result??;
            if text.ends_with('\n') {
                print!("{text}");
            } else {
                println!("{text}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Accepts an RFC 3339 time or a plain date (midnight UTC).
fn parse_date(text: &str) -> anyhow::Result<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("`{text}` is neither an RFC 3339 time nor a YYYY-MM-DD date"))?;
    Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis())
}
