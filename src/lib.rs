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
//! (what counts as a secret, and redaction), [`units`] (durations and sizes as users write them).

pub mod addr;
pub mod app;
pub mod budget;
pub mod cli;
pub mod config;
pub mod conn;
pub mod endpoint;
pub mod error;
pub mod generate;
pub(crate) mod io;
pub mod logging;
pub mod relay;
pub mod secret;
pub mod shutdown;
pub mod systemd;
pub mod text;
pub mod units;
pub mod ws;
