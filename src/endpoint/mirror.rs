//! `mirror:`: an in-process message endpoint that sends every message back with its type
//! unchanged, and answers a Close with the same Close (then ends), like a well-behaved echo peer.

use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::PollSender;

use super::MsgConn;

/// Messages in flight inside the mirror before the sender is made to wait.
const QUEUE: usize = 256;

pub fn open() -> MsgConn {
    let (tx, rx) = mpsc::channel::<Message>(QUEUE);
    let sink = PollSender::new(tx).sink_map_err(|_| WsError::AlreadyClosed);
    let stream = futures_util::stream::unfold((rx, false), |(mut rx, done)| async move {
        if done {
            return None;
        }
        let msg = rx.recv().await?;
        let last = matches!(msg, Message::Close(_));
        Some((Ok(msg), (rx, last)))
    });
    MsgConn {
        stream: Box::pin(stream),
        sink: Box::pin(sink),
        label: "mirror:".into(),
        websocket: false,
    }
}
