//! Typed errors and the one exit-code table (documented in docs/exit-codes.md and the man page).
//!
//! Every failure the user can see is an [`Error`]; `main` prints it once as
//! `wsbridge: <message>` and exits with [`Error::exit_code`]. Messages never contain secrets:
//! targets are rendered through [`crate::addr::Address`]'s redacting `Display`.

use std::time::Duration;

/// Process exit codes. Kept in one place so docs, the man page and tests agree.
pub mod exit {
    /// Everything worked; for a single session the peer closed normally (1000, 1001 or no code).
    pub const OK: u8 = 0;
    /// Internal error or an unexpected local I/O failure (a bug, or the OS refused something).
    pub const INTERNAL: u8 = 1;
    /// Bad command line: unknown flag or address, bad URL, unreadable header file.
    pub const USAGE: u8 = 2;
    /// A host name could not be resolved.
    pub const DNS: u8 = 3;
    /// TCP or Unix connection failed (refused, unreachable, no such socket), or an exec: program
    /// could not be started.
    pub const CONNECT: u8 = 4;
    /// TLS failed: untrusted or mismatched certificate, handshake failure.
    pub const TLS: u8 = 5;
    /// The server refused the WebSocket upgrade (HTTP status other than 101).
    pub const HANDSHAKE: u8 = 6;
    /// A connect, handshake or close timeout expired.
    pub const TIMEOUT: u8 = 7;
    /// The peer closed abnormally: a close code other than 1000/1001/1005, or no Close at all.
    pub const PEER_CLOSED: u8 = 8;
    /// The peer violated RFC 6455 (bad frame, invalid UTF-8 in text, oversize message).
    pub const PROTOCOL: u8 = 9;
    /// A listener could not be set up (address in use, permission denied).
    pub const LISTEN: u8 = 10;
    /// Local input was refused (a message longer than --max-message-size, bad framing input).
    pub const INPUT: u8 = 11;
    /// The peer stopped answering: nothing arrived within --ping-timeout of a ping.
    pub const DEAD_PEER: u8 = 12;
}

/// Everything that can end a run (or a session) with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{target}: cannot resolve host: {detail}")]
    Dns { target: String, detail: String },
    #[error("{target}: connection failed: {source}")]
    Connect {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{target}: TLS failed: {detail}")]
    Tls { target: String, detail: String },
    #[error("{target}: handshake refused: {detail}")]
    Handshake {
        target: String,
        detail: String,
        /// Who refused, and how: what `--reconnect` decides by.
        by: Refused,
    },
    #[error("{target}: {what} timed out after {}", fmt_duration(*after))]
    Timeout {
        target: String,
        what: &'static str,
        after: Duration,
    },
    #[error("{target}: peer closed abnormally: {detail}")]
    PeerClosed { target: String, detail: String },
    #[error("{target}: protocol error: {detail}")]
    Protocol { target: String, detail: String },
    #[error("{target}: cannot start the program: {source}")]
    Spawn {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{target}: peer not responding: nothing received within {} of a ping", fmt_duration(*after))]
    DeadPeer { target: String, after: Duration },
    #[error("{target}: cannot listen: {source}")]
    Listen {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The documented exit code for this class of error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Dns { .. } => exit::DNS,
            Error::Connect { .. } | Error::Spawn { .. } => exit::CONNECT,
            Error::Tls { .. } => exit::TLS,
            Error::Handshake { .. } => exit::HANDSHAKE,
            Error::Timeout { .. } => exit::TIMEOUT,
            Error::PeerClosed { .. } => exit::PEER_CLOSED,
            Error::Protocol { .. } => exit::PROTOCOL,
            Error::Listen { .. } => exit::LISTEN,
            Error::Input(_) => exit::INPUT,
            Error::DeadPeer { .. } => exit::DEAD_PEER,
            Error::Io { .. } | Error::Internal(_) => exit::INTERNAL,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// `1.5s`, `250ms`: short, human durations for messages.
pub fn fmt_duration(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who refused a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The server answered with this HTTP status.
    Server(u16),
    /// A proxy on the way said no (407, 403, a SOCKS login or ruleset).
    Proxy,
    /// Something else about the handshake (a bad redirect, a missing header).
    Other,
}
