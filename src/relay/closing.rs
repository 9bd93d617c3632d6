//! How a session ends. The rules are pure functions of how each direction ended: [`outcome`]
//! for a byte stream facing a WebSocket, [`relayed`] for two message connections. They decide
//! which Close to send, what the local side is told, whether to read on, and the session's
//! result; the pumps only carry that out, with the small I/O steps at the end of this file
//! (send a Close, read a connection to its end). Also here: close codes (which are normal, how to
//! describe one) and what a failed read from a message connection means. docs/closing.md says
//! the same for users.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes, error::ProtocolError};

use crate::conn::{MsgSink, MsgStream};
use crate::error::{Error, Result};

/// How the local → WebSocket direction of a bytes↔messages session ended.
pub(crate) enum Up {
    /// Nothing arrived within --ping-timeout of a ping.
    DeadPeer,
    /// Local EOF; Close sent unless `--no-close`.
    Eof,
    /// Bad local input or a local read error; a Close has been attempted.
    Failed(Error),
    /// Sending to the WebSocket failed; the reading side will say why.
    SendFailed,
}

/// How the WebSocket → local direction of a bytes↔messages session ended.
pub(crate) enum Down {
    /// Nothing arrived within --ping-timeout of a ping.
    DeadPeer,
    Closed(Option<CloseFrame>),
    /// `--max-messages-rev` reached.
    Limit,
    Ended,
    ReadError(WsError),
    WriteError(std::io::Error),
}

/// How a bytes↔messages session over one WebSocket connection ended.
pub(crate) enum Ended {
    /// The session is over (the local side was told and closed).
    Done(Result<()>),
    /// The WebSocket went away while the local side is still open: reconnect if you like.
    Dropped(Error),
}

/// What a bytes↔messages session's end depends on besides how its two directions ended.
pub(crate) struct Facts<'a> {
    /// The WebSocket's label (errors name it).
    pub label: &'a str,
    pub local_label: &'a str,
    /// This side had sent a Close when the local → WebSocket direction ended.
    pub close_sent: bool,
    /// Shutdown was asked for.
    pub shutting_down: bool,
    /// `--reconnect`: a WebSocket that goes away while the local side is open is not the end.
    pub reconnecting: bool,
    /// `--close-code`, `--close-reason`: the Close a local end sends (here: `--max-messages-rev`).
    pub close_code: u16,
    pub close_reason: &'a str,
    pub close_timeout: Duration,
    pub ping_timeout: Duration,
    /// Server role, and the byte side is a socket opened for the WebSocket's client (`tcp:`,
    /// `unix:`; not a program, whose exit status speaks for it): its failure is the client's
    /// business (Close 1011 "backend reset"), not a normal end.
    pub backend: bool,
}

/// After `close` is sent: read on until the peer's Close or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drain {
    No,
    /// Wait for the peer's Close (bounded by `--close-timeout`) before the local side is told.
    UntilClose,
    /// After the local side was told, read to the end (our answer goes out, the peer hangs up;
    /// see [`drain`]).
    ToEnd,
}

/// What to do when a bytes↔messages session's directions have ended, in this order: send
/// `close` (waiting at most its duration), read as `drain` says, tell the local side
/// `last_word` and close its write side, then end with `result`.
pub(crate) struct Outcome {
    pub result: Ended,
    pub close: Option<(CloseFrame, Duration)>,
    pub drain: Drain,
    /// The close event for the local side (jsonl writes it); `None`: leave the local side as it
    /// is (the WebSocket was dropped for a reconnect).
    pub last_word: Option<(Option<CloseFrame>, Option<String>)>,
    /// For the summary line when the session ends well: how the peer closed.
    pub summary: String,
    /// Logged at debug level.
    pub note: Option<String>,
}

