//! The command line: `gateway [--config FILE] [COMMAND]`. With no command the gateway serves.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Operator commands that act on the database directly.
    #[command(subcommand)]
    Admin(AdminCommand),
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
    /// List creator payouts (due now, or `--all`).
    Payouts {
        #[arg(long)]
        all: bool,
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
}
