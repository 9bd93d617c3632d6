//! How a session ends: close codes (which are normal, how to describe one), what a failed read
//! from a message connection means, and the small steps that carry a closing out (send a Close,
//! read a connection to its end).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes, error::ProtocolError};

use crate::endpoint::{MsgSink, MsgStream};
use crate::error::Error;

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

pub(crate) fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
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

pub(crate) fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected
    )
}
