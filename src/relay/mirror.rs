//! `mirror:`: the relay answers the other side with what it sends, for a message connection and
//! for a byte stream.

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::Counter;
use super::RelayOptions;
use super::closing::{classify_read_error, close, close_result, drain, is_disconnect, send_close};
use super::framing::{FramingError, LocalDecoder, LocalEncoder, LocalEvent};
use super::localio::{LocalReader, LocalWriter};
use super::ws_ws::next_batched;
use crate::conn::{ByteConn, MsgConn, MsgSink};
use crate::error::{Error, Result};

/// Hand `m` to the connection itself, not just to the split sink's one-item slot: `feed` may leave
/// it in the slot, and if the peer's Close is read before the slot is written, tungstenite
/// refuses the message (no data after a Close). `poll_ready` moves the slot into the connection.
async fn push(sink: &mut MsgSink, m: Message) -> std::result::Result<(), WsError> {
    sink.feed(m).await?;
    std::future::poll_fn(|cx| sink.as_mut().poll_ready(cx)).await
}

/// `mirror:` facing a message connection: echo each message, in order, types unchanged. An echo
/// is written before the next message is read, so a Close from the peer is answered only after
/// everything it sent before was echoed. With `echo` false (-u/-U) messages are only consumed.
pub(crate) async fn echo_messages(m: MsgConn, echo: bool, opts: &RelayOptions) -> Result<()> {
    let MsgConn {
        mut stream,
        mut sink,
        label,
        ..
    } = m;
    let mut count = Counter::default();
    let mut closing = false;
    let result = loop {
        // On shutdown: say goodbye, keep echoing until the peer's Close.
        let next = next_batched(&mut stream, &mut sink, &mut closing, opts).await;
        match next {
            None => break Ok(()),
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                count.add(&m);
                if echo && push(&mut sink, m).await.is_err() {
                    // The peer is gone; reading says why.
                    continue;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let _ = sink.flush().await;
                drain(&mut stream, opts.close_timeout).await;
                break close_result(&label, &frame);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                let (code, err) = classify_read_error(&label, e);
                if let Some(code) = code {
                    send_close(&mut sink, close(code, ""), opts.close_timeout).await;
                }
                break Err(err);
            }
        }
    };
    tracing::info!(
        session_end = true,
        echoed_messages = if echo { count.messages } else { 0 },
        echoed_bytes = if echo { count.bytes } else { 0 },
        "{label} <-> mirror: session ended: echoed {} messages ({} bytes){}",
        if echo { count.messages } else { 0 },
        if echo { count.bytes } else { 0 },
        match &result {
            Ok(()) => String::new(),
            Err(e) => format!("; {e}"),
        }
    );
    result
}

/// `mirror:` facing a byte stream: each frame (a line in text mode) is written back as an
/// incoming message of the same content would be.
pub(crate) async fn echo_bytes(b: ByteConn, echo: bool, opts: &RelayOptions) -> Result<()> {
    let ByteConn {
        reader,
        writer,
        label,
        guard: _guard,
        ..
    } = b;
    let mut input = LocalReader::new(reader, LocalDecoder::new(opts.framing.clone()));
    let mut output = LocalWriter::new(writer, LocalEncoder::new(opts.framing.clone()));
    let result = loop {
        let next = match input.next().now_or_never() {
            Some(n) => n,
            None => {
                if let Err(e) = output.flush().await {
                    break Err(FramingError::Io(e));
                }
                tokio::select! {
                    n = input.next() => n,
                    () = opts.shutdown.cancelled() => None,
                }
            }
        };
        match next {
            None => break Ok(()),
            Some(Ok(msg)) => {
                if echo && let Err(e) = output.feed(LocalEvent::Message(msg)).await {
                    break Err(FramingError::Io(e));
                }
            }
            Some(Err(e)) => break Err(e),
        }
    };
    let _ = output.flush().await;
    let _ = output.get_mut().shutdown().await;
    match result {
        Ok(()) => Ok(()),
        Err(FramingError::Io(e)) if is_disconnect(&e) => Ok(()),
        Err(FramingError::Io(e)) => Err(Error::io(format!("{label}: echo failed"), e)),
        Err(e) => Err(Error::Input(format!("{label}: {e}"))),
    }
}
