//! Close and error codes of the Pusher protocol (4000–4399) and how herald uses them, with the
//! RFC 6455 codes (1002, 1007, 1009) herald closes with when a client breaks WebSocket rules.
//!
//! pusher-js decides whether to reconnect from the code alone: 4000–4099 stop, 4100–4199 back
//! off, 4200–4299 reconnect at once, 4300 and above stop. Codes meant only for `pusher:error`
//! events (4301, 4302) must never be used to close a socket.

/// A WebSocket close code herald sends, with the message that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 4001: the app key is unknown.
    AppNotFound,
    /// 4003: the app is disabled.
    AppDisabled,
    /// 4004: the app is over its connection quota.
    OverQuota,
    /// 4007: the client speaks a protocol version herald does not support.
    UnsupportedProtocol,
    /// 4009: the connection is not (or no longer) authorized.
    Unauthorized,
    /// 4100: the server is over capacity; used for slow consumers whose queue is full.
    OverCapacity,
    /// 4200: reconnect immediately (server shutting down or draining).
    Reconnect,
    /// 4201: no pong arrived after the server's ping.
    PongNotReceived,
    /// 1009: a frame larger than the configured maximum.
    MessageTooBig,
    /// 1002: the client broke the WebSocket framing rules (RFC 6455 §7.4.1, protocol error): an
    /// unmasked frame, reserved bits or opcodes, a fragmented or oversized control frame, a
    /// continuation without a start, a malformed close frame.
    ProtocolError,
    /// 1007: a text message (or a close reason) that is not UTF-8 (RFC 6455 §7.4.1, §8.1).
    InvalidPayload,
}

impl CloseCode {
    /// Every code herald closes with.
    pub const ALL: [CloseCode; 11] = [
        CloseCode::AppNotFound,
        CloseCode::AppDisabled,
        CloseCode::OverQuota,
        CloseCode::UnsupportedProtocol,
        CloseCode::Unauthorized,
        CloseCode::OverCapacity,
        CloseCode::Reconnect,
        CloseCode::PongNotReceived,
        CloseCode::MessageTooBig,
        CloseCode::ProtocolError,
        CloseCode::InvalidPayload,
    ];

    /// The numeric code sent in the close frame and in `pusher:error`.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::AppNotFound => 4001,
            CloseCode::AppDisabled => 4003,
            CloseCode::OverQuota => 4004,
            CloseCode::UnsupportedProtocol => 4007,
            CloseCode::Unauthorized => 4009,
            CloseCode::OverCapacity => 4100,
            CloseCode::Reconnect => 4200,
            CloseCode::PongNotReceived => 4201,
            CloseCode::MessageTooBig => 1009,
            CloseCode::ProtocolError => 1002,
            CloseCode::InvalidPayload => 1007,
        }
    }

    /// Whether `pusher:error` with the same code goes before the close frame: for every close
    /// but a client's broken framing (1002, 1007), which the close frame alone answers, as
    /// RFC 6455 §7.1.7 has it (the client may not even read text frames right).
    pub fn with_pusher_error(self) -> bool {
        !matches!(self, CloseCode::ProtocolError | CloseCode::InvalidPayload)
    }
}

/// 4301: a client event was rejected by the rate limit (sent as `pusher:error` only).
pub const CLIENT_EVENT_RATE_LIMIT: u16 = 4301;
/// 4302: the watchlist was longer than allowed (sent as `pusher:error` only).
pub const WATCHLIST_LIMIT: u16 = 4302;

/// Truncates a close reason to the 123 bytes a WebSocket close frame allows, on a char boundary.
pub fn close_reason(message: &str) -> &str {
    if message.len() <= 123 {
        return message;
    }
    let mut end = 123;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_numbers() {
        let codes = [
            (CloseCode::AppNotFound, 4001),
            (CloseCode::AppDisabled, 4003),
            (CloseCode::OverQuota, 4004),
            (CloseCode::UnsupportedProtocol, 4007),
            (CloseCode::Unauthorized, 4009),
            (CloseCode::OverCapacity, 4100),
            (CloseCode::Reconnect, 4200),
            (CloseCode::PongNotReceived, 4201),
            (CloseCode::MessageTooBig, 1009),
            (CloseCode::ProtocolError, 1002),
            (CloseCode::InvalidPayload, 1007),
        ];
        for (close, code) in codes {
            assert_eq!(close.code(), code, "{close:?}");
        }
        let listed: Vec<CloseCode> = codes.iter().map(|(close, _)| *close).collect();
        assert_eq!(listed, CloseCode::ALL, "ALL lists every code once");
    }

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123);
        assert_eq!(cut.len() % 2, 0);
        assert_eq!(close_reason("short"), "short");
    }
}