/// The closing rules for a byte stream facing a WebSocket (docs/closing.md, "Byte stream and
/// WebSocket"). `up`: how local → WebSocket ended (`None`: it had not); `down`: how WebSocket →
/// local ended (`None`: the close deadline passed, or shutdown's).
pub(crate) fn outcome(up: Option<Up>, down: Option<Down>, facts: &Facts) -> Outcome {
    let local_open = matches!(up, None | Some(Up::SendFailed));
    let down = if facts.reconnecting && local_open && !facts.shutting_down {
        match dropped(down, facts) {
            Ok(dropped) => return dropped,
            Err(down) => down,
        }
    } else {
        down
    };
    let mut o = ended(down, facts);
    if let Some(Up::Failed(err)) = up {
        // A local failure (a line too long, a read error) says more than the peer's answer.
        o.result = Ended::Done(Err(err));
    }
    o
}

/// With `--reconnect` and the local side open: a WebSocket that went away is dropped, not the
/// end of the session. `Err`: this `down` ends the session after all.
fn dropped(down: Option<Down>, f: &Facts) -> std::result::Result<Outcome, Option<Down>> {
    let (err, close, drain) = match down {
        Some(Down::Closed(frame)) => (peer_closed(f.label, &frame), None, Drain::ToEnd),
        Some(Down::Ended) => (
            Error::PeerClosed {
                target: f.label.to_string(),
                detail: "connection ended".into(),
            },
            None,
            Drain::No,
        ),
        Some(Down::DeadPeer) => (dead_peer(f), None, Drain::No),
        Some(Down::ReadError(e)) => {
            let (code, err) = classify_read_error(f.label, e);
            let close = code.map(|code| (close_frame(code, ""), f.close_timeout));
            (err, close, Drain::No)
        }
        other => return Err(other),
    };
    Ok(Outcome {
        result: Ended::Dropped(err),
        close,
        drain,
        last_word: None,
        summary: String::new(),
        note: None,
    })
}

/// The end of the session, from how WebSocket → local ended.
fn ended(down: Option<Down>, f: &Facts) -> Outcome {
    let mut o = Outcome {
        result: Ended::Done(Ok(())),
        close: None,
        drain: Drain::No,
        last_word: Some((None, None)),
        summary: String::new(),
        note: None,
    };
    let result = match down {
        Some(Down::Closed(frame)) => {
            o.drain = Drain::ToEnd;
            o.summary = format!("; peer closed with {}", describe_close(&frame));
            let result = if is_normal_close(&frame) || f.close_sent {
                // After our own Close the peer's answer (often an echo of our code) is no failure.
                Ok(())
            } else {
                Err(peer_closed(f.label, &frame))
            };
            o.last_word = Some((frame, None));
            result
        }
        Some(Down::Limit) => {
            // --max-messages-rev reached: close like a local EOF would, and wait for the answer.
            let frame = CloseFrame {
                code: CloseCode::from(f.close_code),
                reason: f.close_reason.to_string().into(),
            };
            if !f.close_sent {
                o.close = Some((frame.clone(), f.close_timeout));
            }
            o.drain = Drain::UntilClose;
            o.last_word = Some((Some(frame), None));
            Ok(())
        }
        Some(Down::Ended) => {
            o.last_word = Some((None, Some("connection ended".into())));
            Ok(())
        }
        Some(Down::DeadPeer) => {
            // Nothing will answer: a short, best-effort goodbye.
            let wait = Duration::from_millis(100);
            o.close = Some((close_frame(CloseCode::Away, "not responding"), wait));
            let after = crate::error::fmt_duration(f.ping_timeout);
            o.last_word = Some((None, Some(format!("peer not responding after {after}"))));
            Err(dead_peer(f))
        }
        Some(Down::ReadError(e)) => read_failed(e, f, &mut o),
        Some(Down::WriteError(e)) if stalled(&e).is_some() => {
            let after = stalled(&e).unwrap_or_default();
            o.close = Some((
                close_frame(CloseCode::Error, BACKEND_STALLED),
                f.close_timeout,
            ));
            Err(Error::Timeout {
                target: format!("backend {}", f.local_label),
                what: "writing (the backend took no data; the client got Close 1011)",
                after,
            })
        }
        Some(Down::WriteError(e)) if f.backend && is_reset(&e) => {
            o.close = Some((
                close_frame(CloseCode::Error, BACKEND_RESET),
                f.close_timeout,
            ));
            Err(backend_failed(f.local_label, e))
        }
        Some(Down::WriteError(e)) => {
            // The local reader went away (closed stdout, client hung up): say goodbye politely.
            o.close = Some((close_frame(CloseCode::Away, ""), f.close_timeout));
            if is_disconnect(&e) {
                o.note = Some(format!("{}: went away: {e}", f.local_label));
                Ok(())
            } else {
                Err(Error::io(format!("{}: write failed", f.local_label), e))
            }
        }
        // Shutting down: we said goodbye and waited long enough; that is a clean stop.
        None if f.shutting_down => {
            o.last_word = Some((None, Some("shutting down".into())));
            Ok(())
        }
        None => {
            o.last_word = Some((None, Some("no Close from the peer".into())));
            Err(Error::Timeout {
                target: f.label.to_string(),
                what: "closing handshake (no Close from the peer)",
                after: f.close_timeout,
            })
        }
    };
    o.result = Ended::Done(result);
    o
}

