//! `gateway migrate`: apply the database migrations and stop (the gateway also applies them at start-up).

use crate::configuration::Settings;

pub async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = ticketing::Store::connect(&settings.database.url, 1).await?;
    store.close().await;
    println!("migrations applied");
    Ok(())
}
