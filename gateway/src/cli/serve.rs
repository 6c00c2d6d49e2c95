//! The long-running commands: `serve` (the gateway), `turn` (the TURN relay alone) and `watch` (the chain
//! watchers alone, for a node that serves without them). Each runs until SIGINT/SIGTERM.

use crate::configuration::Settings;
use crate::startup::{shutdown_signal, Application};
use crate::telemetry;

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    telemetry::init(&settings.log);
    let app = Application::build(settings).await?;
    let token = app.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received: draining");
        token.cancel();
    });
    app.run_until_stopped().await?;
    Ok(())
}

pub async fn turn(settings: Settings) -> anyhow::Result<()> {
    telemetry::init(&settings.log);
    let relay = crate::startup::start_turn_relay(&settings, None).await?;
    shutdown_signal().await;
    relay.shutdown().await;
    Ok(())
}

pub async fn watch(settings: Settings, chain: Option<String>) -> anyhow::Result<()> {
    telemetry::init(&settings.log);
    let mut config = crate::startup::watchers_config(&settings)?;
    if let Some(chain) = chain {
        let chain: chains::Chain = chain.parse()?;
        config = config.only(chain);
    }
    let purchases = crate::startup::purchases_for_cli(&settings).await?;
    let token = tokio_util::sync::CancellationToken::new();
    let supervisor = watchers::spawn_all(config, purchases, token.clone());
    anyhow::ensure!(
        !supervisor.status().is_empty(),
        "no watcher is configured for that chain ([watchers] in the configuration)"
    );
    tracing::info!(watchers = ?supervisor.status().iter().map(|s| s.chain).collect::<Vec<_>>(), "watching");
    shutdown_signal().await;
    token.cancel();
    supervisor.shutdown().await;
    Ok(())
}
