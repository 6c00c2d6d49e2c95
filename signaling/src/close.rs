//! WebSocket close codes: every rejection reaches the client as a precise code.
//!
//! Some codes are sent by this crate (frame size, rate, slow consumer, supersede, kick, ban,
//! shutdown); the others (4401, 4403, 4409, 4410) belong to the gateway's admission step
//! and are listed here so that both sides use one table. docs/PROTOCOL.md mirrors it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// The server is shutting down.
    Shutdown,
    /// A frame was larger than `max_frame_bytes`.
    FrameTooBig,
    /// A newer connection took the same seat.
    Superseded,
    /// A host removed the peer; it may rejoin.
    Kicked,
    /// A host banned the peer's seat.
    Banned,
    /// The peer's guaranteed outgoing queue overflowed.
    SlowConsumer,
    /// A frame was not valid protocol JSON.
    Malformed,
    /// Bad, expired or replayed signature or session token (gateway).
    Unauthorized,
    /// No valid ticket for this event (gateway).
    NoTicket,
    /// Every attendee seat is in use.
    RoomFull,
    /// The event is not live; the reason carries the opening time (gateway).
    NotLive,
    /// The peer sent more messages than its rate allows.
    RateLimited,
}

impl CloseCode {
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::Shutdown => 1001,
            CloseCode::FrameTooBig => 1009,
            CloseCode::Superseded => 4000,
            CloseCode::Kicked => 4001,
            CloseCode::Banned => 4003,
            CloseCode::SlowConsumer => 4008,
            CloseCode::Malformed => 4400,
            CloseCode::Unauthorized => 4401,
            CloseCode::NoTicket => 4403,
            CloseCode::RoomFull => 4409,
            CloseCode::NotLive => 4410,
            CloseCode::RateLimited => 4429,
        }
    }

    /// The reason text sent when nothing more specific is known.
    pub const fn reason(self) -> &'static str {
        match self {
            CloseCode::Shutdown => "shutdown",
            CloseCode::FrameTooBig => "frame too big",
            CloseCode::Superseded => "superseded",
            CloseCode::Kicked => "kicked",
            CloseCode::Banned => "banned",
            CloseCode::SlowConsumer => "slow consumer",
            CloseCode::Malformed => "malformed",
            CloseCode::Unauthorized => "unauthorized",
            CloseCode::NoTicket => "no valid ticket",
            CloseCode::RoomFull => "room full",
            CloseCode::NotLive => "event not live",
            CloseCode::RateLimited => "rate limited",
        }
    }
}

/// A close frame ready for the WebSocket layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: u16,
    /// At most 123 bytes: the WebSocket limit for a close reason.
    pub reason: String,
}

impl CloseFrame {
    /// The limit RFC 6455 puts on a close reason (125-byte payload minus the code).
    pub const MAX_REASON_BYTES: usize = 123;

    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > Self::MAX_REASON_BYTES {
            let mut end = Self::MAX_REASON_BYTES;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        Self { code: code.code(), reason }
    }
}

impl From<CloseCode> for CloseFrame {
    fn from(code: CloseCode) -> Self {
        CloseFrame::new(code, code.reason())
    }
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let frame = CloseFrame::new(CloseCode::NotLive, "é".repeat(100));
        assert!(frame.reason.len() <= CloseFrame::MAX_REASON_BYTES);
        assert_eq!(frame.reason.len(), 122);
        assert_eq!(frame.code, 4410);
    }
}
