//! Logging: to stderr, without timestamps, at the level `-q`/`-v` ask for or `RUST_LOG` sets; and
//! one rule that no filter can undo. tungstenite and tokio-tungstenite log raw handshake requests
//! (with their `Authorization` and `Cookie` headers and URL tokens) and message contents at trace
//! level, so trace events from those targets are never written: the rule is a filter of its own
//! on the output layer, applied after `RUST_LOG`'s, so no directive
//! (`tungstenite::handshake::client=trace`, `tokio_tungstenite=trace`, `trace`) re-enables them.

use std::io::IsTerminal;

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

use crate::config::LogLevel;

/// Install the global subscriber (once, before anything logs).
pub fn init(level: LogLevel) {
    let default = match level {
        LogLevel::Quiet => "error",
        LogLevel::Normal => "warn",
        LogLevel::Verbose(1) => "info",
        LogLevel::Verbose(2) => "debug",
        LogLevel::Verbose(_) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_filter(filter_fn(may_log));
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
}

/// Whether an event may be written at all, whatever the user's filter says: nothing at trace
/// level from a target of tungstenite or tokio-tungstenite (or their modules).
pub fn may_log(meta: &Metadata<'_>) -> bool {
    !(*meta.level() == Level::TRACE && secret_bearing(meta.target()))
}

/// Targets whose trace events can carry request headers, URLs or message contents.
fn secret_bearing(target: &str) -> bool {
    ["tungstenite", "tokio_tungstenite"]
        .iter()
        .any(|t| target.starts_with(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tungstenite_targets_are_secret_bearing() {
        for t in [
            "tungstenite",
            "tungstenite::handshake",
            "tungstenite::handshake::client",
            "tungstenite::protocol::frame",
            "tokio_tungstenite",
            "tokio_tungstenite::compat",
        ] {
            assert!(secret_bearing(t), "{t}");
        }
        for t in [
            "wsbridge",
            "wsbridge::endpoint::ws_client",
            "rustls",
            "tokio",
        ] {
            assert!(!secret_bearing(t), "{t}");
        }
    }
}