/// Reading the WebSocket failed: answer with a Close that fits, if it can still carry one.
fn read_failed(e: WsError, f: &Facts, o: &mut Outcome) -> Result<()> {
    let (code, err) = classify_read_error(f.label, e);
    if let Some(code) = code {
        let reason = match code {
            CloseCode::Invalid => "invalid UTF-8",
            CloseCode::Size => "message too big",
            CloseCode::Protocol => "protocol error",
            CloseCode::Policy => "message stalled",
            CloseCode::Again => "server busy",
            _ => "",
        };
        o.close = Some((close_frame(code, reason), f.close_timeout));
    }
    match err {
        // We had said goodbye; a peer that just hangs up has answered well enough.
        Error::PeerClosed { .. } if f.close_sent => {
            o.last_word = Some((None, Some("connection ended after our Close".into())));
            Ok(())
        }
        err => {
            o.last_word = Some((None, Some(err.to_string())));
            Err(err)
        }
    }
}

fn dead_peer(f: &Facts) -> Error {
    Error::DeadPeer {
        target: f.label.to_string(),
        after: f.ping_timeout,
    }
}

/// How one direction of a messages↔messages bridge ended.
pub(crate) enum Dir {
    Closed(Option<CloseFrame>),
    Ended,
    ReadError(WsError),
}

/// What to do when the first direction of a messages↔messages bridge has ended (the other has
/// had its `--close-timeout`): send `close_failed` to the side that failed and `close_other` to
/// the other one, read both to their end if `drain_both`, then end with `result`.
pub(crate) struct Relayed {
    pub result: Result<()>,
    pub close_failed: Option<CloseFrame>,
    pub close_other: Option<CloseFrame>,
    pub drain_both: bool,
    /// For the summary line when the session ends well.
    pub summary: String,
}

/// The closing rules for two message connections (docs/closing.md, "Two message connections").
/// `label`: the side whose direction ended first (a Close from it, its end, or its read error).
pub(crate) fn relayed(first: Dir, label: &str) -> Relayed {
    let mut r = Relayed {
        result: Ok(()),
        close_failed: None,
        close_other: None,
        drain_both: false,
        summary: String::new(),
    };
    match first {
        Dir::Closed(frame) => {
            r.summary = format!("{label} closed: {}", describe_close(&frame));
            r.drain_both = true;
            r.result = close_result(label, &frame);
        }
        Dir::Ended => {}
        Dir::ReadError(e) => {
            let (code, err) = classify_read_error(label, e);
            r.close_failed = code.map(|code| close_frame(code, ""));
            r.close_other = Some(close_frame(CloseCode::Error, "other side failed"));
            r.result = Err(err);
        }
    }
    r
}

/// The result of a session the peer ended with `frame`: fine for a normal Close.
pub(crate) fn close_result(label: &str, frame: &Option<CloseFrame>) -> Result<()> {
    if is_normal_close(frame) {
        Ok(())
    } else {
        Err(peer_closed(label, frame))
    }
}

