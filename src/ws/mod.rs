//! The WebSocket protocol (RFC 6455) over any byte stream, for both roles. Knows nothing of
//! addresses, options or the relay: endpoints hand it a connected stream, it hands back the two
//! halves of a message connection.

pub mod conn;
