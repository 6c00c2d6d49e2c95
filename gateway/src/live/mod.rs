//! What happens during an event, as it happens: attendance from the rooms' events (`attendance`), ticket sales and
//! reversals from the store (`sales_feed`), both merged into each creator's live feed, and the signed callbacks
//! that carry that feed to a creator's server (`webhooks`).

pub mod attendance;
pub mod sales_feed;
pub mod webhooks;
