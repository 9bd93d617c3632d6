//! The relay: pumps between two connections until the session ends. [`bridge`] picks the pump
//! from the two connection shapes; each pair has its own file:
//!
//! - `bytes_ws`: a byte stream facing a WebSocket, through the framing codecs ([`framing`],
//!   `localio`): the local side, the two directions (`bytes_ws/send.rs`, `bytes_ws/receive.rs`)
//!   and the held Close (`linger` has the rule);
//! - `ws_ws`: two message connections, messages forwarded with their types;
//! - `bytes_bytes`: two byte streams, copied with half-close;
//! - `mirror`: `mirror:` facing either shape;
//! - `reconnect`: `--reconnect`, a byte stream bridged to WebSockets opened again.
//!
//! Shared by them: `closing` (how a session ends: pure rules, table-tested, and the steps that
//! carry them out), `keepalive` (pings, the dead peer), `woken` (a pump's two directions polled
//! only when woken), and here `Counter` and `send_data`. Both directions of a pump run
//! concurrently in one task; writes are batched (`feed` while input is ready, then one `flush`).
//!
//! Closing (bytes↔messages): local EOF → send Close 1000 (unless `--no-close`) and keep
//! delivering incoming messages until the peer's Close or `--close-timeout`. Peer Close → flush
//! what is buffered, shut down the local write side, let tungstenite answer the Close.

mod bytes_bytes;
mod bytes_ws;
mod closing;
pub mod framing;
mod keepalive;
mod linger;
mod localio;
mod mirror;
mod options;
mod reconnect;
mod woken;
mod ws_ws;

pub use linger::Linger;
pub use options::{RelayOptions, UptimeOptions};
pub use reconnect::bridge_reconnecting;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::conn::{Conn, MsgSink};
use crate::error::{Error, Result};

/// Bridge two connections. `a` is ADDR1's side: `--unidirectional` copies a → b only.
pub async fn bridge(a: Conn, b: Conn, opts: &RelayOptions) -> Result<()> {
    match (a, b) {
        (Conn::Bytes(a), Conn::Messages(b)) => {
            bytes_ws::bytes_messages(
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
            bytes_ws::bytes_messages(
                b,
                a,
                opts.reverse,
                opts.forward,
                (opts.max_reverse, opts.max_forward),
                opts,
            )
            .await
        }
        (Conn::Messages(a), Conn::Messages(b)) => ws_ws::messages_messages(a, b, opts).await,
        (Conn::Bytes(a), Conn::Bytes(b)) => bytes_bytes::bytes_bytes(a, b, opts).await,
        (Conn::Messages(m), Conn::Mirror) | (Conn::Mirror, Conn::Messages(m)) => {
            mirror::echo_messages(m, opts.forward && opts.reverse, opts).await
        }
        (Conn::Bytes(b), Conn::Mirror) | (Conn::Mirror, Conn::Bytes(b)) => {
            mirror::echo_bytes(b, opts.forward && opts.reverse, opts).await
        }
        (Conn::Mirror, Conn::Mirror) => {
            Err(Error::Usage("mirror: cannot face another mirror:".into()))
        }
    }
}

/// End a message connection that has nothing to talk to: Close 1011 with `reason`, then wait
/// (bounded) for the peer's answer.
pub async fn refuse(m: crate::conn::MsgConn, reason: &'static str, limit: std::time::Duration) {
    use futures_util::{SinkExt, StreamExt};
    let crate::conn::MsgConn {
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

/// Messages and bytes one direction carried, for the session's summary line.
#[derive(Default)]
pub(crate) struct Counter {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
}

impl Counter {
    pub(crate) fn add(&mut self, m: &Message) {
        self.messages += 1;
        self.bytes += m.len() as u64;
    }
}

/// Send a data message, in fragments of at most `max_frame` bytes when it is larger and the
/// sink is a WebSocket (RFC 6455 §5.4; tungstenite sends whole messages as one frame).
pub(crate) async fn send_data(
    sink: &mut MsgSink,
    msg: Message,
    max_frame: usize,
    websocket: bool,
) -> std::result::Result<(), WsError> {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    if !websocket || msg.len() <= max_frame || max_frame == 0 {
        return sink.feed(msg).await;
    }
    let (mut payload, first) = match msg {
        Message::Text(t) => (bytes::Bytes::from(t), Data::Text),
        Message::Binary(b) => (b, Data::Binary),
        other => return sink.feed(other).await,
    };
    let mut opcode = OpCode::Data(first);
    while !payload.is_empty() {
        let piece = payload.split_to(payload.len().min(max_frame));
        let last = payload.is_empty();
        sink.feed(Message::Frame(Frame::message(piece, opcode, last)))
            .await?;
        opcode = OpCode::Data(Data::Continue);
    }
    Ok(())
}
