//! Runs the relay on loopback and prints a credential, for trying TURN clients by hand:
//! `cargo run -p turn-relay --example serve` then e.g.
//! `turnutils_uclient -p <port> -u <username> -w <password> -e 127.0.0.1 127.0.0.1`.

use turn_relay::{SessionId, SessionRegistry, TurnConfig, TurnRelay};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = TurnConfig::loopback("example-shared-secret");
    if let Ok(port) = std::env::var("TURN_PORT") {
        let port: u16 = port.parse()?;
        config.listen_udp = Some(([127, 0, 0, 1], port).into());
        config.listen_tcp = Some(([127, 0, 0, 1], port).into());
    }
    let sessions = SessionRegistry::new();
    let relay = TurnRelay::start(config, sessions.clone()).await?;
    let session = SessionId::parse("example")?;
    sessions.register(session.clone());
    let c = relay.issue(&session);
    println!("udp={:?} tcp={:?}", relay.udp_addr(), relay.tcp_addr());
    println!("username={} password={}", c.username, c.credential);
    tokio::signal::ctrl_c().await?;
    relay.shutdown().await;
    println!("{:?}", relay.stats().snapshot());
    Ok(())
}
