//! Money after the sale: which currencies this node can be paid in (`payability`), the exchange rates it quotes
//! with (`price_feed`), what is owed to creators and buyers as payout batches (`payout_export`), and settling a
//! payout or refund against the chain (`settlement`). What a payment *does* is decided in `ticketing`; this is
//! the gateway's side: configuration, chain lookups and file formats.

pub mod payability;
pub mod payout_export;
pub mod price_feed;
pub mod settlement;
