//! The WebSocket protocol (RFC 6455) over any byte stream, for both roles: the protocol's part
//! of the opening handshakes, then the connection itself, whose two halves ([`split`]) are a
//! message connection. Knows nothing of addresses, options or the relay.
//!
//! - `conn`: the connection state machine and its reader/writer halves;
//! - `frame`: frame headers read and written, the size limits, Close payloads;
//! - `mask`: masking, in place and while copying;
//! - `message`: data messages from their frames (fragments, UTF-8, inflation);
//! - `deflate`: permessage-deflate (RFC 7692): negotiation and per-message compression;
//! - `handshake`: the client's opening handshake (tungstenite does the HTTP part);
//! - `upgrade`: the server's side of it (the request checked, the 101 answer), without I/O.

mod conn;
mod deflate;
mod frame;
mod handshake;
mod mask;
mod message;
mod upgrade;

// Public on purpose, for the fuzz targets: `wsconn_frames` drives `split`, `handshake` parses
// a `RequestHead` and checks the `Upgrade` or `Refusal` it gets.
pub use conn::{Role, split};
pub use deflate::{DeflateOptions, Negotiated};
pub use frame::Limits;
pub(crate) use handshake::{ClientFailure, client as client_handshake};
pub(crate) use message::BadCompressedData;
pub use upgrade::{Refusal, RequestHead, Upgrade};
pub(crate) use upgrade::{check_handshake, choose_deflate, choose_protocol, refuse};