fn peer_closed(label: &str, frame: &Option<CloseFrame>) -> Error {
    Error::PeerClosed {
        target: label.to_string(),
        detail: describe_close(frame),
    }
}

/// Close codes that mean the peer ended the session normally.
pub(crate) fn is_normal_close(frame: &Option<CloseFrame>) -> bool {
    match frame {
        None => true,
        Some(f) => matches!(f.code, CloseCode::Normal | CloseCode::Away),
    }
}

/// `1011 (internal error) "reason"`.
pub(crate) fn describe_close(frame: &Option<CloseFrame>) -> String {
    match frame {
        None => "no status code".into(),
        Some(f) => {
            let code = u16::from(f.code);
            let name = match code {
                1000 => "normal",
                1001 => "going away",
                1002 => "protocol error",
                1003 => "unsupported data",
                1007 => "invalid payload",
                1008 => "policy violation",
                1009 => "message too big",
                1010 => "extension required",
                1011 => "internal error",
                1012 => "service restart",
                1013 => "try again later",
                3000..=3999 => "registered",
                4000..=4999 => "application",
                _ => "unknown",
            };
            if f.reason.is_empty() {
                format!("close code {code} ({name})")
            } else {
                let reason = crate::text::escape_controls(f.reason.as_str());
                format!("close code {code} ({name}): \"{reason}\"")
            }
        }
    }
}

/// What to do about a failed read from a message connection: the Close code to send back (if
/// the connection can still carry one) and the error to report.
pub(crate) fn classify_read_error(label: &str, e: WsError) -> (Option<CloseCode>, Error) {
    let protocol = |detail: String| Error::Protocol {
        target: label.to_string(),
        detail,
    };
    let peer = |detail: String| Error::PeerClosed {
        target: label.to_string(),
        detail,
    };
    match e {
        WsError::Utf8(_) => (
            Some(CloseCode::Invalid),
            protocol("invalid UTF-8 in a text message (closed with 1007)".into()),
        ),
        WsError::Capacity(c) => (
            Some(CloseCode::Size),
            protocol(format!("{c}; raise --max-message-size (closed with 1009)")),
        ),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => (
            None,
            peer("connection dropped without a Close frame".into()),
        ),
        WsError::Protocol(p) => (
            Some(CloseCode::Protocol),
            protocol(format!("{p} (closed with 1002)")),
        ),
        WsError::Io(io)
            if io
                .get_ref()
                .is_some_and(|e| e.is::<crate::ws::BadCompressedData>()) =>
        {
            (
                Some(CloseCode::Invalid),
                protocol(format!("{io} (closed with 1007)")),
            )
        }
        // wsconn's own limits (--message-timeout, --max-buffered).
        WsError::Io(io)
            if io.kind() == std::io::ErrorKind::TimedOut && io.raw_os_error().is_none() =>
        {
            (
                Some(CloseCode::Policy),
                protocol(format!("{io} (closed with 1008)")),
            )
        }
        WsError::Io(io)
            if io.kind() == std::io::ErrorKind::OutOfMemory && io.raw_os_error().is_none() =>
        {
            (
                Some(CloseCode::Again),
                protocol(format!("{io} (closed with 1013)")),
            )
        }
        WsError::Io(io) => (None, peer(format!("connection lost: {io}"))),
        WsError::Tls(t) => (None, peer(format!("TLS: {t}"))),
        other => (
            Some(CloseCode::Error),
            Error::Internal(format!("{label}: {other}")),
        ),
    }
}

pub(crate) fn close_frame(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }
}

pub(crate) fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(close_frame(code, reason)))
}

/// Send a Close without waiting long; the connection may already be gone.
pub(crate) async fn send_close(sink: &mut MsgSink, msg: Message, limit: Duration) {
    let _ = tokio::time::timeout(limit, sink.send(msg)).await;
}

