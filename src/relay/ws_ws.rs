//! Messages↔messages: two message connections (WebSockets, rooms) forwarded to each other with
//! their types; a Close travels through, the other direction gets `--close-timeout` to finish.

use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::RelayOptions;
use super::closing::{self, Dir, close, drain, send_close};
use super::{Counter, send_data};
use crate::conn::{MsgConn, MsgSink, MsgStream};
use crate::error::Result;

/// The next message from `src`. When none is ready, `dst` is flushed first (writes are batched
/// while input keeps coming). On the first shutdown request, Close 1001 ("shutting down") is sent
/// on `dst` and reading goes on, so the peers' answers can still arrive.
pub(crate) async fn next_batched(
    src: &mut MsgStream,
    dst: &mut MsgSink,
    closing: &mut bool,
    opts: &RelayOptions,
) -> Option<std::result::Result<Message, WsError>> {
    if let Some(n) = src.next().now_or_never() {
        return n;
    }
    let _ = dst.flush().await;
    loop {
        tokio::select! {
            n = src.next() => return n,
            () = opts.shutdown.cancelled(), if !*closing => {
                *closing = true;
                let _ = dst.send(close(CloseCode::Away, "shutting down")).await;
            }
        }
    }
}

/// Which sides' Closes have been received, shared by the two directions of a
/// messages↔messages bridge: a Close sent to a side that closed first is its answer.
struct ClosedSides<'a> {
    src: &'a AtomicBool,
    dst: &'a AtomicBool,
}

/// Forward messages from `src` to `dst` until `src` closes. With `data` false only Close is
/// forwarded (the other messages are read and dropped).
async fn forward(
    src: &mut MsgStream,
    dst: &mut MsgSink,
    (data, pings, dst_ws): (bool, bool, bool),
    count: &mut Counter,
    closed: ClosedSides<'_>,
    opts: &RelayOptions,
) -> Dir {
    let mut closing = false;
    loop {
        // On shutdown: Close 1001 to the side we write to; its answer ends the other
        // direction, and this one ends with the source's answer.
        let next = next_batched(src, dst, &mut closing, opts).await;
        match next {
            None if closed.dst.load(Ordering::Relaxed) => {
                // `dst` closed first and waits for its answer: its own Close, echoed.
                let _ = dst.close().await;
                return Dir::Ended;
            }
            None => {
                let _ = dst.send(close(CloseCode::Away, "")).await;
                return Dir::Ended;
            }
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                count.add(&m);
                if data {
                    let _ = send_data(dst, m, opts.max_frame_size, dst_ws).await;
                }
            }
            Some(Ok(Message::Close(f))) => {
                closed.src.store(true, Ordering::Relaxed);
                let _ = dst.send(Message::Close(f.clone())).await;
                return Dir::Closed(f);
            }
            // WebSocket to WebSocket: pings travel end to end (each hop also answers its own).
            Some(Ok(m @ Message::Ping(_))) if pings => {
                let _ = dst.feed(m).await;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Dir::ReadError(e),
        }
    }
}

/// Run both directions. The first to end decides; unless it failed, the other gets `limit` to
/// finish. True: `ab` ended first.
async fn first_to_end(
    mut ab: Pin<&mut impl Future<Output = Dir>>,
    mut ba: Pin<&mut impl Future<Output = Dir>>,
    limit: Duration,
) -> (bool, Dir) {
    let first = tokio::select! {
        d = &mut ab => (true, d),
        d = &mut ba => (false, d),
    };
    if !matches!(first.1, Dir::ReadError(_)) {
        let rest = async {
            if first.0 {
                (&mut ba).await
            } else {
                (&mut ab).await
            }
        };
        let _ = tokio::time::timeout(limit, rest).await;
    }
    first
}

/// Bridge two message connections: each direction `forward`s, [`closing::relayed`] decides the
/// end.
pub(crate) async fn messages_messages(a: MsgConn, b: MsgConn, opts: &RelayOptions) -> Result<()> {
    let MsgConn {
        stream: mut a_rx,
        sink: mut a_tx,
        label: a_label,
        websocket: a_ws,
        ..
    } = a;
    let MsgConn {
        stream: mut b_rx,
        sink: mut b_tx,
        label: b_label,
        websocket: b_ws,
        ..
    } = b;
    let (mut ab_count, mut ba_count) = (Counter::default(), Counter::default());
    let pings = a_ws && b_ws;
    let (a_closed, b_closed) = (AtomicBool::new(false), AtomicBool::new(false));
    let ab = forward(
        &mut a_rx,
        &mut b_tx,
        (opts.forward, pings, b_ws),
        &mut ab_count,
        ClosedSides {
            src: &a_closed,
            dst: &b_closed,
        },
        opts,
    );
    let ba = forward(
        &mut b_rx,
        &mut a_tx,
        (opts.reverse, pings, a_ws),
        &mut ba_count,
        ClosedSides {
            src: &b_closed,
            dst: &a_closed,
        },
        opts,
    );
    // Pinned here: moved into `first_to_end` they would take their size twice.
    let (from_a, dir) = first_to_end(pin!(ab), pin!(ba), opts.close_timeout).await;
    let label = if from_a { &a_label } else { &b_label };
    // The Close that ended the first direction (forwarded as it was).
    let first_close = match &dir {
        Dir::Closed(frame) => frame.clone(),
        _ => None,
    };
    let r = closing::relayed(dir, label);
    let (failed, other) = if from_a {
        (&mut a_tx, &mut b_tx)
    } else {
        (&mut b_tx, &mut a_tx)
    };
    // The close code passed on (or sent to the side that failed).
    let close_code = r
        .close_other
        .as_ref()
        .or(r.close_failed.as_ref())
        .or(first_close.as_ref())
        .map(|f| u16::from(f.code));
    if let Some(frame) = r.close_failed {
        send_close(failed, Message::Close(Some(frame)), opts.close_timeout).await;
    }
    if let Some(frame) = r.close_other {
        send_close(other, Message::Close(Some(frame)), opts.close_timeout).await;
    }
    if r.drain_both {
        drain(&mut a_rx, opts.close_timeout).await;
        drain(&mut b_rx, opts.close_timeout).await;
    }
    let (result, ended) = (r.result, r.summary);
    tracing::info!(
        session_end = true,
        close_code,
        forward_messages = ab_count.messages,
        forward_bytes = ab_count.bytes,
        reverse_messages = ba_count.messages,
        reverse_bytes = ba_count.bytes,
        "{a_label} <-> {b_label}: session ended: {} messages ({} bytes) ->, {} messages ({} bytes) <-; {}",
        ab_count.messages,
        ab_count.bytes,
        ba_count.messages,
        ba_count.bytes,
        match &result {
            Ok(()) if ended.is_empty() => "ended".to_string(),
            Ok(()) => ended,
            Err(e) => e.to_string(),
        }
    );
    result
}
