use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use gateway::cli::{AdminCommand, Cli, Command};
use gateway::configuration::Settings;
use gateway::startup::{shutdown_signal, Application};
use gateway::telemetry;
use ticketing::creators::{AccountName, Tier};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::VerifySignature(args)) = &cli.command {
        // Only a Hive account name needs a node: the flag, else the configuration (file and environment).
        let hive_api = match (&args.hive_api, args.chain) {
            (Some(url), _) => url.clone(),
            (None, chains::Chain::Hive) => match Settings::load(cli.config.as_deref()) {
                Ok(settings) => settings.hive_api_url,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    return Ok(ExitCode::from(2));
                }
            },
            (None, _) => Settings::default().hive_api_url,
        };
        return Ok(gateway::auth::access::verify_signature_command(args, &hive_api).await);
    }
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            telemetry::init(&settings.log);
            let app = Application::build(settings).await?;
            let token = app.shutdown_token();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutdown signal received: draining");
                token.cancel();
            });
            app.run_until_stopped().await?;
        }
        Command::Turn => {
            telemetry::init(&settings.log);
            let relay = gateway::startup::start_turn_relay(&settings, None).await?;
            shutdown_signal().await;
            relay.shutdown().await;
        }
        Command::Watch { chain } => {
            telemetry::init(&settings.log);
            let mut config = gateway::startup::watchers_config(&settings)?;
            if let Some(chain) = chain {
                let chain: chains::Chain = chain.parse()?;
                config = config.only(chain);
            }
            let purchases = gateway::startup::purchases_for_cli(&settings).await?;
            let token = tokio_util::sync::CancellationToken::new();
            let supervisor = watchers::spawn_all(config, purchases, token.clone());
            anyhow::ensure!(!supervisor.status().is_empty(), "no watcher is configured for that chain ([watchers] in the configuration)");
            tracing::info!(watchers = ?supervisor.status().iter().map(|s| s.chain).collect::<Vec<_>>(), "watching");
            shutdown_signal().await;
            token.cancel();
            supervisor.shutdown().await;
        }
        Command::Migrate => {
            let store = ticketing::Store::connect(&settings.database.url, 1).await?;
            store.close().await;
            println!("migrations applied");
        }
        Command::Admin(AdminCommand::SetTier { account, tier, until }) => {
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
        Command::Admin(AdminCommand::Rescan { chain, from }) => {
            telemetry::init(&settings.log);
            let config = gateway::startup::watchers_config(&settings)?;
            let purchases = gateway::startup::purchases_for_cli(&settings).await?;
            let report = watchers::rescan::rescan(&config, chain, from, purchases).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Admin(command) => {
            let purchases = gateway::startup::purchases_for_cli(&settings).await?;
            let purchases = &purchases;
            let now = ticketing::now_ms();
            let result = match command {
                AdminCommand::Payouts { all, format, chain, fee_rate } => {
                    let btc = purchases.settings().btc.as_ref();
                    let request = gateway::payments::payout_export::ExportRequest { format, chain, fee_rate, all };
                    match gateway::payments::payout_export::render(purchases.store(), &settings, btc, request, now).await {
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
                    match gateway::payments::payout_export::addresses(purchases.store(), &settings, purchases.settings(), chain).await {
                        Ok(report) => Ok(serde_json::to_string_pretty(&report)),
                        Err(err) => {
                            eprintln!("error: {err}");
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                }
                AdminCommand::Refunds { all } => purchases.ledger("refund", !all, now).await.map(|rows| serde_json::to_string_pretty(&rows)),
                AdminCommand::Settle { entry, txid } => match gateway::payments::settlement::settle(
                    purchases.store(),
                    gateway::payments::settlement::lookup_for(&settings)?.as_ref(),
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
        Command::VerifySignature(_) => unreachable!("handled before the configuration is loaded"),
    }
    Ok(ExitCode::SUCCESS)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
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
