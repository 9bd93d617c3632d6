//! The WebSocket protocol (RFC 6455) over any byte stream, for both roles. Knows nothing of
//! addresses, options or the relay: an endpoint hands it a stream whose handshake is done and
//! gets back the two halves of a message connection ([`split`]).
//!
//! - `conn`: the connection state machine and its reader/writer halves;
//! - `frame`: frame headers read and written, the size limits, Close payloads;
//! - `mask`: masking, in place and while copying;
//! - `handshake`: the client's opening handshake (tungstenite does the HTTP part).

mod conn;
mod frame;
mod handshake;
mod mask;

pub use conn::{Role, split};
pub use frame::Limits;
pub(crate) use handshake::client as client_handshake;