/// After the peer's Close: read the stream to its end, which sends our Close reply and waits for
/// the peer to hang up (RFC 6455 §7.1.1: the server closes TCP first). A peer that keeps the
/// connection open is given at most a second (or the close timeout, if shorter).
pub(crate) async fn drain(stream: &mut MsgStream, close_timeout: Duration) {
    let limit = close_timeout.min(Duration::from_secs(1));
    let _ = tokio::time::timeout(limit, async { while stream.next().await.is_some() {} }).await;
}

/// `--max-messages-rev`: after our Close, read until the peer's Close (or the end), bounded.
pub(crate) async fn await_close(stream: &mut MsgStream, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        while let Some(Ok(m)) = stream.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}

/// The reason of the Close 1011 a client gets when its backend resets mid-session.
pub(crate) const BACKEND_RESET: &str = "backend reset";

/// The reason of the Close 1011 a client gets when its backend takes no data for
/// `--backend-timeout`.
pub(crate) const BACKEND_STALLED: &str = "backend not reading";

/// The error of a delivery to the backend that waited for its limit (`--backend-timeout`).
#[derive(Debug, thiserror::Error)]
#[error("took no data for {}", crate::error::fmt_duration(*.0))]
pub(crate) struct Stalled(pub Duration);

/// A write that failed for taking nothing for its limit (`--backend-timeout`): the limit.
fn stalled(e: &std::io::Error) -> Option<Duration> {
    let inner = e.get_ref()?.downcast_ref::<Stalled>()?;
    Some(inner.0)
}

/// A connection the other end reset or closed while data was still going to it: for a
/// backend socket, a failure.
pub(crate) fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// The session's error when its backend (`label`) reset mid-session: it names the backend and
/// what the client was told, and is logged as a warning.
pub(crate) fn backend_failed(label: &str, e: std::io::Error) -> Error {
    Error::PeerClosed {
        target: format!("backend {label}"),
        detail: format!("{e}; the client got Close 1011 \"{BACKEND_RESET}\""),
    }
}

