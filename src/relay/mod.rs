//! The relay: pumps between two connections until the session ends.
//!
//! Bytes↔Messages runs through a framing codec (see [`framing`]); Messages↔Messages forwards
//! messages with their types; Bytes↔Bytes copies with half-close. Both directions run
//! concurrently in one task; writes are batched (`feed` while input is ready, then one `flush`).
//!
//! Closing (bytes↔messages): local EOF → send Close 1000 (unless `--no-close`) and keep
//! delivering incoming messages until the peer's Close or `--close-timeout`. Peer Close → flush
//! what is buffered, shut down the local write side, let tungstenite answer the Close.

pub mod framing;
mod linger;
mod localio;
mod pump;
mod reconnect;

pub use linger::Linger;
pub use reconnect::bridge_reconnecting;

use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, error::ProtocolError};

use crate::config::RelayOptions;
use crate::endpoint::Conn;
use crate::error::{Error, Result};

/// Bridge two connections. `a` is ADDR1's side: `--unidirectional` copies a → b only.
pub async fn bridge(a: Conn, b: Conn, opts: &RelayOptions) -> Result<()> {
    match (a, b) {
        (Conn::Bytes(a), Conn::Messages(b)) => {
            pump::bytes_messages(
                a,
                b,
                opts.forward,
                opts.reverse,
                (opts.max_forward, opts.max_reverse),
                opts,
            )
            .await
        }
        (Conn::Messages(a), Conn::Bytes(b)) => {
            pump::bytes_messages(
                b,
                a,
                opts.reverse,
                opts.forward,
                (opts.max_reverse, opts.max_forward),
                opts,
            )
            .await
        }
        (Conn::Messages(a), Conn::Messages(b)) => pump::messages_messages(a, b, opts).await,
        (Conn::Bytes(a), Conn::Bytes(b)) => pump::bytes_bytes(a, b, opts).await,
        (Conn::Messages(m), Conn::Mirror) | (Conn::Mirror, Conn::Messages(m)) => {
            pump::echo_messages(m, opts.forward && opts.reverse, opts).await
        }
        (Conn::Bytes(b), Conn::Mirror) | (Conn::Mirror, Conn::Bytes(b)) => {
            pump::echo_bytes(b, opts.forward && opts.reverse, opts).await
        }
        (Conn::Mirror, Conn::Mirror) => {
            Err(Error::Usage("mirror: cannot face another mirror:".into()))
        }
    }
}

/// Close codes that mean the peer ended the session normally.
fn is_normal_close(frame: &Option<CloseFrame>) -> bool {
    match frame {
        None => true,
        Some(f) => matches!(f.code, CloseCode::Normal | CloseCode::Away),
    }
}

/// `1011 (internal error) "reason"`.
fn describe_close(frame: &Option<CloseFrame>) -> String {
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
fn classify_read_error(label: &str, e: WsError) -> (Option<CloseCode>, Error) {
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

/// End a message connection that has nothing to talk to: Close 1011 with `reason`, then wait
/// (bounded) for the peer's answer.
pub async fn refuse(m: crate::endpoint::MsgConn, reason: &'static str, limit: std::time::Duration) {
    use futures_util::{SinkExt, StreamExt};
    let crate::endpoint::MsgConn {
        mut stream,
        mut sink,
        ..
    } = m;
    let frame = CloseFrame {
        code: CloseCode::Error,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(limit, async {
        let _ = sink
            .send(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))
            .await;
        while stream.next().await.is_some() {}
    })
    .await;
}
