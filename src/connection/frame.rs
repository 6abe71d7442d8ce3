//! [`Frame`]: one server-to-client WebSocket text frame, encoded once — header and payload in
//! one shared buffer — so every subscriber of an event gets the same bytes with a refcount
//! bump, and writing it is a plain socket write with no framing or copy per connection.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// A complete unmasked WebSocket frame (RFC 6455 §5.2: servers never mask); clones share the
/// bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    wire: Bytes,
    /// Where the payload starts in `wire` (2, 4 or 10).
    payload_at: u8,
}

impl Frame {
    /// A final text frame carrying `payload`.
    pub fn text(payload: &str) -> Self {
        let len = payload.len();
        let mut wire = BytesMut::with_capacity(len + 10);
        // FIN + opcode 1 (text).
        wire.put_u8(0x81);
        match len {
            0..=125 => wire.put_u8(len as u8),
            126..=0xFFFF => {
                wire.put_u8(126);
                wire.put_u16(len as u16);
            }
            _ => {
                wire.put_u8(127);
                wire.put_u64(len as u64);
            }
        }
        let payload_at = wire.len() as u8;
        wire.put_slice(payload.as_bytes());
        Frame {
            wire: wire.freeze(),
            payload_at,
        }
    }

    /// Bytes that are already framed (tungstenite's control frames), written as they are.
    pub(super) fn raw(wire: Bytes) -> Self {
        Frame {
            wire,
            payload_at: 0,
        }
    }

    /// What goes on the wire.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The payload text (tests and logs; delivery writes [`wire`](Self::wire)).
    pub fn payload(&self) -> &str {
        std::str::from_utf8(&self.wire[usize::from(self.payload_at)..]).unwrap_or_default()
    }
}

impl From<String> for Frame {
    fn from(payload: String) -> Self {
        Frame::text(&payload)
    }
}

impl From<&str> for Frame {
    fn from(payload: &str) -> Self {
        Frame::text(payload)
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.payload())
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Frame").field(&self.payload()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_for_each_length_class() {
        let short = Frame::text("hi");
        assert_eq!(short.wire(), b"\x81\x02hi");
        assert_eq!(short.payload(), "hi");

        let medium = "m".repeat(300);
        let frame = Frame::text(&medium);
        assert_eq!(&frame.wire()[..4], &[0x81, 126, 0x01, 0x2C]);
        assert_eq!(frame.payload(), medium);

        let long = "l".repeat(70_000);
        let frame = Frame::text(&long);
        assert_eq!(&frame.wire()[..2], &[0x81, 127]);
        assert_eq!(&frame.wire()[2..10], &70_000u64.to_be_bytes());
        assert_eq!(frame.payload().len(), 70_000);

        assert_eq!(Frame::text("").wire(), b"\x81\x00");
    }
}
