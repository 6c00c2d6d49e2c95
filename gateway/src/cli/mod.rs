//! The command line: `gateway [--config FILE] [COMMAND]`. With no command the gateway serves.
//!
//! The arguments are here; each command's body is its own file: `serve` (serve, turn, watch), `migrate`,
//! `admin` (the operators' commands), `verify_signature`. [`run`] picks one.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod admin;
mod migrate;
mod serve;
mod verify_signature;

/// Runs the command `cli` names (with none, serves). The exit code is the command's.
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    if let Some(Command::VerifySignature(args)) = &cli.command {
        // Before the configuration is loaded: checking a signature needs none, unless it is a Hive account's.
        return Ok(verify_signature::verify_signature(args, cli.config.as_deref()).await);
    }
    let settings = crate::configuration::Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::serve(settings).await?,
        Command::Turn => serve::turn(settings).await?,
        Command::Watch { chain } => serve::watch(settings, chain).await?,
        Command::Migrate => migrate::migrate(settings).await?,
        Command::Admin(command) => return admin::admin(settings, command).await,
        Command::VerifySignature(_) => unreachable!("handled before the configuration is loaded"),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[derive(Debug, Parser)]
#[command(name = "gateway", version, about = "Real-time presence gateway with integrated ticketing")]
pub struct Cli {
    /// TOML configuration file (layered over the defaults, under the environment).
    #[arg(long, global = true, env = "GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP and WebSockets (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Run the TURN relay only (`[turn.relay]`), e.g. on its own host; it shares the secret the gateway issues
    /// credentials with. Sessions are not known to a separate relay, so it accepts any unexpired, correctly
    /// signed credential (coturn's REST-API behaviour).
    Turn,
    /// Run payment watchers only (no HTTP), against the configured database: all configured chains, or one.
    Watch {
        /// eth, pol, bnb, btc, sol, hive or xmr
        #[arg(long)]
        chain: Option<String>,
    },
    /// Operator commands that act on the database directly.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Check a wallet signature offline: prints `valid` (exit 0) or `invalid: <reason>` (exit 1); needs no
    /// database. Hive account names are looked up on `--hive-api` or the configuration's `hive_api_url`. Usage
    /// and configuration errors exit 2.
    VerifySignature(VerifySignatureArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("text").required(true).args(["message", "message_file"])))]
pub struct VerifySignatureArgs {
    /// eth, matic (pol), bnb, btc, sol, hive or xmr.
    #[arg(long, value_parser = parse_chain)]
    pub chain: chains::Chain,
    /// The address, Hive account name or Hive public key (`STM…`) that should have signed.
    #[arg(long)]
    pub address: String,
    /// The signed text (UTF-8).
    #[arg(long)]
    pub message: Option<String>,
    /// A file holding the exact signed bytes.
    #[arg(long)]
    pub message_file: Option<PathBuf>,
    /// The signature as the wallet returned it.
    #[arg(long)]
    pub signature: String,
    /// mainnet, testnet, signet or regtest.
    #[arg(long, default_value = "mainnet")]
    pub btc_network: chains::signature::BtcNetwork,
    /// mainnet, stagenet or testnet.
    #[arg(long, default_value = "mainnet")]
    pub xmr_network: chains::signature::MoneroNetwork,
    /// Hive API node for account keys; asked only when `--address` is a Hive account name. Default: the
    /// configuration's `hive_api_url` (`--config`, `GATEWAY_HIVE_API_URL`), else https://api.hive.blog.
    #[arg(long)]
    pub hive_api: Option<String>,
}

fn parse_chain(text: &str) -> Result<chains::Chain, String> {
    text.parse().map_err(|_| format!("`{text}` is not one of eth, matic, pol, bnb, btc, sol, hive, xmr"))
}

fn parse_format(text: &str) -> Result<crate::payments::payout_export::Format, String> {
    text.parse()
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set a creator's subscription tier.
    SetTier {
        account: String,
        /// free, premium or pro
        tier: String,
        /// RFC 3339 time or YYYY-MM-DD date when the subscription lapses.
        #[arg(long)]
        until: Option<String>,
    },
    /// Creator payouts due now (or `--all`), each with its address or hold; or what is due, batched per chain:
    /// `--format batches|csv|psbt|hive`.
    Payouts {
        #[arg(long)]
        all: bool,
        /// json (the payouts), batches (per chain), csv (every chain, or `--chain`), psbt (one Bitcoin
        /// transaction, base64, with what it does), hive (the `transfer` operations).
        #[arg(long, default_value = "json", value_parser = parse_format)]
        format: crate::payments::payout_export::Format,
        /// With `--format csv`: only this chain.
        #[arg(long, value_parser = parse_chain)]
        chain: Option<chains::Chain>,
        /// With `--format psbt`: sat/vB (default `payments.btc_payout_fee_rate`).
        #[arg(long)]
        fee_rate: Option<u64>,
    },
    /// The platform's 20% commission per chain and currency: earned (refund window over) and pending.
    Commission,
    /// The receiving addresses derived for quotes on a chain: the index range in use and the gap a restored
    /// wallet must scan; for Bitcoin the account's output descriptor.
    Addresses {
        /// btc, eth, pol or bnb (the chains with derived addresses).
        #[arg(long, value_parser = parse_chain)]
        chain: chains::Chain,
    },
    /// List refunds (due now, or `--all`).
    Refunds {
        #[arg(long)]
        all: bool,
    },
    /// Record the transaction that paid a due payout or refund.
    Settle {
        /// The ledger entry id (from `payouts` or `refunds`).
        entry: i64,
        txid: String,
    },
    /// Read a chain's final blocks again for every quote (also those past the watch window) and record what was
    /// missed; idempotent, and the chain watcher's cursor is left alone. Bitcoin, EVM networks, Solana.
    Rescan {
        /// btc, eth, pol, bnb or sol (its [watchers] section is used).
        #[arg(long, value_parser = parse_chain)]
        chain: chains::Chain,
        /// A block height, or a time (RFC 3339 or YYYY-MM-DD): from about then, for quotes made since.
        #[arg(long)]
        from: watchers::rescan::RescanFrom,
    },
}
