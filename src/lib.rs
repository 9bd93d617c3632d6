//! wsbridge: bridges WebSockets to TCP, Unix sockets and standard input/output.
//!
//! ```text
//! argv ─► cli::Cli ─► addr::Address ×2 ─► config::Config ─► app::run
//!           clap      inert, no I/O         validated pairing,    │
//!                     FromStr + Display     typed options         ▼
//!                                                    endpoint::{Opener, Listener}
//!                                           each side yields Conn: Bytes | Messages
//!                                                                 │
//!                                                                 ▼
//!                                             relay::bridge(Conn, Conn, &RelayOptions)
//!                                      Bytes↔Bytes: copy · Bytes↔Messages: framing codec
//!                                      Messages↔Messages: forward, types kept
//!                                      + close handshake, batching, backpressure
//! ```
//!
//! Modules: [`cli`] (what the user typed), [`addr`] (address specifiers), [`config`] (validated
//! options), [`error`] (typed errors, exit codes), [`app`] (listener loop and sessions),
//! [`conn`] (the two connection shapes endpoints yield and the relay consumes),
//! [`endpoint`] (one module per address kind), [`relay`] (the pumps and framing codecs),
//! [`ws`] (the WebSocket protocol after the handshake, and the handshakes' glue),
//! `io` (the output queue and the read-size policy of the local side and the WebSocket
//! connection),
//! [`generate`] (man page and completions), [`systemd`] (readiness notification, watchdog and
//! socket activation), [`budget`] (the process-wide limit for buffered message bytes),
//! [`text`] (network text made safe to print), [`logging`] (the log setup, and the filter that
//! keeps secrets out of it), [`shutdown`] (the one shutdown handle of a run), [`secret`]
//! (what counts as a secret, and redaction), [`units`] (durations and sizes as users write
//! them), [`workers`] (the threads a listener's sessions run on).

pub(crate) mod addr;
pub(crate) mod app;
pub(crate) mod budget;
pub(crate) mod cli;
pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod endpoint;
pub(crate) mod entry;
pub(crate) mod error;
pub(crate) mod fdlimit;
pub(crate) mod generate;
pub(crate) mod io;
pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod relay;
pub(crate) mod secret;
pub(crate) mod shutdown;
pub(crate) mod systemd;
pub(crate) mod text;
pub(crate) mod units;
pub(crate) mod workers;
pub(crate) mod ws;

pub use entry::main;

/// What `fuzz/` and the tests drive directly, re-exported on purpose. Not a stable API: the
/// crate is a binary first, and everything else in it is crate-private.
pub mod internals {
    pub use crate::endpoint::ws_server::check_upgrade;
    pub use crate::endpoint::{Header, ServerOptions};
    pub use crate::generate::files;
    pub use crate::relay::framing::{
        Framing, FramingError, FramingOptions, LocalDecoder, LocalEncoder, LocalEvent, Mode,
        NewlinePolicy,
    };
    pub use crate::ws::{DeflateOptions, Limits, Negotiated, RequestHead, Role, split};
}
