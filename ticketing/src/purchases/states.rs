//! The states of the money path as types: what a quote, a payment, a ticket and a ledger entry can be.
//!
//! The database keeps them as the text the migrations' CHECK constraints list (unchanged); rows are read
//! through `TryFrom<&str>`, so a value this code does not know is a corrupt row (`UnknownState`), never a
//! string compared somewhere later. Each type compares equal to its stored text (`quote.status == "paid"`), so
//! reading code stays as it was, and serialises as that text, so API responses are unchanged.

use std::fmt;

/// A stored state this code does not know: a corrupt row (or a migration this binary predates).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{text}`")]
pub struct UnknownState {
    pub what: &'static str,
    pub text: String,
}

macro_rules! stored_state {
    ($(#[$doc:meta])* $name:ident ($what:literal) { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The text stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl TryFrom<&str> for $name {
            type Error = UnknownState;

            fn try_from(text: &str) -> Result<Self, UnknownState> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownState { what: $what, text: other.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownState;

            fn try_from(text: String) -> Result<Self, UnknownState> {
                $name::try_from(text.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownState;

            fn from_str(text: &str) -> Result<Self, UnknownState> {
                $name::try_from(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

stored_state! {
    /// `quotes.status`.
    QuoteStatus ("quote status") {
        AwaitingPayment => "awaiting_payment",
        /// A payment was seen, not yet final.
        Seen => "seen",
        Confirming => "confirming",
        Paid => "paid",
        Expired => "expired",
        RefundDue => "refund_due",
        Cancelled => "cancelled",
    }
}

impl QuoteStatus {
    /// Awaiting payment or paid and not yet final: the quote may still become a ticket.
    pub fn is_open(self) -> bool {
        matches!(self, QuoteStatus::AwaitingPayment | QuoteStatus::Seen | QuoteStatus::Confirming)
    }
}

stored_state! {
    /// `payments.status`.
    PaymentStatus ("payment status") {
        Seen => "seen",
        Confirming => "confirming",
        Confirmed => "confirmed",
        /// Its block left the chain (see `reversal`).
        Orphaned => "orphaned",
        Credited => "credited",
        RefundDue => "refund_due",
    }
}

impl PaymentStatus {
    /// Final and dealt with: a later report of the payment changes nothing.
    pub fn is_final(self) -> bool {
        matches!(self, PaymentStatus::Confirmed | PaymentStatus::Credited | PaymentStatus::RefundDue)
    }
}

stored_state! {
    /// `tickets.status`.
    TicketStatus ("ticket status") {
        Valid => "valid",
        Refunded => "refunded",
        Cancelled => "cancelled",
        Banned => "banned",
        /// The payment's block left the chain; restored if the transaction lands again.
        PaymentReversed => "payment_reversed",
    }
}

stored_state! {
    /// `ledger_entries.kind`.
    LedgerKind ("ledger kind") {
        Commission => "commission",
        Payout => "payout",
        Refund => "refund",
    }
}

stored_state! {
    /// `ledger_entries.status`.
    LedgerStatus ("ledger status") {
        /// Not yet due (a payout before the event's payout delay has passed).
        Pending => "pending",
        Due => "due",
        Settled => "settled",
        Cancelled => "cancelled",
        /// A refund smaller than what sending it costs (see `minimums`).
        BelowMinimum => "below_minimum",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_what_they_store() {
        for s in QuoteStatus::ALL {
            assert_eq!(QuoteStatus::try_from(s.as_str()), Ok(*s));
        }
        for s in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::try_from(s.as_str()), Ok(*s));
        }
        for s in TicketStatus::ALL {
            assert_eq!(TicketStatus::try_from(s.as_str()), Ok(*s));
        }
        for s in LedgerKind::ALL {
            assert_eq!(LedgerKind::try_from(s.as_str()), Ok(*s));
        }
        for s in LedgerStatus::ALL {
            assert_eq!(LedgerStatus::try_from(s.as_str()), Ok(*s));
        }
        assert_eq!(QuoteStatus::Paid, "paid");
        assert_eq!(serde_json::to_string(&LedgerStatus::BelowMinimum).unwrap(), "\"below_minimum\"");
        let err = TicketStatus::try_from("lost").unwrap_err();
        assert_eq!(err.to_string(), "unknown ticket status `lost`");
    }
}
