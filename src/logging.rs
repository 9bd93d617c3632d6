//! Logging: to stderr, without timestamps, at the level `-q`/`-v` ask for or `RUST_LOG` sets, as
//! text or (`--log-format json`) one JSON object per line; and one rule that no filter can undo.
//! tungstenite and tokio-tungstenite log raw handshake requests (with their `Authorization` and
//! `Cookie` headers and URL tokens) and message contents at trace level, so trace events from
//! those targets are never written: the rule is a filter of its own on the output layer, applied
//! after `RUST_LOG`'s, so no directive (`tungstenite::handshake::client=trace`,
//! `tokio_tungstenite=trace`, `trace`) re-enables them. Both formats go through that one layer.
//!
//! Each session runs in a [`session_span`]: a process-wide number, the peer and the address
//! label. Text lines of a session start with `session=N: `; JSON lines carry `session`, `peer`
//! and `label`, and the session's end line also its counts, close code and `duration_ms`.
//!
//! Under systemd (`JOURNAL_STREAM` set), text lines start with their syslog priority (`<3>`
//! error, `<4>` warning, `<6>` info, `<7>` debug and trace, sd-daemon(3)) instead of the level
//! word, so that journald records the level; JSON lines are left as they are.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogLevel;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people: `LEVEL session=N: message`
    #[default]
    Text,
    /// One JSON object per line: level, target, message, and the session's fields
    Json,
}

/// How lines are written: the format, and whether stderr goes to journald.
#[derive(Debug, Clone, Copy)]
struct Style {
    format: LogFormat,
    journald: bool,
}

static STYLE: OnceLock<Style> = OnceLock::new();

/// Choose the format (once, as early as possible: the lines printed before logging is set up,
/// such as a usage error, follow it too).
pub fn set_format(format: LogFormat) {
    let _ = STYLE.set(Style {
        format,
        journald: journald(),
    });
}

fn style() -> Style {
    *STYLE.get_or_init(|| Style {
        format: LogFormat::Text,
        journald: journald(),
    })
}

/// systemd connects stderr to journald and says so in `JOURNAL_STREAM` (sd-daemon(3)).
fn journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some_and(|v| !v.is_empty())
}

/// The syslog priority journald reads from a `<N>` prefix.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Install the global subscriber (once, before anything logs).
pub fn init(level: LogLevel) {
    let default = match level {
        LogLevel::Quiet => "error",
        // exec: children's stderr lines (--exec-stderr log) are info, and shown by default.
        LogLevel::Normal => "warn,wsbridge::child=info",
        LogLevel::Verbose(1) => "info",
        LogLevel::Verbose(2) => "debug",
        LogLevel::Verbose(_) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let style = style();
    let output = Output {
        style,
        ansi: style.format == LogFormat::Text && !style.journald && std::io::stderr().is_terminal(),
    }
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

/// The next session number: 1, 2, 3, … for the life of the process.
fn next_session() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The span a session runs in: a new number, the peer's address where there is one, and the
/// label once it is known (`span.record("label", …)`). At error level, so that it is enabled
/// whenever anything of the session is logged at all.
pub fn session_span(peer: Option<std::net::SocketAddr>) -> tracing::Span {
    let span = tracing::error_span!(
        "session",
        session = next_session(),
        peer = tracing::field::Empty,
        label = tracing::field::Empty
    );
    if let Some(peer) = peer {
        span.record("peer", tracing::field::display(peer));
    }
    span
}

/// A line that is not a log event (the listening announcement, the final error), in the
/// current format: `wsbridge: …` as text (with its `<N>` under journald), or a JSON object whose
/// message is the text after `wsbridge: `.
pub fn line(level: Level, text: &str) {
    let s = style();
    let mut out = match s.format {
        LogFormat::Text if s.journald => format!("<{}>{text}", priority(level)),
        LogFormat::Text => text.to_string(),
        LogFormat::Json => {
            let mut m = Map::new();
            m.insert("level".into(), level.as_str().into());
            m.insert("target".into(), "wsbridge".into());
            let message = text.strip_prefix("wsbridge: ").unwrap_or(text);
            m.insert("message".into(), message.into());
            Value::Object(m).to_string()
        }
    };
    out.push('\n');
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// Event fields that only JSON shows: the session's end line says them in words as well.
const SUMMARY_FIELDS: &[&str] = &[
    "session_end",
    "close_code",
    "sent_messages",
    "sent_bytes",
    "received_messages",
    "received_bytes",
    "forward_messages",
    "forward_bytes",
    "reverse_messages",
    "reverse_bytes",
    "echoed_messages",
    "echoed_bytes",
];

/// The one output layer (both formats).
struct Output {
    style: Style,
    ansi: bool,
}

/// A span's fields, as recorded, and when it began.
struct SpanData {
    fields: Vec<(&'static str, Value)>,
    started: Instant,
}

/// Collects fields as JSON values; `log` records (bridged by tracing-log) have their real
/// target in `log.target`, and their other `log.*` fields are dropped.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    fields: Vec<(&'static str, Value)>,
    log_target: Option<String>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                v => v.to_string(),
            });
        } else if name == "log.target" {
            if let Value::String(s) = value {
                self.log_target = Some(s);
            }
        } else if !name.starts_with("log.") {
            match self.fields.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => self.fields.push((name, value)),
            }
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
}

