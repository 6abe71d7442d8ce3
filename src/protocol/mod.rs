//! The Pusher wire protocol, as pure data: what clients send ([`ClientMessage`]), what the
//! server sends ([`ServerMessage`]), close and error codes ([`codes`]), validated names
//! ([`SocketId`], [`ChannelName`], [`EventName`]), the signed member and user payloads
//! ([`member`]: presence `channel_data`, sign-in `user_data`) and the framing of the HTTP
//! fallback transports ([`sockjs`]).
//!
//! This module owns the protocol's one quirk, the JSON-encoded-string `data` field: it is
//! decoded in [`client`] and encoded in [`server`], nowhere else. It does no I/O and knows
//! nothing of actix, tokio or our shared state.
#![warn(missing_docs)]

pub mod client;
pub mod codes;
pub mod member;
pub mod names;
pub mod server;
pub mod sockjs;

pub use client::{ClientMessage, DecodeError};
pub use codes::CloseCode;
pub use names::{ChannelKind, ChannelName, EventName, NameError, SocketId, UserId};
pub use server::ServerMessage;
