//! Chain and currency domain types shared by every crate that touches money or wallets.
//!
//! This crate knows about blockchains but nothing about events, rooms or storage: amounts are integer base
//! units of a [`Currency`], parsed once at the edge and never represented as floats.

pub mod address;
pub mod amount;
pub mod challenge;
pub mod currency;
pub mod derive;
pub mod hive_account;
pub mod psbt;
pub mod signature;

pub use amount::{Amount, AmountError};
pub use currency::{Chain, Currency, Stablecoin, UnknownCurrency};