/// A field's value as text shows it (strings without quotes).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

impl<S> Layer<S> for Output
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut f = Fields::default();
        attrs.record(&mut f);
        span.extensions_mut().insert(SpanData {
            fields: f.fields,
            started: Instant::now(),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        let mut f = Fields {
            fields: std::mem::take(&mut data.fields),
            ..Fields::default()
        };
        values.record(&mut f);
        data.fields = f.fields;
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let meta = event.metadata();
        let level = *meta.level();
        let message = f.message.take().unwrap_or_default();
        // The spans around the event, outermost first: (name, fields, start).
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(data) = ext.get::<SpanData>() {
                    spans.push((span.name(), data.fields.clone(), data.started));
                }
            }
        }
        let mut out = String::new();
        match self.style.format {
            LogFormat::Text => {
                if self.style.journald {
                    let _ = write!(out, "<{}>", priority(level));
                } else if self.ansi {
                    let color = match level {
                        Level::ERROR => "31",
                        Level::WARN => "33",
                        Level::INFO => "32",
                        Level::DEBUG => "34",
                        Level::TRACE => "35",
                    };
                    let _ = write!(out, "\x1b[{color}m{:>5}\x1b[0m ", level.as_str());
                } else {
                    let _ = write!(out, "{:>5} ", level.as_str());
                }
                for (name, fields, _) in &spans {
                    // A session shows its number only: its lines name the peer already.
                    match fields.iter().find(|(n, _)| *n == "session") {
                        Some((_, id)) => {
                            let _ = write!(out, "session={}: ", plain(id));
                        }
                        None => {
                            let _ = write!(out, "{name}: ");
                        }
                    }
                }
                out.push_str(&message);
                for (name, value) in &f.fields {
                    if !SUMMARY_FIELDS.contains(name) {
                        let _ = write!(out, " {name}={}", plain(value));
                    }
                }
            }
            LogFormat::Json => {
                let mut m = Map::new();
                m.insert("level".into(), level.as_str().into());
                let target = f.log_target.take();
                m.insert(
                    "target".into(),
                    target.as_deref().unwrap_or(meta.target()).into(),
                );
                m.insert("message".into(), message.into());
                let mut end = false;
                let mut started = None;
                for (_, fields, start) in &spans {
                    if fields.iter().any(|(n, _)| *n == "session") {
                        started = Some(*start);
                    }
                    for (name, value) in fields {
                        m.insert((*name).into(), value.clone());
                    }
                }
                for (name, value) in f.fields {
                    if name == "session_end" {
                        end = true;
                        continue;
                    }
                    m.insert(name.into(), value);
                }
                if let (true, Some(start)) = (end, started) {
                    let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                    m.insert("duration_ms".into(), ms.into());
                }
                out = Value::Object(m).to_string();
            }
        }
        out.push('\n');
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }
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

    #[test]
    fn priorities_follow_sd_daemon() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
        assert_eq!(priority(Level::TRACE), 7);
    }

    #[test]
    fn session_numbers_differ() {
        let (a, b) = (next_session(), next_session());
        assert!(b > a);
    }
}