/// A local peer that went away (EPIPE and the like): an end, not a failure.
pub(crate) fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Drain::{No, ToEnd, UntilClose};
    use std::io::{self, ErrorKind};
    use tokio_tungstenite::tungstenite::error::CapacityError;

    /// close_sent, shutting_down, reconnecting, backend.
    type Flags = (bool, bool, bool, bool);
    const PLAIN: Flags = (false, false, false, false);
    const BACKEND: Flags = (false, false, false, true);
    const SENT: Flags = (true, false, false, false);
    const SHUT: Flags = (false, true, false, false);
    const RECONNECT: Flags = (false, false, true, false);
    const RECONNECT_SENT: Flags = (true, false, true, false);
    const RECONNECT_SHUT: Flags = (false, true, true, false);

    fn facts((close_sent, shutting_down, reconnecting, backend): Flags) -> Facts<'static> {
        Facts {
            label: "ws://h/",
            local_label: "stdio",
            close_sent,
            shutting_down,
            reconnecting,
            close_code: 4000,
            close_reason: "done",
            close_timeout: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(7),
            backend,
        }
    }

    fn cf(code: u16, reason: &'static str) -> Option<CloseFrame> {
        Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        })
    }

    fn closed(code: u16, reason: &'static str) -> Option<Down> {
        Some(Down::Closed(cf(code, reason)))
    }

    fn read(e: WsError) -> Option<Down> {
        Some(Down::ReadError(e))
    }

    fn write(kind: ErrorKind) -> Option<Down> {
        Some(Down::WriteError(io::Error::from(kind)))
    }

    /// wsconn's own limits: I/O errors without an OS code.
    fn limit(kind: ErrorKind) -> WsError {
        WsError::Io(io::Error::new(kind, "limit"))
    }

    fn too_big() -> WsError {
        WsError::Capacity(CapacityError::MessageTooLong {
            size: 9,
            max_size: 8,
        })
    }

    fn reset() -> WsError {
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
    }

    fn failed() -> Option<Up> {
        Some(Up::Failed(Error::Input("stdio: line too long".into())))
    }

    /// The outcome in the table's words: result ("ok", "N text": exit code N and an error
    /// containing text, "dropped N text"), Close sent ("code 'reason' wait"), last word ("" for
    /// none, else "code why" with "-" for none).
    fn show(o: &Outcome) -> (String, String, String) {
        let result = match &o.result {
            Ended::Done(Ok(())) => "ok".to_string(),
            Ended::Done(Err(e)) => format!("{} {e}", e.exit_code()),
            Ended::Dropped(e) => format!("dropped {} {e}", e.exit_code()),
        };
        let close = o.close.as_ref().map_or(String::new(), |(f, wait)| {
            let wait = crate::error::fmt_duration(*wait);
            format!("{} '{}' {wait}", u16::from(f.code), f.reason)
        });
        let word = o.last_word.as_ref().map_or(String::new(), |(f, why)| {
            let code = f
                .as_ref()
                .map_or("-".into(), |f| u16::from(f.code).to_string());
            format!("{code} {}", why.as_deref().unwrap_or("-"))
        });
        (result, close, word)
    }

    /// Expected text: equal, or with "…" standing for any text in between.
    fn fits(got: &str, want: &str) -> bool {
        let mut pieces = want.split('…');
        let head = pieces.next().unwrap_or_default();
        let Some(mut rest) = got.strip_prefix(head) else {
            return false;
        };
        let mut any = false;
        for piece in pieces {
            any = true;
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        any || rest.is_empty()
    }

    type Row = (
        &'static str,
        Option<Up>,
        Option<Down>,
        Flags,
        &'static str,
        &'static str,
        Drain,
        &'static str,
    );

    #[rustfmt::skip]
    fn table() -> Vec<Row> {
        let eof = || Some(Up::Eof);
        vec![
            // name, up, down, flags => result, Close sent, drain, last word
            ("peer Close without code", eof(), Some(Down::Closed(None)), PLAIN, "ok", "", ToEnd, "- -"),
            ("peer Close 1000", eof(), closed(1000, "bye"), PLAIN, "ok", "", ToEnd, "1000 -"),
            ("peer Close 1001", None, closed(1001, ""), PLAIN, "ok", "", ToEnd, "1001 -"),
            ("peer Close 1011", None, closed(1011, "boom"), PLAIN, "8 …close code 1011 (internal error): \"boom\"", "", ToEnd, "1011 -"),
            ("peer Close 4001 after ours", eof(), closed(4001, ""), SENT, "ok", "", ToEnd, "4001 -"),
            ("peer Close after a local failure", failed(), closed(1000, ""), SENT, "11 stdio: line too long", "", ToEnd, "1000 -"),
            ("limit reached", None, Some(Down::Limit), PLAIN, "ok", "4000 'done' 5s", UntilClose, "4000 -"),
            ("limit reached after our Close", eof(), Some(Down::Limit), SENT, "ok", "", UntilClose, "4000 -"),
            ("stream ended", eof(), Some(Down::Ended), PLAIN, "ok", "", No, "- connection ended"),
            ("dead peer", None, Some(Down::DeadPeer), PLAIN, "12 …not responding: nothing received within 7s", "1001 'not responding' 100ms", No, "- peer not responding after 7s"),
            ("invalid UTF-8", None, read(WsError::Utf8("x".into())), PLAIN, "9 …invalid UTF-8…(closed with 1007)", "1007 'invalid UTF-8' 5s", No, "- ws://h/: protocol error: invalid UTF-8…"),
            ("message too big", None, read(too_big()), PLAIN, "9 …raise --max-message-size (closed with 1009)", "1009 'message too big' 5s", No, "- ws://h/: protocol error…"),
            ("protocol violation", None, read(WsError::Protocol(ProtocolError::NonZeroReservedBits)), PLAIN, "9 …(closed with 1002)", "1002 'protocol error' 5s", No, "- ws://h/: protocol error…"),
            ("message stalled", None, read(limit(ErrorKind::TimedOut)), PLAIN, "9 …(closed with 1008)", "1008 'message stalled' 5s", No, "- ws://h/…"),
            ("budget exceeded", None, read(limit(ErrorKind::OutOfMemory)), PLAIN, "9 …(closed with 1013)", "1013 'server busy' 5s", No, "- ws://h/…"),
            ("dropped without Close", None, read(reset()), PLAIN, "8 …connection dropped without a Close frame", "", No, "- ws://h/: peer closed abnormally…"),
            ("dropped after our Close", eof(), read(reset()), SENT, "ok", "", No, "- connection ended after our Close"),
            ("connection lost", None, read(WsError::Io(io::Error::from_raw_os_error(104))), PLAIN, "8 …connection lost: ", "", No, "- ws://h/…"),
            ("connection lost after our Close", eof(), read(WsError::Io(io::Error::from_raw_os_error(104))), SENT, "ok", "", No, "- connection ended after our Close"),
            ("stalled after our Close", eof(), read(limit(ErrorKind::TimedOut)), SENT, "9 …(closed with 1008)", "1008 'message stalled' 5s", No, "- ws://h/…"),
            ("internal read error", None, read(WsError::AlreadyClosed), PLAIN, "1 ws://h/: …", "1011 '' 5s", No, "- ws://h/: …"),
            ("local reader went away", None, write(ErrorKind::BrokenPipe), PLAIN, "ok", "1001 '' 5s", No, "- -"),
            ("local reader reset", None, write(ErrorKind::ConnectionReset), PLAIN, "ok", "1001 '' 5s", No, "- -"),
            ("local write failed", None, write(ErrorKind::StorageFull), PLAIN, "1 stdio: write failed: …", "1001 '' 5s", No, "- -"),
            ("backend reset", None, write(ErrorKind::ConnectionReset), BACKEND, "8 backend stdio: peer closed abnormally: …; the client got Close 1011 \"backend reset\"", "1011 'backend reset' 5s", No, "- -"),
            ("backend closed while written to", None, write(ErrorKind::BrokenPipe), BACKEND, "8 backend stdio: peer closed abnormally: broken pipe; the client got Close 1011 \"backend reset\"", "1011 'backend reset' 5s", No, "- -"),
            ("backend not reading", None, Some(Down::WriteError(io::Error::new(ErrorKind::TimedOut, Stalled(Duration::from_secs(60))))), BACKEND, "7 backend stdio: writing (the backend took no data; the client got Close 1011) timed out after 60s", "1011 'backend not reading' 5s", No, "- -"),
            ("no Close from the peer", eof(), None, SENT, "7 ws://h/: closing handshake (no Close from the peer) timed out after 5s", "", No, "- no Close from the peer"),
            ("timeout after a local failure", failed(), None, SENT, "11 stdio: line too long", "", No, "- no Close from the peer"),
            ("shutdown", eof(), None, SHUT, "ok", "", No, "- shutting down"),
            // --reconnect: a WebSocket that goes away while the local side is open is dropped.
            ("reconnect: peer Close", None, closed(1000, ""), RECONNECT, "dropped 8 …close code 1000 (normal)", "", ToEnd, ""),
            ("reconnect: peer Close while sending failed", Some(Up::SendFailed), closed(1011, ""), RECONNECT, "dropped 8 …close code 1011", "", ToEnd, ""),
            ("reconnect: stream ended", None, Some(Down::Ended), RECONNECT, "dropped 8 ws://h/: peer closed abnormally: connection ended", "", No, ""),
            ("reconnect: dead peer", None, Some(Down::DeadPeer), RECONNECT, "dropped 12 …within 7s", "", No, ""),
            ("reconnect: invalid UTF-8", None, read(WsError::Utf8("x".into())), RECONNECT, "dropped 9 …(closed with 1007)", "1007 '' 5s", No, ""),
            ("reconnect: connection lost", None, read(reset()), RECONNECT, "dropped 8 …without a Close frame", "", No, ""),
            ("reconnect: limit reached", None, Some(Down::Limit), RECONNECT, "ok", "4000 'done' 5s", UntilClose, "4000 -"),
            ("reconnect: local reader went away", None, write(ErrorKind::BrokenPipe), RECONNECT, "ok", "1001 '' 5s", No, "- -"),
            ("reconnect: no Close from the peer", None, None, RECONNECT_SENT, "7 …timed out after 5s", "", No, "- no Close from the peer"),
            ("reconnect: local EOF, peer Close", eof(), closed(1000, ""), RECONNECT_SENT, "ok", "", ToEnd, "1000 -"),
            ("reconnect: local failure", failed(), read(reset()), RECONNECT_SENT, "11 stdio: line too long", "", No, "- connection ended after our Close"),
            ("reconnect: shutdown, peer Close", None, closed(1001, ""), RECONNECT_SHUT, "ok", "", ToEnd, "1001 -"),
            ("reconnect: shutdown", None, None, RECONNECT_SHUT, "ok", "", No, "- shutting down"),
        ]
    }

    #[test]
    fn bytes_messages_outcome_table() {
        let rows = table();
        assert_eq!(rows.len(), 43);
        for (name, up, down, flags, result, close, drain, word) in rows {
            let o = outcome(up, down, &facts(flags));
            let (got_result, got_close, got_word) = show(&o);
            assert!(
                fits(&got_result, result),
                "{name}: result {got_result:?}, wanted {result:?}"
            );
            assert_eq!(got_close, close, "{name}: Close sent");
            assert_eq!(o.drain, drain, "{name}: drain");
            assert!(
                fits(&got_word, word),
                "{name}: last word {got_word:?}, wanted {word:?}"
            );
        }
    }

    #[test]
    fn the_closing_peer_is_named_in_the_summary_and_a_disconnect_in_a_note() {
        let o = outcome(None, closed(1000, ""), &facts(PLAIN));
        assert_eq!(o.summary, "; peer closed with close code 1000 (normal)");
        assert_eq!(o.note, None);
        let o = outcome(None, write(ErrorKind::BrokenPipe), &facts(PLAIN));
        assert_eq!(
            (o.summary.as_str(), o.note.as_deref()),
            ("", Some("stdio: went away: broken pipe"))
        );
    }

    /// First direction's end => Close to the failed side, to the other side, drain both, result,
    /// summary.
    type RelayedRow = (
        Dir,
        Option<u16>,
        Option<(u16, &'static str)>,
        bool,
        &'static str,
        &'static str,
    );

    #[test]
    fn messages_messages_outcome_table() {
        #[rustfmt::skip]
        let rows: Vec<RelayedRow> = vec![
            (Dir::Closed(None), None, None, true, "ok", "ws://a/ closed: no status code"),
            (Dir::Closed(cf(1001, "")), None, None, true, "ok", "ws://a/ closed: close code 1001 (going away)"),
            (Dir::Closed(cf(4000, "x")), None, None, true, "8 …close code 4000 (application): \"x\"", "ws://a/ closed: close code 4000 (application): \"x\""),
            (Dir::Ended, None, None, false, "ok", ""),
            (Dir::ReadError(WsError::Utf8("x".into())), Some(1007), Some((1011, "other side failed")), false, "9 …(closed with 1007)", ""),
            (Dir::ReadError(too_big()), Some(1009), Some((1011, "other side failed")), false, "9 …(closed with 1009)", ""),
            (Dir::ReadError(reset()), None, Some((1011, "other side failed")), false, "8 …without a Close frame", ""),
        ];
        for (n, (first, failed, other, drain_both, result, summary)) in rows.into_iter().enumerate()
        {
            let r = relayed(first, "ws://a/");
            let got = match &r.result {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{} {e}", e.exit_code()),
            };
            assert!(
                fits(&got, result),
                "row {n}: result {got:?}, wanted {result:?}"
            );
            let code = |f: &CloseFrame| u16::from(f.code);
            assert_eq!(r.close_failed.as_ref().map(code), failed, "row {n}");
            let other_got = r.close_other.as_ref().map(|f| (code(f), f.reason.as_str()));
            assert_eq!(other_got, other, "row {n}");
            assert_eq!(
                (r.drain_both, r.summary.as_str()),
                (drain_both, summary),
                "row {n}"
            );
        }
    }
}
